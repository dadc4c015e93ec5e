"""Face photos: the bundled public-domain portraits, mahotas' demo photo, or user files.

A face is a photo plus its 468 FaceMesh landmarks (detected once, on the still photo).
`place` puts a face into a video canvas at a chosen size, position and roll; the area
the photo does not cover is filled with a blurred extension of its borders (no mirrored
copy of the face that a detector could pick up).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import cv2
import numpy as np

from realtime.common.errors import UserError
from realtime.face import FaceLandmarker

BUNDLED_DIR = Path(__file__).resolve().parent / "faces"
BUNDLED = ("obama_official_portrait.jpg", "biden_official_portrait.jpg")
MAHOTAS_FACE = "mahotas/demos/data/luispedro.jpg"


@dataclass(frozen=True)
class Face:
    name: str
    image: np.ndarray  # BGR uint8
    landmarks: np.ndarray  # (468, 2) float32, photo pixels

    @property
    def iod(self) -> float:
        return float(np.linalg.norm(self.landmarks[263] - self.landmarks[33]))


def default_face_paths() -> list[Path]:
    """Bundled portraits, plus mahotas' demo photo when the `validation` extra is installed."""
    paths = [BUNDLED_DIR / name for name in BUNDLED]
    try:
        extra = Path(str(distribution("mahotas").locate_file(MAHOTAS_FACE)))
    except PackageNotFoundError:
        return paths
    if extra.is_file():
        paths.append(extra)
    return paths


def check_face_files(paths: list[Path]) -> None:
    """One-line errors for user-given face files, before any work is done."""
    for path in paths:
        if not path.exists():
            raise UserError(f"{path}: no such face file")
        if not path.is_file():
            raise UserError(f"{path}: not a file")


def load_face(path: Path, landmarker: FaceLandmarker, mirror: bool = False) -> Face:
    """Read a photo (optionally mirrored) and detect its landmarks; errors name the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: not a readable image")
    if mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    landmarks = landmarker.detect(image)
    if landmarks is None:
        raise UserError(f"{path}: FaceMesh finds no face in this photo")
    name = path.stem + ("_mirrored" if mirror else "")
    face = Face(name=name, image=image, landmarks=landmarks.astype(np.float32))
    if face.iod < 20:
        raise UserError(f"{path}: the face is too small (inter-ocular distance {face.iod:.0f} px < 20)")
    return face


def placement(face: Face, iod_px: float, eyes_at: tuple[float, float], roll_deg: float) -> np.ndarray:
    """(2,3) similarity photo -> canvas: eye midpoint to `eyes_at`, IOD to `iod_px`."""
    left, right = face.landmarks[33].astype(np.float64), face.landmarks[263].astype(np.float64)
    angle = np.arctan2(right[1] - left[1], right[0] - left[0])
    theta = np.deg2rad(roll_deg) - angle
    scale = iod_px / face.iod
    c, s = scale * np.cos(theta), scale * np.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    mid = (left + right) / 2
    shift = np.asarray(eyes_at, dtype=np.float64) - rot @ mid
    return np.hstack([rot, shift[:, None]])


def place(face: Face, size: tuple[int, int], matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Canvas image (H,W,3 float32) and canvas landmarks (468,2) for a placement matrix."""
    width, height = size
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    photo = cv2.warpAffine(face.image, matrix, size, flags=interp, borderMode=cv2.BORDER_REPLICATE)
    ones = np.full(face.image.shape[:2], 255, np.uint8)
    mask = cv2.warpAffine(ones, matrix, size, flags=cv2.INTER_LINEAR, borderValue=0)
    feather = max(3, int(0.02 * max(size)) | 1)
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((feather, feather), np.uint8)), (2 * feather + 1,) * 2, 0)
    fill = cv2.blur(cv2.resize(photo, (width // 8, height // 8), interpolation=cv2.INTER_AREA), (9, 9))
    fill = cv2.resize(fill, size, interpolation=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    canvas = alpha * photo.astype(np.float32) + (1 - alpha) * fill.astype(np.float32)
    landmarks = cv2.transform(face.landmarks[None].astype(np.float64), matrix)[0]
    return canvas, landmarks.astype(np.float32)
