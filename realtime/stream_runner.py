"""One stream of an `lgnm-live` run: its scorers (the bundled pair nearest to its frame
rate, or the user's weights), the pipeline with the dashboard or a progress bar, and the
isolation that turns a failure inside it into one `error:` line. Used by the whole run
(`realtime.runner`) and by a Ray task running one video (`realtime.ray_task`)."""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from calibration.megc import scored_truth
from engines.demo_weights import default_weights
from engines.pair_features import make_pair_features
from engines.scorers import Scorer, make_scorer
from realtime.common.errors import UserError
from realtime.common.text import one_line
from realtime.common.types import FlowSettings
from realtime.connect import connect_first
from realtime.dashboard import live_view, threshold_label
from realtime.pipeline import PairFeatures, RunOptions, Sink, run_stream, setup_for_fps
from realtime.publisher import EventPublisher
from realtime.replay import ReplayItem
from realtime.run_config import RunConfig
from realtime.sinks import CallbackSink, EafSink, TraceSink
from realtime.sources import PacedSource
from realtime.stats import RunStats


class ScorerSets:
    """The scorers a run uses. Explicit --weights: that one set for every stream. The
    demo default: per stream, the bundled pair trained nearest to its frame rate (loaded
    when first needed; the 30 fps pair up front so that bad options fail early)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._sets: dict[tuple[Path, ...], list[Scorer]] = {}
        self.first = self.for_fps(None)

    def for_fps(self, fps: float | None) -> list[Scorer]:
        key = self.config.weights or tuple(default_weights(fps))
        if key not in self._sets:
            self._sets[key] = load_scorers(self.config, key)
        return self._sets[key]

    def close(self) -> None:
        for scorers in self._sets.values():
            for s in scorers:
                s.close()


def load_scorers(config: RunConfig, weights: tuple[Path, ...]) -> list[Scorer]:
    """One scorer per wanted type from `weights` (one file per type) on config.backend."""
    engines = config.engines
    for w in weights:
        if not w.is_file():
            hint = " (the demo weights ship with the package; reinstall it)" if not config.weights else ""
            raise UserError(f"--weights {w}: no such file{hint}")
    wanted = config.types
    scorers: list[Scorer] = []
    for i, w in enumerate(weights):
        scorer = make_scorer(w, config.backend, engines[i] if engines else None)
        if scorer.type in wanted:
            if any(s.type == scorer.type for s in scorers):
                raise UserError(f"--weights {w}: a second set of {scorer.type} weights")
            scorers.append(scorer)
        else:
            scorer.close()
    missing = set(wanted) - {s.type for s in scorers}
    if missing:
        raise UserError(f"--weights: no weights for {', '.join(sorted(missing))}")
    rates = {s.type: s.meta.fps for s in scorers}
    if config.weights and len(set(rates.values())) > 1 and not config.quiet:
        # Each type is scaled to the stream's rate (K in seconds), so this runs; but a pair
        # from two trainings (one overwritten by an interrupted run) is seldom meant.
        print("note: --weights: " + " and ".join(f"{t} trained at {r:g} fps" for t, r in sorted(rates.items()))
              + "; a pair from two trainings? (each is scaled to the stream's rate)", file=sys.stderr)
    return scorers


def common_flow(scorers: list[Scorer]) -> FlowSettings:
    flows = {s.meta.flow for s in scorers}
    first = next(iter(flows))
    if len(flows) != 1 and all(f.same_flow_as(first) for f in flows):
        raise UserError("--weights: the ME and MaE weights were trained with different landmark filters; "
                        "one stream aligns each frame once, so train them alike")
    if len(flows) != 1:
        raise UserError("--weights: the ME and MaE weights use different flow settings; "
                        "one stream computes one flow per frame pair, so train them alike")
    return flows.pop()


class FlowBackends:
    """The run's flow backends (`--flow`), one per flow the scorers were trained on. The
    30 and 200 fps demo pairs may differ in flow settings (they did until the seventeenth
    session: the 200 fps pair kept the nose box), so a run that replays both rates builds
    one backend per pair's flow when first needed and shares one where they agree. The
    landmark filter is not part of a backend: each stream's aligner applies its own pair's."""

    def __init__(self, kind: str, first: FlowSettings | None = None) -> None:
        """`first`: built now, so that a --flow mistake fails before any stream (None: each
        backend when first needed, as a Ray task does after the driver checked --flow)."""
        self.kind = kind
        self._backends: dict[FlowSettings, PairFeatures] = {}
        if first is not None:
            self.for_flow(first)

    def for_flow(self, flow: FlowSettings) -> PairFeatures:
        """The backend computing `flow` (built on first use). Raises UserError as
        `engines.pair_features.make_pair_features` does."""
        key = replace(flow, landmark_filter=None)
        if key not in self._backends:
            self._backends[key] = make_pair_features(self.kind, key)
        return self._backends[key]


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every stream of a run shares: its configuration, scorers, flow backend, sinks
    and publisher, the console and the Ctrl-C flag."""

    config: RunConfig
    scorer_sets: ScorerSets
    flow_backends: FlowBackends
    sinks: list[Sink]
    console: Console
    stop: threading.Event
    publisher: EventPublisher | None
    # run-wide notes already printed (one line per run, not one per stream of a replay)
    said: set[str] = field(default_factory=set)


