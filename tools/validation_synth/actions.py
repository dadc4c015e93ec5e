"""Action units: FACS-like local deformations of the face mesh.

Each unit is a displacement per vertex in the face frame (origin between the outer eye
corners, x towards the viewer's right eye, y down, unit = inter-ocular distance), built
from Gaussian bumps around anatomical anchors and gated so that, for example, a jaw drop
moves the lower lip and chin but not the upper lip. Every unit is normalised so that its
largest vertex displacement is 1; an event scales it by its amplitude (IOD units).

Vertices are the 468 FaceMesh landmarks followed by the two eye centres (see render.py).
Sides are the image sides (viewer's left = "L"), as in realtime.face.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from realtime.face import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE

UPPER_LIP = np.array([185, 40, 39, 37, 0, 267, 269, 270, 409, 191, 80, 81, 82, 13, 312, 311, 310, 415])
LOWER_LIP = np.array([146, 91, 181, 84, 17, 314, 405, 321, 375, 95, 88, 178, 87, 14, 317, 402, 318, 324])
MOUTH_CORNERS = (61, 291)  # outer corners, viewer's left / right
UPPER_LID = (LEFT_EYE[1:8], RIGHT_EYE[1:8])
LOWER_LID = (LEFT_EYE[9:], RIGHT_EYE[9:])
INNER_BROW = (np.array([107, 55, 66]), np.array([336, 285, 296]))
OUTER_BROW = (np.array([70, 46, 63]), np.array([300, 276, 293]))
NOSE_WINGS = (98, 327)
CHIN = 152
N_VERTICES = 470  # 468 landmarks + 2 eye centres


def face_frame(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(origin, 2x2 rotation face->canvas, IOD px) of canvas landmarks."""
    left, right = landmarks[33].astype(np.float64), landmarks[263].astype(np.float64)
    axis = right - left
    iod = float(np.linalg.norm(axis))
    ux = axis / iod
    rot = np.array([[ux[0], -ux[1]], [ux[1], ux[0]]])  # columns: face x, face y in canvas
    return (left + right) / 2, rot, iod


def vertices_in_face_frame(landmarks: np.ndarray) -> np.ndarray:
    """(470,2) vertices (landmarks + eye centres) in IOD units of the face frame."""
    origin, rot, iod = face_frame(landmarks)
    eyes = np.stack([landmarks[LEFT_EYE].mean(0), landmarks[RIGHT_EYE].mean(0)])
    pts = np.vstack([landmarks, eyes]).astype(np.float64)
    return (pts - origin) @ rot / iod


def _bump(p: np.ndarray, centre: np.ndarray, vec: tuple[float, float], radius: float) -> np.ndarray:
    w = np.exp(-np.sum((p - centre) ** 2, axis=1) / (2 * radius**2))
    return w[:, None] * np.asarray(vec, dtype=np.float64)[None]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _mask(indices: np.ndarray | tuple) -> np.ndarray:
    m = np.zeros(N_VERTICES)
    m[np.asarray(indices).ravel()] = 1.0
    return m


BROW_LOWER_EDGE = (LEFT_BROW[5:], RIGHT_BROW[5:])


def _above_eyes(p: np.ndarray) -> np.ndarray:
    """Forehead and brows move fully, upper lids not at all; the skin between them is
    stretched evenly (a smoothstep from the lid top up to the brow's lower edge)."""
    lid_top = min(p[UPPER_LID[0], 1].min(), p[UPPER_LID[1], 1].min())
    brow = max(p[BROW_LOWER_EDGE[0], 1].mean(), p[BROW_LOWER_EDGE[1], 1].mean())
    u = np.clip((lid_top - p[:, 1]) / max(lid_top - brow, 0.03), 0, 1)
    return u * u * (3 - 2 * u)


def _sides(fn: Callable[[np.ndarray, int], np.ndarray], p: np.ndarray, sides: str) -> np.ndarray:
    """Sum of a one-sided unit (side 0 = viewer's left, 1 = right) over the chosen sides."""
    return sum(fn(p, s) for s in (0, 1) if "LR"[s] in sides)


def inner_brow_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU1
    c = p[INNER_BROW[side]].mean(0)
    return _bump(p, c, (0.0, -1.0), 0.14) * _above_eyes(p)[:, None]


def outer_brow_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU2
    c = p[OUTER_BROW[side]].mean(0)
    return _bump(p, c, (0.15 * (1 if side else -1), -1.0), 0.16) * _above_eyes(p)[:, None]


def brow_lower(p: np.ndarray, side: int) -> np.ndarray:  # AU4: down and towards the midline
    c = p[INNER_BROW[side]].mean(0)
    inward = 0.6 if side == 0 else -0.6
    return _bump(p, c, (inward, 0.8), 0.15) * _above_eyes(p)[:, None]


def upper_lid_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU5
    lid = UPPER_LID[side]
    c = p[lid].mean(0)
    return _bump(p, c, (0.0, -1.0), 0.07) * _mask(lid)[:, None]


def cheek_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU6: cheek up, lower lid pushed up
    eye = p[468 + side]
    below_lids = _sigmoid((p[:, 1] - p[UPPER_LID[side], 1].max()) / 0.02)
    return _bump(p, eye + np.array([0.0, 0.36]), (0.1 * (1 if side else -1), -1.0), 0.18) * below_lids[:, None]


def lid_tighten(p: np.ndarray, side: int) -> np.ndarray:  # AU7: lower lid up, towards the eye centre
    lid = LOWER_LID[side]
    eye = p[468 + side]
    towards = (eye - p) * 0.8 + np.array([0.0, -0.05])
    w = _mask(lid) * np.exp(-np.sum((p - p[lid].mean(0)) ** 2, 1) / (2 * 0.08**2))
    return towards / 0.1 * w[:, None]


