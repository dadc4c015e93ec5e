"""Vectorised numpy port of OpenCV 4.x Farneback dense flow (CPU path of
modules/video/src/optflowgf.cpp), split into per-frame and per-pair work.

Why a port: the CUDA kernels (engines/kernels/farneback.cu) mirror this module step by
step, so each kernel can be checked against one numpy function, and this module is
checked against `cv2.calcOpticalFlowFarneback` itself.

Why the split: OpenCV builds every pyramid level of each frame independently (blur the
full-resolution frame, resize, polynomial expansion), so a frame's levels and their
expansion coefficients depend on that frame only. The streaming pipeline computes them
once per frame (`frame_products`) and reuses them for every pair (`pair_flow`).

Arithmetic follows the C++ types (float32 where OpenCV stores floats, float64 where it
accumulates in double) so that the result agrees with cv2 to about 1e-4 px.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realtime.common.types import FlowSettings

MIN_SIZE = 32  # OpenCV stops adding levels once a side would fall under this
BORDER_WEIGHTS = np.array([0.14, 0.14, 0.4472, 0.4472, 0.4472], np.float32)
_SMALL_GAUSS3 = np.array([0.25, 0.5, 0.25], np.float32)  # cv small_gaussian_tab, ksize 3
_F32 = np.float32


@dataclass(frozen=True, slots=True)
class LevelGeometry:
    """Size and pre-smoothing of one pyramid level (level 0 = full resolution)."""

    scale: float
    width: int
    height: int
    sigma: float  # Gaussian pre-smoothing of the full-resolution frame
    ksize: int


@dataclass(frozen=True, slots=True)
class PolyConsts:
    """Polynomial-expansion kernels (FarnebackPrepareGaussian), index 0..n."""

    g: np.ndarray  # float32 (n+1,)
    xg: np.ndarray
    xxg: np.ndarray
    ig11: float
    ig03: float
    ig33: float
    ig55: float


@dataclass(frozen=True, slots=True)
class FrameProducts:
    """Per-frame products: one entry per level, finest first."""

    levels: tuple[np.ndarray, ...]  # float32 (h, w) smoothed+resized grey
    poly: tuple[np.ndarray, ...]  # float32 (h, w, 5) expansion coefficients


def cv_round(v: float) -> int:
    """cvRound: round half to even, as the SSE conversion OpenCV uses."""
    return int(np.rint(v))


def level_geometry(width: int, height: int, s: FlowSettings) -> list[LevelGeometry]:
    """Pyramid levels as FarnebackOpticalFlowImpl::calc computes them (finest first)."""
    scale = 1.0
    levels = 0
    for k in range(s.levels):
        scale *= s.pyr_scale
        if width * scale < MIN_SIZE or height * scale < MIN_SIZE:
            break
        levels = k + 1
    out = []
    for k in range(levels + 1):
        sc = 1.0
        for _ in range(k):  # same repeated product as OpenCV, not pow(), for identical sizes
            sc *= s.pyr_scale
        sigma = (1.0 / sc - 1.0) * 0.5
        ksize = max(cv_round(sigma * 5) | 1, 3)
        out.append(LevelGeometry(sc, cv_round(width * sc), cv_round(height * sc), sigma, ksize))
    return out


def gaussian_kernel(ksize: int, sigma: float) -> np.ndarray:
    """cv::getGaussianKernel(ksize, sigma, CV_32F)."""
    if sigma <= 0 and ksize == 3:
        return _SMALL_GAUSS3.copy()
    if sigma <= 0:
        sigma = ((ksize - 1) * 0.5 - 1) * 0.3 + 0.8
    x = np.arange(ksize, dtype=np.float64) - (ksize - 1) * 0.5
    t = np.exp(-0.5 / (sigma * sigma) * x * x)
    return (t * (1.0 / t.sum())).astype(np.float32)


def reflect101_index(n: int, pad: int) -> np.ndarray:
    """Source indices of a row padded by `pad` on each side (BORDER_REFLECT_101)."""
    idx = np.arange(-pad, n + pad)
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.mod(idx, period)
    return np.where(idx >= n, period - idx, idx)


def gaussian_blur(img: np.ndarray, ksize: int, sigma: float) -> np.ndarray:
    """cv::GaussianBlur(float32, (ksize, ksize), sigma, sigma), BORDER_REFLECT_101.

    Separable: rows first, then columns, float32 accumulation.
    """
    k = gaussian_kernel(ksize, sigma)
    r = ksize // 2
    h, w = img.shape
    src = img[:, reflect101_index(w, r)]
    tmp = np.zeros((h, w), _F32)
    for i in range(ksize):
        tmp += src[:, i : i + w] * k[i]
    src = tmp[reflect101_index(h, r), :]
    out = np.zeros((h, w), _F32)
    for i in range(ksize):
        out += src[i : i + h, :] * k[i]
    return out


def linear_taps(src_n: int, dst_n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cv::resize INTER_LINEAR taps along one axis: (i0, i1, weight of i1) in float32."""
    scale = src_n / dst_n  # 1 / inv_scale, as OpenCV computes it (double)
    d = np.arange(dst_n, dtype=np.float64)
    f = ((d + 0.5) * scale - 0.5).astype(np.float32)
    s = np.floor(f).astype(np.int64)
    a = (f - s.astype(np.float32)).astype(np.float32)
    low = s < 0
    a[low] = 0
    s[low] = 0
    high = s >= src_n - 1
    a[high] = 0
    s[high] = src_n - 1
    return s, np.minimum(s + 1, src_n - 1), a


