"""lgnm-build-engine: sidecar contents, compatibility, CLI errors without TensorRT, and
the builder call sequence against a FAKE tensorrt module (TensorRT cannot be installed
here: its wheels fetch from NVIDIA's unreachable index). The real build + run test is
marked tensorrt/gpu and skipped unless TensorRT and CUDA import."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from engines.build_engine import build_serialized_engine, default_engine_path, main, make_sidecar
from engines.engine_meta import check_engine_compat, read_sidecar, sidecar_path, write_sidecar
from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, file_sha256, save_weights
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings

from media import sensitive_net

FACTS = dict(tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability="9.0")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    meta = WeightsMeta(type="MaE", k=18, fps=30.0, k_seconds=0.6, flow=FlowSettings(), post={"threshold": 0.6})
    return save_weights(sensitive_net(0), meta, tmp_path_factory.mktemp("b") / "mae.safetensors")


def test_sidecar_records_build_facts_and_round_trips(weights: Path, tmp_path: Path) -> None:
    sc = make_sidecar(weights, "fp16", 64, **FACTS)
    assert sc.weights_sha256 == file_sha256(weights)
    assert sc.weights_meta["type"] == "MaE" and sc.weights_meta["post"] == {"threshold": 0.6}
    assert sc.input_shape == (3, 112, 112) and sc.input_name == "roi" and sc.max_batch == 64
    engine = tmp_path / "mae.fp16.engine"
    assert write_sidecar(engine, sc) == sidecar_path(engine) == tmp_path / "mae.fp16.engine.json"
    back = read_sidecar(engine)
    assert back == sc
    check_engine_compat(back, engine, weights_sha256=file_sha256(weights), **FACTS)


def test_engine_from_retrained_weights_is_refused(weights: Path, tmp_path: Path) -> None:
    engine = tmp_path / "e.engine"
    write_sidecar(engine, make_sidecar(weights, "fp32", 8, **FACTS))
    retrained = save_weights(LGNMNet().eval(), WeightsMeta("MaE", 18, 30.0, 0.6, FlowSettings()), tmp_path / "mae.safetensors")
    with pytest.raises(UserError, match="e.engine: engine was built from other weights"):
        check_engine_compat(read_sidecar(engine), engine, weights_sha256=file_sha256(retrained), **FACTS)


def test_missing_or_bad_sidecar(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="x.engine.json: engine sidecar not found"):
        read_sidecar(tmp_path / "x.engine")
    (tmp_path / "y.engine.json").write_text('{"precision": "int4"}')
    with pytest.raises(UserError, match="y.engine.json: invalid engine sidecar"):
        read_sidecar(tmp_path / "y.engine")


def test_default_engine_path() -> None:
    assert default_engine_path(Path("w/me.safetensors"), "int8") == Path("w/me.int8.engine")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--precision", "int8"], "--calib: required"),
        (["--precision", "fp16", "--max-batch", "0"], "--max-batch"),
        (["--precision", "fp16", "--calib", "r.npy"], "--calib: only used with --precision int8"),
    ],
)
def test_cli_option_mistakes_exit_2(weights: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--weights", str(weights), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_missing_weights_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--weights", str(tmp_path / "none.safetensors"), "--precision", "fp32"]) == 2
    assert "none.safetensors" in capsys.readouterr().err


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when TensorRT is absent")
def test_cli_without_tensorrt_is_one_line_exit_2(weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--weights", str(weights), "--precision", "fp16", "--out", str(tmp_path / "e.engine")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: tensorrt: not installed") and err.count("\n") == 1
    assert not (tmp_path / "e.engine").exists()


def _fake_tensorrt(parse_ok: bool = True) -> tuple[types.ModuleType, dict]:
    """A stand-in for the tensorrt module recording what the builder code asks for.
    MOCK: used only because TensorRT cannot be installed here."""
    seen: dict = {"flags": set(), "shapes": None}

    class Obj:
        def __init__(self, **kw: object) -> None:
            self.__dict__.update(kw)

    class Profile:
        def set_shape(self, name: str, lo: tuple, opt: tuple, hi: tuple) -> None:
            seen["shapes"] = (name, lo, opt, hi)

    class Config:
        int8_calibrator = None

        def set_memory_pool_limit(self, pool: str, size: int) -> None:
            seen["workspace"] = size

        def add_optimization_profile(self, p: Profile) -> int:
            seen["profile"] = p
            return 0

        def set_flag(self, flag: str) -> None:
            seen["flags"].add(flag)

        def set_calibration_profile(self, p: Profile) -> None:
            seen["calib_profile"] = p

    class Tensor:
        def __init__(self, dtype: str) -> None:
            self.dtype = dtype

    class Layer:
        def __init__(self, kind: str, dtype: str = "float32") -> None:
            self.type, self.precision, self.num_outputs = kind, None, 1
            self._out, self.output_types = [Tensor(dtype)], {}

        def get_output(self, j: int) -> Tensor:
            return self._out[j]

        def set_output_type(self, j: int, dtype: str) -> None:
            self.output_types[j] = dtype

    class Network:
        def __init__(self) -> None:
            # conv, conv, (tail:) activation, shape arithmetic (int64), matmul, softmax
            self.layers = [Layer("conv"), Layer("conv"), Layer("act"), Layer("shape", "int64"), Layer("matmul"), Layer("softmax")]
            self.num_layers = len(self.layers)
            seen["layers"] = self.layers

        def get_layer(self, i: int) -> Layer:
            return self.layers[i]

    class Builder:
        def __init__(self, logger: object) -> None:
            pass

        def create_network(self, flags: int) -> Network:
            seen["network_flags"] = flags
            return Network()

        def create_builder_config(self) -> Config:
            seen["config"] = Config()
            return seen["config"]

        def create_optimization_profile(self) -> Profile:
            return Profile()

        def build_serialized_network(self, network: object, config: Config) -> bytes:
            seen["calibrator"] = config.int8_calibrator
            return b"ENGINE"

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network: object, logger: object) -> None:
            pass

        def parse(self, data: bytes) -> bool:
            seen["onnx"] = data
            return parse_ok

        def get_error(self, i: int) -> str:
            return "unsupported op Foo"

    trt = types.ModuleType("tensorrt")
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})  # type: ignore[attr-defined]
    trt.Builder, trt.OnnxParser = Builder, Parser  # type: ignore[attr-defined]
    trt.MemoryPoolType = Obj(WORKSPACE="workspace")  # type: ignore[attr-defined]
    trt.BuilderFlag = Obj(FP16="fp16", INT8="int8", PREFER_PRECISION_CONSTRAINTS="prefer")  # type: ignore[attr-defined]
    trt.LayerType = Obj(CONVOLUTION="conv")  # type: ignore[attr-defined]
    trt.float32 = "float32"  # type: ignore[attr-defined]
    return trt, seen


@pytest.mark.parametrize(
    "precision, flags", [("fp32", set()), ("fp16", {"fp16", "prefer"}), ("int8", {"fp16", "prefer", "int8"})]
)
def test_builder_calls_with_fake_tensorrt(monkeypatch: pytest.MonkeyPatch, precision: str, flags: set) -> None:
    trt, seen = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    calib = object() if precision == "int8" else None
    steps: list[str] = []
    out = build_serialized_engine(b"ONNX", precision, 32, 112, calib, steps.append)  # type: ignore[arg-type]
    assert out == b"ENGINE" and seen["onnx"] == b"ONNX" and seen["network_flags"] == 0
    assert seen["shapes"] == ("roi", (1, 3, 112, 112), (1, 3, 112, 112), (32, 3, 112, 112))
    assert seen["flags"] == flags and seen["calibrator"] is calib
    assert (seen.get("calib_profile") is seen["profile"]) == (precision == "int8")
    assert steps and steps[-1].startswith("building")
    # reduced precision: float layers after the last convolution pinned to fp32
    pinned = [layer.type for layer in seen["layers"] if layer.precision == "float32"]
    assert pinned == ([] if precision == "fp32" else ["act", "matmul", "softmax"])
    assert all(layer.output_types in ({}, {0: "float32"}) for layer in seen["layers"])


def test_parse_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    trt, _ = _fake_tensorrt(parse_ok=False)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    with pytest.raises(RuntimeError, match="unsupported op Foo"):
        build_serialized_engine(b"ONNX", "fp32", 4)


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision, tol", [("fp32", 1e-3), ("fp16", 0.15)])  # fp16: see test_scorers
def test_real_engine_matches_torch(weights: Path, tmp_path: Path, precision: str, tol: float) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's index is unreachable here)")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from engines.scorers import TorchCpuScorer
    from engines.trt_runtime import TensorRTScorer

    engine = tmp_path / f"mae.{precision}.engine"
    assert main(["--weights", str(weights), "--precision", precision, "--out", str(engine), "--max-batch", "8"]) == 0
    x = np.random.default_rng(0).normal(0, 0.6, (11, 3, 112, 112)).astype(np.float32)  # > max batch: chunked
    s = TensorRTScorer(weights, engine)
    try:
        np.testing.assert_allclose(s.score(x), TorchCpuScorer(weights).score(x), atol=tol)
        np.testing.assert_allclose(s.score(x[:1]), TorchCpuScorer(weights).score(x[:1]), atol=tol)
    finally:
        s.close()
    other = save_weights(LGNMNet().eval(), WeightsMeta("MaE", 18, 30.0, 0.6, FlowSettings()), tmp_path / "other.safetensors")
    with pytest.raises(UserError, match="other weights"):
        TensorRTScorer(other, engine)
