"""What one Ray task does for `lgnm-live --replay ... --ray`: run one video through the
same code as the single-process run (`realtime.runner.run_item`), with a recording sink
in place of the real ones, and return what the sinks would have received.

The driver (realtime/ray_replay.py) feeds the recorded calls to the run's real sinks in
the order they were made, so predictions.csv, scores.csv, the .eaf files, the events
(and their seq) and metrics.json come out of the same code as a single-process run.
Nothing here imports Ray: the task body is a plain function (tests call it directly).
"""

from __future__ import annotations

import io
import pickle
import threading
import traceback
from contextlib import redirect_stderr
from dataclasses import dataclass, field, replace
from typing import Any

from realtime.common.errors import UserError
from realtime.common.types import Interval, ScoreSample, SpotEvent
from realtime.replay import ReplayItem
from realtime.run_config import RunConfig
from realtime.stats import RunStats

# A recorded sink call: ("begin", stream) | ("event", SpotEvent, Interval) |
# ("status", dict) | ("sample", stream, ScoreSample). Scores per batch (`on_scores`) feed
# only the live dashboard and a progress bar, which a replay on a cluster has not.
Call = tuple[Any, ...]


class RecordingSink:
    """A sink (and the publisher stand-in `run_item` announces each stream to) that keeps
    every call in order."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def begin_stream(self, stream: str) -> None:
        self.calls.append(("begin", stream))

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self.calls.append(("event", event, interval))

    def on_status(self, status: Any) -> None:  # a realtime.pipeline.StreamStatus (frozen)
        self.calls.append(("status", status))

    def on_scores(self, scores: Any) -> None:
        pass

    def on_sample(self, stream: str, sample: ScoreSample) -> None:
        self.calls.append(("sample", stream, sample))


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a Ray worker (text), chained as the cause
    of the re-raised exception so that errors.log shows where it happened."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class StreamFailure:
    """Why a stream failed in the worker: the exception itself when it pickles (a
    UserError always does), else a RuntimeError saying what it was; and its traceback."""

    error: BaseException
    traceback: str

    @classmethod
    def capture(cls, exc: Exception) -> StreamFailure:
        try:
            pickle.dumps(exc)
            error: BaseException = exc
        except Exception:  # noqa: BLE001 - an exception that cannot travel: say what it was
            error = RuntimeError(f"{type(exc).__name__}: {exc}")
        return cls(error, traceback.format_exc())

    def reraise(self) -> None:
        """Raise it here, as `run_item` would have (UserError: the user's; else internal)."""
        if isinstance(self.error, UserError):
            raise self.error
        raise self.error from RemoteTraceback(self.traceback)


@dataclass
class StreamOutcome:
    """One video's result: the recorded sink calls, its RunStats (frames, times, error
    left None: the driver reports `failure`), what the run printed on stderr (warnings,
    notes, in order) and the failure, if any."""

    index: int
    calls: list[Call]
    stats: RunStats
    stderr: str = ""
    failure: StreamFailure | None = None
    node: str = field(default="")


_SCORERS: dict[bytes, Any] = {}  # per worker process: weights load once, not per video


def _scorer_sets(config: RunConfig) -> Any:
    from realtime.stream_runner import ScorerSets

    key = pickle.dumps((config.weights, config.engines, config.backend, config.types))
    if key not in _SCORERS:
        _SCORERS[key] = ScorerSets(config)
    return _SCORERS[key]


def replay_item(index: int, item: ReplayItem, config: RunConfig) -> StreamOutcome:
    """Run `item` as `lgnm-live --replay` runs each stream (no console, no progress bar,
    stderr captured); never raises for the stream's own failure (it is returned)."""
    from rich.console import Console

    from realtime.stream_runner import FlowBackends, RunContext, run_item

    quiet = replace(config, quiet=True, json=False)
    media = str(item.media.resolve()) if item.media and config.fps is None else None
    stats = RunStats(stream=item.name, media=media)
    recorder = RecordingSink()
    failure = None
    captured = io.StringIO()
    with redirect_stderr(captured):  # the warnings and notes go back with the result
        try:
            scorer_sets = _scorer_sets(quiet)
            # The driver built (and so checked) the first backend; a task builds only its own.
            context = RunContext(quiet, scorer_sets, FlowBackends(quiet.flow), [recorder], Console(quiet=True),
                                 threading.Event(), recorder)  # type: ignore[arg-type]
            run_item(item, context, stats)
        except Exception as exc:  # noqa: BLE001 - one stream's fault is its result
            failure = StreamFailure.capture(exc)
    return StreamOutcome(index, recorder.calls, stats, captured.getvalue(), failure)
