"""Facial action units as smooth dense displacement fields anchored on landmarks.

Each action is a list of anchors (mediapipe landmark indices with a displacement
direction, image coordinates, y down) and a spatial width. Its basis field is a
normalised Gaussian interpolation of the anchor displacements:

    D(x) = sum_k phi_k(x) d_k / max(1, sum_k phi_k(x)),  phi_k = exp(-|x - c_k|^2 / 2 s^2)

Near a dense group of anchors this is their weighted mean (no double counting), away from
them it decays like a single Gaussian, so the motion stays local. A field is expressed
in "px at 112-px face scale" and multiplied by face_scale / 112 when built, so that an
amplitude means the same thing on every face size. Frames are rendered by backward
mapping out(x) = in(x - a(t) D(x)), i.e. the content moves by +a(t) D.

Blinks are not a displacement of this kind: the upper lid slides over the eye and
occludes it, so `blink_dy` builds a per-column vertical remap that stretches the lid
skin above the eye down to a moving lid edge (the lashes travel with it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

# Landmark groups (mediapipe 468 mesh; "R" = subject's right = image left).
R_BROW = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)
L_BROW = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)
R_BROW_INNER = (107, 55, 65)
L_BROW_INNER = (336, 285, 295)
R_UPPER_LID = (33, 246, 161, 160, 159, 158, 157, 173, 133)
R_LOWER_LID = (33, 7, 163, 144, 145, 153, 154, 155, 133)
L_UPPER_LID = (263, 466, 388, 387, 386, 385, 384, 398, 362)
L_LOWER_LID = (263, 249, 390, 373, 374, 380, 381, 382, 362)


@dataclass(frozen=True)
class Action:
    """An action unit: anchors (landmark, dx, dy) and the Gaussian width in face scales."""

    name: str
    anchors: tuple[tuple[int, float, float], ...]
    width: float  # sigma as a fraction of the face scale
    region: str  # "upper" (brows/eyes/nose root) or "lower" (mouth/chin): for scheduling


def _same(indices: tuple[int, ...], dx: float, dy: float) -> tuple[tuple[int, float, float], ...]:
    return tuple((i, dx, dy) for i in indices)


# Read-only registry (no module-level mutable state).
ACTIONS: Mapping[str, Action] = MappingProxyType({
    a.name: a
    for a in (
        Action("AU1+2", _same(R_BROW + L_BROW, 0.0, -1.0), 0.07, "upper"),
        Action(
            "AU4",
            _same(tuple(set(R_BROW) - set(R_BROW_INNER)), 0.0, 0.7)
            + _same(tuple(set(L_BROW) - set(L_BROW_INNER)), 0.0, 0.7)
            + _same(R_BROW_INNER, 0.55, 0.85)  # inner brows also pull towards the midline
            + _same(L_BROW_INNER, -0.55, 0.85),
            0.06,
            "upper",
        ),
        Action(
            "AU7",
            _same(R_LOWER_LID[1:-1] + L_LOWER_LID[1:-1], 0.0, -1.0) + _same((159, 386), 0.0, 0.3),
            0.035,
            "upper",
        ),
        Action(
            "AU9",
            _same((129, 358, 49, 279), 0.0, -1.0)  # nose wings
            + _same((98, 327, 64, 294), 0.0, -0.6)  # nostril base drags the upper lip less
            + _same((188, 412, 174, 399), 0.0, -0.5)
            + _same((55, 285), 0.0, 0.4),
            0.05,
            "upper",
        ),
        Action("AU10", _same((0, 37, 267, 39, 269, 40, 270, 13, 82, 312), 0.0, -1.0), 0.05, "lower"),
        Action(
            "AU12",
            ((61, -0.7, -0.7), (291, 0.7, -0.7), (146, -0.5, -0.45), (375, 0.5, -0.45),
             (185, -0.5, -0.5), (409, 0.5, -0.5), (50, 0.0, -0.35), (280, 0.0, -0.35)),
            0.05,
            "lower",
        ),  # fmt: skip
        Action(
            "AU15",
            ((61, -0.15, 1.0), (291, 0.15, 1.0), (146, -0.1, 0.6), (375, 0.1, 0.6), (91, 0.0, 0.5), (321, 0.0, 0.5)),
            0.05,
            "lower",
        ),
        Action(
            "AU17",
            _same((18, 200, 199, 175), 0.0, -1.0) + _same((17, 152), 0.0, -0.7) + _same((14, 87, 317), 0.0, -0.4),
            0.07,
            "lower",
        ),
    )
})


@dataclass(frozen=True)
class Roi:
    """The rectangle of the frame that expression fields can touch (x0:x1, y0:y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)


