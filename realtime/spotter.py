"""Online (causal) spotter of one expression type: scores in, final intervals out.

It reuses `calibration.postprocess` so that, with a fixed threshold, its output equals
offline `postprocess` on the same segment exactly (tested sample by sample):

- Smoothing: smoothed[t] becomes final once raw[t + win//2] has arrived; interior values
  use the Savitzky-Golay coefficients on the last `win` raw samples (the same
  `convolve1d` scipy's `savgol_filter` uses), the segment's first and last win//2 values
  use `savgol_filter(..., mode="interp")` on the first/last `win` raw samples, i.e. the
  same polynomial edge fit. Segments shorter than `win` are smoothed at `flush` with
  `postprocess.smooth` (shrunk window).
- Chunks: `postprocess.ChunkSplitter` closes a chunk after Q = `PostParams.quiet`
  final smoothed samples below the threshold (4K + 2*floor(tiny*K + 0.5) + 2 for the
  paper's "peaks" rule, max(2*max(pad, 0) + 2, gap + 1) for "runs"), or cuts it when it reaches L =
  `PostParams.chunk_limit` samples (identically offline); `postprocess.process_chunk`
  then gives its intervals.

Emission delay, in frames from an interval's offset frame to the frame whose capture
releases it, for ANY score stream: at most win//2 + (L - 1) + K - K//2. (The smoothed
sample t is final once raw sample t + win//2 arrives, which needs frame t + win//2 + K;
a chunk closes at most L - 1 samples after any of its intervals' offset index; offset
frames are index + K//2.) One exception, at a segment's start: its first win//2 smoothed
samples come from the edge fit over its first `win` raw samples, so nothing is released
before the segment's win-th score (an interval ending in the first win//2 + L - 1 samples
may wait for it; hypothesis found K 1, win 101: offset index 32, released at index 100).
After an isolated expression it is shorter: win//2 + Q + K
frames after its last above-threshold score. E.g. CAS ME (K=6, tiny 0.3, win 11,
Q = 4K + 2*floor(tiny*K + 0.5) + 2 = 30, L = 60): 5 + 30 + 6 = 41 frames (1.4 s) after an
isolated ME, never more than 5 + 59 + 3 = 67 frames (2.2 s) after any interval's offset;
with the "runs" rule, no pad and no pairing gap, Q = 2 and 5 + 2 + 6 = 13 frames.

Segments: `push` expects consecutive frames. A chain break (no face) is signalled by
`flush()`, after which the next pushed frame starts a new, independent segment (offline
equivalent: `postprocess` on each segment). Pushing a frame beyond the expected next one
flushes implicitly; a frame at or before the last one is a ValueError.

Threshold: `params.threshold` when given (calibrated for unknown subjects, has an
offline twin). Otherwise a rolling Moilanen threshold, mean + p*(max - mean) over the
last `rolling_window` final smoothed samples (default 100 x K, DEFAULT_ROLLING_FACTOR); it is re-evaluated every
sample while no chunk is open and frozen for the life of a chunk (find_peaks of that
chunk uses the frozen value); it is never below `params.min_score` (a flat stream
would otherwise count as one endless expression), and samples are never active before
`win` smoothed samples exist. This variant has no offline twin. With `params.adaptive`
the fixed threshold is a ceiling: min(threshold, that rolling threshold), the fixed one
alone before `win` smoothed samples exist (offline `resolve_threshold` uses the whole
segment's Moilanen instead, so only the ceiling itself has an exact offline twin).

Memory: `win` raw samples, the open chunk (<= max_chunk) plus a margin of smoothed ones,
and the rolling window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal import savgol_coeffs, savgol_filter

from calibration.postprocess import ChunkSplitter, PostParams, process_chunk, smooth
from realtime.common.types import ExprType, Interval, ScoreSample, check_type

DEFAULT_ROLLING_FACTOR = 100  # rolling Moilanen window = 100 * K samples by default
TRIM_SLACK = 256  # drop stale smoothed samples in batches, not one by one


class RollingMoilanen:
    """mean + p * (max - mean) over the last `size` values, O(1) amortised per value."""

    def __init__(self, size: int, p: float) -> None:
        if size < 1:
            raise ValueError(f"rolling window must be >= 1, got {size}")
        self.size = size
        self.p = p
        self._values: deque[tuple[int, float]] = deque()
        self._maxq: deque[tuple[int, float]] = deque()  # decreasing values: window max
        self._sum = 0.0
        self._count = 0

    def add(self, value: float) -> None:
        idx = self._count
        self._count += 1
        self._values.append((idx, value))
        self._sum += value
        while self._maxq and self._maxq[-1][1] <= value:
            self._maxq.pop()
        self._maxq.append((idx, value))
        if len(self._values) > self.size:
            old_idx, old = self._values.popleft()
            self._sum -= old
            if self._maxq[0][0] == old_idx:
                self._maxq.popleft()

    def __len__(self) -> int:
        return len(self._values)

    @property
    def value(self) -> float:
        mean = self._sum / len(self._values)
        return mean + self.p * (self._maxq[0][1] - mean)


class OnlineSpotter:
    """Causal spotter of one type for one stream (see module docstring)."""

    def __init__(self, params: PostParams, video: str, type: ExprType, rolling_window: int | None = None) -> None:
        check_type(type)
        self.params = params
        self.video = video
        self.type = type
        self.rolling_window = rolling_window or DEFAULT_ROLLING_FACTOR * params.k
        self._hw = params.win // 2
        self._coeffs = savgol_coeffs(params.win, params.order)
        # Called with every final sample (raw, smoothed, threshold in force): scores.csv.
        self.on_sample: Callable[[ScoreSample], None] | None = None
        self._first_frame: int | None = None  # first frame of the current segment (set by _reset)
        self._n = 0  # scores pushed in the current segment
        self._reset()

    # -- public -----------------------------------------------------------------------
    def push(self, frame: int, score: float) -> list[Interval]:
        """Add the score of `frame`; returns the intervals that became final."""
        out: list[Interval] = []
        if self._first_frame is None:
            self._first_frame = frame
        elif frame != self._first_frame + self._n:
            if frame < self._first_frame + self._n:
                raise ValueError(f"frame {frame} pushed after frame {self._first_frame + self._n - 1}")
            out.extend(self.flush())
            self._first_frame = frame
        self._raw.append(float(score))
        self._n += 1
        win = self.params.win
        if self._n == win:
            edge = savgol_filter(np.fromiter(self._raw, np.float64, win), win, self.params.order, mode="interp")
            for t in range(self._hw + 1):
                out.extend(self._accept(t, float(edge[t])))
        elif self._n > win:
            window = np.fromiter(self._raw, np.float64, win)
            value = float(convolve1d(window, self._coeffs, mode="constant")[self._hw])
            out.extend(self._accept(self._n - 1 - self._hw, value))
        return out

    def flush(self) -> list[Interval]:
        """End of stream or chain break: finalise the segment and return what remains."""
        out: list[Interval] = []
        n, win = self._n, self.params.win
        if n == 0:
            self._reset()
            return out
        raw = np.fromiter(self._raw, np.float64, len(self._raw))
        if n < win:
            tail = smooth(raw, win, self.params.order)
            first_t = 0
        else:
            tail = savgol_filter(raw, win, self.params.order, mode="interp")[self._hw + 1 :]
            first_t = n - self._hw
        for i, value in enumerate(tail):
            out.extend(self._accept(first_t + i, float(value)))
        chunk = self._splitter.finish(n)
        if chunk is not None:
            out.extend(self._emit(chunk))
        self._reset()
        return out

    @property
    def horizon(self) -> int | None:
        """First frame an interval not yet returned may cover: every later interval has
        its onset at or after it. None before the segment's first frame (unknown yet).

        A future interval lies inside a chunk, and a chunk starts at the open chunk's
        start, or else at least `margin` samples before the next final smoothed sample
        (never before the splitter's floor); index i is frame first_frame + i + shift."""
        if self._first_frame is None:
            return None
        start = self._splitter.start
        if start is None:
            start = max(self._n_smoothed - self.params.margin, self._splitter.floor)
        return self._first_frame + start + self.params.frame_shift

    @property
    def pending_frames(self) -> int:
        """Smoothed samples held for the open chunk (0 when none is open)."""
        start = self._splitter.start
        return 0 if start is None else self._n_smoothed - start

    # -- internals ----------------------------------------------------------------------
    def _reset(self) -> None:
        p = self.params
        self._first_frame = None
        self._n = 0
        self._raw: deque[float] = deque(maxlen=p.win)
        self._sm: list[float] = []
        self._sm_base = 0
        self._n_smoothed = 0
        self._splitter = ChunkSplitter(p.quiet, p.margin, p.chunk_limit, self._values)
        rolling = p.threshold is None or p.adaptive
        self._rolling = RollingMoilanen(self.rolling_window, p.p) if rolling else None
        self._chunk_threshold = float("nan")

    def _current_threshold(self) -> float | None:
        fixed = self.params.threshold
        if self._rolling is None or len(self._rolling) < self.params.win:
            return None if fixed is None else float(fixed)
        # Floor at min_score: on a flat or near-silent stream Moilanen's threshold sinks to
        # the noise and would open chunks on noise whose intervals soft-NMS drops anyway.
        rolling = max(self._rolling.value, self.params.min_score)
        return rolling if fixed is None else min(float(fixed), rolling)  # adaptive: a ceiling

    def _accept(self, t: int, value: float) -> list[Interval]:
        """Take the final smoothed value of index t and run the chunk state machine."""
        self._sm.append(value)
        self._n_smoothed = t + 1
        if self._rolling is not None:
            self._rolling.add(value)
        was_open = self._splitter.start is not None
        threshold = self._chunk_threshold if was_open else self._current_threshold()
        active = threshold is not None and value >= threshold
        closed = self._splitter.step(t, active)
        if not was_open and self._splitter.start is not None:
            self._chunk_threshold = threshold  # type: ignore[assignment]
        if self.on_sample is not None:
            assert self._first_frame is not None
            raw = self._raw[t - (self._n - len(self._raw))]
            self.on_sample(ScoreSample(self.type, self._first_frame + t, raw, value, threshold,
                                       segment_start=t == 0))
        out = [iv for chunk in closed for iv in self._emit(chunk)]
        self._trim(t)
        return out

    def _values(self, i: int, j: int) -> np.ndarray:
        """Final smoothed samples i..j (inclusive), as the splitter's cut placement reads them."""
        return np.asarray(self._sm[i - self._sm_base : j - self._sm_base + 1], dtype=np.float64)

    def _emit(self, chunk: tuple[int, int]) -> list[Interval]:
        """Intervals of a closed chunk (with the threshold frozen when it opened; a chunk
        continued after a forced cut keeps it)."""
        assert self._first_frame is not None
        return process_chunk(self._values(*chunk), chunk[0], self._chunk_threshold, self.params, self.video,
                             self.type, self._first_frame)

    def _trim(self, t: int) -> None:
        """Forget smoothed samples no future chunk can reach (bounded memory)."""
        start = self._splitter.start
        keep_from = start if start is not None else t + 1 - self.params.margin
        drop = keep_from - self._sm_base
        if drop > TRIM_SLACK:
            del self._sm[:drop]
            self._sm_base = keep_from
