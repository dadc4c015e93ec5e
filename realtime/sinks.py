"""Where the pipeline's events, scores and status go: the ZeroMQ publisher, the
predictions CSV, the ELAN files, the console and the dashboard's score traces.
(Lab Streaming Layer markers follow the publisher: realtime/lsl.py.)"""

from __future__ import annotations

import csv
import json
import sys
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from realtime.common.text import one_line
from realtime.common.types import EXPR_TYPES, ExprType, FrameScore, Interval, ScoreSample, SpotEvent, StreamStatus
from realtime.eaf import EafDocument, TimedInterval, eaf_name, span_from_times, timed_from_frames, unique_eaf_name, write_eaf
from realtime.intervals_csv import IntervalCsvWriter
from realtime.publisher import EventPublisher
from realtime.stats import RunStats


class NullSink:
    """Base with no-op handlers: a sink overrides what it cares about."""

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        pass

    def on_status(self, status: StreamStatus) -> None:
        pass

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        pass

    def on_sample(self, stream: str, sample: ScoreSample) -> None:
        pass


class PublisherSink(NullSink):
    """Events and status to the ZeroMQ PUB socket (and its journal)."""

    def __init__(self, publisher: EventPublisher) -> None:
        self.publisher = publisher

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self.publisher.publish_event(event)

    def on_status(self, status: StreamStatus) -> None:
        self.publisher.publish_status(**status.message_fields())  # the stream is the publisher's own


class PredictionsSink(NullSink):
    """Every final interval appended to predictions.csv, flushed row by row so that an
    interrupted replay leaves a valid file."""

    def __init__(self, path: Path) -> None:
        self.writer = IntervalCsvWriter(path)
        self.intervals: list[Interval] = []

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        # The row says what the event says: its apex (the midpoint where the interval
        # carries none) and the frame clock's times.
        self.writer.write(replace(interval, apex=event.apex_frame), (event.onset_s, event.offset_s))
        self.intervals.append(interval)

    def close(self) -> None:
        self.writer.close()


class EafSink(NullSink):
    """One ELAN file per stream, `folder/<video id>.eaf` (layout: realtime/eaf.py).

    Events are timed by their stream times (`onset_s`, `offset_s`; the offset frame ends
    1 / fps later) and kept per stream; `end_stream` writes the stream's file once it
    has ended (also after a failure or Ctrl-C), with its truth when the run has one.
    A process killed mid-stream leaves no .eaf for that stream; `lgnm-export-eaf` makes
    it from predictions.csv."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._events: dict[str, list[SpotEvent]] = {}
        self.written: list[Path] = []
        self.failed: list[str] = []  # streams whose .eaf could not be written (the run exits 2)
        self._owners: dict[str, str] = {}  # casefolded .eaf name -> the video id written there

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self._events.setdefault(event.stream, []).append(event)

    def end_stream(self, stats: RunStats, truth: list[Interval] | None) -> Path | None:
        """Write the .eaf of the stream `stats` describes (None: the stream never opened,
        so there is no frame rate to time it by). `truth` None: no truth tiers."""
        fps = stats.source_fps
        if not fps or not stats.stream:
            return None
        predictions = [
            TimedInterval(Interval(e.stream, e.type, e.onset_frame, e.offset_frame, e.score, e.apex_frame),
                          *span_from_times(e.onset_s, e.offset_s, fps))
            for e in self._events.pop(stats.stream, [])
        ]
        doc = EafDocument(stats.stream, predictions, None if truth is None else timed_from_frames(truth, fps),
                          Path(stats.media) if stats.media else None)
        name = unique_eaf_name(stats.stream, self._owners)
        path = write_eaf(self.folder / name, doc)
        if name != eaf_name(stats.stream):
            print(one_line(f"note: stream {stats.stream}: its .eaf is eaf/{name} (another video id gives "
                           f"{eaf_name(stats.stream)})"), file=sys.stderr)
        self.written.append(path)
        return path


SCORES_COLUMNS = ("video", "type", "frame", "raw", "smoothed", "threshold", "face", "chain_break")


class ScoresCsvSink(NullSink):
    """scores.csv: what the spotters saw, one row per frame and type (README, Formats).

    Rows come in the order they become final (a type's smoothed score trails its raw
    score by win//2 frames, so ME and MaE rows interleave); sort by (video, type, frame).
    The file is flushed once a second (with each status) and on close."""

    def __init__(self, path: Path) -> None:
        self._fh = open(path, "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._fh, lineterminator="\n")  # LF, as predictions.csv and truth.csv
        self._csv.writerow(SCORES_COLUMNS)
        self._seen: set[tuple[str, str]] = set()  # (stream, type) with a segment already

    def on_sample(self, stream: str, sample: ScoreSample) -> None:
        key = (stream, sample.type)
        chain_break = sample.segment_start and key in self._seen
        if sample.segment_start:
            self._seen.add(key)
        self._csv.writerow([stream, sample.type, sample.frame, _num(sample.raw), _num(sample.smoothed),
                            _num(sample.threshold), int(sample.face), int(chain_break)])

    def on_status(self, status: StreamStatus) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


class CollectSink(NullSink):
    """Keeps the intervals of a run in memory (for the MEGC table without --out)."""

    def __init__(self) -> None:
        self.intervals: list[Interval] = []

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self.intervals.append(interval)


class ConsoleSink(NullSink):
    """One line per event as it is spotted (rich markup), or a JSON line with --json."""

    def __init__(self, console: Console, as_json: bool = False) -> None:
        self.console = console
        self.as_json = as_json

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        if self.as_json:
            doc = {"stream": event.stream, "type": event.type, "onset_frame": event.onset_frame,
                   "apex_frame": event.apex_frame, "offset_frame": event.offset_frame,
                   "onset_s": event.onset_s, "offset_s": event.offset_s,
                   "score": round(event.score, 4), "latency_ms": round(event.latency_ms, 2)}
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()
            return
        colour = "magenta" if event.type == "ME" else "cyan"
        self.console.print(
            f"[bold {colour}]{event.type:>3}[/] {escape(one_line(event.stream))}  frames {event.onset_frame}-"
            f"{event.offset_frame} (apex {event.apex_frame})  {event.onset_s:.2f}-{event.offset_s:.2f} s"
            f"  score {event.score:.2f}  latency {event.latency_ms:.0f} ms",
            highlight=False,
            soft_wrap=True,
        )


class TraceSink(NullSink):
    """Recent scores, events and status for the live dashboard."""

    def __init__(self, length: int = 120) -> None:
        self.scores: dict[ExprType, deque[float]] = {t: deque(maxlen=length) for t in EXPR_TYPES}
        self.events: deque[SpotEvent] = deque(maxlen=8)
        self.status: StreamStatus | None = None  # the latest
        self.latencies: deque[float] = deque(maxlen=10_000)  # every event's latency_ms (status: their median)

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        for s in scores:
            self.scores[s.type].append(s.score)

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self.events.append(event)
        self.latencies.append(event.latency_ms)

    def on_status(self, status: StreamStatus) -> None:
        self.status = status


class CallbackSink(NullSink):
    """Calls a function on each status and/or each batch of scores: how a progress bar or
    the dashboard follows a run."""

    def __init__(self, on_status: Callable[[StreamStatus], object] | None = None,
                 on_scores: Callable[[Sequence[FrameScore]], object] | None = None) -> None:
        self._on_status = on_status
        self._on_scores = on_scores

    def on_status(self, status: StreamStatus) -> None:
        if self._on_status is not None:
            self._on_status(status)

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        if self._on_scores is not None:
            self._on_scores(scores)
