"""GPU dense flow (OpenCV Farneback, bit-for-bit the algorithm of engines/farneback_ref.py)
and the flow -> network-input encoding of engines/features.py, batched over pairs.

Per-frame products (pyramid + polynomial expansion of every level) live in a device ring
of `capacity` slots: `push_frames` uploads each frame once and computes them once; every
pair that uses the frame (t-K_ME -> t, t-K_MaE -> t, replay batches) only runs the
per-pair iterations. Kernels are loaded from engines/kernels/*.cu at run time.

`CudaPairFeatures` plugs into the flow seam (engines/pair_features.py: prepare a face
once, batch pair inputs), whose `make_pair_features` decides when it is used.

Backends:
  "cupy": CuPy RawModule (NVRTC), the GPU path.
  "host": the same .cu sources built as a C++ shared library and run on the CPU with
          numpy arrays, each launch covering the same grid as on the GPU. Slow and not
          thread-safe; it exists so the kernels and this driver are tested on machines
          without a GPU.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from engines import farneback_ref as fr
from engines import features
from engines.features import ROI_SIZE, FaceGeometry, FlowFrame
from engines.head_motion import dominant_motion_field, field_basis, rigid_motion_field
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings

KERNEL_DIR = Path(__file__).with_name("kernels")
KERNEL_FILES = ("farneback.cu", "encode.cu")
ROI_OUT = ROI_SIZE  # network input side
ROI_TAPS = 8  # max source taps per output pixel along one axis (a 224-px box into 56 rows needs 5)
NVRTC_OPTIONS = ("--fmad=false", "--std=c++14")  # no FMA contraction: match numpy/OpenCV rounding
BLOCK = (16, 16, 1)
MINMAX_THREADS = 256  # enc_minmax's shared arrays are sized for this

BackendName = Literal["cupy", "host"]


def kernel_source() -> str:
    """Both .cu files with prelude.cu inlined (NVRTC then needs no include path)."""
    prelude = (KERNEL_DIR / "prelude.cu").read_text()
    parts = [(KERNEL_DIR / f).read_text().replace('#include "prelude.cu"', prelude) for f in KERNEL_FILES]
    return "\n".join(parts)


def cuda_available() -> bool:
    """True when CuPy imports and sees a CUDA device. Never raises."""
    try:
        import cupy

        return int(cupy.cuda.runtime.getDeviceCount()) > 0
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        return False


# ---------------------------------------------------------------- backends

class _Backend(Protocol):
    name: str

    @property
    def xp(self) -> Any: ...  # numpy or cupy

    def launch(self, kernel: str, w: int, h: int, nz: int, args: tuple, block: tuple | None = None) -> None: ...

    def to_numpy(self, a: Any) -> np.ndarray: ...


def _grid(w: int, h: int, nz: int, block: tuple | None) -> tuple[int, int, int]:
    """Blocks per axis: BLOCK tiles over (w, h), one z per batch item; an explicit block
    (reduction kernels) means one block per batch item."""
    if block is not None:
        return 1, 1, nz
    return (w + BLOCK[0] - 1) // BLOCK[0], (h + BLOCK[1] - 1) // BLOCK[1], nz


class _CupyBackend:
    name = "cupy"

    def __init__(self) -> None:
        import cupy

        self.xp = cupy
        self._module = cupy.RawModule(code=kernel_source(), options=NVRTC_OPTIONS)
        self._module.compile()  # fail here, not on the first frame
        self._fns: dict[str, Any] = {}

    def _fn(self, kernel: str) -> Any:
        if kernel not in self._fns:
            self._fns[kernel] = self._module.get_function(kernel)
        return self._fns[kernel]

    def launch(self, kernel: str, w: int, h: int, nz: int, args: tuple, block: tuple | None = None) -> None:
        self._fn(kernel)(_grid(w, h, nz, block), BLOCK if block is None else block, args)

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.xp.asnumpy(a)


def _host_library() -> Path:
    """Build (once per source version) the .cu files as a host shared library."""
    src = kernel_source()
    digest = hashlib.sha256(src.encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"lgnm-kernels-{digest}.so"
    if out.exists():
        return out
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        raise UserError("the host kernel backend needs a C++ compiler (g++) on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        cpp = Path(tmp) / "kernels.cpp"
        cpp.write_text(src)
        so = Path(tmp) / "kernels.so"
        cmd = [cxx, "-O2", "-shared", "-fPIC", "-ffp-contract=off", "-x", "c++", str(cpp), "-o", str(so)]
        subprocess.run(cmd, check=True, capture_output=True)
        os.replace(so, out)  # atomic: concurrent test processes never see a partial file
    return out


class _HostBackend:
    name = "host"
    xp = np

    def __init__(self) -> None:
        self._lib = ctypes.CDLL(str(_host_library()))

    @staticmethod
    def _arg(a: Any) -> Any:
        if isinstance(a, np.ndarray):
            if not a.flags.c_contiguous:
                raise ValueError("kernel arrays must be C-contiguous")
            return ctypes.c_void_p(a.ctypes.data)
        if isinstance(a, np.int32):
            return ctypes.c_int(int(a))
        if isinstance(a, np.int64):
            return ctypes.c_longlong(int(a))
        if isinstance(a, np.float32):
            return ctypes.c_float(float(a))
        if isinstance(a, np.float64):
            return ctypes.c_double(float(a))
        raise TypeError(f"unsupported kernel argument {type(a).__name__}")

    def launch(self, kernel: str, w: int, h: int, nz: int, args: tuple, block: tuple | None = None) -> None:
        gx, gy, gz = _grid(w, h, nz, block)
        bx, by, _ = BLOCK if block is None else block
        self._lib.fb_set_grid(ctypes.c_int(gx * bx), ctypes.c_int(gy * by), ctypes.c_int(gz))
        fn = getattr(self._lib, kernel)
        fn.restype = None
        fn(*(self._arg(a) for a in args))

    def to_numpy(self, a: Any) -> np.ndarray:
        return np.asarray(a)


def _backend(name: str) -> _Backend:
    if name == "cupy":
        return _CupyBackend()
    if name == "host":
        return _HostBackend()
    raise UserError(f"unknown CUDA flow backend {name!r} (choose cupy or host)")


# ---------------------------------------------------------------- host-side tables

i32, i64, f32, f64 = np.int32, np.int64, np.float32, np.float64


ROI_LINEAR, ROI_AREA, ROI_AREA_FAST = 0, 1, 2  # enc_roi modes (see encode.cu)


def _linear_axis(n_src: int, n_dst: int, area_mode: bool, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """cv::resize's 2-tap fixed-point coefficients for uint8 along one axis (resizeGeneric_:
    INTER_LINEAR, or INTER_AREA's 'area_mode' when an axis is enlarged). Columns clamp the
    position (fx = 0 outside); rows keep fy and clip only the row indices."""
    scale, inv = n_src / n_dst, n_dst / n_src
    idx = np.zeros((n_dst, 2), i32)
    w = np.zeros((n_dst, 2), f32)
    for d in range(n_dst):
        if area_mode:
            s = int(np.floor(d * scale))
            fr_ = float(f32((d + 1) - (s + 1) * inv))
            f = f32(0.0 if fr_ <= 0 else fr_ - np.floor(fr_))
        else:
            f = f32((d + 0.5) * scale - 0.5)
            s = int(np.floor(f))
            f = f32(f - f32(s))
        if clamp and s < 0:
            s, f = 0, f32(0)
        if clamp and s >= n_src - 1:
            s, f = n_src - 1, f32(0)
        idx[d] = [min(max(s, 0), n_src - 1), min(max(s + 1, 0), n_src - 1)]
        w[d] = [np.rint(f32((f32(1) - f) * f32(2048))), np.rint(f32(f * f32(2048)))]  # saturate_cast<short>
    return idx, w


def _area_weights(src_w: int, src_h: int, dst_w: int, dst_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense float weights (dst_w, src_w), (dst_h, src_h) of cv::resize INTER_AREA when both
    axes shrink, read off cv::resize itself with float impulse images (4 per call)."""
    wx = np.zeros((dst_w, src_w), f32)
    wy = np.zeros((dst_h, src_h), f32)
    for axis, n, w in ((1, src_w, wx), (0, src_h, wy)):
        for j0 in range(0, n, 4):
            js = list(range(j0, min(j0 + 4, n)))
            img = np.zeros((src_h, src_w, 4), f32)
            for c, j in enumerate(js):
                if axis == 1:
                    img[:, j, c] = 1
                else:
                    img[j, :, c] = 1
            out = cv2.resize(img, (dst_w, dst_h), interpolation=cv2.INTER_AREA)
            w[:, js] = out[0, :, : len(js)] if axis == 1 else out[:, 0, : len(js)]
    return wx, wy


