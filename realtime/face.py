"""Face landmarks (mediapipe FaceMesh, 468 points) and similarity alignment.

The full module docstring with the 106 -> 468 landmark mapping comes with FaceAligner.
"""

from __future__ import annotations

from types import TracebackType

import cv2
import mediapipe as mp
import numpy as np

from realtime.errors import UserError

N_LANDMARKS = 468


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Return a uint8 BGR view/copy of a grey or BGR frame; reject anything else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise UserError(f"frame must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise UserError(f"frame must be (H,W) grey or (H,W,3) BGR, got shape {image.shape}")


def detect_landmarks(bgr: np.ndarray, mesh) -> np.ndarray | None:  # noqa: ANN001 (mediapipe type)
    """468 FaceMesh landmarks of the first face in frame pixel coordinates, (468,2) float32.

    `mesh` is a `mediapipe.solutions.face_mesh.FaceMesh` (or a `FaceLandmarker`).
    Returns None when no face is found: a missing face is reported, never guessed.
    """
    if isinstance(mesh, FaceLandmarker):
        mesh = mesh.mesh
    frame = as_bgr(bgr)
    rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    result = mesh.process(rgb)
    if not result.multi_face_landmarks:
        return None
    points = result.multi_face_landmarks[0].landmark
    # mediapipe normalises x by the width and y by the height of the image.
    h, w = frame.shape[:2]
    xy = np.array([(p.x, p.y) for p in points[:N_LANDMARKS]], dtype=np.float32)
    xy *= np.array([w, h], dtype=np.float32)
    return xy


class FaceLandmarker:
    """Owns one mediapipe FaceMesh graph (one face, no iris refinement).

    static_image_mode=False tracks the face across video frames (faster, steadier);
    True runs the detector on every image (independent photos).
    """

    def __init__(self, static_image_mode: bool = False, min_detection_confidence: float = 0.5) -> None:
        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        """(468,2) float32 landmarks in frame pixels, or None when no face is found."""
        return detect_landmarks(bgr, self.mesh)

    def close(self) -> None:
        self.mesh.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# The brief's name for the same wrapper.
FaceMesh = FaceLandmarker
