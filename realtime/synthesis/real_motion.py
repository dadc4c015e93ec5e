"""Drive a synthetic face with the motion of a real one (`../shared/reference/real-motion`).

A real-motion track holds, per frame, the 468 FaceMesh landmarks of a real person minus
that clip's median face, in units of the inter-ocular distance (IOD, outer eye corners
33-263): head turns, nods, drift, talking, blinks, gaze and the landmark jitter of real
video, and no identity. `MotionDriver` moves a `Scene`'s face by it:

- the rigid part: per frame, a similarity transform fitted (least squares) from the
  scene's landmarks to the landmarks displaced by the track, applied to the whole head
  (blended over the static background with the scene's head mask);
- the non-rigid rest (talking, blinks, gaze): the residual landmark displacements,
  interpolated linearly over a Delaunay mesh of the landmarks (zero outside the face,
  softened at its border), applied by backward mapping out(x) = in(x - r(x)) as the
  expression renderer does.

Displacements scale with the scene's IOD, so a track means the same motion on any face
size. `scale` multiplies the non-rigid part (e.g. 0.5: half the talking amplitude).
The result carries no expression truth: it is what a face that is not expressing does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator
from scipy.spatial import Delaunay

from realtime.common.errors import UserError
from realtime.synthesis.faces import Scene

GRID_STEP = 4  # the residual field is interpolated on a 4-px grid, then resized up


@dataclass(frozen=True)
class MotionTrack:
    """A real landmark track: (T, 468, 2) float32 displacement in IOD units, x right, y down."""

    name: str
    fps: float
    displacement: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.displacement.shape[0])

    def at_fps(self, fps: float) -> MotionTrack:
        """The track resampled to `fps` (linear in time; same duration)."""
        if abs(fps - self.fps) < 1e-6:
            return self
        t_src = np.arange(self.n_frames) / self.fps
        n = max(1, int(round(self.n_frames * fps / self.fps)))
        t_dst = np.minimum(np.arange(n) / fps, t_src[-1])
        flat = self.displacement.reshape(self.n_frames, -1)
        out = np.stack([np.interp(t_dst, t_src, flat[:, j]) for j in range(flat.shape[1])], axis=1)
        return MotionTrack(self.name, fps, out.reshape(n, -1, 2).astype(np.float32))

    def low_passed(self, cutoff_hz: float) -> MotionTrack:
        """The track through a zero-phase low-pass (4th-order Butterworth run forward and
        back, scipy.signal.filtfilt; no delay, offline only): what a real track would show
        without the frame-to-frame jitter of FaceMesh on its clip, which a driven photo
        would otherwise turn into pixel motion. Motion faster than `cutoff_hz` (blinks,
        fast speech) goes too, so it bounds the jitter's effect from the other side.

        Raises ValueError unless 0 < cutoff_hz < fps / 2."""
        from scipy.signal import butter, filtfilt

        if not 0.0 < cutoff_hz < self.fps / 2:
            raise ValueError(f"cutoff must lie in (0, {self.fps / 2:g}) Hz, got {cutoff_hz:g}")
        b, a = butter(4, cutoff_hz / (self.fps / 2))
        pad = min(3 * max(len(a), len(b)), self.n_frames - 1)
        out = filtfilt(b, a, self.displacement.astype(np.float64), axis=0, padlen=pad)
        return MotionTrack(f"{self.name}_lp{cutoff_hz:g}Hz", self.fps, out.astype(np.float32))


def load_track(path: str | Path) -> MotionTrack:
    """Read one `real_*.npz` (displacement (T,468,3) float16, face_found (T,), fps).

    Frames without a face are filled from the nearest frame with one (the track is
    motion only; a missing frame is not a motion)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such motion track")
    try:
        with np.load(path) as data:
            disp = np.asarray(data["displacement"], np.float32)[..., :2]
            found = np.asarray(data["face_found"], bool) if "face_found" in data else np.ones(len(disp), bool)
            fps = float(data["fps"])
    except (OSError, KeyError, ValueError) as exc:
        raise UserError(f"{path}: not a real-motion track ({exc})") from None
    if disp.ndim != 3 or disp.shape[1] != 468 or not found.any():
        raise UserError(f"{path}: expected displacement (T,468,3) with at least one face")
    idx = np.flatnonzero(found)
    nearest = idx[np.clip(np.searchsorted(idx, np.arange(len(disp))), 0, len(idx) - 1)]
    return MotionTrack(path.stem, fps, np.nan_to_num(disp[nearest]))


def turn_track(points: np.ndarray, axis: str, amplitude_deg: float, period_s: float, fps: float,
               seconds: float) -> MotionTrack:
    """A head turning in depth, as a track: `points` (468,3) are a face's landmarks in
    px (x right, y down, depth toward the camera, e.g. FaceMesh's -z times the image
    width), rotated about their centroid by amplitude x sin(2 pi t / period) around the
    vertical ("yaw") or horizontal ("pitch") axis and projected orthographically.
    Displacements in IOD units (33-263), as a real track; `MotionDriver` renders them as
    it renders any track (similarity for the head, the parallax as the non-rigid rest:
    no occlusion or shading change)."""
    if axis not in ("yaw", "pitch"):
        raise ValueError(f"axis must be yaw or pitch, got {axis!r}")
    t = np.arange(int(round(seconds * fps))) / fps
    angle = amplitude_deg * np.sin(2 * np.pi * t / period_s)
    still = np.zeros_like(angle)
    yaw, pitch = (angle, still) if axis == "yaw" else (still, angle)
    return replace(turned_track(points, yaw, pitch, fps), name=f"{axis}_{amplitude_deg:g}deg")


