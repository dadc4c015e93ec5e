"""The network input every scorer takes, checked in one place (torch, ONNX Runtime,
TensorRT and the baseline call it)."""

from __future__ import annotations

import numpy as np


def check_batch(x: np.ndarray, roi_size: int) -> np.ndarray:
    """Validate a score() batch; returns it C-contiguous. Wrong input is a programming
    error of the caller (not a user mistake), hence ValueError."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise ValueError(f"scorer input must be a float32 ndarray, got {getattr(x, 'dtype', type(x))}")
    if x.ndim != 4 or x.shape[1:] != (3, roi_size, roi_size):
        raise ValueError(f"scorer input must be (N,3,{roi_size},{roi_size}), got {x.shape}")
    return np.ascontiguousarray(x)