def run_isolated(item: ReplayItem, stats: RunStats, out: Path | None, run_one: Callable[[], object]) -> None:
    """Run one stream; a failure inside it is one `error:` line naming the stream, the
    stream is marked failed (metrics.json), and the next stream still runs. Faults that
    are not the user's (a bug) also leave their traceback in OUT/errors.log (`out`)."""
    try:
        run_one()
    except UserError as exc:
        stats.error = str(exc)
        print(one_line(f"error: stream {item.name}: {exc}"), file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one stream's fault must not end the others
        stats.error = f"internal error: {type(exc).__name__}: {exc}"
        log = f"; traceback in {out / 'errors.log'}" if out else ""
        print(one_line(f"error: stream {item.name}: {stats.error}{log}"), file=sys.stderr)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "errors.log", "a", encoding="utf-8", errors="backslashreplace") as fh:
                fh.write(f"stream {item.name}:\n{traceback.format_exc()}\n")


def say_output_errors(stats: RunStats) -> None:
    """One `error:` line per output of the stream that could not be written (the stream
    itself ran; the run exits 2): the single-process loop and the Ray driver alike."""
    for message in stats.output_errors:
        print(one_line(f"error: stream {stats.stream}: {message}"), file=sys.stderr)


def write_stream_eaf(eaf: EafSink, item: ReplayItem, stats: RunStats, has_truth: bool) -> None:
    """The stream's .eaf, with the truth it is scored on (as truth.csv: intervals within
    the first and last frame read, of the types spotted) when the run has truth. A failure to write is one `error:`
    line, kept in `eaf.failed` (the run then exits 2, as for any output it could not
    write); the other outputs stand."""
    truth = (scored_truth(item.truth, {stats.stream: stats.last_frame}, {stats.stream: stats.first_frame}).truth
             if has_truth else None)
    if truth is not None and stats.models:  # --types: truth of a type not spotted is not scored either
        truth = [iv for iv in truth if iv.type in stats.models]
    try:
        eaf.end_stream(stats, truth)
    except OSError as exc:
        eaf.failed.append(stats.stream)
        print(one_line(f"error: stream {stats.stream}: cannot write its .eaf ({exc})"), file=sys.stderr)


def run_item(item: ReplayItem, context: RunContext, stats: RunStats) -> RunStats:
    """Run one stream with the dashboard (live, --video) or a progress bar (replay)."""
    config, console = context.config, context.console
    source = item.open()
    if source.retimed:  # its times are not the file's own (a splice): the .eaf links no media
        stats.media = None
    if not config.live:
        # One video id per dataset video: the replay's id (the truth's key: `s15_0101`
        # for CAS(ME)^2, not its folder `15_0101disgustingteeth`) names the stream, its
        # events and its predictions alike.
        source.name = item.name

    def note(message: str) -> None:
        """What the face tracker notices (capture thread); also kept in RunStats.notices."""
        print(one_line(f"note: stream {source.name}: {message}"), file=sys.stderr, flush=True)

    def warn(message: str) -> None:
        """What the source says about its input (damaged frames, a short file, a hole in
        the numbering): one `warning:` line each, also with --quiet; kept for metrics.json."""
        stats.notices.append(message)
        print(one_line(f"warning: {message}"), file=sys.stderr, flush=True)

    source.on_notice = warn
    if config.live and not connect_first(source, context.stop.is_set):
        return stats  # Ctrl-C before the first frame: nothing ran; the summary follows
    if context.publisher is not None:
        context.publisher.begin_stream(source.name)  # the stream id: video id or URL path
    if config.video or (config.replay and config.paced):
        source = PacedSource(source)
    scorers = context.scorer_sets.for_fps(source.fps)
    pair_features = context.flow_backends.for_flow(common_flow(scorers))
    setups = [setup_for_fps(s, source.fps, threshold=config.threshold) for s in scorers]
    options = RunOptions(batch=config.batch, face_size=max(s.meta.flow.face_size for s in scorers),
                         max_frames=config.max_frames, save_inputs=config.save_inputs,
                         inputs_dir=config.out / "inputs" if config.out else None)
    show = config.shows_progress
    types = {s.type: s for s in setups}
    if "MaE" not in types and "ME" in types and types["ME"].params.drop_inside_mae:
        off = "the ME weights' cross-type rule (drop ME inside MaE) needs the MaE model; it is off for this run"
        stats.notices.append(off)
        if show and off not in context.said:  # once per run, on stderr with the other notes
            context.said.add(off)
            print(one_line(f"note: {off}"), file=sys.stderr)

    if config.live or config.video:
        trace = TraceSink()
        thresholds = {s.type: threshold_label(s.params) for s in setups}

        def latency() -> dict[str, Any]:
            # the median event latency so far (README, Events): none before the first event;
            # the per-frame read -> scores time is a stage of the performance table instead
            lat = list(trace.latencies)
            return {"latency_ms": round(float(statistics.median(lat)), 1)} if lat else {}

        view = Live(live_view(trace, thresholds), console=console, refresh_per_second=4) if show else None
        sinks: list[Sink] = [*context.sinks, trace]
        if view is not None:
            sinks.append(CallbackSink(on_status=lambda _: view.update(live_view(trace, thresholds))))
        with view if view is not None else contextlib.nullcontext():
            return run_stream(source, setups, pair_features, sinks, options, stats,
                              stop=context.stop.is_set, status_extra=latency, on_notice=note)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:.0f} fps"), TimeRemainingColumn(),
                  # off a terminal a bar cannot redraw, and stopping it there leaves a blank
                  # line between the replay's per-video log lines
                  console=console, transient=True, disable=not show or not console.is_terminal) as progress:
        task = progress.add_task(item.name, total=item.n_frames or source.n_frames, fps=0.0)
        advance = CallbackSink(
            on_scores=lambda _: progress.update(task, completed=stats.frames, fps=stats.fps_so_far()),
            on_status=lambda status: progress.update(task, completed=stats.frames, fps=status.fps))
        return run_stream(source, setups, pair_features, [*context.sinks, advance], options, stats,
                          stop=context.stop.is_set, on_notice=note)
