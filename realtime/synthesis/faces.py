"""Face photo loading, landmark detection and compositing onto a varied background.

The synthetic video animates one real face photo. The photo is cropped around its
mediapipe landmarks, scaled to a per-video face size, and blended with a soft elliptical
mask onto a plain / gradient / noise-texture background, so that the background differs
between videos while the face keeps its real texture.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from realtime.common.errors import UserError
from realtime.face import CROP_SPAN_IOD, FaceLandmarker

# Built-in real face photos shipped with installed packages (no download needed).
BUILTIN_FACES = ("astronaut", "grace_hopper")


@dataclass(frozen=True)
class FacePhoto:
    """A face photo (BGR uint8) and its 468 mediapipe landmarks in photo pixels."""

    name: str
    image: np.ndarray
    landmarks: np.ndarray


@dataclass(frozen=True)
class Scene:
    """The static first frame of a video: face composited onto the background."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    background: np.ndarray  # (H, W, 3) uint8 BGR, the static scene behind the head
    mask: np.ndarray  # (H, W) float32 0..1, where the head covers the background
    landmarks: np.ndarray  # (468, 2) float32, frame pixels
    face_scale: float  # px that correspond to the 112-px aligned crop side (1.8 IOD)

    @property
    def centre(self) -> np.ndarray:
        return self.landmarks.mean(axis=0)


def face_scale_of(landmarks: np.ndarray) -> float:
    """Side of the aligned face crop in frame pixels: CROP_SPAN_IOD x outer-eye-corner
    distance, the same span `realtime.face` maps onto its 112-px (or 224-px) crop."""
    iod = float(np.linalg.norm(landmarks[263] - landmarks[33]))
    return CROP_SPAN_IOD * iod


def builtin_bgr(name: str) -> np.ndarray:
    """A built-in face photo ("astronaut", "grace_hopper") as BGR uint8."""
    if name == "astronaut":
        import skimage.data

        return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    if name == "grace_hopper":
        import matplotlib.cbook

        return cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)), cv2.IMREAD_COLOR)
    raise UserError(f"{name}: not a built-in face (choose one of {', '.join(BUILTIN_FACES)})")


def _detect(name: str, bgr: np.ndarray) -> FacePhoto:
    with FaceLandmarker(static_image_mode=True) as mesh:
        landmarks = mesh.detect(bgr)
    if landmarks is None:
        raise UserError(f"{name}: no face found in the image")
    if face_scale_of(landmarks) < 40:
        raise UserError(f"{name}: face too small ({face_scale_of(landmarks):.0f} px), need >= 40 px")
    return FacePhoto(name=name, image=bgr, landmarks=landmarks.astype(np.float32))


def load_face(source: str | Path) -> FacePhoto:
    """Load a built-in face ("astronaut", "grace_hopper") or any image file with one face."""
    name = str(source)
    if name in BUILTIN_FACES:
        return _detect(name, builtin_bgr(name))
    path = Path(source)
    if not path.is_file():
        raise UserError(f"{path}: face image not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path}: not a readable image")
    return replace(_detect(str(path), bgr), name=path.stem)


