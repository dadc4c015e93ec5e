"""CUDA flow + encoding: kernels compile for sm_80/sm_90; the same .cu sources built for
the host reproduce the numpy Farneback port and engines.features' encoding; GPU runs
(marked gpu) check the device against both."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines import cuda_flow as cf
from engines import farneback_ref as fr
from engines import features as ft
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings

KERNELS = Path(cf.__file__).with_name("kernels")
GREY_TOL = 2.0 / 128.0  # 2 grey levels in normalised units


def astronaut_face(n: int) -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey[30:230, 150:350], (n, n), interpolation=cv2.INTER_AREA)


def warp(img: np.ndarray, dx: float, dy: float, amp: float) -> np.ndarray:
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    mx = xx - dx + amp * np.sin(yy / n * 6)
    my = yy - dy + amp * 0.5 * np.cos(xx / n * 5)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def geometry(n: int) -> ft.FaceGeometry:
    """Plausible regions of a face crop, scaled from a 112-px layout."""
    q = n / 112

    def eye(cx: float, cy: float) -> np.ndarray:
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        return np.stack([cx + 9 * q * np.cos(t), cy + 4 * q * np.sin(t)], 1).round().astype(np.int32)

    def box(*v: int) -> tuple[int, int, int, int]:
        return tuple(int(x * q) for x in v)  # type: ignore[return-value]

    return ft.FaceGeometry(size=n, nose_box=box(50, 58, 61, 69), left_eye=eye(35 * q, 45 * q),
                           right_eye=eye(77 * q, 45 * q), brow_box=box(18, 25, 95, 55),
                           mouth_box=box(30, 75, 82, 102))


@pytest.fixture(scope="module")
def host_available() -> None:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler for the host build of the kernels")


# ---------------------------------------------------------------- compile

@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("name", ["farneback.cu", "encode.cu"])
def test_kernels_compile_with_nvcc(tmp_path: Path, arch: str, name: str) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH")
    out = tmp_path / "k.ptx"
    cmd = [nvcc, f"-arch={arch}", "--fmad=false", "-ptx", str(KERNELS / name), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    ptx = out.read_text()
    for kernel in ("fb_poly_horz", "fb_update_matrices") if name == "farneback.cu" else ("enc_roi", "enc_minmax"):
        assert f".entry {kernel}" in ptx


def test_inlined_source_is_what_nvrtc_gets(tmp_path: Path) -> None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not on PATH")
    src = tmp_path / "all.cu"
    src.write_text(cf.kernel_source())
    assert '#include "prelude.cu"' not in src.read_text()
    res = subprocess.run([nvcc, "-arch=sm_80", "--fmad=false", "-std=c++14", "-ptx", str(src), "-o",
                          str(tmp_path / "all.ptx")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------- host build of the kernels

@pytest.mark.parametrize("n", [112, 224])
def test_host_kernels_equal_numpy_reference(host_available: None, n: int) -> None:
    s = FlowSettings(face_size=n)
    a = astronaut_face(n)
    b, c = warp(a, 1.3, -0.7, 1.0), warp(a, -2.0, 0.5, 0.5)
    eng = cf.CudaFarneback(s, max_pairs=2, capacity=4, backend="host")
    sa, sb, sc = eng.push_frames([a, b, c])  # 3 frames > max_pairs: two per-frame batches
    for got, want in zip(eng.level_products(sa), fr.frame_products(a, s).poly, strict=True):
        assert np.array_equal(got, want)
    flows = eng.flow_batch([(sa, sb), (sa, sc), (sc, sb)])  # frame a reused by two pairs
    for f, (x, y) in zip(flows, [(a, b), (a, c), (c, b)], strict=True):
        assert np.array_equal(f, fr.farneback(x, y, s))
        cv = cv2.calcOpticalFlowFarneback(x, y, None, s.pyr_scale, s.levels, s.winsize, s.iterations,
                                          s.poly_n, s.poly_sigma, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
        assert fr.epe(f, cv) <= 1e-3


def test_ring_overwrites_oldest_slot(host_available: None) -> None:
    s = FlowSettings()
    a = astronaut_face(112)
    b = warp(a, 1.0, 0.0, 0.0)
    eng = cf.CudaFarneback(s, max_pairs=4, capacity=2, backend="host")
    first = eng.push_frames([a, b])
    assert first == [0, 1]
    f_ab = eng.to_numpy(eng.flow(0, 1)).copy()
    assert eng.push_frame(b) == 0  # wraps: slot 0 now holds b
    assert np.abs(eng.to_numpy(eng.flow(0, 1))).max() < np.abs(f_ab).max()
    with pytest.raises(ValueError):
        cf.CudaFarneback(s, capacity=4, backend="host").flow(0, 1)  # nothing pushed


@pytest.mark.parametrize("n,value_range", [(112, "roi"), (112, "pair"), (224, "roi")])
def test_host_encoding_matches_cpu_chain(host_available: None, n: int, value_range: str) -> None:
    s = FlowSettings(face_size=n, value_range=value_range)
    a = astronaut_face(n)
    b = warp(a, 0.8, 0.3, 1.5)
    geo = geometry(n)
    eng = cf.CudaFarneback(s, max_pairs=4, capacity=4, backend="host")
    sa, sb = eng.push_frames([a, b], [geo, None])
    flows = eng.flow_batch([(sa, sb), (sb, sa)])
    x = eng.encode_batch(flows[:1], [sa])
    assert x.shape == (1, 3, 112, 112) and x.dtype == np.float32
    want = ft.encode_pair(flows[0], geo, s)
    d = np.abs(x[0] - want)
    assert (d <= GREY_TOL).mean() >= 0.99
    assert (d == 0).mean() >= 0.99  # measured: identical on this build
    with pytest.raises(ValueError, match="without a face geometry"):
        eng.encode_batch(flows[1:], [sb])
    assert eng.pair_inputs([]).shape == (0, 3, 112, 112)


@pytest.mark.parametrize("size", [(77, 30), (52, 27), (150, 40), (60, 70), (113, 57), (160, 60), (224, 112)])
def test_roi_taps_reproduce_cv_resize(size: tuple[int, int]) -> None:
    bw, bh = size
    img = np.random.default_rng(bw * bh).integers(0, 256, (bh, bw)).astype(np.uint8)
    shrink = bh > 56 or bw > 112
    want = cv2.resize(img, (112, 56), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    mode, xi, xw, yi, yw = cf.roi_taps(bw, bh)
    f = img.astype(np.float64)
    if mode == cf.ROI_LINEAR:
        r = (f[:, xi[:, 0]] * xw[:, 0] + f[:, xi[:, 1]] * xw[:, 1]).astype(np.int64)
        r0, r1 = r[yi[:, 0]], r[yi[:, 1]]
        b0, b1 = yw[:, :1].astype(np.int64), yw[:, 1:2].astype(np.int64)
        got = ((((r0 >> 4) * b0) >> 16) + (((r1 >> 4) * b1) >> 16) + 2) >> 2
    else:  # float32, taps summed in order, as enc_roi does
        f32 = img.astype(np.float32)
        rows = np.zeros((bh, 112), np.float32)
        for t in range(xw.shape[1]):
            rows = rows + xw[:, t] * f32[:, xi[:, t]]
        acc = np.zeros((56, 112), np.float32)
        for t in range(yw.shape[1]):
            acc = acc + yw[:, t, None] * rows[yi[:, t]]
        got = np.floor(acc + np.float32(0.5)) if mode == cf.ROI_AREA_FAST else np.rint(acc)
    assert np.array_equal(got, want)


def test_hsv_lut_is_cv2_conversion() -> None:
    lut = cf.hsv_lut().reshape(180, 256, 3)
    hsv = np.array([[[37, 255, 200], [179, 255, 3], [0, 255, 255]]], np.uint8)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    for (h, _, v), want in zip(hsv[0], bgr, strict=True):
        assert np.array_equal(lut[h, v], want)


# ---------------------------------------------------------------- selection and errors

def test_cuda_available_is_a_bool() -> None:
    assert isinstance(cf.cuda_available(), bool)


def test_rejects_settings_it_does_not_implement(host_available: None) -> None:
    with pytest.raises(UserError):
        cf.CudaFarneback(FlowSettings(algorithm="dis"), backend="host")
    with pytest.raises(UserError):
        cf.CudaFarneback(FlowSettings(), backend="opencl")  # type: ignore[arg-type]
    eng = cf.CudaFarneback(FlowSettings(), capacity=2, backend="host")
    with pytest.raises(ValueError):
        eng.push_frame(np.zeros((64, 64), np.uint8))


# ---------------------------------------------------------------- GPU

def _gpu() -> None:
    if not cf.cuda_available():
        pytest.skip("no CUDA device or CuPy not installed")


@pytest.mark.gpu
@pytest.mark.parametrize("n", [112, 224])
def test_gpu_flow_matches_reference(n: int) -> None:
    _gpu()
    s = FlowSettings(face_size=n)
    a = astronaut_face(n)
    b, c = warp(a, 1.3, -0.7, 1.0), warp(a, 3.0, 1.0, 0.5)
    eng = cf.CudaFarneback(s, max_pairs=8, capacity=8, backend="cupy")
    sa, sb, sc = eng.push_frames([a, b, c])
    flows = eng.to_numpy(eng.flow_batch([(sa, sb), (sa, sc)]))
    for f, (x, y) in zip(flows, [(a, b), (a, c)], strict=True):
        assert fr.epe(f, fr.farneback(x, y, s)) <= 0.1
        assert fr.epe(f, ft.compute_flow(x, y, s)) <= 0.1


@pytest.mark.gpu
def test_gpu_encoding_matches_cpu_chain() -> None:
    _gpu()
    s = FlowSettings()
    a = astronaut_face(112)
    b = warp(a, 0.8, 0.3, 1.5)
    geo = geometry(112)
    eng = cf.CudaFarneback(s, max_pairs=4, capacity=4, backend="cupy")
    sa, sb = eng.push_frames([a, b], [geo, None])
    flows = eng.flow_batch([(sa, sb)])
    x = eng.to_numpy(eng.encode_batch(flows, [sa]))
    want = ft.encode_pair(eng.to_numpy(flows)[0], geo, s)
    assert (np.abs(x[0] - want) <= GREY_TOL).mean() >= 0.99
    torch = pytest.importorskip("torch")
    t = cf.to_torch(eng.pair_inputs([(sa, sb)]))
    assert t.is_cuda and tuple(t.shape) == (1, 3, 112, 112) and t.dtype == torch.float32


def test_host_launch_covers_only_its_grid(host_available: None) -> None:
    """The host build honours the launch grid, so a too-small launch is caught here."""
    backend = cf._HostBackend()
    src = np.arange(40 * 3, dtype=np.uint8).reshape(1, 3, 40)
    full, part = np.full((1, 3, 40), -1, np.float32), np.full((1, 3, 40), -1, np.float32)
    args = (np.int32(40), np.int32(3), np.int32(1))
    backend.launch("fb_u8_to_f32", 40, 3, 1, (src, full, *args))
    backend.launch("fb_u8_to_f32", 8, 3, 1, (src, part, *args))  # one 16-wide block column
    assert np.array_equal(full, src.astype(np.float32))
    assert np.array_equal(part[..., :16], full[..., :16]) and (part[..., 16:] == -1).all()


def test_pair_features_seam_refills_evicted_frames(host_available: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """CudaPairFeatures (the engines.pair_features seam) with a ring smaller than the frames
    in flight: evicted frames are pushed again and every pair still gets its own input."""
    s = FlowSettings()
    geo = geometry(112)
    base = astronaut_face(112)
    greys = [warp(base, 0.7 * i, 0.2 * i, 0.3 * i) for i in range(4)]
    monkeypatch.setattr(ft, "flow_frame", lambda face, settings: ft.FlowFrame(face, np.zeros((468, 2), np.float32), geo))
    pf = cf.CudaPairFeatures(s, capacity=3, max_pairs=2, backend="host")
    frames = [pf.prepare(g) for g in greys]  # 4 frames into 3 slots: frame 0 is evicted
    pairs = [(frames[0], frames[3]), (frames[1], frames[3]), (frames[2], frames[3]), (frames[0], frames[1])]
    got = pf.inputs(pairs)
    assert got.shape == (4, 3, 112, 112)
    for x, (a, b) in zip(got, pairs, strict=True):
        want = ft.encode_pair(fr.farneback(greys[a.frame_id], greys[b.frame_id], s), geo, s)
        assert (np.abs(x - want) <= GREY_TOL).mean() >= 0.99
    assert pf.inputs([]).shape == (0, 3, 112, 112)


def test_pair_features_seam_fits_dominant_motion_on_each_pairs_own_face(host_available: None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """"dominant" on the CUDA seam with a ring smaller than the frames in flight: each pair's
    field is fitted on its own first frame's face (faces of other sizes and places) across
    evictions and flushes, as the CPU chain does."""
    from engines.head_motion import face_shape

    s = FlowSettings(head_motion="dominant")
    base = astronaut_face(112)
    # A head rolling and coming closer: a field the dominant model fits (and the nose alone does not).
    greys = [cv2.warpAffine(base, cv2.getRotationMatrix2D((56, 56), 1.5 * i, 1.0 + 0.02 * i), (112, 112),
                            flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT) for i in range(4)]
    mean_face = face_shape()[:, :2].astype(np.float32) * 112
    # Each frame's face a little larger and further right: other masks, nose boxes and ROIs.
    marks = [((mean_face - 56) * (1.0 + 0.04 * i) + 56 + np.float32([1.5 * i, 0.0])).astype(np.float32)
             for i in range(4)]
    products = {id(g): ft.FlowFrame(g, m, ft.face_geometry(m, 112)) for g, m in zip(greys, marks, strict=True)}
    monkeypatch.setattr(ft, "flow_frame", lambda face, settings: products[id(face)])
    pf = cf.CudaPairFeatures(s, capacity=3, max_pairs=2, backend="host")
    frames = [pf.prepare(g) for g in greys]  # 4 frames into 3 slots: frame 0 is evicted
    pairs = [(frames[0], frames[3]), (frames[1], frames[3]), (frames[2], frames[3]), (frames[0], frames[1])]
    got = pf.inputs(pairs)
    for x, (a, b) in zip(got, pairs, strict=True):
        fa, fb = products[id(greys[a.frame_id])], products[id(greys[b.frame_id])]
        flow = ft.remove_model_motion(fr.farneback(greys[a.frame_id], greys[b.frame_id], s), fa, fb, s)
        want = ft.encode_pair(flow, fa.geometry, s)
        assert (np.abs(x - want) <= GREY_TOL).mean() >= 0.99
        nose = ft.encode_pair(fr.farneback(greys[a.frame_id], greys[b.frame_id], s), fa.geometry, s)
        assert (np.abs(x - nose) > 10 * GREY_TOL).mean() > 0.05  # the fitted field was taken out
