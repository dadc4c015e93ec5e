"""Write `engines/data/face_shape.npy`: the mean 3-D face of FaceMesh in aligned-crop units.

    python -m tools.make_face_shape [--check]

FaceMesh (static image mode, 468 points) on the two bundled photos (skimage's
astronaut, matplotlib's grace_hopper) and on their mirror images; each face is mapped by
the same similarity alignment as the live path (`realtime.face.similarity_matrix`) into
a crop, and its points are stored as fractions of the crop side: x, y (from the crop's
top-left corner) and depth = -z (toward the camera; FaceMesh's z has the scale of x).
Averaging each point over a photo and its mirror image makes the shape left-right
symmetric (in a mirror image FaceMesh gives point i where the face's mirror partner of i
was). `engines.head_motion` uses it for the depth of the face (the parallax of a head
turning in depth). `--check` compares a fresh computation with the stored file and exits
1 when they differ by more than 0.002 of the crop side.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

import cv2
import mediapipe as mp
import numpy as np

from realtime.common.errors import OneLineParser, cli_entry
from realtime.face import similarity_matrix
from realtime.native_log import native_stderr_filtered
from realtime.synthesis.faces import BUILTIN_FACES, builtin_bgr

SIZE = 1000  # crop side the similarity maps to (any size: the result is in fractions of it)
TOLERANCE = 0.002


def face_points(bgr: np.ndarray, mesh) -> np.ndarray:
    """(468,3) float64: x, y, depth of one photo's face in fractions of the aligned crop."""
    h, w = bgr.shape[:2]
    result = mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    if not result.multi_face_landmarks:
        raise RuntimeError("FaceMesh found no face in a bundled photo")
    p = np.array([(q.x * w, q.y * h, -q.z * w) for q in result.multi_face_landmarks[0].landmark[:468]])
    m = similarity_matrix(p[:, :2].astype(np.float32), SIZE)
    if m is None:
        raise RuntimeError("alignment failed on a bundled photo")
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    xy = p[:, :2] @ m[:, :2].T + m[:, 2]
    return np.column_stack([xy, p[:, 2] * scale]) / SIZE


def compute() -> np.ndarray:
    """(468,3) float32, the mean over the bundled photos and their mirror images."""
    shapes = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as mesh:
        for name in BUILTIN_FACES:
            bgr = builtin_bgr(name)
            for img in (bgr, cv2.flip(bgr, 1)):
                shapes.append(face_points(np.ascontiguousarray(img), mesh))
    out = np.mean(shapes, axis=0)
    out[:, 2] -= out[:, 2].min()  # depth from the farthest point (only differences are used)
    return out.astype(np.float32)


def stored_path() -> Path:
    return Path(str(resources.files("engines") / "data" / "face_shape.npy"))


@cli_entry
@native_stderr_filtered
def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m tools.make_face_shape", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the stored file instead of writing it")
    a = p.parse_args(argv)
    shape = compute()
    path = stored_path()
    if a.check:
        diff = float(np.abs(np.load(path) - shape).max())
        print(f"{path}: largest difference {diff:.5f} of the crop side (tolerance {TOLERANCE})")
        return 0 if diff <= TOLERANCE else 1
    np.save(path, shape)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
