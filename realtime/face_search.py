"""Faces anywhere in view: detection over the frame and its tiles, FaceMesh on an
upscaled square crop, and a stable choice of one face among several.

FaceMesh finds faces with its own short-range detector, which sees the whole frame at
128 px: a face narrower than about a tenth of the frame width (a 232 px face in a 4K
frame) is never found. This module finds such faces with mediapipe's full-range
BlazeFace model (`FaceDetection(model_selection=1)`, bundled in the 0.10.21 wheel, runs
offline) on the whole frame and on overlapping square tiles, then runs FaceMesh on a
square crop around the face, upscaled to CROP_PX, and maps the landmarks back.

Pure functions over arrays; the state (which face, which mode) lives in
`realtime.face.FaceAligner`. Images are uint8, RGB (mediapipe's order) unless named bgr.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.landmarks import N_LANDMARKS

CROP_PX = 256  # crop side given to FaceMesh: its landmark model reads a 192 px face box
CROP_SPAN = 2.0  # crop side in face widths: room for the ROI FaceMesh grows around a face
TILE_FRACTION = 2 / 3  # tile side / the frame's short side
MIN_TILE_PX = 480  # below this tiles only find faces too small to analyse (< ~70 px)
WIDE_ASPECT = 1.5  # frames this much wider than high get full-height tiles (search_tiles)
MIN_WIDE_PX = 240  # ... when at least this high
EDGE_MARGIN = 0.25  # a tile box this close (x its size) to an inner tile edge may be a cut face
DUPLICATE_OVERLAP = 0.5  # boxes sharing this much of the smaller one are one face
SAME_FACE_JUMP = 0.5  # a centre that moved more than this x face width is another face


@dataclass(frozen=True, slots=True)
class FaceBox:
    """A face in frame pixels: centre, width, height (px) and detector score (0..1)."""

    cx: float
    cy: float
    w: float
    h: float
    score: float = 1.0

    @property
    def size(self) -> float:
        return max(self.w, self.h)

    def describe(self) -> str:
        """'at x=..,y=.., w=.. px' for notices."""
        return f"at x={self.cx:.0f},y={self.cy:.0f}, w={self.w:.0f} px"


def box_of_landmarks(landmarks: np.ndarray) -> FaceBox:
    """Bounding box of (468,2) frame-pixel landmarks."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    centre = (lo + hi) / 2.0
    return FaceBox(float(centre[0]), float(centre[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))


def mesh_landmarks(mesh, rgb: np.ndarray) -> list[np.ndarray]:
    """Every face a FaceMesh graph returns for an RGB image, each (468,2) float32 pixels.

    mediapipe normalises x by the width and y by the height of the image.
    """
    result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        return []
    h, w = rgb.shape[:2]
    scale = np.array([w, h], dtype=np.float32)
    return [np.array([(p.x, p.y) for p in face.landmark[:N_LANDMARKS]], dtype=np.float32) * scale
            for face in result.multi_face_landmarks]


def search_tiles(width: int, height: int) -> list[tuple[int, int, int]]:
    """Square tiles (x0, y0, side) px covering a width x height frame, overlapping by half
    a side so that every face up to half a tile is whole in one of them.

    The full-range detector finds a face reliably from about 15% of its input's side, so
    tiles of 2/3 of the short side find faces from ~10% of it (216 px at 3840x2160).
    Below MIN_TILE_PX such tiles would only find faces too small to analyse, so smaller
    frames get none (the whole frame is searched anyway), except wide ones (long side >=
    WIDE_ASPECT x the short one, short side >= MIN_WIDE_PX): squeezed whole into the
    detector's square input they shrink every face by their aspect ratio (a 156 px face in
    1280x480 is missed by FaceMesh and by the whole-frame search), so they get tiles of the
    full short side.
    """
    side = int(round(min(width, height) * TILE_FRACTION))
    if side < MIN_TILE_PX:
        short, long = min(width, height), max(width, height)
        if long < WIDE_ASPECT * short or short < MIN_WIDE_PX:
            return []
        side = short
    xs = _starts(width, side)
    ys = _starts(height, side)
    return [(x, y, side) for y in ys for x in xs]


def _starts(length: int, side: int) -> list[int]:
    """Evenly spaced tile starts on [0, length - side], at most side/2 apart."""
    n = int(np.ceil((length - side) / (side / 2))) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - side, n)})


def detector_boxes(detector, rgb: np.ndarray, x0: int = 0, y0: int = 0) -> list[FaceBox]:
    """Faces a mediapipe FaceDetection graph finds in `rgb`, shifted by (x0, y0) px."""
    result = detector.process(np.ascontiguousarray(rgb))
    h, w = rgb.shape[:2]
    boxes = []
    for det in result.detections or []:
        rel = det.location_data.relative_bounding_box
        boxes.append(FaceBox(x0 + (rel.xmin + rel.width / 2) * w, y0 + (rel.ymin + rel.height / 2) * h,
                             rel.width * w, rel.height * h, float(det.score[0])))
    return boxes


def merge_boxes(boxes: list[FaceBox]) -> list[FaceBox]:
    """One box per face, best score first: a box that shares DUPLICATE_OVERLAP of the
    smaller box's area with a better one is the same face (seen whole in one tile and cut
    by the edge of another, so plain IoU would keep both)."""
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_overlap_of_smaller(box, k) < DUPLICATE_OVERLAP for k in kept):
            kept.append(box)
    return kept


