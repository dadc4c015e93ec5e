"""Training-free baseline scorer: ROI flow magnitude at the pair (i, i+K).

What it is. The classic training-free spotters score a frame pair by how much the face
moves inside the regions where expressions happen: MDMD (main directional mean optical
flow; Liu et al., "A main directional mean optical flow feature for spontaneous
micro-expression recognition", IEEE TAC 2016, used for spotting in the MEGC baselines)
pools the optical flow of facial ROIs, and Moilanen et al. ("Spotting rapid facial
movements from videos using appearance-based feature difference analysis", ICPR 2014;
the MEGC2019/2020 baseline) score frame i by the difference between frame i and the
frames K away, then spot peaks of that curve with a threshold. This scorer takes the
second idea's pairing (i, i+K, the same K as LGNMNet) and the first idea's measure
(flow magnitude pooled over the brow and mouth ROIs), on the same pre-processed input as
the network: dense flow, head motion removed at the nose, eyes masked. It is what
LGNMNet is compared with: the same pipeline with the network replaced by a fixed formula.

What it is not. Not MDMD itself (no main-direction histogram per ROI cell, no direction
at all: only magnitude), not Moilanen's LBP/HOOF chi-squared feature difference, and not
trained: its only fitted numbers are `fraction`, `e0` and the post-processing, chosen on
labelled validation videos by `tools/make_baseline_weights.py` and `lgnm-calibrate`.

The measure, from the network input the other scorers get (one seam):
x (N,3,S,S) float32 = (img - norm_mean) / norm_std, img the ROI image (BGR, 0..255)
after HS encoding, head-motion removal and eye masking (`engines.features.encode_pair`).
1. img = x * norm_std + norm_mean (128 and 127.5), clipped to 0..255.
2. v = max over the 3 channels, per pixel, (N,S,S). For the HS image (saturation 255)
   max(B,G,R) equals the HSV value exactly, i.e. the flow magnitude
   255 * (|flow| - lo) / max(hi - lo, value_floor) with lo/hi the ROI's magnitude range
   (`FlowSettings.value_range` "roi", floor 3 px at 112 px: below 3 px of span, 255 is
   3 px); direction (hue) is dropped. After head-motion removal each channel is
   |channel - its mean over the nose box| (red: only increases), so v is the magnitude
   in excess of the head's own motion (exact while the nose box is still).
3. e = mean of the largest `fraction` of v over the ROI pixels (fraction 1: plain mean;
   the masked eyes are 0s), in value levels 0..255. A smaller fraction pools only the
   moving part, so a brow raise in one corner of the ROI is not diluted by still skin.
4. score = 1 - exp(-e / e0): monotone in e, 0 for no motion, -> 1 for large motion, in
   [0, 1) like P(expression). e0 (value levels) spreads the scores of the calibration
   videos over the threshold grid (0.05..0.95): an exponential rather than e/255
   because typical energies are a small fraction of 255, where e/255 would put every
   frame below the grid's first thresholds.

What the seam loses (and why it is still one seam): absolute magnitude above the 3 px
floor (the ROI's largest motion is always 255 then) and signed changes of red below the
nose's; LGNMNet sees the same loss. A baseline at the flow (raw px) would be a second
product of the pair chain and would no longer compare the two on the same input.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from engines.scorer_input import check_batch
from engines.weights import BASELINE_FORMAT_VERSION, MODEL_FLOW_MAGNITUDE, WeightsMeta, read_meta
from realtime.common.errors import UserError
from realtime.common.types import ExprType, FlowSettings

DEFAULT_FRACTION = 1.0
DEFAULT_E0 = 10.0


def baseline_params(meta: WeightsMeta) -> tuple[float, float]:
    """(fraction, e0) of flow-magnitude weights (validated by WeightsMeta.from_dict)."""
    p = meta.model_params
    return float(p.get("fraction", DEFAULT_FRACTION)), float(p.get("e0", DEFAULT_E0))


def roi_energy(x: np.ndarray, fraction: float = DEFAULT_FRACTION, norm_mean: float = 127.5,
               norm_std: float = 128.0) -> np.ndarray:
    """(N,3,S,S) normalised network input -> (N,) float32 motion energy in value levels
    (0..255): the mean of the largest `fraction` of the per-pixel max channel (steps 1-3
    of the module docstring)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"roi_energy input must be (N,3,S,S), got {x.shape}")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    n = x.shape[0]
    if n == 0:
        return np.empty((0,), np.float32)
    img = np.clip(np.asarray(x, np.float32) * np.float32(norm_std) + np.float32(norm_mean), 0.0, 255.0)
    v = img.max(axis=1).reshape(n, -1)
    if fraction >= 1.0:
        return v.mean(axis=1, dtype=np.float64).astype(np.float32)
    top = max(1, int(round(fraction * v.shape[1])))
    part = np.partition(v, v.shape[1] - top, axis=1)[:, v.shape[1] - top:]
    return part.mean(axis=1, dtype=np.float64).astype(np.float32)


