"""Temporal filter of one face's landmarks: the One Euro filter, vectorised over points.

One Euro filter: G. Casiez, N. Roussel, D. Vogel, "1 Euro Filter: A Simple Speed-based
Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012. Each point is a
first-order low-pass whose cutoff opens with the point's smoothed speed:

    dx_hat = lowpass(d_cutoff)((x - x_hat_prev) / dt)
    cutoff = min_cutoff + beta * |dx_hat|
    x_hat  = lowpass(cutoff)(x),   lowpass(fc): alpha = 1 / (1 + 1 / (2 pi fc dt))

so a still point (FaceMesh jitter) is smoothed hard and a moving one (a head turn, a brow
raise) follows with little lag. Choices here:
- Speed is in inter-ocular distances (IOD, outer eye corners 33-263) per second, so the
  parameters mean the same for a 60 px and a 600 px face (the output for a face k times
  larger is exactly k times the output, tested), and time is the frame's stream time,
  so a dropped frame or a varying frame rate changes dt, not the filter's behaviour.
- |dx_hat| is the norm of a point's 2-D smoothed velocity (the paper filters scalars; the
  norm makes the cutoff independent of the image axes).
- Causal: the output at t depends on inputs up to t only. `reset()` on a chain break (no
  face, another person); a gap longer than `max_gap_s` or time going backwards restarts it.

Parameters (`DEFAULT_LANDMARK_FILTER` in realtime/common/types.py, what new training uses):
min_cutoff 1.0 Hz, beta 2.0 Hz per IOD/s, d_cutoff 1.0 Hz (the paper's usual d_cutoff).
Measured with tools/bench_landmark_filter.py (README, Method notes, Landmarks):
- jitter, on the real FaceMesh tracks of shared/reference/real-motion (alignment points,
  % IOD, p50/p90): the second difference |x[t+1] - 2x[t] + x[t-1]| (shake) goes from
  0.58/2.09 to 0.22/0.77 on still faces (2.6x) and 1.77/6.12 to 0.46/3.08 talking (3.8x);
  the plain frame-to-frame step, mostly real head/camera motion on those clips, from
  0.88/3.15 to 0.81/2.71 (still) and 1.46/6.64 to 0.77/5.36 (talking).
- delay at 30 fps on a 112 px aligned face (IOD 62 px): behind a ramp 1.4 frames at
  1 px/frame (a brow raise), 2.0 at 0.5, 1.0 at 2, 0.65 at 4 px/frame; behind a step,
  90% of it after 7 frames (3 px), 4 (10 px), 2 (30 px); 50% after 2 frames or less.
The delay moves where the crop and the ROI boxes sit, not the image content the flow
sees. beta 1.0 would remove more shake (3.0x / 4.7x) for ~2 frames of ramp lag, beta 3.0
less (2.4x / 3.4x) for 1.2 frames.

No PyPI package is used: `oneeurofilter` (0.2.1) filters one scalar per Python object
(936 objects and calls per frame for 468x2 landmarks, ~ms in pure Python), has no
notion of face scale, and would need the reset and gap logic added anyway.
"""

from __future__ import annotations

import math

import numpy as np

from realtime.common.types import LandmarkFilter

EYE_CORNERS = (33, 263)  # outer eye corners: the IOD the speed is measured in
MAX_GAP_S = 1.0  # a longer gap between two faces restarts the filter


def alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Smoothing factor of a first-order low-pass with `cutoff` Hz at time step dt s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


def eye_distance(landmarks: np.ndarray) -> float:
    """Outer eye-corner distance of (468,2+) landmarks (same units as they are)."""
    a, b = EYE_CORNERS
    return float(np.linalg.norm(landmarks[b, :2] - landmarks[a, :2]))


class OneEuroLandmarks:
    """One Euro filter over the (N,2) landmarks of one face, one call per frame."""

    def __init__(self, settings: LandmarkFilter, max_gap_s: float = MAX_GAP_S) -> None:
        self.settings = settings
        self.max_gap_s = max_gap_s
        self.reset()

    def reset(self) -> None:
        """Forget the past (a chain break): the next frame passes through unfiltered."""
        self._x: np.ndarray | None = None  # last output (N,2) float64
        self._dx: np.ndarray | None = None  # smoothed velocity, IOD/s (N,2)
        self._t = 0.0
        self._iod = 0.0

    @property
    def active(self) -> bool:
        return self._x is not None

    def __call__(self, landmarks: np.ndarray, t: float, iod: float | None = None) -> np.ndarray:
        """Filtered landmarks at stream time t (s), same shape, float32.

        `iod` is the face's scale in the landmarks' units; by default the outer eye-corner
        distance of the previous output (of these landmarks on the first frame).
        """
        x = np.asarray(landmarks, dtype=np.float64)
        dt = t - self._t
        if self._x is None or self._x.shape != x.shape or not 0.0 < dt <= self.max_gap_s:
            return self._start(x, t, iod)
        scale = iod if iod is not None else self._iod
        if not scale > 0 or not math.isfinite(scale):
            return self._start(x, t, iod)
        s = self.settings
        assert self._dx is not None
        velocity = (x - self._x) / (dt * scale)
        self._dx += alpha(s.d_cutoff, dt) * (velocity - self._dx)
        cutoff = s.min_cutoff + s.beta * np.linalg.norm(self._dx, axis=-1, keepdims=True)
        self._x = self._x + alpha(cutoff, dt) * (x - self._x)
        self._t = t
        if iod is None:
            self._iod = eye_distance(self._x)
        return self._x.astype(np.float32)

    def _start(self, x: np.ndarray, t: float, iod: float | None) -> np.ndarray:
        self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
        self._iod = iod if iod is not None else (eye_distance(x) if x.shape[0] > max(EYE_CORNERS) else 0.0)
        return x.astype(np.float32)


def filter_track(track: np.ndarray, times: np.ndarray, settings: LandmarkFilter,
                 iod: float | None = None) -> np.ndarray:
    """Filter a whole (T,N,2) track (rows in time order) causally; NaN rows are breaks."""
    f = OneEuroLandmarks(settings)
    out = np.full(track.shape, np.nan, dtype=np.float32)
    for i, (x, t) in enumerate(zip(track, times, strict=True)):
        if not np.isfinite(x).all():
            f.reset()
            continue
        out[i] = f(x, float(t), iod)
    return out