@dataclass(frozen=True)
class Appearance:
    """A photometric variant of a photo: mirror, hue rotation (OpenCV hue units, 0..180
    is a full turn), per-channel colour cast (B, G, R gains), gamma, and a resample factor
    (down- then up-scaled: softer skin texture, which changes how the flow sees it)."""

    mirror: bool = False
    hue_shift: int = 0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gamma: float = 1.0
    resample: float = 1.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> Appearance:
        """A random variant for training-time appearance jitter (`lgnm-synth --jitter`)."""
        return cls(
            mirror=bool(rng.random() < 0.5),
            hue_shift=int(rng.integers(-15, 16)),
            cast=tuple(float(c) for c in rng.uniform(0.8, 1.2, size=3)),  # type: ignore[arg-type]
            gamma=float(np.exp(rng.uniform(np.log(0.7), np.log(1.4)))),
            resample=float(rng.uniform(0.5, 1.0)),
        )

    def apply(self, bgr: np.ndarray) -> np.ndarray:
        out = cv2.flip(bgr, 1) if self.mirror else bgr
        hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(np.int16) + self.hue_shift) % 180
        out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32) / 255.0
        out = np.clip((out * np.array(self.cast, np.float32)) ** self.gamma, 0, 1)
        out = (out * 255).round().astype(np.uint8)
        if self.resample >= 1.0:
            return out
        h, w = out.shape[:2]
        small = cv2.resize(out, (max(1, int(w * self.resample)), max(1, int(h * self.resample))), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def restyle(photo: FacePhoto, look: Appearance) -> FacePhoto:
    """The photo with another appearance. Landmarks are detected again on the result:
    mirroring swaps which mesh index is which side, so mirrored coordinates are not enough."""
    return _detect(photo.name, look.apply(photo.image))


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Plain colour, linear gradient or smooth noise texture, chosen at random."""
    kind = rng.integers(3)
    c1 = rng.uniform(20, 235, size=3)
    if kind == 0:
        return np.broadcast_to(c1, (height, width, 3)).astype(np.uint8)
    if kind == 1:
        c2 = rng.uniform(20, 235, size=3)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        return (c1 + (c2 - c1) * t[..., None]).clip(0, 255).astype(np.uint8)
    coarse = rng.uniform(-40, 40, size=(max(2, height // 24), max(2, width // 24), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return (c1 + smooth).clip(0, 255).astype(np.uint8)


def compose_scene(
    face: FacePhoto, width: int, height: int, face_scale: float, rng: np.random.Generator
) -> Scene:
    """Scale the photo so that its face spans `face_scale` px, place it at a random
    position that keeps the face and a margin inside the frame, blend onto a background."""
    zoom = face_scale / face_scale_of(face.landmarks)
    # Resize first (INTER_AREA when shrinking avoids aliasing on large photos), then only
    # translate; landmarks follow the actual per-axis resize ratio.
    h0, w0 = face.image.shape[:2]
    size0 = (max(1, round(w0 * zoom)), max(1, round(h0 * zoom)))
    resized = cv2.resize(face.image, size0, interpolation=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR)
    lm = face.landmarks * np.array([size0[0] / w0, size0[1] / h0], dtype=np.float32)
    lo, hi = lm.min(axis=0), lm.max(axis=0)
    size = hi - lo
    # Ellipse around the landmarks, grown upward for the forehead/hair the mesh misses.
    centre = (lo + hi) / 2 - np.array([0.0, 0.08 * size[1]])
    axes = np.array([0.62 * size[0], 0.74 * size[1]])
    margin = axes * 1.15 + 0.15 * face_scale  # room for head turns / nods / drift
    free = np.array([width, height]) - 2 * margin
    if np.any(free < 0):
        raise UserError(f"face scale {face_scale:.0f} px does not fit a {width}x{height} frame")
    target = margin + rng.uniform(0, 1, size=2) * free  # ellipse centre in the frame
    shift = target - centre
    matrix = np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]]], dtype=np.float64)
    photo = cv2.warpAffine(resized, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mask: np.ndarray = np.zeros((height, width), np.float32)
    cx, cy = (int(v) for v in np.round(target))
    ax, ay = (int(v) for v in np.round(axes))
    cv2.ellipse(mask, (cx, cy), (ax, ay), 0, 0, 360, (1.0,), -1)
    feather = max(3, int(0.08 * face_scale)) | 1
    mask = cv2.GaussianBlur(mask, (0, 0), feather / 2)
    bg = np.ascontiguousarray(_background(rng, width, height))  # broadcast views are slow to copy
    alpha = mask[..., None]
    image = (photo.astype(np.float32) * alpha + bg.astype(np.float32) * (1 - alpha)).round().astype(np.uint8)
    landmarks = (lm + shift).astype(np.float32)
    return Scene(image=image, background=bg, mask=mask, landmarks=landmarks, face_scale=face_scale_of(landmarks))