def _sparse(w: np.ndarray, taps: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense (dst, src) weights -> (dst, taps) indices and weights, zero-padded."""
    idx = np.zeros((w.shape[0], taps), i32)
    wt = np.zeros((w.shape[0], taps), f32)
    for d in range(w.shape[0]):
        nzs = np.flatnonzero(w[d])
        if len(nzs) > taps:
            raise ValueError(f"resize needs {len(nzs)} taps > {taps}")
        idx[d, : len(nzs)] = nzs
        wt[d, : len(nzs)] = w[d, nzs]
    return idx, wt


@functools.lru_cache(maxsize=256)
def roi_taps(src_w: int, src_h: int, dst_w: int = ROI_OUT, dst_h: int = ROI_OUT // 2,
             taps: int = ROI_TAPS) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mode, xi, xw, yi, yw) reproducing engines.features.select_roi's uint8 cv::resize of
    a src_w x src_h box (INTER_AREA when shrinking, else INTER_LINEAR). Depends on the box
    size only, so it is cached."""
    shrink = src_h > dst_h or src_w > dst_w
    if shrink and src_w >= dst_w and src_h >= dst_h:
        wx, wy = _area_weights(src_w, src_h, dst_w, dst_h)
        integer = src_w % dst_w == 0 and src_h % dst_h == 0
        xi, xw = _sparse(wx, taps)
        yi, yw = _sparse(wy, taps)
        return (ROI_AREA_FAST if integer else ROI_AREA), xi, xw, yi, yw
    xi2, xw2 = _linear_axis(src_w, dst_w, shrink, clamp=True)
    yi2, yw2 = _linear_axis(src_h, dst_h, shrink, clamp=False)
    xi, xw = np.zeros((dst_w, taps), i32), np.zeros((dst_w, taps), f32)
    yi, yw = np.zeros((dst_h, taps), i32), np.zeros((dst_h, taps), f32)
    xi[:, :2], xw[:, :2], yi[:, :2], yw[:, :2] = xi2, xw2, yi2, yw2
    return ROI_LINEAR, xi, xw, yi, yw


@functools.lru_cache(maxsize=1)
def hsv_lut() -> np.ndarray:
    """(180*256*3,) uint8: cv::cvtColor(HSV2BGR) of (h, 255, v) for every h, v."""
    h, v = np.meshgrid(np.arange(180, dtype=np.uint8), np.arange(256, dtype=np.uint8), indexing="ij")
    hsv = np.stack([h, np.full_like(h, 255), v], axis=-1)
    return np.ascontiguousarray(cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).reshape(-1))


