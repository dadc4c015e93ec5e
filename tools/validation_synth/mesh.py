"""Piecewise-affine warp over a Delaunay mesh.

The mesh is triangulated once per video on the neutral canvas. A frame's warp is given
as one displacement per vertex (canvas pixels, forward: where that point of the neutral
face moves to). Each frame the moved mesh is rasterised (which triangle holds each output
pixel) and every pixel is mapped back through its triangle's affine map to the neutral
canvas, which is then resampled: an exact inverse, however much a triangle is stretched.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import Delaunay


@dataclass(frozen=True)
class Mesh:
    points: np.ndarray  # (N,2) float64 vertices on the neutral canvas
    triangles: np.ndarray  # (T,3) int32
    size: tuple[int, int]  # (W, H)
    grid: np.ndarray  # (2,H,W) float32 pixel coordinates (y, x)


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
    """Triangulate `points` (which must include the border points)."""
    pts = np.asarray(points, dtype=np.float64)
    grid = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    return Mesh(points=pts, triangles=Delaunay(pts).simplices.astype(np.int32), size=size, grid=grid)


def _affines(dst: np.ndarray, src: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(T,2,3) affine of each triangle mapping its moved corners onto its neutral ones."""
    d0, s0 = dst[tri[:, 0]], src[tri[:, 0]]
    dm = np.stack([dst[tri[:, 1]] - d0, dst[tri[:, 2]] - d0], axis=2)  # (T,2,2) columns
    sm = np.stack([src[tri[:, 1]] - s0, src[tri[:, 2]] - s0], axis=2)
    det = dm[:, 0, 0] * dm[:, 1, 1] - dm[:, 0, 1] * dm[:, 1, 0]
    det = np.where(np.abs(det) < 1e-9, 1e-9, det)
    inv = np.empty_like(dm)
    inv[:, 0, 0], inv[:, 1, 1] = dm[:, 1, 1] / det, dm[:, 0, 0] / det
    inv[:, 0, 1], inv[:, 1, 0] = -dm[:, 0, 1] / det, -dm[:, 1, 0] / det
    lin = sm @ inv  # neutral = s0 + lin @ (moved - d0)
    return np.concatenate([lin, (s0 - np.einsum("tij,tj->ti", lin, d0))[:, :, None]], axis=2)


def backward_map(mesh: Mesh, vertex_disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) float32: for each output pixel, where to sample the neutral canvas."""
    width, height = mesh.size
    dst = mesh.points + np.asarray(vertex_disp, dtype=np.float64)
    owner = np.full((height, width), -1, np.int32)
    corners = np.round(dst * 16).astype(np.int32)
    for k, t in enumerate(mesh.triangles):
        cv2.fillConvexPoly(owner, corners[t], k, lineType=cv2.LINE_8, shift=4)
    affine = _affines(dst, mesh.points, mesh.triangles).astype(np.float32)
    yy, xx = mesh.grid
    hole = owner < 0  # only where a folded mesh leaves a gap: keep the pixel
    idx = np.where(hole, 0, owner)
    a = affine[idx]  # (H,W,2,3)
    map_x = a[..., 0, 0] * xx + a[..., 0, 1] * yy + a[..., 0, 2]
    map_y = a[..., 1, 0] * xx + a[..., 1, 1] * yy + a[..., 1, 2]
    map_x[hole], map_y[hole] = xx[hole], yy[hole]
    return map_x, map_y


def warp(image: np.ndarray, mesh: Mesh, vertex_disp: np.ndarray) -> np.ndarray:
    """The canvas with each vertex moved by its displacement."""
    if not np.any(vertex_disp):
        return image.copy()
    map_x, map_y = backward_map(mesh, vertex_disp)
    return cv2.remap(image, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
