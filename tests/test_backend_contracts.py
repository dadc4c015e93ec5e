"""One contract per seam, run over every backend behind it (as timm runs one test over
every registered model): the flow backends behind `engines.pair_features` and the scorer
backends behind `engines.scorers.Scorer`. A backend this machine cannot run is skipped
with its reason; the same test runs it on a machine that can.

Also the one flow picker (`make_pair_features`, `--flow`): the CUDA kernels implement
Farneback with a Gaussian window only, so `auto` takes the CPU for any other flow and
`cuda` refuses it with one error naming --flow.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import torch

from engines import cuda_flow
from engines import features as ft
from engines import pair_features as pf
from engines.baseline import FlowMagnitudeNet, baseline_meta
from engines.head_motion import face_shape
from engines.pair_features import CpuPairFeatures, PairFeatures, make_pair_features
from engines.scorers import OnnxRuntimeScorer, Scorer, TorchCpuScorer, TorchCudaScorer, make_scorer
from engines.weights import MODEL_FLOW_MAGNITUDE, WeightsMeta, save_weights
from realtime import face as fl
from realtime.common.errors import UserError
from realtime.common.types import HEAD_MOTION_MODELS, AlignedFace, FlowSettings

from media import sensitive_net

GREY_TOL = 2.0 / 128.0  # 2 grey levels in normalised units


def _needs_host_compiler() -> None:
    if shutil.which("g++") is None and shutil.which("c++") is None:
        pytest.skip("no C++ compiler for the host build of the CUDA kernels")


def _needs_cuda_flow() -> None:
    if not cuda_flow.cuda_available():
        pytest.skip("no CUDA GPU or CuPy: the CUDA flow cannot run here")


# name -> (skip check, factory, exact: equal to the CPU chain bit for bit)
FLOW_BACKENDS: dict[str, tuple[Callable[[], None], Callable[[FlowSettings], PairFeatures], bool]] = {
    "cpu": (lambda: None, lambda s: CpuPairFeatures(s, workers=1), True),
    # a batch's pairs computed by three threads at once: the same values bit for bit
    "cpu-threads": (lambda: None, lambda s: CpuPairFeatures(s, workers=3), True),
    # The .cu kernels built for the host: the CUDA driver and kernels, run on the CPU.
    "cuda-kernels-on-host": (_needs_host_compiler,
                             lambda s: cuda_flow.CudaPairFeatures(s, capacity=4, max_pairs=2, backend="host"), False),
    "cuda": (_needs_cuda_flow, lambda s: cuda_flow.CudaPairFeatures(s), False),
}


@pytest.fixture(scope="module")
def faces() -> list[AlignedFace]:
    """Grace Hopper aligned at 224 px, and two copies with a local motion (the brows and
    mouth move by different amounts) on the same landmarks."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = cv2.imread(str(path))
    with fl.FaceLandmarker(static_image_mode=True) as mesh:
        lm = mesh.detect(img)
    a = fl.align_face(img, lm, 224)
    assert a is not None
    out = [a]
    for dx, dy in ((1.5, 0.5), (-1.0, 2.0)):
        grey = a.grey.copy()
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        moved = cv2.warpAffine(a.grey, m, a.grey.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        grey[60:110, 40:180] = moved[60:110, 40:180]
        grey[150:200, 60:160] = moved[150:200, 60:160]
        out.append(AlignedFace(grey=grey, landmarks=a.landmarks, matrix=a.matrix))
    return out


def turned(faces: list[AlignedFace]) -> list[AlignedFace]:
    """The same images with landmarks that say the head turned in depth between them
    (each frame's points shifted by the parallax of a small yaw and pitch), so the
    "rigid3d" head-motion model has a field to subtract."""
    depth = face_shape()[:, 2] * faces[0].grey.shape[0]
    out = [faces[0]]
    for j, f in enumerate(faces[1:], start=1):
        lm = f.landmarks + np.column_stack([0.03 * j * depth, -0.02 * j * depth]).astype(np.float32)
        out.append(AlignedFace(grey=f.grey, landmarks=lm, matrix=f.matrix))
    return out


def rolled(faces: list[AlignedFace]) -> list[AlignedFace]:
    """The same faces, each image also rotated (0.8 degrees per frame) and scaled (1% per
    frame) about the crop's centre on the same landmarks: a head motion the alignment left,
    which the "dominant" model fits to the flow itself."""
    out = [faces[0]]
    size = faces[0].grey.shape[0]
    for j, f in enumerate(faces[1:], start=1):
        m = cv2.getRotationMatrix2D((size / 2, size / 2), 0.8 * j, 1.0 + 0.01 * j)
        grey = cv2.warpAffine(f.grey, m, (size, size), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        out.append(AlignedFace(grey=grey, landmarks=f.landmarks, matrix=f.matrix))
    return out


@pytest.mark.parametrize("head_motion", HEAD_MOTION_MODELS)
@pytest.mark.parametrize("backend", list(FLOW_BACKENDS))
def test_flow_backend_contract(backend: str, head_motion: str, faces: list[AlignedFace]) -> None:
    """prepare() once per frame, inputs() of any batch of pairs: (N,3,112,112) float32,
    the CPU chain's values (`engines.features.pair_input`), a pair's input independent of
    the batch it is in, an empty batch empty; for every head-motion model."""
    skip, make, exact = FLOW_BACKENDS[backend]
    skip()
    settings = FlowSettings(head_motion=head_motion)
    if head_motion != "nose":
        faces = turned(faces) if head_motion == "rigid3d" else rolled(faces)
        nose = ft.pair_input(faces[0], faces[1], FlowSettings())
        assert np.abs(ft.pair_input(faces[0], faces[1], settings) - nose).max() > 10 * GREY_TOL  # the model acts
    flow = make(settings)
    assert flow.name in ("cpu", "cuda")
    frames = [flow.prepare(f) for f in faces]
    pairs = [(0, 1), (0, 2), (1, 2)]  # frame 0 used by two pairs
    got = flow.inputs([(frames[i], frames[j]) for i, j in pairs])
    assert got.shape == (3, 3, 112, 112) and got.dtype == np.float32
    for x, (i, j) in zip(got, pairs, strict=True):
        want = ft.pair_input(faces[i], faces[j], settings)
        if exact:
            assert np.array_equal(x, want)
        else:
            assert (np.abs(x - want) <= GREY_TOL).mean() >= 0.99
    alone = flow.inputs([(frames[1], frames[2])])
    assert np.array_equal(alone[0], got[2])
    assert flow.inputs([]).shape == (0, 3, 112, 112)


@pytest.mark.parametrize("algorithm", ft.FLOW_ALGORITHMS)
def test_cpu_flow_backend_runs_every_flow_algorithm(algorithm: str, faces: list[AlignedFace]) -> None:
    settings = FlowSettings(algorithm=algorithm)
    flow = make_pair_features("auto", settings)
    frames = [flow.prepare(f) for f in faces[:2]]
    got = flow.inputs([(frames[0], frames[1])])
    assert np.array_equal(got[0], ft.pair_input(faces[0], faces[1], settings))


# ---------------------------------------------------------------- the flow picker

@pytest.fixture(params=[False, True], ids=["no-gpu", "gpu-present"])
def gpu(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the picker believes a GPU is there (faked as present: the choice for
    weights the kernels do not implement must not depend on a GPU being found)."""
    if request.param:
        monkeypatch.setattr(pf, "cuda_flow_available", lambda: True)
    elif cuda_flow.cuda_available():
        pytest.skip("a real GPU is present; the no-GPU case cannot be shown here")
    return request.param


@pytest.mark.parametrize("settings", [FlowSettings(algorithm="dis"), FlowSettings(algorithm="tvl1"),
                                      FlowSettings(gaussian_window=False)], ids=["dis", "tvl1", "box-window"])
def test_auto_takes_the_cpu_for_flow_the_kernels_do_not_implement(settings: FlowSettings, gpu: bool) -> None:
    assert make_pair_features("auto", settings).name == "cpu"


@pytest.mark.parametrize("algorithm", ["dis", "tvl1"])
def test_explicit_cuda_for_other_flow_is_one_error_naming_the_option(algorithm: str, gpu: bool) -> None:
    with pytest.raises(UserError, match=rf"^--flow cuda: the CUDA flow implements farneback only, the weights "
                                        rf"use '{algorithm}' flow; use --flow cpu or auto$"):
        make_pair_features("cuda", FlowSettings(algorithm=algorithm))


def test_auto_falls_back_to_the_cpu_when_the_kernels_do_not_build(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("NVRTC: unsupported GPU architecture")

    monkeypatch.setattr(pf, "cuda_flow_available", lambda: True)
    monkeypatch.setattr(cuda_flow, "CudaPairFeatures", broken)
    assert make_pair_features("auto", FlowSettings()).name == "cpu"
    with pytest.raises(UserError, match="^--flow cuda: the CUDA kernels failed to build: NVRTC"):
        make_pair_features("cuda", FlowSettings())


def test_cuda_without_a_gpu_and_unknown_kinds_are_errors() -> None:
    if not cuda_flow.cuda_available():
        with pytest.raises(UserError, match="^--flow cuda: no CUDA GPU"):
            make_pair_features("cuda", FlowSettings())
        assert make_pair_features("auto", FlowSettings()).name == "cpu"
    with pytest.raises(UserError, match="^--flow: must be one of auto, cpu, cuda"):
        make_pair_features("opencl", FlowSettings())


# ---------------------------------------------------------------- scorer backends

@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("contract")
    # A temperature (lgnm-calibrate --temperature fit) that every backend must apply: the
    # torch CPU reference does, and an export or fp16 head that dropped it would differ.
    meta = WeightsMeta(type="ME", k=6, fps=30.0, k_seconds=0.2, flow=FlowSettings(),
                       model_params={"temperature": 3.0})
    base = baseline_meta("ME", 6, 30.0, 0.25, 20.0, {"threshold": 0.4, "win": 11, "order": 2, "tiny": 0.3})
    return {"lgnmnet": save_weights(sensitive_net(3), meta, folder / "me.safetensors"),
            "baseline": save_weights(FlowMagnitudeNet(base), base, folder / "bl_ME.safetensors")}


def _needs_cuda() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (torch sees none)")


def _tensorrt_scorer(w: Path, folder: Path) -> Scorer:
    if importlib.util.find_spec("tensorrt") is None or not torch.cuda.is_available():
        pytest.skip("needs TensorRT and a CUDA GPU")
    from engines.build_engine import main as build

    engine = folder / "me.fp32.engine"
    assert build(["--weights", str(w), "--precision", "fp32", "--out", str(engine)]) == 0
    return make_scorer(w, "tensorrt", engine)


def _torch_cuda_scorer(w: Path, folder: Path) -> Scorer:
    _needs_cuda()
    return TorchCudaScorer(w)


# name -> (weights kind, factory(weights, tmp folder), score tolerance vs torch CPU)
SCORERS: dict[str, tuple[str, Callable[[Path, Path], Scorer], float]] = {
    "torch-cpu": ("lgnmnet", lambda w, _: TorchCpuScorer(w), 0.0),
    "onnxruntime-cpu": ("lgnmnet", lambda w, _: OnnxRuntimeScorer(w), 1e-4),
    "baseline": ("baseline", lambda w, _: make_scorer(w, "cpu"), 0.0),
    "torch-cuda": ("lgnmnet", _torch_cuda_scorer, 2e-2),  # fp16 body
    "tensorrt": ("lgnmnet", _tensorrt_scorer, 1e-3),
}


@pytest.fixture(params=list(SCORERS))
def scorer(request: pytest.FixtureRequest, weights: dict[str, Path], tmp_path: Path) -> Iterator[tuple[Scorer, float, Path]]:
    kind, make, tol = SCORERS[request.param]
    s = make(weights[kind], tmp_path)
    try:
        yield s, tol, weights[kind]
    finally:
        s.close()


def test_scorer_backend_contract(scorer: tuple[Scorer, float, Path]) -> None:
    """score((N,3,112,112) float32) -> (N,) float32 P(expression) in [0, 1], the torch CPU
    reference's values (the baseline: its own numpy formula, on every backend), a
    sample's score independent of its batch; wrong input a ValueError."""
    s, tol, path = scorer
    assert isinstance(s, Scorer)
    assert s.type == "ME" and s.meta.k == 6 and isinstance(s.backend, str)
    x = np.random.default_rng(0).normal(0, 0.6, (5, 3, 112, 112)).astype(np.float32)
    p = s.score(x)
    assert p.shape == (5,) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    reference = make_scorer(path, "cpu") if s.meta.model == MODEL_FLOW_MAGNITUDE else TorchCpuScorer(path)
    try:
        np.testing.assert_allclose(p, reference.score(x), atol=tol + 1e-6, rtol=0)
    finally:
        reference.close()
    np.testing.assert_allclose(s.score(x[3:4]), p[3:4], atol=max(tol, 1e-5), rtol=0)
    assert s.score(x[:0]).shape == (0,)
    with pytest.raises(ValueError, match="scorer input"):
        s.score(x.astype(np.float64))


def test_cpu_flow_threads_pass_on_a_pair_failure(faces: list[AlignedFace]) -> None:
    """A pair that fails in a worker thread fails the batch (it was not a silent zero)."""
    flow = CpuPairFeatures(FlowSettings(), workers=2)
    good = flow.prepare(faces[0])
    bad = ft.FlowFrame(grey=good.grey.astype(np.float32), landmarks=good.landmarks, geometry=good.geometry)
    with pytest.raises(ValueError, match="uint8"):
        flow.inputs([(good, good), (good, bad)])
    with pytest.raises(ValueError, match="workers"):
        CpuPairFeatures(FlowSettings(), workers=0)
