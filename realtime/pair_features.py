"""The flow seam of the streaming pipeline: per-frame products and batched pair inputs.

A backend turns an aligned face into its per-frame products once (in the capture
thread) and turns a batch of (earlier, later) product pairs into network inputs
(N,3,112,112) float32. The CPU backend is `realtime.features` (OpenCV Farneback); the
CUDA backend (`engines.cuda_flow`) keeps the products on the device and plugs in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from realtime import features
from realtime.choices import FLOW_KINDS  # noqa: F401 (re-exported)
from realtime.errors import UserError
from realtime.types import AlignedFace, FlowSettings



class PairFeatures(Protocol):
    name: str

    def prepare(self, face: AlignedFace) -> Any: ...

    def inputs(self, pairs: Sequence[tuple[Any, Any]]) -> np.ndarray: ...


class CpuPairFeatures:
    """OpenCV flow + the numpy/OpenCV encoding chain of `realtime.features`."""

    name = "cpu"

    def __init__(self, settings: FlowSettings) -> None:
        self.settings = settings

    def prepare(self, face: AlignedFace) -> features.FlowFrame:
        return features.flow_frame(face, self.settings)

    def inputs(self, pairs: Sequence[tuple[features.FlowFrame, features.FlowFrame]]) -> np.ndarray:
        out = np.empty((len(pairs), 3, features.ROI_SIZE, features.ROI_SIZE), np.float32)
        for i, (a, b) in enumerate(pairs):
            out[i] = features.pair_input_frames(a, b, self.settings)
        return out


def cuda_flow_available() -> bool:
    """True when the CUDA flow module imports and finds a GPU; never raises."""
    try:
        from engines import cuda_flow
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return False
    try:
        return bool(cuda_flow.cuda_available())
    except Exception:  # noqa: BLE001
        return False


def make_pair_features(kind: str, settings: FlowSettings) -> PairFeatures:
    """`--flow auto|cpu|cuda`: auto uses CUDA when a GPU and the kernels are available."""
    if kind not in FLOW_KINDS:
        raise UserError(f"--flow: must be one of {', '.join(FLOW_KINDS)}, got {kind!r}")
    if kind == "auto":
        kind = "cuda" if cuda_flow_available() else "cpu"
    if kind == "cuda":
        if not cuda_flow_available():
            raise UserError("--flow: cuda requested but no CUDA GPU / CuPy / pycuda was found")
        from engines.cuda_flow import CudaPairFeatures

        return CudaPairFeatures(settings)
    return CpuPairFeatures(settings)
