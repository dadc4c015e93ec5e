"""Temperature scaling of a binary classifier's probability (Guo, Pleiss, Sun & Weinberger
2017, "On Calibration of Modern Neural Networks", ICML, section 4.2).

LGNMNet's P(expression) is softmax(64 * cos) over two classes, i.e. sigmoid(m) of the
logit margin m = 64 (cos_1 - cos_0); MagFace's scale makes it nearly 0 or 1 on most
frames, so a score of 0.99 says little. One scalar T > 0, fitted on labelled validation
frames by minimising the negative log-likelihood of sigmoid(m / T), makes P mean what it
says on data like the validation set without changing which side of 0.5 a frame is on
(the ranking of frames is unchanged; the post-processing's smoothing and thresholds see
graded scores instead of flips between 0 and 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_expit

# Bounds of the search: T below 0.05 or above 100 means the margins carry no usable
# calibration signal (all frames one class, or margins of a broken network).
T_MIN, T_MAX = 0.05, 100.0


@dataclass(frozen=True, slots=True)
class TemperatureFit:
    """A fitted temperature and the mean NLL (nats per frame) at T = 1 and at it."""

    temperature: float
    nll_before: float
    nll_after: float
    frames: int
    positives: int
    at_bound: bool = False  # T at the search's edge: the margins carry little calibration signal


def binary_nll(margins: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of sigmoid(margins / T) for 0/1 `labels`.

    margins, labels: (N,) float and bool/0-1 arrays of one length; N >= 1."""
    z = np.asarray(margins, np.float64) / temperature
    y = np.asarray(labels, bool)
    return float(-(log_expit(z[y]).sum() + log_expit(-z[~y]).sum()) / len(z))


def fit_temperature(margins: np.ndarray, labels: np.ndarray) -> TemperatureFit:
    """The T in [T_MIN, T_MAX] minimising `binary_nll` (bounded Brent search on log T).

    margins: (N,) logit margins at T = 1 (`engines.lgnmnet.LGNMNet.margin`) of labelled
    frames; labels: (N,) their IRL labels (`realtime.labels.irl_labels`).
    Raises ValueError for empty or mismatched arrays, non-finite margins, or labels of
    one class only (no calibration can be read from them)."""
    m = np.asarray(margins, np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if m.shape != y.shape or m.size == 0:
        raise ValueError(f"margins and labels must be non-empty and of one length, got {m.size} and {y.size}")
    if not np.isfinite(m).all():
        raise ValueError("margins must be finite")
    positives = int(y.sum())
    if positives in (0, y.size):
        raise ValueError("the labelled frames are all of one class; a temperature needs both")
    res = minimize_scalar(lambda log_t: binary_nll(m, y, math.exp(log_t)),
                          bounds=(math.log(T_MIN), math.log(T_MAX)), method="bounded",
                          options={"xatol": 1e-4})
    t = float(math.exp(res.x))
    return TemperatureFit(t, binary_nll(m, y, 1.0), binary_nll(m, y, t), int(y.size), positives,
                          at_bound=not (T_MIN * 1.01 < t < T_MAX * 0.99))
