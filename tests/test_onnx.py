"""ONNX export: the graph checks, carries the metadata, and ONNX Runtime (real, CPU EP)
agrees with torch within 1e-4.

The "pre-processed" input here is a structured synthetic ROI, NOT one made by
realtime.features.pair_input (not available when this test was written): two drawn
grey faces (the second with raised mouth corners and brows), real OpenCV Farneback flow
with the project's FlowSettings, HS encoding, brow band on top / mouth band below,
then (pixel - 127.5) / 128. It has the value range and structure of a real input.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines.lgnmnet import LGNMNet
from engines.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_metadata
from engines.weights import WeightsMeta, file_sha256, save_weights
from realtime.errors import UserError
from realtime.types import FlowSettings


def _face(mouth_lift: float, brow_lift: float) -> np.ndarray:
    img = np.full((112, 112), 90, np.uint8)
    cv2.ellipse(img, (56, 58), (44, 54), 0, 0, 360, 170, -1)
    for x in (36, 76):
        cv2.ellipse(img, (x, 44), (9, 5), 0, 0, 360, 40, -1)  # eyes
        cv2.line(img, (x - 12, int(32 - brow_lift)), (x + 12, int(30 - brow_lift)), 60, 3)  # brows
    pts = np.array([[36, 84 - mouth_lift], [56, 90], [76, 84 - mouth_lift]], np.int32)
    cv2.polylines(img, [pts], False, 50, 3)
    rng = np.random.default_rng(0)  # fixed skin texture so that flow has something to track
    return cv2.GaussianBlur(np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8), (3, 3), 0)


def structured_roi() -> np.ndarray:
    """(3,112,112) float32, normalised like the network input (see module docstring)."""
    fs = FlowSettings()
    a, b = _face(0, 0), _face(5, 3)
    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if fs.gaussian_window else 0
    flow = cv2.calcOpticalFlowFarneback(a, b, None, fs.pyr_scale, fs.levels, fs.winsize,
                                        fs.iterations, fs.poly_n, fs.poly_sigma, flags)
    flow = np.clip(flow, -fs.clip, fs.clip)
    mag, ang = cv2.cartToPolar(flow[..., 0], flow[..., 1])
    hsv = np.zeros((112, 112, 3), np.uint8)
    hsv[..., 0] = ang * 180 / np.pi / 2
    hsv[..., 1] = 255
    hsv[..., 2] = cv2.normalize(mag, None, 0, 255, cv2.NORM_MINMAX)
    bgr = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    roi = np.vstack([cv2.resize(bgr[20:56], (112, 56)), cv2.resize(bgr[70:102], (112, 56))])
    return ((roi.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1).copy()


def sensitive_net(seed: int) -> LGNMNet:
    """An untrained LGNMNet whose P(expression) varies with the input (else agreement
    tests would compare saturated constants): BN statistics from one batch (momentum 1,
    so ReLU6 does not saturate everywhere) and two nearby class centres (so that the
    scale-64 softmax is not pinned at 0 or 1)."""
    torch.manual_seed(seed)
    net = LGNMNet()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 112, 112) * 0.6)
        net.head.weight[1] = net.head.weight[0] + 0.01 * torch.randn(net.head.weight.shape[1])
    return net.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[LGNMNet, Path, Path]:
    net = sensitive_net(3)
    d = tmp_path_factory.mktemp("onnx")
    meta = WeightsMeta(type="MaE", k=18, fps=30.0, k_seconds=0.6, flow=FlowSettings(), post={"threshold": 0.5})
    w = save_weights(net, meta, d / "mae.safetensors")
    return net, w, export_onnx(w, d / "mae.onnx")


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def test_graph_interface_and_metadata(exported: tuple[LGNMNet, Path, Path]) -> None:
    _, w, path = exported
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "roi" and out.name == "p_expression"
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 112, 112]
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    meta = onnx_metadata(path)
    assert json.loads(meta["lgnm"])["type"] == "MaE"
    assert meta["weights_sha256"] == file_sha256(w)


@pytest.mark.parametrize("batch", [1, 5])
def test_onnxruntime_matches_torch_on_random_inputs(exported: tuple[LGNMNet, Path, Path], batch: int) -> None:
    net, _, path = exported
    x = np.random.default_rng(batch).normal(0, 0.6, (batch, 3, 112, 112)).astype(np.float32)
    with torch.no_grad():
        ref = net.predict_proba(torch.from_numpy(x)).numpy()
    assert batch == 1 or ref.std() > 1e-3, "test model must not give a constant score"
    got = _ort(path, x)
    assert got.shape == (batch,) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)


def test_onnxruntime_matches_torch_on_structured_roi(exported: tuple[LGNMNet, Path, Path]) -> None:
    net, _, path = exported
    roi = structured_roi()
    assert roi.min() >= -1.0 and roi.max() <= 1.0 and roi.std() > 0.05
    x = np.stack([roi, roi[:, ::-1].copy()])  # the ROI and its vertical flip
    with torch.no_grad():
        ref = net.predict_proba(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(path, x), ref, atol=1e-4, rtol=0)


def test_low_opset_refused(exported: tuple[LGNMNet, Path, Path], tmp_path: Path) -> None:
    _, w, _ = exported
    with pytest.raises(UserError, match="--opset"):
        export_onnx(w, tmp_path / "x.onnx", opset=13)
