"""Python entry point (notebooks, scripts): run the spotter on a video file, a frame folder
or frames you already hold, and iterate over what it finds.

    from realtime.api import spot

    for event in spot("interview.mp4"):
        print(event.type, event.onset_frame, event.offset_frame, event.score)

`spot` runs the same streaming pipeline as `lgnm-live` (same weights, alignment, flow,
post-processing; offline == online) in a background thread and yields each `SpotEvent`
as it becomes final; with `scores=True` it also yields every `ScoreSample` (the rows of
scores.csv). Closing the iterator early stops the run; a program that ends with the
iterator still open stops it at exit. A problem with the input raises
`realtime.common.errors.UserError` from the iterator, naming the file or argument. What
lgnm-live prints as notices (no face found, a stream too short for a pair, damaged
frames, a changed frame size) arrives as `SpotWarning`s (Python's `warnings`, issued in
the iterating thread), so that "no face" is not mistaken for "no expression".
"""

from __future__ import annotations

import atexit
import contextlib
import numbers
import queue
import threading
import warnings
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from realtime.common.errors import UserError
from realtime.common.text import first_few
from realtime.common.types import EXPR_TYPES, Interval, ScoreSample, SpotEvent
from realtime.face import as_bgr
from realtime.native_log import filtered_native_stderr
from realtime.sinks import NullSink
from realtime.sources import (
    FrameFolderSource,
    FrameSource,
    RawFrame,
    StreamSize,
    VideoFileSource,
    check_fps,
    image_files,
    is_hidden,
)

_DONE = object()


class SpotWarning(UserWarning):
    """A notice about the input of a `spot()` run (what lgnm-live prints as `warning:` or
    `note:` about a stream): no face found, too short for a pair, damaged frames, a size
    change, and the face tracker's notes (several faces in view, a small face, the
    analysed face leaving)."""


class _Notice(str):
    """A notice on its way from the run's thread to the iterating one."""


class ArraySource(FrameSource):
    """Frames held in memory ((H, W, 3) uint8 BGR, or (H, W) grey) at a given fps;
    frame n is the n-th item, its time (n - 1) / fps."""

    is_live = False

    def __init__(self, frames: Iterable[np.ndarray], fps: float, name: str = "frames") -> None:
        super().__init__()
        if not fps:
            raise UserError("fps: frames held in memory need their frame rate (spot(frames, fps=30))")
        check_fps(fps, "fps")  # the range every source is held to (NaN, inf, 0.5 refused)
        self._frames, self._fps, self.name = frames, float(fps), name

    @property
    def fps(self) -> float:
        return self._fps

    def __iter__(self) -> Iterator[RawFrame]:
        import time

        size = StreamSize(Path(self.name), self.notice)  # one geometry per stream, as for files
        for index, image in enumerate(self._frames, start=1):
            if self.closed:
                return
            if not isinstance(image, np.ndarray):
                raise UserError(f"frames: item {index} is {type(image).__name__}, not an (H, W, 3) uint8 BGR array"
                                + (" (a capture read past the end of its video gives None)" if image is None else ""))
            try:
                image = as_bgr(image)
            except UserError as exc:
                raise UserError(f"frames: item {index}: {exc}") from None
            yield RawFrame(index, time.monotonic(), (index - 1) / self._fps, size.fit(image, index))


class _QueueSink(NullSink):
    def __init__(self, out: queue.Queue, samples: bool) -> None:
        self.out, self.samples = out, samples

    def on_event(self, event: SpotEvent, interval: Interval) -> None:
        self.out.put(event)

    def on_sample(self, stream: str, sample: ScoreSample) -> None:
        if self.samples:
            self.out.put(sample)


