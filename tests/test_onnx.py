"""ONNX export: the graph checks, carries the metadata, and ONNX Runtime (real, CPU EP)
agrees with torch within 1e-4, on random inputs and on a real pre-processed input:
engines.features.pair_input of a real face photo (matplotlib's grace_hopper.jpg, real
FaceMesh landmarks and alignment) and the same photo with the mouth region moved 2 px
down (a local "expression" motion, no head motion).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from engines import features as ft
from engines.lgnmnet import LGNMNet
from engines.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_metadata
from engines.weights import WeightsMeta, file_sha256, save_weights
from realtime import face as fl
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, FlowSettings

from media import sensitive_net


def real_pair_inputs() -> np.ndarray:
    """(2,3,112,112): pair_input for a mouth motion and for a brow motion."""
    img = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    with fl.FaceLandmarker(static_image_mode=True) as mesh:
        face = fl.align_face(img, mesh.detect(img), 224)
    assert face is not None
    geometry = ft.face_geometry(face.landmarks, 224)
    shifted = cv2.warpAffine(face.grey, np.float32([[1, 0, 0], [0, 1, 2]]), face.grey.shape[::-1],
                             flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    out = []
    for x0, y0, x1, y1 in (geometry.mouth_box, geometry.brow_box):
        grey = face.grey.copy()
        grey[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6] = shifted[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6]
        moved = AlignedFace(grey=grey, landmarks=face.landmarks, matrix=face.matrix)
        out.append(ft.pair_input(face, moved, FlowSettings()))
    return np.stack(out)


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


def test_onnxruntime_matches_torch_on_real_preprocessed_input(exported: tuple[LGNMNet, Path, Path]) -> None:
    net, _, path = exported
    x = real_pair_inputs()
    assert x.dtype == np.float32 and x.shape == (2, 3, 112, 112) and x.std() > 0.01
    with torch.no_grad():
        ref = net.predict_proba(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(path, x), ref, atol=1e-4, rtol=0)


def test_low_opset_refused(exported: tuple[LGNMNet, Path, Path], tmp_path: Path) -> None:
    _, w, _ = exported
    with pytest.raises(UserError, match="--opset"):
        export_onnx(w, tmp_path / "x.onnx", opset=13)