def _overlap_of_smaller(a: FaceBox, b: FaceBox) -> float:
    ix = min(a.cx + a.w / 2, b.cx + b.w / 2) - max(a.cx - a.w / 2, b.cx - b.w / 2)
    iy = min(a.cy + a.h / 2, b.cy + b.h / 2) - max(a.cy - a.h / 2, b.cy - b.h / 2)
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / max(min(a.w * a.h, b.w * b.h), 1e-6)


def detect_faces(detector, rgb: np.ndarray) -> list[FaceBox]:
    """Faces in a frame: the full-range detector on the whole frame and on
    `search_tiles`, merged; best score first. One detector call per tile (~5 ms each on
    a CPU core, 11 calls for 3840x2160 or 1920x1080)."""
    h, w = rgb.shape[:2]
    boxes = detector_boxes(detector, rgb)
    for x0, y0, side in search_tiles(w, h):
        found = detector_boxes(detector, rgb[y0:y0 + side, x0:x0 + side], x0, y0)
        # A face cut by a tile edge inside the frame gives a box on its visible part; the
        # overlap shows it whole in a neighbouring tile, so such boxes are dropped.
        boxes += [b for b in found if _clear_of_inner_edges(b, (x0, y0, side), w, h)]
    return merge_boxes(boxes)


def _clear_of_inner_edges(box: FaceBox, tile: tuple[int, int, int], width: int, height: int) -> bool:
    """Whether the face around `box` (grown by EDGE_MARGIN of its size on each side: the
    detector box leaves out forehead and chin) stays off the tile's edges inside the frame."""
    x0, y0, side = tile
    m = EDGE_MARGIN * box.size
    left, right = box.cx - box.w / 2 - m, box.cx + box.w / 2 + m
    top, bottom = box.cy - box.h / 2 - m, box.cy + box.h / 2 + m
    return ((x0 == 0 or left >= x0) and (x0 + side >= width or right <= x0 + side)
            and (y0 == 0 or top >= y0) and (y0 + side >= height or bottom <= y0 + side))


def crop_matrix(box: FaceBox, out_px: int = CROP_PX, span: float = CROP_SPAN) -> np.ndarray:
    """(2,3) float64 affine frame -> crop: a square of span x box.size frame px centred
    on the box, scaled to out_px (crop pixel centres map to frame pixel centres)."""
    scale = out_px / (span * box.size)
    return np.array([[scale, 0.0, out_px / 2.0 - 0.5 - scale * (box.cx - 0.5)],
                     [0.0, scale, out_px / 2.0 - 0.5 - scale * (box.cy - 0.5)]])


def landmarks_on_crop(mesh, bgr: np.ndarray, box: FaceBox, out_px: int = CROP_PX) -> np.ndarray | None:
    """(468,2) float32 frame-pixel landmarks of the face in a square crop around `box` of
    a BGR frame, or None when FaceMesh finds no face there. Outside the frame the crop
    repeats the edge. Only the crop is converted to RGB (a 4K frame costs ~6 ms)."""
    matrix = crop_matrix(box, out_px)
    crop = cv2.warpAffine(bgr, matrix, (out_px, out_px), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    faces = mesh_landmarks(mesh, cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
    if not faces:
        return None
    # mediapipe's x * width is an edge-based coordinate; the frame's landmarks use the
    # same convention, so shift by half a pixel into centres and back.
    inverse = cv2.invertAffineTransform(matrix)
    centres = faces[0] - 0.5
    return (cv2.transform(centres[None], inverse)[0] + 0.5).astype(np.float32)


def choose_face(boxes: list[FaceBox], previous: FaceBox | None) -> tuple[int, bool]:
    """Index of the face to analyse, and whether it is another face than `previous`.

    The face nearest `previous` while its centre moved less than SAME_FACE_JUMP x the
    previous width; otherwise (no previous face, or it left) the largest. `boxes` must
    not be empty.
    """
    largest = max(range(len(boxes)), key=lambda i: boxes[i].size)
    if previous is None:
        return largest, False
    dist = [np.hypot(b.cx - previous.cx, b.cy - previous.cy) for b in boxes]
    nearest = int(np.argmin(dist))
    if dist[nearest] <= SAME_FACE_JUMP * previous.size:
        return nearest, False
    return largest, True


def nearest(boxes: list[FaceBox], box: FaceBox) -> int:
    """Index of the box whose centre is nearest `box`'s (`boxes` not empty)."""
    return int(np.argmin([np.hypot(b.cx - box.cx, b.cy - box.cy) for b in boxes]))


def is_listed(box: FaceBox, boxes: list[FaceBox]) -> bool:
    """Whether one of `boxes` is the face `box` (centre within SAME_FACE_JUMP x its size)."""
    return any(np.hypot(b.cx - box.cx, b.cy - box.cy) <= SAME_FACE_JUMP * box.size for b in boxes)


class FaceCount:
    """The number of faces in view as told to the user: a new count is reported once it
    has been seen `hold` times in a row, so a detector flicker does not become a notice."""

    def __init__(self, hold: int = 3) -> None:
        self.hold = hold
        self.reported = 1  # one face is the normal case: nothing to say about it
        self._candidate = 1
        self._seen = 0

    @property
    def pending(self) -> bool:
        """A count other than the reported one was seen and awaits confirmation."""
        return self._candidate != self.reported

    def observe(self, n: int, weight: int = 1) -> int | None:
        """Record a count (weight: how many observations it is worth); the new count when
        it is to be reported now, else None."""
        if n != self._candidate:
            self._candidate, self._seen = n, 0
        self._seen += weight
        if self._candidate != self.reported and self._seen >= self.hold:
            self.reported = self._candidate
            return self.reported
        return None
