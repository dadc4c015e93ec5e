"""The streaming pipeline: source -> capture thread (face alignment, per-frame products)
-> ring -> incremental K-offset pair inputs -> scorers -> online spotters -> sinks.

The offline replay is this same pipeline run as fast as the source allows (the ring then
blocks instead of dropping), so replay and live share every algorithm.

Frame chain: the score of frame i of a type needs frames i and i + K. A frame without a
face, a gap in frame numbers (a live ring dropped frames) or a source outage breaks the
chain: pending pairs are scored, the spotters are flushed (their open intervals become
final) and the history restarts, so no flow is ever computed across the break. Scores
resume K frames after the chain restarts.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from calibration.cross_type import settling_peak
from calibration.postprocess import PostParams, odd_at_least
from engines.pair_features import PairFeatures
from engines.scorers import Scorer
from realtime.common.errors import UserError
from realtime.common.types import (
    ExprType,
    FrameRecord,
    FrameScore,
    Interval,
    LandmarkFilter,
    ScoreSample,
    SpotEvent,
    StreamStatus,
)
from realtime.cross_type_gate import InsideMaeGate, settled
from realtime.face import FaceAligner
from realtime.input_images import InputSaver, safe_name
from realtime.labels import k_from_seconds
from realtime.ring import CaptureThread, FrameRing, RingClosed
from realtime.sources import FrameSource, RawFrame
from realtime.spotter import OnlineSpotter
from realtime.stats import RunStats

STATUS_PERIOD_S = 1.0
STOP_GRACE_S = 0.5  # on stop(), how long the capture thread may take to let go (s)


# ------------------------------------------------------------------ configuration

@dataclass(frozen=True)
class TypeSetup:
    """One expression type as run on one stream: its K at the stream's fps, its
    post-processing parameters and its scorer."""

    type: ExprType
    k: int
    params: PostParams
    scorer: Scorer


def setup_for_fps(scorer: Scorer, fps: float, threshold: str = "calibrated") -> TypeSetup:
    """Scale the weights' K (and smoothing window) from their training fps to `fps`.

    K = k_seconds x fps (the method's K is half the mean expression length, a duration);
    the Savitzky-Golay window scales the same way so that smoothing covers the same time.
    `threshold` (realtime.run_config.THRESHOLDS): "calibrated" keeps the weights' rule
    (their fixed threshold, lowered by the rolling one where `adaptive`), "fixed" the
    fixed one alone, "adaptive" the fixed one lowered by the rolling one, "rolling" the
    rolling Moilanen threshold alone. Weights without a fixed threshold use the rolling
    one whatever is asked.
    """
    meta = scorer.meta
    k = k_from_seconds(meta.k_seconds, fps)
    post = dict(meta.post) if meta.post else {}
    post["k"] = k
    if "win" in post and fps != meta.fps:
        post["win"] = odd_at_least(post["win"] * fps / meta.fps, int(post.get("order", 2)) + 1)
    params = PostParams.from_dict(post)
    if threshold == "rolling":
        params = params.with_(threshold=None, adaptive=False)
    elif threshold in ("fixed", "adaptive") and params.threshold is not None:
        params = params.with_(adaptive=threshold == "adaptive")
    elif threshold not in ("calibrated", "fixed", "adaptive"):
        raise ValueError(f"threshold must be calibrated, fixed, adaptive or rolling, got {threshold!r}")
    # Weights without a calibrated threshold also get the rolling one: the live spotter
    # cannot use the offline Moilanen rule (it needs the whole video).
    return TypeSetup(type=meta.type, k=k, params=params, scorer=scorer)


# ------------------------------------------------------------------ capture side

@dataclass(frozen=True, slots=True)
class SourceChange:
    """A live source went down or came back: breaks the frame chain."""

    state: Literal["up", "down"]
    detail: str
    t: float


class FrameProcessor:
    """Per-frame work in the capture thread: landmarks, alignment, flow products."""

    def __init__(self, aligner: FaceAligner, pair_features: PairFeatures, stats: RunStats) -> None:
        self.aligner = aligner
        self.pair_features = pair_features
        self.stats = stats

    def __call__(self, raw: RawFrame) -> FrameRecord:
        t0 = time.perf_counter()
        face = self.aligner.align(raw.image, raw.t_stream)
        t1 = time.perf_counter()
        products = self.pair_features.prepare(face) if face is not None else None
        t2 = time.perf_counter()
        self.stats.times.add("align", (t1 - t0) * 1000.0)
        self.stats.times.add("frame_products", (t2 - t1) * 1000.0)
        return FrameRecord(raw.index, raw.t_capture, raw.t_stream, face, products)


# ------------------------------------------------------------------ sinks

class Sink(Protocol):
    def on_event(self, event: SpotEvent, interval: Interval) -> None: ...

    def on_status(self, status: StreamStatus) -> None: ...

    def on_scores(self, scores: Sequence[FrameScore]) -> None: ...

    def on_sample(self, stream: str, sample: ScoreSample) -> None: ...


# ------------------------------------------------------------------ scoring side

class FrameClock:
    """Stream time and capture time of recent frames, to stamp events with onset_s /
    offset_s and to measure an event's latency from the capture of its offset frame."""

    def __init__(self, fps: float, keep: int) -> None:
        self.fps = fps
        self._times: deque[tuple[int, float, float]] = deque(maxlen=keep)  # index, t_stream, t_capture

    def add(self, index: int, t_stream: float, t_capture: float) -> None:
        self._times.append((index, t_stream, t_capture))

    def _held(self, index: int) -> tuple[int, float, float] | None:
        if not self._times:
            return None
        pos = index - self._times[0][0]
        if 0 <= pos < len(self._times) and self._times[pos][0] == index:
            return self._times[pos]
        return None  # before the window, or frame numbers with gaps (drops, holes)

    def at(self, index: int) -> float:
        """Stream time (s) of frame `index`; extrapolated at the fps when not held."""
        held = self._held(index) or next((r for r in reversed(self._times) if r[0] == index), None)
        if held is not None:
            return held[1]
        if not self._times:
            return (index - 1) / self.fps
        first, last = self._times[0], self._times[-1]
        ref = first if index < first[0] else last
        return ref[1] + (index - ref[0]) / self.fps

    def captured(self, index: int) -> float | None:
        """time.monotonic() when frame `index` was read, when held."""
        held = self._held(index) or next((r for r in reversed(self._times) if r[0] == index), None)
        return None if held is None else held[2]


def make_event(stream: str, iv: Interval, clock: FrameClock, now: float) -> SpotEvent:
    """The event of a final interval. `latency_ms` = now minus the capture time of the
    interval's offset frame (what a user waits after the expression ended), 0 when that
    frame is no longer held."""
    t_offset = clock.captured(iv.offset)
    return SpotEvent(
        stream=stream,
        type=iv.type,
        onset_frame=iv.onset,
        apex_frame=iv.apex if iv.apex is not None else (iv.onset + iv.offset) // 2,
        offset_frame=iv.offset,
        onset_s=round(clock.at(iv.onset), 4),
        offset_s=round(clock.at(iv.offset), 4),
        score=float(iv.score if iv.score is not None else 0.0),
        latency_ms=0.0 if t_offset is None else max(0.0, (now - t_offset) * 1000.0),
        onset_captured=clock.captured(iv.onset),
        offset_captured=t_offset,
    )


class StreamScorer:
    """Scores one stream incrementally and drives one online spotter per type."""

    def __init__(self, stream: str, setups: Sequence[TypeSetup], pair_features: PairFeatures,
                 fps: float, sinks: Sequence[Sink], stats: RunStats, saver: InputSaver | None = None) -> None:
        self.stream = stream
        self.saver = saver
        self.setups = list(setups)
        self.pair_features = pair_features
        self.sinks = list(sinks)
        self.stats = stats
        self.max_k = max(s.k for s in self.setups)
        self.history: deque[FrameRecord] = deque(maxlen=self.max_k + 1)
        # A params.threshold of None (or adaptive) makes the spotter keep a rolling Moilanen threshold.
        self.spotters = {s.type: OnlineSpotter(s.params, stream, s.type) for s in self.setups}
        for spotter in self.spotters.values():
            spotter.on_sample = self._sample
        # ME weights calibrated with the cross-type rule: ME intervals inside MaE ones are
        # dropped, which needs the MaE spotter running on the same stream.
        types = {s.type: s for s in self.setups}
        self.gate = (InsideMaeGate(settling_peak({t: s.params for t, s in types.items()}))
                     if "ME" in types and "MaE" in types and types["ME"].params.drop_inside_mae else None)
        # Frame times must outlive the longest wait of an event: its chunk (L) plus, for an
        # ME held behind an open MaE chunk, that chunk too ("runs" has Q << L).
        keep = max(2 * s.params.chunk_limit + s.k for s in self.setups) + 64
        self.clock = FrameClock(fps, keep)
        self.last_frame = 0
        self.last_face = False

    # -- public --------------------------------------------------------------------
    def process(self, records: Sequence[FrameRecord]) -> None:
        """Add frames in order: build their pairs, score them in batches, spot."""
        pending: list[tuple[TypeSetup, FrameRecord, FrameRecord]] = []
        for rec in records:
            self.stats.frames += 1
            if self.stats.frames == 1:
                self.stats.first_frame = rec.index
            self.last_frame = rec.index
            self.last_face = rec.face is not None
            self.clock.add(rec.index, rec.t_stream, rec.t_capture)
            gap = bool(self.history) and rec.index != self.history[-1].index + 1
            if rec.face is None or gap:
                self._score(pending)
                pending = []
                self.break_chain()
                if rec.face is None:
                    for setup in self.setups:
                        self._sample(ScoreSample(setup.type, rec.index, None, None, None, face=False))
                    continue
            self.stats.faces += 1
            self.history.append(rec)
            for setup in self.setups:
                if len(self.history) > setup.k:
                    pending.append((setup, self.history[-1 - setup.k], rec))
        self._score(pending)

    def break_chain(self, count: bool = True) -> None:
        """No flow across this point: flush the spotters, restart the history."""
        if self.history and count:
            self.stats.chain_breaks += 1
        self.history.clear()
        # MaE first: once it is flushed, every held ME interval of the segment is decided.
        for setup in sorted(self.setups, key=lambda s: s.type != "MaE"):
            self._emit(setup, self.spotters[setup.type].flush())
        self._release(flushed=True)

    def finish(self) -> None:
        """End of stream: everything still open becomes final."""
        self.break_chain(count=False)

    # -- internals -----------------------------------------------------------------
    def _score(self, pending: list[tuple[TypeSetup, FrameRecord, FrameRecord]]) -> None:
        if not pending:
            return
        n = len(pending)
        with self.stats.times.time("pair_inputs", per=n):
            x = self.pair_features.inputs([(a.products, b.products) for _, a, b in pending])
        if self.saver is not None:
            for i, (setup, a, b) in enumerate(pending):
                if self.saver.wants(a.index):
                    self.saver.save(setup.type, a, b, x[i])
        probs = np.empty(n, np.float32)
        for setup in self.setups:
            idx = [i for i, (s, _, _) in enumerate(pending) if s is setup]
            if idx:
                with self.stats.times.time(f"model_{setup.type}", per=len(idx)):
                    probs[idx] = setup.scorer.score(x[idx])
                self.stats.type_scores[setup.type] = self.stats.type_scores.get(setup.type, 0) + len(idx)
        scores = [FrameScore(s.type, a.index, float(p), b.t_capture)
                  for (s, a, b), p in zip(pending, probs, strict=True)]
        for sink in self.sinks:
            sink.on_scores(scores)
        t0 = time.perf_counter()
        for (setup, a, _), p in zip(pending, probs, strict=True):
            self._emit(setup, self.spotters[setup.type].push(a.index, float(p)))
            self._release()
        self.stats.times.add("spotter", (time.perf_counter() - t0) * 1000.0 / n)
        now = time.monotonic()
        for rec in {id(b): b for _, _, b in pending}.values():
            self.stats.times.add("latency", (now - rec.t_capture) * 1000.0)

    def _sample(self, sample: ScoreSample) -> None:
        for sink in self.sinks:
            sink.on_sample(self.stream, sample)

    def _release(self, flushed: bool = False) -> None:
        """Publish the held ME intervals the MaE spotter has settled (all after a flush)."""
        if self.gate is None:
            return
        mae_horizon = float("inf") if flushed else settled(self.spotters["MaE"].horizon)
        self._publish(self.gate.release(mae_horizon, self.spotters["ME"].horizon))

    def _emit(self, setup: TypeSetup, intervals: list[Interval]) -> None:
        if self.gate is not None:
            if setup.type == "ME":
                self.gate.hold(intervals)
                return
            self.gate.add_mae(intervals)
        self._publish(intervals)

    def _publish(self, intervals: list[Interval]) -> None:
        for iv in intervals:
            event = make_event(self.stream, iv, self.clock, time.monotonic())
            self.stats.events += 1
            for sink in self.sinks:
                sink.on_event(event, iv)


FROM_WEIGHTS = "weights"


def _salvage(scorer: StreamScorer, batch: list[FrameRecord]) -> None:
    """Score and finalise what a failing stream had read; a second fault while doing so
    must not hide the first, which the caller re-raises."""
    try:
        scorer.process(batch)
        scorer.finish()
    except Exception:  # noqa: BLE001 - the original failure is the one reported
        pass


@dataclass
class RunOptions:
    batch: int = 16  # most frames scored together (replay: fills; live: what is waiting)
    ring_capacity: int = 64
    face_size: int = 112
    max_frames: int | None = None  # stop after this many frames (exactly)
    # Landmark filter of the face aligner: "weights" takes it from the scorers'
    # metadata (FlowSettings.landmark_filter, what they were trained with; the default),
    # or a LandmarkFilter / None (off) to override it (benchmarks, tests).
    landmark_filter: LandmarkFilter | None | str = FROM_WEIGHTS
    # --save-inputs: write the images of the pairs starting at these frames into
    # inputs_dir/<stream>/ (realtime/input_images.py).
    save_inputs: frozenset[int] = frozenset()
    inputs_dir: Path | None = None


def landmark_filter_of(setups: Sequence[TypeSetup]) -> LandmarkFilter | None:
    """The landmark filter the weights of a stream were trained with; all must agree,
    since one stream aligns each frame once for every type."""
    filters = {s.scorer.meta.flow.landmark_filter for s in setups}
    if len(filters) > 1:
        raise UserError("the ME and MaE weights were trained with different landmark filters; "
                        "one stream aligns each frame once, so train them alike")
    return filters.pop() if filters else None


def _has_more(ring: FrameRing, stop: Callable[[], bool], wait_s: float = 2.0) -> bool:
    """Whether the source gave (or keeps giving) a frame after the ones taken: a stream
    stopped by --max-frames, not one that ended there. A live source silent for `wait_s`
    (or a stop request meanwhile) counts as having more (it was not closed)."""
    deadline = time.monotonic() + wait_s
    while not stop() and time.monotonic() < deadline:
        try:
            ring.get(timeout=0.1)
        except RingClosed:
            return False
        except TimeoutError:
            continue
        except Exception:  # noqa: BLE001 - the source failed after the limit: it had not ended there
            return True
        return True
    return True


def run_stream(
    source: FrameSource,
    setups: Sequence[TypeSetup],
    pair_features: PairFeatures,
    sinks: Sequence[Sink],
    options: RunOptions,
    stats: RunStats | None = None,
    stop: Callable[[], bool] = lambda: False,
    status_extra: Callable[[], dict[str, Any]] = dict,
    on_notice: Callable[[str], None] | None = None,
) -> RunStats:
    """Run one stream to its end (or until `stop()`), returns its statistics.

    Live sources drop the oldest frames when scoring falls behind (counted); files and
    folders never drop. A StreamStatus goes to the sinks once a second.
    Notices about the faces (how many are in view and which is analysed, a small face)
    are kept in `stats.notices` and passed to `on_notice` as they arise (from the capture
    thread); at the end `stats.coverage()` (frames without a face, a stream too short for
    a pair) is appended to `stats.notices` only (it belongs in the run's summary).
    """
    stats = stats or RunStats()
    stats.stream = source.name
    stats.backend = ",".join(sorted({s.scorer.backend for s in setups}))
    stats.flow = pair_features.name
    # shift: score index -> frame of the intervals (K//2 unless the weights say otherwise),
    # so that a reader of scores.csv (lgnm-report) can line scores up with intervals
    stats.models = {s.type: {"k": s.k, "trained_fps": s.scorer.meta.fps, "shift": s.params.frame_shift}
                    for s in setups}
    stats.source_fps = float(source.fps) if source.fps and source.fps > 0 else None
    mode: Literal["live", "replay"] = "live" if source.is_live else "replay"
    # Replay: a short ring, so the reader stays just ahead of scoring (a long queue would
    # only add waiting time to every frame's latency); live: room to absorb hiccups.
    capacity = options.ring_capacity if source.is_live else options.batch
    ring: FrameRing[FrameRecord | SourceChange] = FrameRing(capacity, mode)
    source_state: dict[str, Literal["up", "down"]] = {"state": "up"}

    def on_state(state: Literal["up", "down"], detail: str) -> None:  # called from the capture thread
        source_state["state"] = state
        ring.put(SourceChange(state, detail, time.monotonic()))

    if hasattr(source, "on_state"):
        source.on_state = on_state
    saver = (InputSaver(options.inputs_dir / safe_name(source.name), options.save_inputs,
                        setups[0].scorer.meta.flow, on_error=stats.output_errors.append)
             if options.inputs_dir and options.save_inputs else None)
    scorer = StreamScorer(source.name, setups, pair_features, source.fps, sinks, stats, saver)

    def notice(message: str) -> None:
        stats.notices.append(message)
        if on_notice is not None:
            on_notice(message)

    landmark_filter = (landmark_filter_of(setups) if options.landmark_filter == FROM_WEIGHTS
                       else options.landmark_filter)
    if isinstance(landmark_filter, str):
        raise UserError(f"landmark filter must be {FROM_WEIGHTS!r}, None or a LandmarkFilter, got {landmark_filter!r}")
    aligner = FaceAligner(size=options.face_size, on_notice=notice, landmark_filter=landmark_filter,
                          fps=source.fps if source.fps and source.fps > 0 else 30.0)
    capture = CaptureThread(source, ring, FrameProcessor(aligner, pair_features, stats))
    t_start = time.monotonic()
    next_status = t_start + STATUS_PERIOD_S

    def status(source_now: Literal["up", "down"] | None = None) -> StreamStatus:
        elapsed = max(time.monotonic() - t_start, 1e-9)
        return StreamStatus(stream=source.name, frame=scorer.last_frame, fps=round(stats.frames / elapsed, 2),
                            dropped=ring.dropped, face=scorer.last_face, backend=stats.backend, flow=stats.flow,
                            source=source_now or source_state["state"], extra=status_extra())

    def room() -> int:
        return options.batch if options.max_frames is None else min(options.batch, options.max_frames - stats.frames)

    capture.start()
    waited = 0.0  # in _has_more
    failed = True  # until the stream ends or is stopped: a failure skips the coverage notes
    try:
        while not stop() and room() > 0:
            limit = room()
            batch: list[FrameRecord] = []
            try:
                item = ring.get(timeout=0.2)
                while True:
                    if isinstance(item, SourceChange):
                        scorer.process(batch)
                        batch = []
                        scorer.break_chain()
                        # The change's own state: by the time the consumer gets here the
                        # source may already be back, and subscribers must see the outage.
                        for sink in sinks:
                            sink.on_status(status(item.state))
                    else:
                        batch.append(item)
                    if len(batch) >= limit:
                        break
                    if len(ring) == 0:
                        # Score what is waiting rather than wait for a full batch: an
                        # unpaced replay keeps the ring full anyway (natural batches), a
                        # camera or paced replay must not hold frames back (latency).
                        break
                    item = ring.get(timeout=0.0)
            except TimeoutError:
                pass
            except RingClosed:
                scorer.process(batch)
                break
            except Exception:
                # The source failed (an unreadable frame, a source that gave up): the
                # frames read before it are still scored, and every interval of them becomes
                # final and is published, as at the end of a stream (the run is scored up
                # to the last frame read); then the failure is reported.
                _salvage(scorer, batch)
                raise
            scorer.process(batch)
            now = time.monotonic()
            if now >= next_status:
                next_status = now + STATUS_PERIOD_S
                for sink in sinks:
                    sink.on_status(status())
        scorer.finish()
        if options.max_frames is not None and room() <= 0 and not stop():
            t_wait = time.monotonic()
            if _has_more(ring, stop):
                stats.frame_limit = options.max_frames  # not when the stream ended at the limit itself
            waited = time.monotonic() - t_wait  # not the stream's time: left out of wall_s
        stats.stopped = stop()
        failed = False
        if saver is not None and saver.written == 0 and saver.error is None and stats.frames:
            # frames past the stream's end, or never paired (no face): say so, not nothing
            notice(f"--save-inputs: nothing saved (frames {stats.first_frame}-{scorer.last_frame} of this stream "
                   "hold no pair that starts at a frame asked for with a face in both of its frames)")
    finally:
        # A stop request (Ctrl-C) must not wait out an OpenCV open or read blocked for
        # up to the source's timeout: the daemon thread is left to die with the process.
        source.stop_after(scorer.last_frame)  # frames read ahead past it are not this run's
        capture.stop(timeout=STOP_GRACE_S if stop() else 5.0)
        if not capture.is_alive():  # else it may still be aligning the frame it read
            aligner.close()
        stats.dropped = ring.dropped
        stats.last_frame = scorer.last_frame
        stats.wall_s = time.monotonic() - t_start - waited
        if not failed:  # a stream that failed is short or faceless for its error's reason
            stats.notices.extend(stats.coverage())  # for the summary: not passed to on_notice
    for sink in sinks:
        sink.on_status(status())
    return stats
