"""Rigid head motion in depth: the flow a head turn or nod adds to the aligned face.

The authors remove head motion by subtracting the flow seen at the nose tip
(`engines.features.remove_head_motion`). That is exact for a head that moves in the
image plane (which the similarity alignment removes anyway), not for a head that turns
(yaw) or nods (pitch): the nose tip stands about 0.28 IOD in front of the brows and the
lips (0.45 in front of the mouth corners, mean face), so a turn of 0.1 rad moves it
~1.5-2 px more than them on a 112-px face, and after the nose subtraction the brows and
mouth appear to move by that much. Measured with the 30 fps
demo networks on a bundled photo swaying +-6 degrees (4 s period): 18 MaE events per
minute from yaw alone, 27 from pitch (README, *Method notes*, head motion).

`rigid_motion_field` models the motion of a rigid head between the two aligned crops of a
pair, to first order in the rotation (orthographic camera; the alignment has removed
the similarity part): per axis, u(x, y) = c0 + c1 x + c2 y + c3 d(x, y), with d the depth
of the face toward the camera. c3 is the parallax of a turn in depth (yaw for x, pitch
for y); the affine terms take the foreshortening (a turning face narrows) and what the
alignment left. The coefficients are least-squares fits of the landmark displacements
between the two frames at RIGID_POINTS (nose ridge and tip, eye corners, the face outline
at eye and cheekbone height: points that expressions barely move); the depth comes from
FaceMesh's mean face (`engines/data/face_shape.npy`, `tools.make_face_shape`), since the
crops are aligned, one depth map serves every frame. The field is returned minus its mean
over the nose box, so the authors' nose subtraction still removes what it did and a head
that only moves in the image plane gets (nearly) nothing subtracted.

`dominant_motion_field` ("dominant") fits the same parametric field to the dense flow
itself instead of to landmarks: the dominant-motion estimation of Odobez & Bouthemy
("Robust multiresolution estimation of parametric motion models", JVCIR 6(4), 1995), an
iteratively reweighted least-squares fit with Tukey's biweight over the face (the hull of
the landmarks, eyes excluded). Expressions move a minority of the face's pixels and are
down-weighted as outliers; what the whole face does together (a turn, a nod, a roll or a
scale change the alignment left, its lag behind a moving head) is fitted. The landmark
fit ("rigid3d") reads FaceMesh's jitter and an expression's pull on the outline as head
motion; the dense fit reads neither (README, Method notes, head motion).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cv2
import numpy as np
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator

# FaceMesh indices: nose ridge and tip (168, 6, 197, 195, 5, 4, 1), outer and inner eye
# corners (33, 133, 362, 263), the face outline at the eyes and cheekbones (127, 356,
# 234, 454, 93, 323). Not the brows, lids, mouth, cheeks or jaw: expressions move those.
RIGID_POINTS = np.array([168, 6, 197, 195, 5, 4, 1, 33, 133, 362, 263, 127, 356, 234, 454, 93, 323], dtype=np.int32)

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (end-exclusive), as engines.features.Box


@lru_cache(maxsize=1)
def face_shape() -> np.ndarray:
    """(468,3) float32 read-only: x, y, depth of FaceMesh's mean face in fractions of the
    aligned crop's side (`tools.make_face_shape`)."""
    with resources.as_file(resources.files("engines") / "data" / "face_shape.npy") as path:
        shape = np.load(path).astype(np.float32)
    shape.setflags(write=False)
    return shape


@lru_cache(maxsize=4)
def depth_map(size: int) -> np.ndarray:
    """(size,size) float32 read-only: depth toward the camera (px) of the mean face over an
    aligned crop of `size` px, linear between its landmarks (Delaunay), outside the face
    the depth of its outline (the nearest landmark's)."""
    shape = face_shape().astype(np.float64) * size
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    grid = np.column_stack([xs.ravel(), ys.ravel()])
    depth = LinearNDInterpolator(shape[:, :2], shape[:, 2])(grid)
    outside = np.isnan(depth)
    depth[outside] = NearestNDInterpolator(shape[:, :2], shape[:, 2])(grid[outside])
    out = depth.reshape(size, size).astype(np.float32)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=4)