def energy_to_score(e: np.ndarray, e0: float) -> np.ndarray:
    """score = 1 - exp(-e / e0), float32 in [0, 1); e and e0 in value levels, e0 > 0."""
    if not e0 > 0:
        raise ValueError(f"e0 must be > 0, got {e0}")
    return (-np.expm1(-np.maximum(np.asarray(e, np.float64), 0.0) / e0)).astype(np.float32)


def flow_magnitude_scores(x: np.ndarray, meta: WeightsMeta) -> np.ndarray:
    """(N,3,S,S) network input -> (N,) float32 scores of flow-magnitude weights."""
    fraction, e0 = baseline_params(meta)
    return energy_to_score(roi_energy(x, fraction, meta.norm_mean, meta.norm_std), e0)


class FlowMagnitudeScorer:
    """The `Scorer` of flow-magnitude weights: numpy on the CPU for every --backend (there
    is no network to put on a GPU or into TensorRT; a TensorRT engine given for it is not
    used). Cheap: 0.05-0.3 ms per frame p50 on `lgnm-live --replay demo` (2-core CPU)."""

    backend = "numpy-flow-magnitude"

    def __init__(self, weights_path: str | Path) -> None:
        self.meta = read_meta(weights_path)
        if self.meta.model != MODEL_FLOW_MAGNITUDE:
            raise UserError(f"{weights_path}: LGNMNet weights, not a flow-magnitude baseline")
        self.type: ExprType = self.meta.type

    def score(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.meta.roi_size)
        return flow_magnitude_scores(x, self.meta)

    def close(self) -> None:
        pass


class FlowMagnitudeNet(torch.nn.Module):
    """The baseline as a parameter-free torch module, so offline tools that score cached
    inputs with `model.predict_proba` (tools.train.score_inputs: lgnm-calibrate,
    tools.quality) and write weights with `save_weights` (empty tensors, metadata only)
    treat it like an LGNMNet. The formula runs in numpy (`flow_magnitude_scores`)."""

    def __init__(self, meta: WeightsMeta) -> None:
        super().__init__()
        self.meta = meta

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        scores = flow_magnitude_scores(x.detach().float().cpu().numpy(), self.meta)
        return torch.from_numpy(scores).to(x.device)

    forward = predict_proba


def baseline_meta(type_: ExprType, k: int, fps: float, fraction: float, e0: float, post: dict,
                  trained_on: str = "", flow: FlowSettings | None = None) -> WeightsMeta:
    """Metadata of flow-magnitude weights, `post` the post-processing parameters, `flow`
    the flow settings (default `FlowSettings()`; tools/make_baseline_weights.py passes the
    demo weights' own, so that a stream computes one flow for both kinds)."""
    if not (0.0 < fraction <= 1.0 and math.isfinite(e0) and e0 > 0):
        raise ValueError(f"need 0 < fraction <= 1 and e0 > 0, got {fraction}, {e0}")
    return WeightsMeta(type=type_, k=k, fps=fps, k_seconds=k / fps, flow=flow or FlowSettings(), post={**post, "k": k},
                       score="1-exp(-roi_energy/e0)", trained_on=trained_on, model=MODEL_FLOW_MAGNITUDE,
                       model_params={"fraction": float(fraction), "e0": float(e0)},
                       format_version=BASELINE_FORMAT_VERSION)
