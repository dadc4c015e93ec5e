"""Per-pair feature chain: dense flow -> HS image -> head-motion removal -> eye mask ->
ROI -> normalised (3,112,112) network input (LGNMNet pre-processing steps 2-7).

Per-frame products (the grey face at flow size, its landmarks and the landmark-derived
boxes) are computed once per frame as a `FlowFrame` and reused by every pair that uses the
frame; only the flow and what follows it are per pair. `FaceGeometry` holds the boxes and
polygons as plain integers so a GPU implementation can mirror the chain exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines import landmarks as fl
from engines.head_motion import remove_dominant_motion, remove_rigid_motion
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, FlowSettings

ROI_SIZE = 112  # network input side
FLOW_ALGORITHMS = ("farneback", "dis", "tvl1")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end-exclusive), inside the image


@dataclass(frozen=True, slots=True)
class FaceGeometry:
    """Landmark-derived regions of one frame at flow size (pixels, end-exclusive boxes)."""

    size: int  # side of the square image the geometry refers to
    nose_box: Box  # head-motion reference around the nose tip
    left_eye: np.ndarray  # (16,2) int32 eye contour grown outward (image-left eye)
    right_eye: np.ndarray  # (16,2) int32
    brow_box: Box  # both brows down to the lower eyelids -> ROI top half
    mouth_box: Box  # outer lips -> ROI bottom half


@dataclass(frozen=True, slots=True)
class FlowFrame:
    """Per-frame products at flow size, computed once per frame (`flow_frame`)."""

    grey: np.ndarray  # (F,F) uint8, F = settings.face_size
    landmarks: np.ndarray  # (468,2) float32 in flow-image pixels
    geometry: FaceGeometry


# ---------------------------------------------------------------- geometry

def clip_box(x0: float, y0: float, x1: float, y1: float, size: int) -> Box:
    """Round a float box outward and clip it to a size x size image (at least 1 px)."""
    bx0 = int(np.clip(np.floor(x0), 0, size - 1))
    by0 = int(np.clip(np.floor(y0), 0, size - 1))
    bx1 = int(np.clip(np.ceil(x1), bx0 + 1, size))
    by1 = int(np.clip(np.ceil(y1), by0 + 1, size))
    return bx0, by0, bx1, by1


def grow_polygon(points: np.ndarray, grow_px: float) -> np.ndarray:
    """Move each vertex grow_px away from the centroid (eye contours are near-convex)."""
    centre = points.mean(axis=0)
    offset = points - centre
    norm = np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-6)
    return points + offset / norm * grow_px


def _grown_box(points: np.ndarray, margin: float, size: int) -> Box:
    """The bounding box of (N,2) points grown by `margin` px on every side, clipped."""
    lo, hi = points.min(axis=0) - margin, points.max(axis=0) + margin
    return clip_box(lo[0], lo[1], hi[0], hi[1], size)


def face_geometry(
    landmarks: np.ndarray,
    size: int,
    grow_px: float | None = None,
    nose_half: float | None = None,
    margin: float | None = None,
) -> FaceGeometry:
    """Regions of one frame from its landmarks in a size x size image.

    Defaults scale with the image: eyes grown by size/50 px (2.2 px at 112), a nose box of
    half-side size/20 (about 13x13 px at 112) centred on the mean of NOSE_TIP[:2] (tip, pad),
    ROI margins of size/40 around brows+lids and size/20 around the lips (lips move more).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape != (fl.N_LANDMARKS, 2):
        raise ValueError(f"landmarks must be (468,2), got {lm.shape}")
    grow = size / 50.0 if grow_px is None else grow_px
    half = size / 20.0 if nose_half is None else nose_half
    m = size / 40.0 if margin is None else margin
    nose = lm[fl.NOSE_TIP[:2]].mean(axis=0)
    brows_lids = lm[np.concatenate([fl.LEFT_BROW, fl.RIGHT_BROW, fl.LEFT_LOWER_LID, fl.RIGHT_LOWER_LID])]
    lips = lm[fl.MOUTH]
    m_mouth = size / 20.0 if margin is None else margin * 2.0
    return FaceGeometry(
        size=size,
        nose_box=clip_box(nose[0] - half, nose[1] - half, nose[0] + half + 1, nose[1] + half + 1, size),
        left_eye=np.round(grow_polygon(lm[fl.LEFT_EYE], grow)).astype(np.int32),
        right_eye=np.round(grow_polygon(lm[fl.RIGHT_EYE], grow)).astype(np.int32),
        brow_box=_grown_box(brows_lids, m, size),
        mouth_box=_grown_box(lips, m_mouth, size),
    )


# ---------------------------------------------------------------- per frame

