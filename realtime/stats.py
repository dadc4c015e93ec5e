"""Per-stage timings and counters of a run (bounded memory, thread-safe appends)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

SAMPLES_KEPT = 20_000  # percentiles over the most recent samples: bounded for long streams


# What FaceMesh and the full-range search (realtime.face_search) cannot find, for a stream
# without any face: the common causes, so that the user can tell which one is theirs.
NO_FACE_HINT = "faces narrower than about 70 px, turned to the side or in the dark are not found"

@dataclass
class StageTimes:
    """Milliseconds per stage; `deque.append` is atomic, so the capture thread and the
    scoring loop may both record without a lock."""

    samples: dict[str, deque[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, deque(maxlen=SAMPLES_KEPT)).append(ms)

    @contextmanager
    def time(self, stage: str, per: int = 1) -> Iterator[None]:
        """Time a block; with per=N the block's time is recorded as N equal shares
        (a batched model call over N frames costs each frame 1/N of it)."""
        t0 = time.perf_counter()
        yield
        ms = (time.perf_counter() - t0) * 1000.0
        if per > 0:
            for _ in range(per):
                self.add(stage, ms / per)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in list(self.samples.items()):
            arr = np.fromiter(values, np.float64, len(values))
            if arr.size:
                out[stage] = {
                    "p50_ms": float(np.percentile(arr, 50)),
                    "p99_ms": float(np.percentile(arr, 99)),
                    "mean_ms": float(arr.mean()),
                    "n": int(arr.size),
                }
        return out


@dataclass
class RunStats:
    """Counters of one stream, plus its stage times."""

    stream: str = ""
    frames: int = 0
    faces: int = 0
    type_scores: dict[str, int] = field(default_factory=dict)  # scores per type (metrics.json: their sum)
    events: int = 0
    chain_breaks: int = 0
    dropped: int = 0
    wall_s: float = 0.0
    backend: str = ""
    flow: str = ""
    # per type: the K used on this stream, the fps its weights were trained at and the
    # shift from score index to interval frames (K//2 unless the weights set another)
    models: dict[str, dict[str, float]] = field(default_factory=dict)
    # the stream's frame rate (frames per second of the source, not of processing): what
    # sets K, and what maps frame n to (n - 1) / source_fps seconds (lgnm-report)
    source_fps: float | None = None
    first_frame: int = 0  # number of the first frame processed (a folder numbered from 1001: 1001)
    last_frame: int = 0  # number of the last frame processed (frames are 1-based)
    media: str | None = None  # the video file replayed, None for frame folders and live sources
    error: str | None = None  # why the stream failed; None when it ran to its end
    # the stream was stopped after this many frames by the run's frame limit (max_frames),
    # not by its end: a "too short" notice must say so rather than blame the input
    frame_limit: int | None = None
    # the run was stopped (Ctrl-C, SIGTERM) before the stream ended: a "too short" notice
    # must say so too
    stopped: bool = False
    # outputs of this stream that could not be written (--save-inputs images): the stream
    # still ran; the run says so in an `error:` line and exits 2
    output_errors: list[str] = field(default_factory=list)
    times: StageTimes = field(default_factory=StageTimes)
    # one-line messages for the user about this stream (faces in view, face coverage),
    # in the order they arose; appended from the capture thread (list.append is atomic)
    notices: list[str] = field(default_factory=list)

    started: float = field(default_factory=time.monotonic)

    @property
    def scores(self) -> int:
        """Scores computed on this stream, all types."""
        return sum(self.type_scores.values())

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    def fps_so_far(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def face_coverage(self) -> str | None:
        """A notice when the stream had frames without a face (None when every frame had
        one, or there were no frames): those frames are neither scored nor spotted."""
        if self.frames == 0 or self.faces >= self.frames:
            return None
        if self.faces == 0:
            return (f"no face found in any of its {self.frames} frames: nothing could be spotted "
                    f"({NO_FACE_HINT})")
        share = 100.0 * self.faces / self.frames
        return (f"face found in {self.faces} of {self.frames} frames ({share:.0f}%); "
                "frames without a face were not scored")

    def length_coverage(self) -> str | None:
        """A notice when the stream was too short for the pair of a type (K + 1 frames in
        a row: a photo given as a video, a 1-frame clip, 90 frames at 1000 fps): that type
        scored nothing, which must not pass for a face without expressions. No frame at all
        (an empty input: spot() on an iterator already used up) is said too."""
        if self.frames == 0 and self.models and self.error is None and not self.stopped:
            return "no frame at all (an empty input, or an iterator already used up?): nothing could be scored"
        short = {t: int(m["k"]) for t, m in self.models.items() if 0 < self.frames <= m["k"]}
        if not short or self.error is not None:  # a failed stream is short for its error's reason
            return None
        rate = f" at {self.source_fps:g} fps" if self.source_fps else ""
        needs = ", ".join(f"{t} {k + 1}" for t, k in short.items())
        what = ("nothing could be scored" if len(short) == len(self.models)
                else f"{', '.join(short)} not scored")
        cause = (f" (the run's frame limit of {self.frame_limit} stopped it)"
                 if self.frame_limit is not None and self.frames >= self.frame_limit
                 else " (the run was stopped before its end)" if self.stopped else "")
        return (f"only {self.frames} {'frame' if self.frames == 1 else 'frames'}{cause}, fewer than one "
                f"frame pair needs (K + 1 frames{rate}: {needs}): {what}")

    def pair_coverage(self) -> str | None:
        """A notice when a type scored nothing on a stream long enough for its pair, with
        faces in it: holes in the frame numbers (a folder with every 10th frame missing,
        every 2nd frame exported) or frames without a face broke every run of K + 1."""
        if self.error is not None or self.faces == 0:
            return None
        broken = {t: int(m["k"]) for t, m in self.models.items()
                  if self.frames > m["k"] and not self.type_scores.get(t)}
        if not broken:
            return None
        rate = f" at {self.source_fps:g} fps" if self.source_fps else ""
        needs = ", ".join(f"{t} {k + 1}" for t, k in broken.items())
        return (f"{', '.join(broken)} not scored: no {'run' if len(broken) == 1 else 'runs'} of K + 1 frames in a "
                f"row with a face ({needs}{rate}) between the {self.chain_breaks} chain break(s) (holes in the frame "
                "numbers, frames without a face)")

    def coverage(self) -> list[str]:
        """The summary's notices about what of the stream could be scored (faces, length,
        pairs)."""
        return [n for n in (self.face_coverage(), self.length_coverage(), self.pair_coverage()) if n is not None]

    def to_dict(self) -> dict:
        return {
            "stream": self.stream,
            "status": "ok" if self.error is None else "failed",
            "error": self.error,
            "frames": self.frames,
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "source_fps": None if self.source_fps is None else round(self.source_fps, 6),
            "media": self.media,
            "faces": self.faces,
            "scores": self.scores,
            "events": self.events,
            "chain_breaks": self.chain_breaks,
            "dropped": self.dropped,
            "wall_s": round(self.wall_s, 4),
            "fps": round(self.fps, 2),
            "backend": self.backend,
            "flow": self.flow,
            "models": self.models,
            "notices": list(self.notices),
            "stages": self.times.summary(),
        }
