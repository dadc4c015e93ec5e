"""Scorers: the CPU backends agree (real torch, real ONNX Runtime), backend selection,
and the pure engine compatibility check. CUDA tests are marked gpu and skipped here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engines.engine_meta import EngineSidecar, check_engine_compat
from engines.scorers import OnnxRuntimeScorer, Scorer, TorchCpuScorer, TorchCudaScorer, make_scorer
from engines.weights import WeightsMeta, save_weights
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings

from media import sensitive_net

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = WeightsMeta(type="ME", k=6, fps=30.0, k_seconds=0.2, flow=FlowSettings())
    return save_weights(sensitive_net(7), meta, tmp_path_factory.mktemp("s") / "me.safetensors")


@pytest.fixture(scope="module")
def batch() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.6, (6, 3, 112, 112)).astype(np.float32)


def test_cpu_backends_agree_and_follow_the_protocol(weights: Path, batch: np.ndarray) -> None:
    a, b = TorchCpuScorer(weights), OnnxRuntimeScorer(weights)
    try:
        for s in (a, b):
            assert isinstance(s, Scorer)
            assert s.type == "ME" and s.meta.k == 6
        pa, pb = a.score(batch), b.score(batch)
        assert pa.shape == pb.shape == (6,) and pa.dtype == pb.dtype == np.float32
        assert pa.std() > 1e-3
        np.testing.assert_allclose(pa, pb, atol=1e-4, rtol=0)
        # batch composition must not change a sample's score
        np.testing.assert_allclose(b.score(batch[2:3]), pb[2:3], atol=1e-5, rtol=0)
        assert b.score(batch[:0]).shape == (0,)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 3, 112, 112), np.float64), np.zeros((3, 112, 112), np.float32), np.zeros((1, 3, 64, 64), np.float32)]
)
def test_wrong_input_is_refused(weights: Path, bad: np.ndarray) -> None:
    s = TorchCpuScorer(weights)
    with pytest.raises(ValueError, match="scorer input"):
        s.score(bad)


def test_auto_without_gpu_picks_onnxruntime(weights: Path) -> None:
    s = make_scorer(weights, "auto", engine_path=None)
    expected = "torch-cuda" if torch.cuda.is_available() else "onnxruntime-cpu"
    assert s.backend == expected
    assert make_scorer(weights, "cpu").backend == "onnxruntime-cpu"


def test_backend_mistakes_are_user_errors(weights: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--backend"):
        make_scorer(weights, "tpu")
    with pytest.raises(UserError, match="--engine"):
        make_scorer(weights, "tensorrt")
    with pytest.raises(UserError, match="nothing.safetensors"):
        make_scorer(tmp_path / "nothing.safetensors", "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_backend_without_gpu(weights: Path) -> None:
    with pytest.raises(UserError, match="cuda"):
        make_scorer(weights, "cuda")


def _sidecar(**over: object) -> EngineSidecar:
    base = dict(
        tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0",
        precision="fp16", input_name="roi", input_shape=(3, 112, 112), max_batch=64,
        weights_sha256="a" * 64, weights_meta={}, weights_file="me.safetensors",
    )
    base.update(over)
    return EngineSidecar(**base)  # type: ignore[arg-type]


LIVE = dict(weights_sha256="a" * 64, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")


def test_compatible_engine_passes() -> None:
    check_engine_compat(_sidecar(), "me.engine", **LIVE)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "live_change, message",
    [
        ({"weights_sha256": "b" * 64}, "me.engine: engine was built from other weights"),
        ({"tensorrt_version": "10.7.0"}, "me.engine: engine was built with TensorRT 10.3.0"),
        ({"gpu_name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}, "me.engine: engine was built for NVIDIA H100"),
        ({"gpu_name": "NVIDIA H200"}, "this GPU is NVIDIA H200"),
    ],
)
def test_incompatible_engine_is_refused(live_change: dict, message: str) -> None:
    live = {**LIVE, **live_change}
    with pytest.raises(UserError, match=message):
        check_engine_compat(_sidecar(), "me.engine", **live)  # type: ignore[arg-type]


def test_mixed_precision_model_of_the_cuda_scorer_on_cpu(batch: np.ndarray) -> None:
    # The module TorchCudaScorer captures, run here with torch's CPU fp16 kernels.
    import copy

    from engines.scorers import _HalfBodyFloatHead

    net = sensitive_net(7)
    x = torch.from_numpy(batch)
    with torch.inference_mode():
        ref_emb, ref = net(x), net.predict_proba(x).numpy()
        mixed = _HalfBodyFloatHead(copy.deepcopy(net)).eval()
        assert mixed.net.fc.weight.dtype == mixed.net.head.weight.dtype == torch.float32
        assert mixed.net.backbone[0][0].weight.dtype == torch.float16
        xh = x.half().contiguous(memory_format=torch.channels_last)
        emb = mixed.net.embed(mixed.net.features(xh).float())
        got = mixed(xh).numpy()
    # fp16 convolutions keep the embedding direction (measured >= 0.998 cosine) ...
    assert float(torch.nn.functional.cosine_similarity(emb, ref_emb).min()) > 0.995
    # ... but the x64 head amplifies the rest: this deliberately sensitive net (two
    # nearly equal class centres) moves by up to ~0.09 in P. Real weights are less
    # sensitive; fp16 vs fp32 differences must still be checked on them (see README).
    assert got.dtype == np.float32 and np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, atol=0.15)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("half, tol", [(False, 1e-3), (True, 0.15)])
def test_cuda_scorer_matches_cpu_graph_and_eager(weights: Path, batch: np.ndarray, half: bool, tol: float) -> None:
    # fp16 tolerance: the backbone runs in fp16 and the head scales cosines by 64 (this
    # deliberately sensitive test net moves P by up to ~0.09 under fp16 on CPU).
    ref = TorchCpuScorer(weights).score(batch)
    s = TorchCudaScorer(weights, graph_batches=(1, 6), half=half)
    try:
        np.testing.assert_allclose(s.score(batch), ref, atol=tol)  # captured graph
        np.testing.assert_allclose(s.score(batch[:1]), ref[:1], atol=tol)  # captured graph
        np.testing.assert_allclose(s.score(batch[:3]), ref[:3], atol=tol)  # eager fallback
        # a replay must see the new input, not the captured one
        np.testing.assert_allclose(s.score(batch[1:2]), ref[1:2], atol=tol)
    finally:
        s.close()