def resize_landmarks(landmarks: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Landmarks of a src-px crop in a dst-px resize of it (pixel-centre convention)."""
    f = dst / src
    return ((np.asarray(landmarks, dtype=np.float32) + 0.5) * f - 0.5).astype(np.float32)


def to_flow_size(grey: np.ndarray, size: int) -> np.ndarray:
    """A square grey crop at size x size; the crop itself (same object) when it already is.

    INTER_AREA when shrinking: bilinear decimation aliases skin texture into fake motion.
    """
    if grey.shape == (size, size):
        return grey
    shrink = grey.shape[0] > size
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def flow_image(face: AlignedFace, settings: FlowSettings) -> np.ndarray:
    """The grey face at settings.face_size; the crop itself (same object) when it already is."""
    return to_flow_size(face.grey, settings.face_size)


def flow_frame(face: AlignedFace, settings: FlowSettings) -> FlowFrame:
    """All per-frame products at flow size: compute once per frame, reuse for every pair."""
    grey = flow_image(face, settings)
    landmarks = resize_landmarks(face.landmarks, face.grey.shape[0], settings.face_size)
    return FlowFrame(grey=grey, landmarks=landmarks, geometry=face_geometry(landmarks, settings.face_size))


# ---------------------------------------------------------------- per pair

def compute_flow(grey_a: np.ndarray, grey_b: np.ndarray, settings: FlowSettings) -> np.ndarray:
    """Dense flow a -> b, (S,S,2) float32 (dx, dy) in pixels of the flow-size image.

    Inputs not at settings.face_size are resized here (convenience; the streaming path
    passes `flow_image` results so each frame is resized once).
    """
    a, b = (to_flow_size(g, settings.face_size) for g in (grey_a, grey_b))
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError("flow inputs must be uint8 grey images")
    algorithm = settings.algorithm
    if algorithm == "farneback":
        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if settings.gaussian_window else 0
        # cv2's stubs want an output array where None (allocate it) is the documented call.
        flow = cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]
            a, b, None, settings.pyr_scale, settings.levels, settings.winsize,
            settings.iterations, settings.poly_n, settings.poly_sigma, flags,
        )
    elif algorithm == "dis":
        flow = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)  # type: ignore[call-overload]
    elif algorithm == "tvl1":
        flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(a, b, None)  # type: ignore[attr-defined]  # contrib, no stubs
    else:
        raise UserError(f"unknown flow algorithm {algorithm!r} (choose one of {', '.join(FLOW_ALGORITHMS)})")
    return np.ascontiguousarray(flow, dtype=np.float32)


def encode_hs(flow: np.ndarray, clip: float, within: np.ndarray | None = None, floor: float = 0.0) -> np.ndarray:
    """HS image of a flow field, (S,S,3) uint8 BGR.

    Flow components are clipped to +-clip; hue = direction (degrees / 2, OpenCV's 0..179),
    saturation 255, value = magnitude min-max normalised over this pair to 0..255
    (all 0 when the magnitude is constant: nothing moves relative to anything).
    `within` (bool (S,S), optional, not the authors' rule) takes the min/max only there
    and saturates outside: Farneback reports several px of flow on flat background and
    crop borders even for identical frames, which otherwise sets the max of the pair.
    """
    f = np.clip(flow, -clip, clip)
    magnitude, angle = cv2.cartToPolar(f[..., 0], f[..., 1], angleInDegrees=True)
    hue = (angle * 0.5).astype(np.uint8) % 180  # angle < 360, guard the 360 rounding edge
    region = magnitude if within is None else magnitude[within]
    lo, hi = float(region.min()), float(region.max())
    hi = max(hi, lo + floor)  # `floor` (px): the least span stretched to 0..255
    if hi - lo > 1e-6:
        value = cv2.convertScaleAbs(magnitude, alpha=255.0 / (hi - lo), beta=-lo * 255.0 / (hi - lo))
    else:
        value = np.zeros_like(hue)
    hsv = cv2.merge([hue, np.full_like(hue, 255), value])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def remove_head_motion(img: np.ndarray, geometry: FaceGeometry) -> np.ndarray:
    """Subtract the head motion seen at the nose tip from the HS image (authors' rule).

    out[..., c] = img[..., c] - mean(img[nose_box, c]) for each channel c, computed in
    float32; channels 0 and 1 (B, G) then take the absolute value; all channels are then
    rounded and clipped to 0..255 (so channel 2 keeps only increases over the nose).
    """
    x0, y0, x1, y1 = geometry.nose_box
    signed = img.astype(np.float32)
    signed -= signed[y0:y1, x0:x1].reshape(-1, 3).mean(axis=0)
    np.abs(signed[..., :2], out=signed[..., :2])
    return np.clip(np.rint(signed), 0, 255).astype(np.uint8)


def mask_eyes(img: np.ndarray, geometry: FaceGeometry) -> np.ndarray:
    """Copy of img with both (grown) eye polygons filled with 0: blinks are not expressions."""
    out = img.copy()
    cv2.fillPoly(out, [geometry.left_eye, geometry.right_eye], (0, 0, 0))
    return out


def select_roi(img: np.ndarray, geometry: FaceGeometry, out: int = ROI_SIZE) -> np.ndarray:
    """(out,out,3) uint8: brow box resized into the top half, mouth box into the bottom."""
    if out < 2 or out % 2:
        raise ValueError(f"ROI size must be even and positive, got {out}")
    half = out // 2
    parts = []
    for x0, y0, x1, y1 in (geometry.brow_box, geometry.mouth_box):
        region = img[y0:y1, x0:x1]
        shrink = region.shape[0] > half or region.shape[1] > out
        parts.append(cv2.resize(region, (out, half), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))
    return np.vstack(parts)


def normalise(roi: np.ndarray) -> np.ndarray:
    """(3,H,W) float32 network input: (pixel - 127.5) / 128, channels first."""
    x = (roi.astype(np.float32) - 127.5) / 128.0
    return np.ascontiguousarray(x.transpose(2, 0, 1))


VALUE_RANGES = ("pair", "roi")


def value_region(geometry: FaceGeometry) -> np.ndarray:
    """bool (S,S): the brow and mouth boxes without the (grown) eyes, where the HS value
    is normalised when settings.value_range == "roi" (blinks must not set the max either)."""
    region = np.zeros((geometry.size, geometry.size), np.uint8)
    for x0, y0, x1, y1 in (geometry.brow_box, geometry.mouth_box):
        region[y0:y1, x0:x1] = 1
    cv2.fillPoly(region, [geometry.left_eye, geometry.right_eye], (0,))
    return region.astype(bool)


def encode_pair(flow: np.ndarray, landmarks: np.ndarray | FaceGeometry, settings: FlowSettings) -> np.ndarray:
    """The whole chain after the flow: (3,112,112) float32. `landmarks` are frame a's at
    flow size, or its precomputed FaceGeometry."""
    geometry = landmarks if isinstance(landmarks, FaceGeometry) else face_geometry(landmarks, flow.shape[0])
    if settings.value_range not in VALUE_RANGES:
        raise UserError(f"flow value_range must be one of {', '.join(VALUE_RANGES)}, got {settings.value_range!r}")
    within = value_region(geometry) if settings.value_range == "roi" else None
    if within is not None and not within.any():
        within = None
    hs = encode_hs(flow, settings.clip, within, settings.value_floor)
    return normalise(select_roi(mask_eyes(remove_head_motion(hs, geometry), geometry), geometry))


def pair_flow(a: FlowFrame, b: FlowFrame, settings: FlowSettings) -> np.ndarray:
    """(F,F,2) float32 flow from frame a to frame b with the settings' head-motion model
    applied (`FlowSettings.head_motion`: "nose" leaves it to `remove_head_motion`,
    "rigid3d" first subtracts `engines.head_motion.rigid_motion_field`, "dominant"
    `engines.head_motion.dominant_motion_field`)."""
    flow = compute_flow(a.grey, b.grey, settings)
    return remove_model_motion(flow, a, b, settings)


def remove_model_motion(flow: np.ndarray, a: FlowFrame, b: FlowFrame, settings: FlowSettings) -> np.ndarray:
    """flow (F,F,2) from frame a to b less the head motion of `settings.head_motion` beyond
    the nose subtraction (the flow itself for "nose"); every flow backend applies it."""
    if settings.head_motion == "rigid3d":
        return remove_rigid_motion(flow, a.landmarks, b.landmarks, a.geometry.nose_box)
    if settings.head_motion == "dominant":
        eyes = (a.geometry.left_eye, a.geometry.right_eye)
        return remove_dominant_motion(flow, a.landmarks, a.geometry.nose_box, eyes)
    return flow  # "nose" (FlowSettings refuses any other value)


def pair_input_frames(a: FlowFrame, b: FlowFrame, settings: FlowSettings) -> np.ndarray:
    """Network input for a pair of cached per-frame products (the streaming path)."""
    return encode_pair(pair_flow(a, b, settings), a.geometry, settings)


def pair_input(a: AlignedFace, b: AlignedFace, settings: FlowSettings) -> np.ndarray:
    """Network input (3,112,112) float32 for frames a (i) and b (i+K); recomputes the
    per-frame products, use `flow_frame` + `pair_input_frames` to reuse them."""
    return pair_input_frames(flow_frame(a, settings), flow_frame(b, settings), settings)
