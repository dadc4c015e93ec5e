"""Any scorer's offline model by its weights file: LGNMNet or the training-free
flow-magnitude baseline (lgnm-calibrate, tools.quality)."""

from __future__ import annotations

from pathlib import Path

import torch

from engines.baseline import FlowMagnitudeNet
from engines.weights import MODEL_FLOW_MAGNITUDE, WeightsMeta, load_weights, read_meta


def load_model(path: str | Path, device: str = "cpu") -> tuple[torch.nn.Module, WeightsMeta]:
    """Any scorer's offline model and metadata: LGNMNet (`load_weights`) or, for a
    flow-magnitude baseline, `engines.baseline.FlowMagnitudeNet`. Both have
    `predict_proba((N,3,S,S) tensor) -> (N,)` and `eval()`, and `save_weights` writes both."""
    meta = read_meta(path)
    if meta.model == MODEL_FLOW_MAGNITUDE:
        return FlowMagnitudeNet(meta).eval(), meta
    return load_weights(path, device)