def face_roi(landmarks: np.ndarray, face_scale: float, width: int, height: int) -> Roi:
    """Landmark box grown by 3 sigma of the widest action, clipped to the frame."""
    pad = 3 * max(a.width for a in ACTIONS.values()) * face_scale + 2
    lo = np.floor(landmarks.min(axis=0) - pad).astype(int)
    hi = np.ceil(landmarks.max(axis=0) + pad).astype(int)
    return Roi(max(0, lo[0]), max(0, lo[1]), min(width, hi[0]), min(height, hi[1]))


def basis_field(action: Action, landmarks: np.ndarray, face_scale: float, roi: Roi) -> np.ndarray:
    """(h, w, 2) float32 displacement in frame px for amplitude 1 px at 112-px face scale."""
    ys, xs = np.mgrid[roi.y0 : roi.y1, roi.x0 : roi.x1].astype(np.float32)
    sigma = action.width * face_scale
    num = np.zeros(ys.shape + (2,), np.float32)
    den = np.zeros(ys.shape, np.float32)
    for index, dx, dy in action.anchors:
        cx, cy = landmarks[index]
        phi = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / np.float32(2 * sigma * sigma))
        num[..., 0] += phi * dx
        num[..., 1] += phi * dy
        den += phi
    field = num / np.maximum(den, 1.0)[..., None]
    # Neighbouring anchors with different directions partly cancel; rescale so that the
    # largest displacement is exactly the amplitude (1 px at 112-px face scale).
    peak = float(np.sqrt((field**2).sum(axis=2)).max())
    return field * np.float32(face_scale / 112.0 / peak)


@dataclass(frozen=True)
class EyeGeometry:
    """Lid contours of one eye sampled per column of its box (frame px)."""

    x0: int
    y0: int
    upper: np.ndarray  # (w,) y of the upper lid margin per column
    lower: np.ndarray  # (w,) y of the lower lid margin per column
    height: int  # box rows (from y0)
    skin: float  # rows of lid skin above the upper lid that stretch over the eye


def eye_geometry(landmarks: np.ndarray, upper_ids: tuple[int, ...], lower_ids: tuple[int, ...]) -> EyeGeometry:
    up = landmarks[list(upper_ids)]
    low = landmarks[list(lower_ids)]
    x0 = int(np.floor(min(up[:, 0].min(), low[:, 0].min())))
    x1 = int(np.ceil(max(up[:, 0].max(), low[:, 0].max()))) + 1
    cols = np.arange(x0, x1, dtype=np.float32)
    upper = np.interp(cols, *_sorted_xy(up))
    lower = np.maximum(np.interp(cols, *_sorted_xy(low)), upper)
    skin = 0.9 * float((lower - upper).max()) + 1.0
    y0 = int(np.floor(upper.min() - skin)) - 1
    y1 = int(np.ceil(lower.max())) + 2
    return EyeGeometry(x0, y0, (upper - y0).astype(np.float32), (lower - y0).astype(np.float32), y1 - y0, skin)


def _sorted_xy(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(points[:, 0])
    return points[order, 0], points[order, 1]


def blink_dy(eye: EyeGeometry, closure: float) -> np.ndarray:
    """(height, w) float32 vertical backward displacement (out(y) = in(y - dy)) that
    closes the eye by `closure` (0 open .. 1 shut): the lid edge moves from the upper
    lid to upper + closure x (lower - upper), the skin above stretches to follow."""
    rows = np.arange(eye.height, dtype=np.float32)[:, None]
    top = eye.upper - eye.skin  # (w,) start of the stretched skin band
    edge = eye.upper + closure * (eye.lower - eye.upper)
    scale = eye.skin / (eye.skin + closure * (eye.lower - eye.upper))
    src = top + (rows - top) * scale
    inside = (rows >= top) & (rows <= edge)
    return np.where(inside, rows - src, 0.0).astype(np.float32)