@dataclass(frozen=True, slots=True)
class FrameEncodeTables:
    """Host tables of one frame for the encoding kernels (from its FaceGeometry)."""

    nose_box: np.ndarray  # (4,) int32
    eye_mask: np.ndarray  # (S,S) uint8, 1 inside a grown eye polygon
    value_region: np.ndarray  # (S,S) uint8, 1 where the HS value min/max is taken
    roi_boxes: np.ndarray  # (2,4) int32 brow, mouth
    roi_modes: np.ndarray  # (2,) int32 enc_roi mode per part
    xi: np.ndarray  # (2, ROI_OUT, T) int32
    xw: np.ndarray  # (2, ROI_OUT, T) float32
    yi: np.ndarray  # (2, ROI_OUT/2, T) int32
    yw: np.ndarray  # (2, ROI_OUT/2, T) float32


def value_region(geometry: FaceGeometry, size: int, value_range: str) -> np.ndarray:
    """(S,S) uint8 region of the HS value min/max, as engines.features.encode_pair picks
    it: "pair" = everywhere (authors); "roi" = brow and mouth boxes minus the grown eyes,
    everywhere when that is empty."""
    if value_range not in ("pair", "roi"):
        raise UserError(f"flow value_range must be pair or roi, got {value_range!r}")
    if value_range == "pair":
        return np.ones((size, size), np.uint8)
    region = features.value_region(geometry)
    return region.astype(np.uint8) if region.any() else np.ones((size, size), np.uint8)