def nose_wrinkle(p: np.ndarray, side: int) -> np.ndarray:  # AU9
    wing = p[NOSE_WINGS[side]]
    return _bump(p, wing + np.array([0.0, -0.08]), (0.2 * (-1 if side else 1), -1.0), 0.11)


def upper_lip_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU10
    c = p[[0, 13]].mean(0) + np.array([0.14 * (1 if side else -1), 0.0])
    not_lower = 1.0 - _mask(LOWER_LIP)
    return _bump(p, c, (0.0, -1.0), 0.14) * not_lower[:, None]


def lip_corner_pull(p: np.ndarray, side: int) -> np.ndarray:  # AU12: out and up
    c = p[MOUTH_CORNERS[side]]
    return _bump(p, c, (0.65 * (1 if side else -1), -0.75), 0.12)


def lip_corner_depress(p: np.ndarray, side: int) -> np.ndarray:  # AU15: down, a little out
    c = p[MOUTH_CORNERS[side]]
    return _bump(p, c, (0.25 * (1 if side else -1), 1.0), 0.1)


def lip_stretch(p: np.ndarray, side: int) -> np.ndarray:  # AU20: sideways, slightly down
    c = p[MOUTH_CORNERS[side]]
    return _bump(p, c, (1.0 * (1 if side else -1), 0.25), 0.11)


def chin_raise(p: np.ndarray, side: int) -> np.ndarray:  # AU17: chin boss and lower lip up
    c = (p[17] + p[CHIN]) / 2 + np.array([0.12 * (1 if side else -1), 0.0])
    not_upper = 1.0 - _mask(UPPER_LIP)
    return _bump(p, c, (0.0, -1.0), 0.16) * not_upper[:, None]


def lip_press(p: np.ndarray, side: int) -> np.ndarray:  # AU24: lips pressed together
    c = p[[13, 14]].mean(0) + np.array([0.1 * (1 if side else -1), 0.0])
    direction = np.zeros((N_VERTICES, 2))
    direction[UPPER_LIP, 1] = 1.0
    direction[LOWER_LIP, 1] = -1.0
    corner = MOUTH_CORNERS[side]
    direction[corner, 0] = -0.5 if side else 0.5
    w = np.exp(-np.sum((p - c) ** 2, 1) / (2 * 0.16**2))
    return direction * w[:, None]


def jaw_drop(p: np.ndarray, side: int) -> np.ndarray:  # AU26: everything below the lip line down
    mouth_y = (p[MOUTH_CORNERS[0], 1] + p[MOUTH_CORNERS[1], 1]) / 2
    below = _sigmoid((p[:, 1] - mouth_y) / 0.03) * (1.0 - _mask(UPPER_LIP))
    below = np.maximum(below, _mask(LOWER_LIP))
    c = p[CHIN] + np.array([0.2 * (1 if side else -1), 0.0])
    w = np.exp(-np.sum((p - c) ** 2, 1) / (2 * 0.45**2)) * below
    return w[:, None] * np.array([[0.0, 1.0]]) * 0.5  # two sides add up to ~1


UNITS: dict[str, tuple[str, Callable[[np.ndarray, int], np.ndarray]]] = {
    # name: (region, one-sided field)
    "AU1": ("brow", inner_brow_raise),
    "AU2": ("brow", outer_brow_raise),
    "AU4": ("brow", brow_lower),
    "AU5": ("eye", upper_lid_raise),
    "AU6": ("eye", cheek_raise),
    "AU7": ("eye", lid_tighten),
    "AU9": ("nose", nose_wrinkle),
    "AU10": ("mouth", upper_lip_raise),
    "AU12": ("mouth", lip_corner_pull),
    "AU15": ("mouth", lip_corner_depress),
    "AU17": ("mouth", chin_raise),
    "AU20": ("mouth", lip_stretch),
    "AU24": ("mouth", lip_press),
    "AU26": ("mouth", jaw_drop),
}

# Macro-expression combinations (prototypes); micro-expressions use one region.
PROTOTYPES: tuple[tuple[str, ...], ...] = (
    ("AU6", "AU12"),  # smile
    ("AU1", "AU2", "AU5", "AU26"),  # surprise
    ("AU4", "AU7", "AU24"),  # anger
    ("AU9", "AU10", "AU17"),  # disgust
    ("AU1", "AU4", "AU15"),  # sadness
    ("AU1", "AU2", "AU4", "AU5", "AU20"),  # fear
    ("AU12",),  # smile without eyes
    ("AU4", "AU7"),  # frown / concentration
    ("AU17", "AU24"),  # lips pressed, chin up
)


# Units that fold the mesh (lips through each other, lids through the eye) when pushed
# as far as the others: their largest peak displacement, IOD units (above any ME's).
CAP = {"AU5": 0.05, "AU7": 0.06, "AU10": 0.07, "AU24": 0.04}


def unit_field(name: str, p: np.ndarray, sides: str = "LR") -> np.ndarray:
    """(470,2) field of one unit on the given sides, max vertex displacement 1."""
    _, fn = UNITS[name]
    field = _sides(fn, p, sides)
    peak = float(np.max(np.linalg.norm(field, axis=1)))
    return field / peak if peak > 0 else field


def to_canvas(field: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Face-frame IOD units -> canvas pixels (rotation and scale of the placed face)."""
    _, rot, iod = face_frame(landmarks)
    return field @ rot.T * iod