def turned_track(points: np.ndarray, yaw_deg: np.ndarray, pitch_deg: np.ndarray, fps: float) -> MotionTrack:
    """The landmark displacements (IOD units, (n,468,2)) of `points` (468,3) px rotated
    about their centroid by yaw then pitch per frame (degrees, (n,)), projected
    orthographically."""
    q = np.asarray(points, np.float64) - np.asarray(points, np.float64).mean(axis=0)
    iod = float(np.linalg.norm(q[263, :2] - q[33, :2]))
    a, b = np.deg2rad(np.asarray(yaw_deg, np.float64))[:, None], np.deg2rad(np.asarray(pitch_deg, np.float64))[:, None]
    x = q[:, 0] * np.cos(a) + q[:, 2] * np.sin(a)  # yaw about the vertical axis
    z = -q[:, 0] * np.sin(a) + q[:, 2] * np.cos(a)
    y = q[:, 1] * np.cos(b) + z * np.sin(b)  # then pitch about the horizontal one
    disp = np.stack([x - q[:, 0], y - q[:, 1]], axis=-1) / iod
    return MotionTrack("head_turns", fps, disp.astype(np.float32))


def track_files(folder: str | Path, prefix: str = "real_") -> list[Path]:
    """The tracks in a folder, sorted (`real_s*`: still faces, `real_d*`: talking)."""
    return sorted(Path(folder).glob(f"{prefix}*.npz"))


@dataclass(frozen=True)
class RealMotion:
    """A real track as a training video uses it: which track, from which of its frames
    (frame i of the video shows track frame i + start, played back and forth) and how
    strongly its non-rigid part is applied."""

    track: MotionTrack
    start: int = 0
    scale: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator, tracks: list[MotionTrack], scale: tuple[float, float]) -> RealMotion:
        track = tracks[int(rng.integers(len(tracks)))]
        return cls(track, int(rng.integers(max(1, track.n_frames))), float(rng.uniform(*scale)))


def pingpong(k: int, n: int) -> int:
    """Index k of 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... (a track played back and forth)."""
    if n <= 1:
        return 0
    k %= 2 * n - 2
    return k if k < n else 2 * n - 2 - k


class MotionDriver:
    """Renders frames of `scene` moved by `track` (module docstring)."""

    def __init__(self, scene: Scene, track: MotionTrack, scale: float = 1.0, rigid: bool = True) -> None:
        self.scene = scene
        self.track = track
        self.scale = scale
        self.rigid = rigid
        lm = scene.landmarks.astype(np.float64)
        self.iod = float(np.linalg.norm(lm[263] - lm[33]))
        self.tri = Delaunay(lm)
        h, w = scene.image.shape[:2]
        pad = int(0.25 * self.iod)
        lo = np.maximum(np.floor(lm.min(axis=0)) - pad, 0).astype(int)
        hi = np.minimum(np.ceil(lm.max(axis=0)) + pad, [w, h]).astype(int)
        self.box = (lo[0], lo[1], hi[0], hi[1])
        gy, gx = np.mgrid[lo[1] : hi[1] : GRID_STEP, lo[0] : hi[0] : GRID_STEP]
        self.grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float64)
        self.grid_shape = gx.shape
        ys, xs = np.mgrid[lo[1] : hi[1], lo[0] : hi[0]].astype(np.float32)
        self.xs, self.ys = xs, ys
        self.blur = max(1.0, 0.06 * self.iod)

    def motion(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame i (1-based): the (2,3) head similarity and the (N,2) residual landmark
        displacements in frame px. Past its end the track plays backwards, then forwards
        again (no jump), so a short clip can drive a long video."""
        d = self.track.displacement[pingpong(i - 1, self.track.n_frames)].astype(np.float64) * self.iod
        src = self.scene.landmarks.astype(np.float64)
        dst = src + d
        if self.rigid:
            m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
            if m is None:
                m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        else:
            m = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        residual = dst - (src @ m[:, :2].T + m[:, 2])
        return m, residual * self.scale

    def residual_field(self, residual: np.ndarray) -> np.ndarray:
        """(h, w, 2) float32 displacement over the face box."""
        interp = LinearNDInterpolator(self.tri, residual, fill_value=0.0)
        coarse = interp(self.grid).reshape(*self.grid_shape, 2).astype(np.float32)
        x0, y0, x1, y1 = self.box
        field = cv2.resize(coarse, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
        return cv2.GaussianBlur(field, (0, 0), self.blur)

    def render(self, i: int) -> np.ndarray:
        """Frame i (1-based) as (H, W, 3) uint8 BGR."""
        m, residual = self.motion(i)
        img = self.scene.image.copy()
        x0, y0, x1, y1 = self.box
        field = self.residual_field(residual)
        img[y0:y1, x0:x1] = cv2.remap(self.scene.image, self.xs - field[..., 0], self.ys - field[..., 1],
                                      cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if not np.allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-6):
            h, w = img.shape[:2]
            head = cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            alpha = cv2.warpAffine(self.scene.mask, m, (w, h), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT)
            img = cv2.blendLinear(head, self.scene.background, alpha, 1.0 - alpha)
        return img

    def landmarks(self, i: int) -> np.ndarray:
        """Where the driver puts the landmarks in frame i (frame px), for checks."""
        m, residual = self.motion(i)
        src = self.scene.landmarks.astype(np.float64)
        return (src @ m[:, :2].T + m[:, 2] + residual).astype(np.float32)