def encode_tables(geometry: FaceGeometry, size: int, value_range: str = "pair") -> FrameEncodeTables:
    """Tables of one frame's `engines.features.FaceGeometry` for the encoding kernels."""
    if geometry.size != size:
        raise ValueError(f"geometry is for {geometry.size} px, flow is {size} px")
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [geometry.left_eye, geometry.right_eye], (1,))
    modes, xi, xw, yi, yw = [], [], [], [], []
    for x0, y0, x1, y1 in (geometry.brow_box, geometry.mouth_box):
        mode, a, b, c, d = roi_taps(x1 - x0, y1 - y0)
        modes.append(mode)
        xi.append(a)
        xw.append(b)
        yi.append(c)
        yw.append(d)
    return FrameEncodeTables(
        nose_box=np.asarray(geometry.nose_box, i32),
        eye_mask=mask,
        value_region=value_region(geometry, size, value_range),
        roi_boxes=np.asarray([geometry.brow_box, geometry.mouth_box], i32),
        roi_modes=np.asarray(modes, i32),
        xi=np.stack(xi), xw=np.stack(xw), yi=np.stack(yi), yw=np.stack(yw),
    )


@dataclass(frozen=True, slots=True)
class _Level:
    width: int
    height: int
    offset: int  # float offset of this level's (h, w, 5) coefficients inside a slot
    blur: Any  # device float32 Gaussian kernel of the pre-smoothing
    ksize: int
    taps: tuple  # device (x0, x1, ax, y0, y1, ay): full frame -> this level
    up_taps: tuple | None  # device taps: next coarser level -> this level (flow upsampling)
    bx: Any  # device border damping factors along x / y
    by: Any


# ---------------------------------------------------------------- the engine

def why_not_implemented(settings: FlowSettings) -> str | None:
    """Why the kernels cannot compute the flow `settings` ask for (None: they can). The
    kernels are OpenCV Farneback with a Gaussian window; DIS and TV-L1 run on the CPU."""
    if settings.algorithm != "farneback":
        return f"the CUDA flow implements farneback only, the weights use {settings.algorithm!r} flow"
    if not settings.gaussian_window:
        return "the CUDA flow implements Farneback's Gaussian window only, the weights use the box window"
    return None


