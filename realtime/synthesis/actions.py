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
R_BROW_OUTER = (70, 63, 46, 53)
L_BROW_OUTER = (300, 293, 276, 283)
R_CHEEK = (117, 118, 119, 101, 50, 36, 205)
L_CHEEK = (346, 347, 348, 330, 280, 266, 425)
UPPER_LIP = (0, 37, 267, 13, 82, 312)
LOWER_LIP = (17, 84, 314, 14, 87, 317)
CHIN = (18, 200, 199, 175, 152)


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
        # Units frequent in the real workbooks that the canonical set above lacks; drawn only
        # with varied actions (ScheduleSettings.vary_actions), so older seeds are unchanged.
        Action("AU1", _same(R_BROW_INNER + L_BROW_INNER, 0.0, -1.0) + _same((105, 334), 0.0, -0.4), 0.05, "upper"),
        Action("AU2", _same(R_BROW_OUTER + L_BROW_OUTER, 0.0, -1.0) + _same((105, 334), 0.0, -0.4), 0.05, "upper"),
        Action("AU5", _same(R_UPPER_LID[1:-1] + L_UPPER_LID[1:-1], 0.0, -1.0), 0.03, "upper"),
        Action(
            "AU6",
            _same(R_CHEEK + L_CHEEK, 0.0, -1.0) + _same(R_LOWER_LID[1:-1] + L_LOWER_LID[1:-1], 0.0, -0.5),
            0.06,
            "upper",
        ),
        Action("AU14", ((61, 0.6, -0.3), (291, -0.6, -0.3), (57, 0.4, -0.2), (287, -0.4, -0.2)), 0.04, "lower"),
        Action(
            "AU20",
            ((61, -1.0, 0.25), (291, 1.0, 0.25), (146, -0.5, 0.3), (375, 0.5, 0.3), (91, -0.3, 0.3), (321, 0.3, 0.3)),
            0.05,
            "lower",
        ),  # fmt: skip
        Action("AU23", ((61, 0.8, 0.0), (291, -0.8, 0.0)) + _same((0, 13), 0.0, 0.4) + _same((17, 14), 0.0, -0.4),
               0.04, "lower"),  # fmt: skip
        Action("AU24", _same(UPPER_LIP, 0.0, 0.7) + _same(LOWER_LIP, 0.0, -0.7) + _same((18, 200), 0.0, -0.4),
               0.045, "lower"),  # fmt: skip
        Action("AU25+26", _same(LOWER_LIP + CHIN, 0.0, 1.0) + _same((148, 377, 176, 400), 0.0, 0.8), 0.07, "lower"),
    )
})
# FaceMesh landmarks on the face's vertical midline (lips, chin, nose, brow centre).
MIDLINE = frozenset({0, 1, 2, 4, 5, 6, 8, 9, 10, 13, 14, 17, 18, 19, 94, 151, 152, 164, 168, 175, 199, 200})
CANONICAL_ACTIONS = ("AU1+2", "AU4", "AU7", "AU9", "AU10", "AU12", "AU15", "AU17")
MAX_WIDTH_SCALE = 1.5  # ActionShape.width_scale is drawn from [1 / 1.5, 1.5]


@dataclass(frozen=True)
class ActionShape:
    """How one occurrence of an action departs from its canonical shape (real expressions,
    micro-expressions in particular, are often one-sided or asymmetric, and no two faces
    move a unit the same way).

    side: "both", "right" or "left" (the subject's; right = image left); a one-sided shape
      keeps that side's anchors and the midline ones at half strength (`shaped`): a
      unit that is mostly midline (AU17) only leans to that side.
    weaker: displacement factor of the subject's left side against the right when side is
      "both" (asymmetry; 1 = symmetric; > 1: the left is the stronger side).
    rotation_deg: every anchor direction turned by this angle on the subject's right and
      mirrored on the left (image y down; midline anchors unturned).
    width_scale: the Gaussian width multiplied by this factor (extent of the motion).
    """

    side: str = "both"
    weaker: float = 1.0
    rotation_deg: float = 0.0
    width_scale: float = 1.0

    @staticmethod
    def draw(rng: np.random.Generator) -> ActionShape:
        """A random shape: one-sided 30 %, asymmetric otherwise (one side, either, at
        0.4-1x of the other), directions turned by up to +-30 deg, width 1/1.5-1.5x
        (log-uniform)."""
        side = str(rng.choice(["both", "right", "left"], p=[0.7, 0.15, 0.15]))
        weaker = float(rng.uniform(0.4, 1.0))
        if rng.random() < 0.5:  # which side is the weaker one
            weaker = 1.0 / weaker
        rotation = float(rng.uniform(-30.0, 30.0))
        width = float(np.exp(rng.uniform(-np.log(MAX_WIDTH_SCALE), np.log(MAX_WIDTH_SCALE))))
        return ActionShape(side, weaker, rotation, width)


CANONICAL = ActionShape()


def shaped(action: Action, shape: ActionShape, landmarks: np.ndarray, face_scale: float) -> Action:
    """`action` with `shape` applied, on the face whose (468, 2) `landmarks` (frame px) and
    face scale (px) are given. The canonical shape returns `action` itself.

    An anchor on the face's midline (MIDLINE: lip and chin centre, nose, brow centre) is
    neither side: a one-sided shape keeps it at half strength and does not turn it; any
    other anchor's side is where it lies against the midline landmark nearest to it in
    height (so a face's roll or an off-centre mouth does not move lip points across).
    Raises ValueError for an unknown side."""
    if shape == CANONICAL:
        return action
    if shape.side not in ("both", "right", "left"):
        raise ValueError(f"ActionShape.side must be both, right or left, got {shape.side!r}")
    mid = landmarks[sorted(MIDLINE)]
    theta = np.deg2rad(shape.rotation_deg)
    anchors: list[tuple[int, float, float]] = []
    for index, dx, dy in action.anchors:
        if index in MIDLINE:
            where = "mid"
        else:
            x, y = landmarks[index]
            nearest = mid[int(np.argmin(np.abs(mid[:, 1] - y)))]
            where = "right" if x < nearest[0] else "left"  # subject's right = image left
        if shape.side != "both" and where not in (shape.side, "mid"):
            continue
        gain = 0.5 if (shape.side != "both" and where == "mid") else 1.0
        if shape.side == "both" and where == "left":
            gain = shape.weaker
        t = 0.0 if where == "mid" else (theta if where == "right" else -theta)
        c, s = float(np.cos(t)), float(np.sin(t))
        anchors.append((index, gain * (c * dx - s * dy), gain * (s * dx + c * dy)))
    return Action(action.name, tuple(anchors), action.width * shape.width_scale, action.region)


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


def face_roi(landmarks: np.ndarray, face_scale: float, width: int, height: int, max_width: float = 0.0) -> Roi:
    """Landmark box grown by 3 sigma of the widest action (or of `max_width`, a width in
    face scales, when larger), clipped to the frame."""
    pad = 3 * max(max_width, *(a.width for a in ACTIONS.values())) * face_scale + 2
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