def open_input(source: str | Path | Iterable[np.ndarray], fps: float | None) -> FrameSource:
    """A file or a frame folder by path (a folder needs fps), or frames in memory (need fps)."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            from realtime.replay import VIDEO_SUFFIXES

            videos = sorted(p.name for p in path.iterdir() if p.is_file() and not is_hidden(p)
                            and p.suffix.lower() in VIDEO_SUFFIXES)
            if videos and not image_files(path):  # recordings, not frames (a frame folder may hold a preview)
                raise UserError(f"{path}: a folder of videos ({first_few(videos)}); spot() takes one video "
                                "or one frame folder: call it on each video (lgnm-live --replay runs a folder)")
            if fps is None:
                raise UserError(f"{path}: a frame folder needs fps")
            return FrameFolderSource(path, fps)
        return VideoFileSource(path, fps=fps)
    return ArraySource(source, fps if fps is not None else 0.0)


def spot(source: str | Path | Iterable[np.ndarray], *, fps: float | None = None,
         weights: Sequence[str | Path] | None = None, types: Sequence[str] = EXPR_TYPES,
         scores: bool = False) -> Iterator[SpotEvent | ScoreSample]:
    """Spot expressions in `source`; yields `SpotEvent`s (and `ScoreSample`s with
    scores=True) in the order they become final.

    source: a video file, a frame folder (fps required) or an iterable of (H, W, 3) uint8
    BGR frames (fps required). weights: one file per type (default: the bundled demo pair
    trained nearest to the source's fps). types: a subset of ("ME", "MaE").
    Raises UserError for bad input (from the first `next()`). From the start of the run
    to its first result, the process's stderr (fd 2) passes through a filter that drops
    mediapipe's native start-up notices (`realtime.native_log`); other lines pass."""
    from engines.demo_weights import default_weights
    from engines.pair_features import make_pair_features
    from engines.scorers import make_scorer
    from realtime.pipeline import RunOptions, run_stream, setup_for_fps

    if isinstance(types, str):  # types="ME": one type, not the letters M and E
        types = (types,)
    wanted = set(types)
    if not wanted or wanted - set(EXPR_TYPES):
        raise UserError(f"types: expected ME and/or MaE, got {list(types)!r}")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, numbers.Real)):
        raise UserError(f"fps: expected a number of frames per second, got {fps!r}")
    if isinstance(weights, (str, Path)):
        raise UserError(f"weights: a list of files, one per type (e.g. [ME_file, MaE_file]), got {str(weights)!r}")
    stream = open_input(source, fps)
    scorers = [make_scorer(Path(w), "cpu") for w in (weights or default_weights(stream.fps))]
    scorers = [s for s in scorers if s.type in wanted]
    if {s.type for s in scorers} != wanted:
        raise UserError(f"weights: need one file for each of {sorted(wanted)}")
    flows = {s.meta.flow for s in scorers}
    if len(flows) != 1:
        raise UserError("weights: the ME and MaE weights use different flow settings")
    setups = [setup_for_fps(s, stream.fps) for s in scorers]
    out: queue.Queue = queue.Queue(maxsize=4096)
    stop = threading.Event()
    failure: list[BaseException] = []

    def tell(message: str) -> None:
        out.put(_Notice(message))

    stream.on_notice = tell

    def run() -> None:
        try:
            stats = run_stream(stream, setups, make_pair_features("cpu", flows.pop()), [_QueueSink(out, scores)],
                               RunOptions(face_size=max(s.meta.flow.face_size for s in scorers)),
                               stop=stop.is_set, on_notice=tell)
            if not stop.is_set():
                for message in stats.coverage():  # no face at all, too short for a pair
                    tell(message)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)
        finally:
            out.put(_DONE)

    worker = threading.Thread(target=run, name="lgnm-spot", daemon=True)
    # mediapipe's graph writes its start-up notices to fd 2 from native threads
    # (realtime.native_log): filtered from the start to the run's first result, never
    # across a yield (the caller's own stderr, a progress bar, must not wait in a pipe,
    # nor be lost in it if the program ends while the generator is open).
    startup = contextlib.ExitStack()
    startup.enter_context(filtered_native_stderr())
    closed = threading.Event()

    def finish() -> None:
        if closed.is_set():
            return
        closed.set()
        stop.set()
        while worker.is_alive():  # let the run see the stop; drain so it never blocks on put
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
        for s in scorers:
            s.close()

    # A program that ends with the generator open (`next(spot(...))` as its last line)
    # would leave the run's daemon thread inside mediapipe or onnxruntime while the
    # interpreter finalises, which aborts the process (SIGABRT): stop it at exit first.
    atexit.register(finish)
    worker.start()
    try:
        while (item := out.get()) is not _DONE:
            if isinstance(item, _Notice):
                warnings.warn(str(item), SpotWarning, stacklevel=2)
                continue
            startup.close()
            yield item
    finally:
        startup.close()
        finish()
        atexit.unregister(finish)
    if failure:
        raise failure[0]