class CudaFarneback:
    """Batched Farneback + encoding on the device, with a ring of per-frame products."""

    def __init__(self, settings: FlowSettings, max_pairs: int = 64, capacity: int = 256,
                 backend: BackendName = "cupy") -> None:
        why_not = why_not_implemented(settings)
        if why_not is not None:
            raise UserError(why_not)
        if max_pairs < 1 or capacity < 2:
            raise ValueError("max_pairs must be >= 1 and capacity >= 2")
        self.settings = settings
        self.max_pairs = max_pairs
        self.capacity = capacity
        self.size = settings.face_size
        self.backend = _backend(backend)
        xp = self.backend.xp
        self._consts = fr.poly_consts(settings.poly_n, settings.poly_sigma)
        self._g, self._xg, self._xxg = (xp.asarray(a) for a in (self._consts.g, self._consts.xg, self._consts.xxg))
        self._window = xp.asarray(fr.window_kernel(settings.winsize))
        self._levels = self._make_levels()
        self.slot_stride = sum(lv.width * lv.height * 5 for lv in self._levels)
        self.ring = xp.zeros((capacity, self.slot_stride), f32)
        S, half, T = self.size, ROI_OUT // 2, ROI_TAPS
        self._masks = xp.zeros((capacity, S, S), np.uint8)
        self._regions = xp.zeros((capacity, S, S), np.uint8)
        self._nose = xp.zeros((capacity, 4), i32)
        self._roi_boxes = xp.zeros((capacity, 2, 4), i32)
        self._roi_modes = xp.zeros((capacity, 2), i32)
        self._lut = xp.asarray(hsv_lut())
        self._xi = xp.zeros((capacity, 2, ROI_OUT, T), i32)
        self._xw = xp.zeros((capacity, 2, ROI_OUT, T), f32)
        self._yi = xp.zeros((capacity, 2, half, T), i32)
        self._yw = xp.zeros((capacity, 2, half, T), f32)
        self._has_geometry = np.zeros(capacity, bool)
        self._filled = np.zeros(capacity, bool)
        self._next = 0

    def _make_levels(self) -> list[_Level]:
        xp, s, S = self.backend.xp, self.settings, self.size
        geos = fr.level_geometry(S, S, s)
        levels, offset = [], 0
        for k, g in enumerate(geos):
            sig = g.sigma if g.sigma > 0 else 0.0
            taps = fr.linear_taps(S, g.width) + fr.linear_taps(S, g.height)
            up = None
            if k + 1 < len(geos):
                c = geos[k + 1]
                up = fr.linear_taps(c.width, g.width) + fr.linear_taps(c.height, g.height)
            levels.append(_Level(
                width=g.width, height=g.height, offset=offset,
                blur=xp.asarray(fr.gaussian_kernel(g.ksize, sig)), ksize=g.ksize,
                taps=tuple(xp.asarray(a.astype(i32) if a.dtype.kind == "i" else a) for a in taps),
                up_taps=None if up is None else tuple(xp.asarray(a.astype(i32) if a.dtype.kind == "i" else a) for a in up),
                bx=xp.asarray(fr.border_weights_1d(g.width)), by=xp.asarray(fr.border_weights_1d(g.height)),
            ))
            offset += g.width * g.height * 5
        return levels

    # ------------------------------------------------------------ per frame

    def push_frame(self, grey: np.ndarray, geometry: Any = None) -> int:
        """Upload one (S,S) uint8 frame, compute its products once; returns its slot."""
        return self.push_frames([grey], [geometry])[0]

    def push_frames(self, greys: Sequence[np.ndarray], geometries: Sequence[Any] | None = None) -> list[int]:
        """Batched push; slots are reused round-robin (the oldest frame is overwritten)."""
        slots = [(self._next + i) % self.capacity for i in range(len(greys))]
        if len(set(slots)) != len(slots):
            raise ValueError(f"{len(greys)} frames do not fit a ring of {self.capacity}")
        self.push_frames_into(greys, slots, geometries)
        self._next = (self._next + len(greys)) % self.capacity
        return slots

    def push_frames_into(self, greys: Sequence[np.ndarray], slots: Sequence[int],
                         geometries: Sequence[Any] | None = None) -> None:
        """Push frames into chosen ring slots (for callers that manage the ring)."""
        if geometries is None:
            geometries = [None] * len(greys)
        if len(geometries) != len(greys) or len(slots) != len(greys):
            raise ValueError("one slot and one geometry (or None) per frame")
        if any(not 0 <= s < self.capacity for s in slots) or len(set(slots)) != len(slots):
            raise ValueError(f"slots must be distinct and in 0..{self.capacity - 1}")
        for start in range(0, len(greys), self.max_pairs):
            ids = list(slots[start : start + self.max_pairs])
            self._frame_products(greys[start : start + self.max_pairs], ids)
            for slot, geo in zip(ids, geometries[start : start + self.max_pairs], strict=True):
                self._set_geometry(slot, geo)

    def _frame_products(self, greys: Sequence[np.ndarray], slots: list[int]) -> None:
        xp, S, n = self.backend.xp, self.size, len(greys)
        for g in greys:
            if g.shape != (S, S) or g.dtype != np.uint8:
                raise ValueError(f"frames must be ({S},{S}) uint8, got {g.shape} {g.dtype}")
        launch = self.backend.launch
        src = xp.asarray(np.ascontiguousarray(np.stack(greys)))
        full = xp.empty((n, S, S), f32)
        launch("fb_u8_to_f32", S, S, n, (src, full, i32(S), i32(S), i32(n)))
        tmp, blurred = xp.empty((n, S, S), f32), xp.empty((n, S, S), f32)
        dslots = xp.asarray(np.asarray(slots, i32))
        c = self._consts
        for lv in self._levels:
            w, h = lv.width, lv.height
            launch("fb_blur_rows", S, S, n, (full, tmp, i32(S), i32(S), i32(n), lv.blur, i32(lv.ksize)))
            launch("fb_blur_cols", S, S, n, (tmp, blurred, i32(S), i32(S), i32(n), lv.blur, i32(lv.ksize)))
            img = xp.empty((n, h, w), f32)
            launch("fb_resize_linear", w, h, n, (blurred, img, i32(S), i32(S), i32(w), i32(h), i32(1), i32(n),
                                                 *lv.taps, f32(1.0)))
            rows3 = xp.empty((n, h, w, 3), f32)
            launch("fb_poly_vert", w, h, n, (img, rows3, i32(w), i32(h), i32(n), self._g, self._xg, self._xxg,
                                             i32(self.settings.poly_n)))
            launch("fb_poly_horz", w, h, n, (rows3, self.ring, i64(self.slot_stride), i64(lv.offset), dslots,
                                             i32(w), i32(h), i32(n), self._g, self._xg, self._xxg,
                                             i32(self.settings.poly_n), f64(c.ig11), f64(c.ig03), f64(c.ig33),
                                             f64(c.ig55)))
        self._filled[slots] = True

    def _set_geometry(self, slot: int, geometry: Any) -> None:
        self._has_geometry[slot] = geometry is not None
        if geometry is None:
            return
        xp = self.backend.xp
        t = encode_tables(geometry, self.size, getattr(self.settings, "value_range", "pair"))
        self._masks[slot] = xp.asarray(t.eye_mask)
        self._regions[slot] = xp.asarray(t.value_region)
        self._nose[slot] = xp.asarray(t.nose_box)
        self._roi_boxes[slot] = xp.asarray(t.roi_boxes)
        self._roi_modes[slot] = xp.asarray(t.roi_modes)
        self._xi[slot], self._xw[slot] = xp.asarray(t.xi), xp.asarray(t.xw)
        self._yi[slot], self._yw[slot] = xp.asarray(t.yi), xp.asarray(t.yw)

    def level_products(self, slot: int) -> list[Any]:
        """Device views (h, w, 5) of one slot's expansion coefficients, finest first."""
        return [self.ring[slot, lv.offset : lv.offset + lv.width * lv.height * 5].reshape(lv.height, lv.width, 5)
                for lv in self._levels]

    # ------------------------------------------------------------ per pair

    def _check_slots(self, slots: Sequence[int], need_geometry: bool = False) -> None:
        for s in slots:
            if not 0 <= s < self.capacity or not self._filled[s]:
                raise ValueError(f"slot {s} holds no frame")
            if need_geometry and not self._has_geometry[s]:
                raise ValueError(f"slot {s} was pushed without a face geometry")

    def flow(self, slot_a: int, slot_b: int) -> Any:
        """Device (S,S,2) float32 flow from frame slot_a to frame slot_b."""
        return self.flow_batch([(slot_a, slot_b)])[0]

    def flow_batch(self, pairs: Sequence[tuple[int, int]]) -> Any:
        """Device (N,S,S,2) float32 flows, max_pairs pairs per launch."""
        xp = self.backend.xp
        out = xp.empty((len(pairs), self.size, self.size, 2), f32)
        for start in range(0, len(pairs), self.max_pairs):
            chunk = pairs[start : start + self.max_pairs]
            out[start : start + len(chunk)] = self._flow_chunk(chunk)
        return out

    def _flow_chunk(self, pairs: Sequence[tuple[int, int]]) -> Any:
        xp, launch, s, n = self.backend.xp, self.backend.launch, self.settings, len(pairs)
        self._check_slots([p for pair in pairs for p in pair])
        sa = xp.asarray(np.asarray([p[0] for p in pairs], i32))
        sb = xp.asarray(np.asarray([p[1] for p in pairs], i32))
        m = i32(len(self._window) - 1)
        flow = None
        for k in range(len(self._levels) - 1, -1, -1):
            lv = self._levels[k]
            w, h = lv.width, lv.height
            if flow is None:
                flow = xp.zeros((n, h, w, 2), f32)
            else:
                coarse = self._levels[k + 1]
                assert lv.up_taps is not None  # every level but the coarsest has them
                up = xp.empty((n, h, w, 2), f32)
                launch("fb_resize_linear", w, h, n, (flow, up, i32(coarse.width), i32(coarse.height), i32(w), i32(h),
                                                     i32(2), i32(n), *lv.up_taps, f32(1.0 / s.pyr_scale)))
                flow = up
            M, V = xp.empty((n, h, w, 5), f32), xp.empty((n, h, w, 5), f32)
            upd = (self.ring, i64(self.slot_stride), i64(lv.offset), sa, sb, flow, M, i32(w), i32(h), i32(n),
                   lv.bx, lv.by)
            launch("fb_update_matrices", w, h, n, upd)
            for it in range(s.iterations):
                launch("fb_blur_m_vert", w, h, n, (M, V, i32(w), i32(h), i32(n), self._window, m))
                launch("fb_blur_m_horz_solve", w, h, n, (V, flow, i32(w), i32(h), i32(n), self._window, m))
                if it < s.iterations - 1:
                    launch("fb_update_matrices", w, h, n, upd)
        return flow

    # ------------------------------------------------------------ encoding

    def encode_batch(self, flows: Any, slots_a: Sequence[int]) -> Any:
        """(N,S,S,2) device flows + each pair's first-frame slot -> (N,3,112,112) float32
        network inputs on the device (engines.features.encode_pair with the settings'
        value_range / value_floor)."""
        xp, launch, S, n = self.backend.xp, self.backend.launch, self.size, len(slots_a)
        if tuple(flows.shape) != (n, S, S, 2):
            raise ValueError(f"flows must be ({n},{S},{S},2), got {tuple(flows.shape)}")
        self._check_slots(slots_a, need_geometry=True)
        if n == 0:  # a zero-sized grid is a launch error on the GPU
            return xp.empty((0, 3, ROI_OUT, ROI_OUT), f32)
        flows = xp.ascontiguousarray(flows, dtype=f32)
        sa = xp.asarray(np.asarray(slots_a, i32))
        clip = f32(self.settings.clip)
        mm = xp.empty((n, 2), f32)
        launch("enc_minmax", 1, 1, n, (flows, self._regions, sa, mm, i32(S), i32(n), clip),
               block=(MINMAX_THREADS, 1, 1))
        bgr = xp.empty((n, S, S, 3), np.uint8)
        span_floor = f64(getattr(self.settings, "value_floor", 0.0))
        launch("enc_hs", S, S, n, (flows, mm, self._lut, bgr, i32(S), i32(n), clip, span_floor))
        means = xp.empty((n, 3), f32)
        launch("enc_nose_mean", 3, 1, n, (bgr, self._nose, sa, means, i32(S), i32(n)))
        half = ROI_OUT // 2
        out = xp.empty((n, 3, ROI_OUT, ROI_OUT), f32)
        launch("enc_roi", ROI_OUT, ROI_OUT, n, (bgr, self._masks, sa, means, self._roi_boxes, self._roi_modes, self._xi, self._xw,
                                                self._yi, self._yw, out, i32(S), i32(n), i32(ROI_OUT), i32(half),
                                                i32(ROI_TAPS)))
        return out

    def pair_inputs(self, pairs: Sequence[tuple[int, int]], head_motion: np.ndarray | None = None,
                    fit: Callable[[np.ndarray], np.ndarray] | None = None) -> Any:
        """Flow + encoding for pairs of slots: (N,3,112,112) float32 on the device.
        `head_motion`: (N,S,S,2) float32 host fields subtracted from the flows before
        encoding (engines.head_motion, FlowSettings.head_motion "rigid3d"); `fit`: a function
        of the host flows (N,S,S,2) giving those fields ("dominant", fitted to the flow)."""
        flows = self.flow_batch(pairs)
        if fit is not None:
            head_motion = fit(self.backend.to_numpy(flows))
        if head_motion is not None:
            flows = flows - self.backend.xp.asarray(head_motion, dtype=f32)
        return self.encode_batch(flows, [a for a, _ in pairs])

    def to_numpy(self, a: Any) -> np.ndarray:
        return self.backend.to_numpy(a)