def field_basis(size: int) -> np.ndarray:
    """(size,size,4) float32 read-only: 1, x, y and the depth map at every pixel."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    out = np.stack([np.ones_like(xs), xs, ys, depth_map(size)], axis=-1)
    out.setflags(write=False)
    return out


def fit_rigid_motion(landmarks_a: np.ndarray, landmarks_b: np.ndarray, size: int) -> np.ndarray:
    """(2,4) float64 coefficients (c0, c1, c2, c3) of u_x and u_y (module docstring): least
    squares over RIGID_POINTS of the displacement landmarks_b - landmarks_a, both (468,2)
    in the pixels of aligned crops of `size` px; depth from the mean face at that size."""
    a = np.asarray(landmarks_a, np.float64)[RIGID_POINTS]
    d = np.asarray(landmarks_b, np.float64)[RIGID_POINTS] - a
    depth = face_shape()[RIGID_POINTS, 2].astype(np.float64) * size
    basis = np.column_stack([np.ones(len(a)), a, depth])
    coef, *_ = np.linalg.lstsq(basis, d, rcond=None)
    return np.ascontiguousarray(coef.T)


def rigid_motion_field(landmarks_a: np.ndarray, landmarks_b: np.ndarray, size: int, nose_box: Box) -> np.ndarray:
    """(size,size,2) float32 flow (px) of the rigid head motion from crop a to crop b,
    minus its mean over `nose_box` (x0, y0, x1, y1): subtract it from the pair's flow
    before encoding. Landmarks: (468,2) in crop pixels of each frame."""
    coef = fit_rigid_motion(landmarks_a, landmarks_b, size).astype(np.float32)
    field = field_basis(size) @ coef.T  # (size,size,4) @ (4,2)
    x0, y0, x1, y1 = nose_box
    field -= field[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)
    return field


def remove_rigid_motion(flow: np.ndarray, landmarks_a: np.ndarray, landmarks_b: np.ndarray,
                        nose_box: Box) -> np.ndarray:
    """flow (S,S,2) float32 minus `rigid_motion_field` (a new array)."""
    size = int(flow.shape[0])
    return flow - rigid_motion_field(landmarks_a, landmarks_b, size, nose_box)


# Dominant-motion fit ("dominant"). Tukey's c = 4.685 s with s = 1.4826 x the median
# residual length (see fit_dominant_motion for what that is in sigmas), s floored at
# SIGMA_FLOOR_PX so that on a still face (residuals ~0.05 px of flow noise) pixels are not
# rejected for noise alone.
TUKEY_C = 4.685
SIGMA_FLOOR_PX = 0.1
DOMINANT_ITERATIONS = 6
MASK_STRIDE = 2  # every 2nd row of the face mask enters the fit (the field is smooth)


def face_mask(landmarks: np.ndarray, size: int, eyes: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """bool (size,size): the convex hull of the (468,2) landmarks (crop px) minus the
    `eyes` polygons ((N,2) int32 each: blinks are not head motion)."""
    mask = np.zeros((size, size), np.uint8)
    hull = cv2.convexHull(np.rint(np.asarray(landmarks, np.float32)).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, (1,))
    if eyes:
        cv2.fillPoly(mask, list(eyes), (0,))
    return mask.astype(bool)


def fit_dominant_motion(flow: np.ndarray, mask: np.ndarray, iterations: int = DOMINANT_ITERATIONS) -> np.ndarray:
    """(2,4) float64 coefficients (c0, c1, c2, c3) of u_x and u_y (module docstring) fitted
    to flow (S,S,2) px over the pixels of `mask` (S,S) bool, robustly: IRLS with Tukey's
    biweight on the 2-D residual length r, scale s = 1.4826 median(r) (floor
    SIGMA_FLOOR_PX; about 1.75 sigma for Gaussian noise of sigma per axis, so the cut-off
    TUKEY_C s is a loose ~8 sigma), starting from the median translation (Odobez &
    Bouthemy 1995). Pixels whose flow is not finite are left out. All zeros with fewer
    than 8 sampled pixels; the last fit is kept when the weighted pixels no longer
    determine the field (all on one line)."""
    size = int(flow.shape[0])
    sample = np.zeros_like(mask)
    sample[::MASK_STRIDE] = mask[::MASK_STRIDE]
    sample &= np.isfinite(flow).all(axis=-1)  # one bad flow pixel must not spoil the whole field
    coef = np.zeros((4, 2))
    if int(sample.sum()) < 8:
        return coef.T.copy()
    basis = field_basis(size)[sample].astype(np.float64)
    f = flow[sample].astype(np.float64)
    coef[0] = np.median(f, axis=0)
    for _ in range(iterations):
        d = f - basis @ coef
        r = np.sqrt(d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1])  # np.linalg.norm(d, axis=1), bit for bit
        c = TUKEY_C * max(1.4826 * _median(r), SIGMA_FLOOR_PX)
        w = np.where(r < c, (1.0 - (r / c) ** 2) ** 2, 0.0)
        if np.count_nonzero(w) < 8:
            break
        # Weighted normal equations (4x4), solved by OpenCV: numpy's LAPACK call costs
        # milliseconds when a threaded BLAS shares busy cores (7 us here).
        bw = basis * w[:, None]
        normal = bw.T @ basis
        # Cholesky only fails at exact singularity; rounding noise on a rank-deficient
        # system (inliers on one line) passes it, so test the spread of the eigenvalues.
        _, eigen, _ = cv2.eigen(normal)
        if eigen is None or not eigen[-1, 0] > 1e-9 * eigen[0, 0]:
            break
        ok, solved = cv2.solve(normal, bw.T @ f, flags=cv2.DECOMP_CHOLESKY)
        if not ok:
            break
        coef = solved
    return np.ascontiguousarray(coef.T)


def _median(values: np.ndarray) -> float:
    """np.median of a 1-D float64 array without NaN, bit for bit (the mean of the two
    middle values for an even count), without np.median's generic reduction machinery
    (most of its cost on the ~4000 residuals of a fit, 6 times per pair)."""
    n = values.size
    k = n // 2
    if n % 2:
        return float(np.partition(values, k)[k])
    part = np.partition(values, (k - 1, k))
    return float((part[k - 1] + part[k]) / 2.0)


def dominant_motion_field(flow: np.ndarray, landmarks: np.ndarray, nose_box: Box,
                          eyes: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """(S,S,2) float32: the dominant motion fitted to flow (S,S,2) over the face of frame
    a's `landmarks` (468,2, crop px) without the `eyes`, minus its mean over `nose_box`
    (x0, y0, x1, y1): subtract it from the flow before encoding."""
    size = int(flow.shape[0])
    coef = fit_dominant_motion(flow, face_mask(landmarks, size, eyes)).astype(np.float32)
    field = field_basis(size) @ coef.T
    x0, y0, x1, y1 = nose_box
    field -= field[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)
    return field


def remove_dominant_motion(flow: np.ndarray, landmarks: np.ndarray, nose_box: Box,
                           eyes: tuple[np.ndarray, ...] = ()) -> np.ndarray:
    """flow (S,S,2) float32 minus `dominant_motion_field` (a new array)."""
    return flow - dominant_motion_field(flow, landmarks, nose_box, eyes)