def resize_linear(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """cv::resize(..., INTER_LINEAR) for float32 (h, w) or (h, w, c): horizontal pass into
    a float row buffer, then vertical, as OpenCV's resizeGeneric_ does."""
    h, w = img.shape[:2]
    x0, x1, ax = linear_taps(w, width)
    y0, y1, ay = linear_taps(h, height)
    if img.ndim == 3:
        ax = ax[:, None]
    rows = img[:, x0] * (_F32(1) - ax) + img[:, x1] * ax
    by = ay.reshape((-1,) + (1,) * (img.ndim - 1))
    return (rows[y0] * (_F32(1) - by) + rows[y1] * by).astype(_F32)


def poly_consts(n: int, sigma: float) -> PolyConsts:
    """FarnebackPrepareGaussian."""
    if sigma < np.finfo(np.float32).eps:
        sigma = n * 0.3
    x = np.arange(-n, n + 1)
    g = np.array([np.float32(math.exp(-(v * v) / (2 * sigma * sigma))) for v in x], np.float32)
    s = 1.0 / float(np.sum(g.astype(np.float64)))
    g = (g.astype(np.float64) * s).astype(np.float32)
    xg = (x * g.astype(np.float64)).astype(np.float32)
    xxg = (x * x * g.astype(np.float64)).astype(np.float32)
    gd = g.astype(np.float64)
    gy, gx = np.meshgrid(gd, gd, indexing="ij")
    yy, xx = np.meshgrid(x.astype(np.float64), x.astype(np.float64), indexing="ij")
    G = np.zeros((6, 6))
    G[0, 0] = np.sum(gy * gx)
    G[1, 1] = np.sum(gy * gx * xx * xx)
    G[3, 3] = np.sum(gy * gx * xx**4)
    G[5, 5] = np.sum(gy * gx * xx * xx * yy * yy)
    G[2, 2] = G[0, 3] = G[0, 4] = G[3, 0] = G[4, 0] = G[1, 1]
    G[4, 4] = G[3, 3]
    G[3, 4] = G[4, 3] = G[5, 5]
    inv = np.linalg.inv(G)
    return PolyConsts(g[n:], xg[n:], xxg[n:], inv[1, 1], inv[0, 3], inv[3, 3], inv[5, 5])


def poly_expansion(src: np.ndarray, n: int, c: PolyConsts) -> np.ndarray:
    """FarnebackPolyExp: (h, w) float32 -> (h, w, 5) float32, replicate borders.

    Channel order as OpenCV stores it: (r3, r2, r5, r4, r6)... i.e. [y, x, yy, xx, xy]
    coefficients: 0 = b3*ig11, 1 = b2*ig11, 2 = b1*ig03+b5*ig33, 3 = b1*ig03+b4*ig33,
    4 = b6*ig55.
    """
    h, w = src.shape
    g, xg, xxg = c.g, c.xg, c.xxg
    padv = src[np.clip(np.arange(-n, h + n), 0, h - 1)]
    r0 = src * g[0]
    r1 = np.zeros_like(src)
    r2 = np.zeros_like(src)
    for k in range(1, n + 1):
        up, dn = padv[n - k : n - k + h], padv[n + k : n + k + h]
        p = up + dn
        r0 = r0 + g[k] * p
        r1 = r1 + xg[k] * (dn - up)
        r2 = r2 + xxg[k] * p
    cols = np.clip(np.arange(-n, w + n), 0, w - 1)
    r0p, r1p, r2p = r0[:, cols], r1[:, cols], r2[:, cols]
    f64 = np.float64
    b1 = (r0 * g[0]).astype(f64)
    b3 = (r1 * g[0]).astype(f64)
    b5 = (r2 * g[0]).astype(f64)
    b2 = np.zeros((h, w))
    b4 = np.zeros((h, w))
    b6 = np.zeros((h, w))
    for k in range(1, n + 1):
        lo, hi = slice(n - k, n - k + w), slice(n + k, n + k + w)
        tg = (r0p[:, hi] + r0p[:, lo]).astype(f64)
        b1 += tg * f64(g[k])
        b4 += tg * f64(xxg[k])
        b2 += ((r0p[:, hi] - r0p[:, lo]) * xg[k]).astype(f64)
        b3 += ((r1p[:, hi] + r1p[:, lo]) * g[k]).astype(f64)
        b6 += ((r1p[:, hi] - r1p[:, lo]) * xg[k]).astype(f64)
        b5 += ((r2p[:, hi] + r2p[:, lo]) * g[k]).astype(f64)
    out = np.empty((h, w, 5), _F32)
    out[..., 1] = b2 * c.ig11
    out[..., 0] = b3 * c.ig11
    out[..., 3] = b1 * c.ig03 + b4 * c.ig33
    out[..., 2] = b1 * c.ig03 + b5 * c.ig33
    out[..., 4] = b6 * c.ig55
    return out


def update_matrices(R0: np.ndarray, R1: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """FarnebackUpdateMatrices over the whole level: (h, w, 5) float32 M."""
    h, w = flow.shape[:2]
    dx, dy = flow[..., 0], flow[..., 1]
    fx = np.arange(w, dtype=_F32)[None, :] + dx
    fy = np.arange(h, dtype=_F32)[:, None] + dy
    x1 = np.floor(fx).astype(np.int64)
    y1 = np.floor(fy).astype(np.int64)
    fx = fx - x1.astype(_F32)
    fy = fy - y1.astype(_F32)
    inside = (x1 >= 0) & (x1 < w - 1) & (y1 >= 0) & (y1 < h - 1)
    xi = np.where(inside, x1, 0)
    yi = np.where(inside, y1, 0)
    one = _F32(1)
    a00 = ((one - fx) * (one - fy))[..., None]
    a01 = (fx * (one - fy))[..., None]
    a10 = ((one - fx) * fy)[..., None]
    a11 = (fx * fy)[..., None]
    r = a00 * R1[yi, xi] + a01 * R1[yi, xi + 1] + a10 * R1[yi + 1, xi] + a11 * R1[yi + 1, xi + 1]
    half, quarter = _F32(0.5), _F32(0.25)
    ins = inside[..., None]
    r4 = np.where(inside, (R0[..., 2] + r[..., 2]) * half, R0[..., 2])
    r5 = np.where(inside, (R0[..., 3] + r[..., 3]) * half, R0[..., 3])
    r6 = np.where(inside, (R0[..., 4] + r[..., 4]) * quarter, R0[..., 4] * half)
    r2 = np.where(ins[..., 0], r[..., 0], _F32(0))
    r3 = np.where(ins[..., 0], r[..., 1], _F32(0))
    r2 = (R0[..., 0] - r2) * half
    r3 = (R0[..., 1] - r3) * half
    r2 = r2 + (r4 * dy + r6 * dx)
    r3 = r3 + (r6 * dy + r5 * dx)
    scale = border_scale(h, w)
    r2, r3, r4, r5, r6 = (v * scale for v in (r2, r3, r4, r5, r6))
    M = np.empty((h, w, 5), _F32)
    M[..., 0] = r4 * r4 + r6 * r6
    M[..., 1] = (r4 + r5) * r6
    M[..., 2] = r5 * r5 + r6 * r6
    M[..., 3] = r4 * r2 + r6 * r3
    M[..., 4] = r6 * r2 + r5 * r3
    return M


def border_weights_1d(n: int) -> np.ndarray:
    """Per-index factor of the 5-px border damping (product of both ends)."""
    b = np.ones(n, _F32)
    for i in range(min(5, n)):
        b[i] *= BORDER_WEIGHTS[i]
    for i in range(min(5, n)):
        b[n - 1 - i] *= BORDER_WEIGHTS[i]
    return b


def border_scale(h: int, w: int) -> np.ndarray:
    """OpenCV multiplies the factors in the order x-low, x-high, y-low, y-high; inside the
    frame the scale is exactly 1, so the float product order only matters at corners."""
    bx, by = border_weights_1d(w), border_weights_1d(h)
    return (bx[None, :] * by[:, None]).astype(_F32)


def window_kernel(winsize: int) -> np.ndarray:
    """Half kernel (index 0..m) of FarnebackUpdateFlow_GaussianBlur, float32."""
    m = winsize // 2
    sigma = m * 0.3
    k = [1.0] + [float(np.float32(math.exp(-i * i / (2 * sigma * sigma)))) for i in range(1, m + 1)]
    s = 1.0 + 2.0 * sum(k[1:])
    return np.array([np.float32(v * (1.0 / s)) for v in k], np.float32)


def blur_matrices(M: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Vertical then horizontal symmetric Gaussian of M, replicate borders, float32."""
    h, w = M.shape[:2]
    m = len(kernel) - 1
    pv = M[np.clip(np.arange(-m, h + m), 0, h - 1)]
    v = M * kernel[0]
    for i in range(1, m + 1):
        v = v + (pv[m + i : m + i + h] + pv[m - i : m - i + h]) * kernel[i]
    ph = v[:, np.clip(np.arange(-m, w + m), 0, w - 1)]
    out = v * kernel[0]
    for i in range(1, m + 1):
        out = out + kernel[i] * (ph[:, m - i : m - i + w] + ph[:, m + i : m + i + w])
    return out


def solve_flow(Mb: np.ndarray) -> np.ndarray:
    """Flow from blurred matrices, double precision as OpenCV."""
    g11, g12, g22, h1, h2 = (Mb[..., i].astype(np.float64) for i in range(5))
    idet = 1.0 / (g11 * g22 - g12 * g12 + 1e-3)
    flow = np.empty(Mb.shape[:2] + (2,), _F32)
    flow[..., 0] = (g11 * h2 - g12 * h1) * idet
    flow[..., 1] = (g22 * h1 - g12 * h2) * idet
    return flow


def frame_products(grey: np.ndarray, s: FlowSettings) -> FrameProducts:
    """Per-frame work: every pyramid level and its polynomial expansion."""
    if grey.ndim != 2:
        raise ValueError(f"expected a 2-D grey image, got shape {grey.shape}")
    f = grey.astype(_F32)
    consts = poly_consts(s.poly_n, s.poly_sigma)
    levels, polys = [], []
    for geo in level_geometry(f.shape[1], f.shape[0], s):
        sig = geo.sigma if geo.sigma > 0 else 0.0
        img = resize_linear(gaussian_blur(f, geo.ksize, sig), geo.width, geo.height)
        levels.append(img)
        polys.append(poly_expansion(img, s.poly_n, consts))
    return FrameProducts(tuple(levels), tuple(polys))


def upsample_flow(flow: np.ndarray, width: int, height: int, pyr_scale: float) -> np.ndarray:
    """resize(prevFlow, INTER_LINEAR) then `flow *= 1./pyr_scale` (float32 multiply)."""
    up = resize_linear(flow, width, height)
    return (up * _F32(1.0 / pyr_scale)).astype(_F32)


def pair_flow(a: FrameProducts, b: FrameProducts, s: FlowSettings) -> np.ndarray:
    """Per-pair work: coarse-to-fine iterations. Returns (h, w, 2) float32 flow a -> b."""
    if len(a.poly) != len(b.poly) or a.poly[0].shape != b.poly[0].shape:
        raise ValueError("frame products of different sizes")
    if not s.gaussian_window:
        raise NotImplementedError("only the Gaussian window (the project's setting) is ported")
    kernel = window_kernel(s.winsize)
    flow: np.ndarray | None = None
    for k in range(len(a.poly) - 1, -1, -1):
        R0, R1 = a.poly[k], b.poly[k]
        h, w = R0.shape[:2]
        if flow is None:
            flow = np.zeros((h, w, 2), _F32)
        else:
            flow = upsample_flow(flow, w, h, s.pyr_scale)
        M = update_matrices(R0, R1, flow)
        for it in range(s.iterations):
            flow = solve_flow(blur_matrices(M, kernel))
            if it < s.iterations - 1:
                M = update_matrices(R0, R1, flow)
    assert flow is not None
    return flow


def farneback(prev: np.ndarray, nxt: np.ndarray, s: FlowSettings) -> np.ndarray:
    """Drop-in equivalent of cv2.calcOpticalFlowFarneback with the settings' parameters."""
    return pair_flow(frame_products(prev, s), frame_products(nxt, s), s)


def epe(f1: np.ndarray, f2: np.ndarray) -> float:
    """Mean end-point error between two (h, w, 2) flows."""
    d = f1.astype(np.float64) - f2.astype(np.float64)
    return float(np.mean(np.sqrt(np.sum(d * d, axis=-1))))
