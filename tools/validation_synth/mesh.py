"""Piecewise-affine warp over a Delaunay mesh.

The mesh is built once per video on the neutral canvas: for every pixel, the triangle
holding it and its barycentric weights. A frame's warp is given as one displacement per
vertex (canvas pixels, forward: where that point of the neutral face moves to). The dense
forward field is the barycentric blend of the vertex displacements; the backward map
x -> y with y + d(y) = x is found by fixed-point iteration (d is smooth and small next to
the triangle sizes, so two to three steps converge), then the canvas is resampled.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import sparse
from scipy.spatial import Delaunay


@dataclass(frozen=True)
class Mesh:
    points: np.ndarray  # (N,2) float64 vertices on the neutral canvas
    triangles: np.ndarray  # (T,3) int32
    blend: sparse.csr_matrix  # (H*W, N) barycentric weights of each pixel's three vertices
    size: tuple[int, int]  # (W, H)


def border_points(width: int, height: int, per_side: int = 8) -> np.ndarray:
    """Fixed vertices just outside the frame, so the mesh covers every pixel."""
    xs = np.linspace(-2.0, width + 1.0, per_side + 1)
    ys = np.linspace(-2.0, height + 1.0, per_side + 1)
    top = np.stack([xs, np.full_like(xs, -2.0)], 1)
    bottom = np.stack([xs, np.full_like(xs, height + 1.0)], 1)
    left = np.stack([np.full_like(ys, -2.0), ys], 1)[1:-1]
    right = np.stack([np.full_like(ys, width + 1.0), ys], 1)[1:-1]
    return np.vstack([top, bottom, left, right])


def build_mesh(points: np.ndarray, size: tuple[int, int]) -> Mesh:
    """Triangulate `points` (which must include the border) and raster the canvas."""
    width, height = size
    pts = np.asarray(points, dtype=np.float64)
    tri = Delaunay(pts).simplices.astype(np.int32)
    owner = np.full((height, width), -1, np.int32)
    for k, (a, b, c) in enumerate(tri):
        poly = np.round(pts[[a, b, c]] * 16).astype(np.int32)
        cv2.fillConvexPoly(owner, poly, int(k), lineType=cv2.LINE_8, shift=4)
    if (owner < 0).any():  # sliver gaps: take the nearest covered pixel's triangle
        missing = owner < 0
        _, (iy, ix) = _nearest_covered(~missing)
        owner[missing] = owner[iy[missing], ix[missing]]
    owner = owner.ravel()
    a, b, c = (pts[tri[:, j]] for j in range(3))
    m = np.stack([b - a, c - a], axis=2)  # (T,2,2): columns b-a, c-a
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    det = np.where(np.abs(det) < 1e-9, 1e-9, det)
    inv = np.empty_like(m)
    inv[:, 0, 0], inv[:, 1, 1] = m[:, 1, 1] / det, m[:, 0, 0] / det
    inv[:, 0, 1], inv[:, 1, 0] = -m[:, 0, 1] / det, -m[:, 1, 0] / det
    yy, xx = np.mgrid[0:height, 0:width]
    rel = np.stack([xx.ravel(), yy.ravel()], 1) - a[owner]
    lam = np.einsum("pij,pj->pi", inv[owner], rel)
    weights = np.column_stack([1 - lam.sum(1), lam]).astype(np.float32)
    rows = np.repeat(np.arange(width * height), 3)
    blend = sparse.csr_matrix((weights.ravel(), (rows, tri[owner].ravel())), shape=(width * height, len(pts)))
    return Mesh(points=pts, triangles=tri, blend=blend, size=(width, height))


def _nearest_covered(covered: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    from scipy.ndimage import distance_transform_edt

    dist, idx = distance_transform_edt(~covered, return_indices=True)
    return dist, (idx[0], idx[1])


def dense_field(mesh: Mesh, vertex_disp: np.ndarray) -> np.ndarray:
    """(H,W,2) float32 forward displacement blended from (N,2) vertex displacements."""
    width, height = mesh.size
    field = mesh.blend @ np.asarray(vertex_disp, dtype=np.float32)
    return np.ascontiguousarray(field.reshape(height, width, 2), dtype=np.float32)


def warp(image: np.ndarray, mesh: Mesh, vertex_disp: np.ndarray, iterations: int = 3) -> np.ndarray:
    """The canvas with each vertex moved by its displacement (backward resampling)."""
    width, height = mesh.size
    if not np.any(vertex_disp):
        return image.copy()
    field = dense_field(mesh, vertex_disp)
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y = grid_x - field[..., 0], grid_y - field[..., 1]
    for _ in range(iterations - 1):
        at = cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        map_x, map_y = grid_x - at[..., 0], grid_y - at[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