def to_torch(a: Any) -> Any:
    """Zero-copy hand-over of a device array to torch via DLPack (CuPy backend)."""
    import torch

    return torch.from_dlpack(a)


# ---------------------------------------------------------------- pipeline seam

@dataclass(frozen=True, slots=True)
class DeviceFrame:
    """Per-frame products of one face for CudaPairFeatures: the host FlowFrame (kept so an
    overwritten ring slot can be refilled) and the id its device products were pushed as."""

    frame_id: int
    flow_frame: FlowFrame


class CudaPairFeatures:
    """engines.pair_features.PairFeatures on the GPU: `prepare` pushes a face's products
    to the device ring once; `inputs` runs flow + encoding for a batch of pairs.

    A pair whose frame was overwritten in the ring (more than `capacity` frames pushed
    since) is pushed again from its host copy, into a slot no pending pair uses, so
    results never depend on the ring size. `prepare` (capture thread) and `inputs`
    (scoring thread) may run concurrently: one lock serialises them on the engine.
    """

    name = "cuda"

    def __init__(self, settings: FlowSettings, capacity: int = 512, max_pairs: int = 64,
                 backend: BackendName = "cupy") -> None:
        self.settings = settings
        self.engine = CudaFarneback(settings, max_pairs=max_pairs, capacity=capacity, backend=backend)
        if settings.head_motion != "nose":
            field_basis(settings.face_size)  # built now, not under the lock on the first live pair
        self._lock = threading.Lock()
        self._next_id = 0
        self._cursor = 0  # round-robin allocation position
        self._owner = [-1] * capacity  # frame_id held by each slot
        self._slot: dict[int, int] = {}  # frame_id -> slot, only for frames still in the ring

    def _push(self, frame: DeviceFrame, protected: set[int]) -> int:
        """Push one frame into the oldest slot outside `protected`."""
        cap = self.engine.capacity
        for _ in range(cap):
            slot, self._cursor = self._cursor, (self._cursor + 1) % cap
            if slot not in protected:
                break
        else:
            raise ValueError("every ring slot is in use by this batch")
        self.engine.push_frames_into([frame.flow_frame.grey], [slot], [frame.flow_frame.geometry])
        self._slot.pop(self._owner[slot], None)
        self._owner[slot] = frame.frame_id
        self._slot[frame.frame_id] = slot
        return slot

    def prepare(self, face: Any) -> DeviceFrame:
        ff = features.flow_frame(face, self.settings)
        with self._lock:
            frame = DeviceFrame(self._next_id, ff)
            self._next_id += 1
            self._push(frame, set())
        return frame

    def inputs_device(self, pairs: Sequence[tuple[DeviceFrame, DeviceFrame]]) -> Any:
        """(N,3,112,112) float32 on the device (hand it to torch with `to_torch`)."""
        xp = self.engine.backend.xp
        outs: list[Any] = []
        pending: list[tuple[int, int]] = []
        fields: list[np.ndarray] = []  # host head-motion fields of the pending pairs ("rigid3d")
        firsts: list[FlowFrame] = []  # frame a of each pending pair ("dominant" fits its face)

        def fit(flows: np.ndarray) -> np.ndarray:
            return np.stack([dominant_motion_field(f, fa.landmarks, fa.geometry.nose_box,
                                                   (fa.geometry.left_eye, fa.geometry.right_eye))
                             for f, fa in zip(flows, firsts, strict=True)])

        def flush() -> None:
            dominant = self.settings.head_motion == "dominant"
            outs.append(self.engine.pair_inputs(pending, np.stack(fields) if fields else None,
                                                fit if dominant else None))

        with self._lock:
            for a, b in pairs:
                resident = {self._slot[f.frame_id] for f in (a, b) if f.frame_id in self._slot}
                missing = [f for f in ((a,) if a.frame_id == b.frame_id else (a, b)) if f.frame_id not in self._slot]
                used = {s for p in pending for s in p}
                if missing and len(used | resident) + len(missing) > self.engine.capacity:
                    flush()  # free the pending pairs' slots
                    pending, fields, firsts, used = [], [], [], set()
                for f in missing:
                    resident.add(self._push(f, used | resident))
                pending.append((self._slot[a.frame_id], self._slot[b.frame_id]))
                firsts.append(a.flow_frame)
                if self.settings.head_motion == "rigid3d":
                    fa, fb = a.flow_frame, b.flow_frame
                    fields.append(rigid_motion_field(fa.landmarks, fb.landmarks, self.engine.size, fa.geometry.nose_box))
            if pending:
                flush()
        if not outs:
            return xp.empty((0, 3, ROI_OUT, ROI_OUT), f32)
        return outs[0] if len(outs) == 1 else xp.concatenate(outs)

    def inputs(self, pairs: Sequence[tuple[DeviceFrame, DeviceFrame]]) -> np.ndarray:
        """(N,3,112,112) float32 on the host."""
        return self.engine.to_numpy(self.inputs_device(pairs))
