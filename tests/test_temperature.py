"""Temperature scaling of P(expression) (calibration/temperature.py, LGNMNet.temperature,
lgnm-calibrate --temperature fit): the fit recovers a known temperature, the weights file
carries it to every loader, and the calibration CLI fits and stores it."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from calibration.temperature import binary_nll, fit_temperature
from engines.lgnmnet import LGNMNet
from engines.scorers import TorchCpuScorer
from engines.weights import WeightsMeta, load_weights, read_meta, save_weights
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings


@pytest.mark.parametrize("true_t", [0.5, 4.0, 20.0])
def test_fit_recovers_the_temperature_that_made_the_labels(true_t: float) -> None:
    rng = np.random.default_rng(1)
    margins = rng.normal(0.0, 12.0, 40_000)
    labels = rng.random(margins.size) < 1.0 / (1.0 + np.exp(-margins / true_t))
    fit = fit_temperature(margins, labels)
    assert fit.temperature == pytest.approx(true_t, rel=0.08)
    assert fit.nll_after <= fit.nll_before and fit.frames == margins.size and fit.positives == int(labels.sum())


def test_nll_is_torchs_binary_cross_entropy() -> None:
    rng = np.random.default_rng(2)
    m, y = rng.normal(0, 30, 500), rng.random(500) < 0.2  # margins far past float saturation
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor(m / 4.0), torch.tensor(y, dtype=torch.float64))
    assert binary_nll(m, y, 4.0) == pytest.approx(float(want), rel=1e-9)


@pytest.mark.parametrize(("margins", "labels", "match"), [
    (np.zeros(5), np.zeros(5, bool), "one class"),
    (np.zeros(5), np.ones(4, bool), "one length"),
    (np.array([0.0, np.inf]), np.array([True, False]), "finite"),
    (np.zeros(0), np.zeros(0, bool), "non-empty"),
])
def test_fit_refuses_what_cannot_be_calibrated(margins: np.ndarray, labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fit_temperature(margins, labels)


def _weights(tmp_path: Path, params: dict) -> Path:
    torch.manual_seed(0)
    meta = WeightsMeta(type="MaE", k=18, fps=30.0, k_seconds=0.6, flow=FlowSettings(), model_params=params)
    return save_weights(LGNMNet(), meta, tmp_path / "w.safetensors")


def test_a_stored_temperature_divides_the_margin_on_every_loader(tmp_path: Path) -> None:
    path = _weights(tmp_path, {"temperature": 5.0})
    net, meta = load_weights(path)
    assert net.temperature == 5.0 and meta.model_params == {"temperature": 5.0}
    x = torch.randn(6, 3, 112, 112)
    with torch.no_grad():
        want = torch.sigmoid(net.margin(x) / 5.0).numpy()
        np.testing.assert_allclose(net.predict_proba(x).numpy(), want, atol=1e-6)
    scorer = TorchCpuScorer(path)
    try:
        np.testing.assert_allclose(scorer.score(x.numpy()), want, atol=1e-6)
    finally:
        scorer.close()
    with safe_open(str(path), framework="pt") as f:  # older programs refuse it by version
        assert json.loads(f.metadata()["lgnm"])["format_version"] >= 2


def test_files_without_a_temperature_load_at_one(tmp_path: Path) -> None:
    net, meta = load_weights(_weights(tmp_path, {}))
    assert net.temperature == 1.0 and meta.model_params == {}


@pytest.mark.parametrize("params", [{"temperature": 0}, {"temperature": -2.0}, {"temperature": "4"},
                                    {"temperature": float("nan")}, {"scale": 32.0}])
def test_bad_temperatures_are_refused_naming_the_file(tmp_path: Path, params: dict) -> None:
    path = tmp_path / "bad.safetensors"
    meta = WeightsMeta(type="ME", k=6, fps=30.0, k_seconds=0.2, flow=FlowSettings()).to_dict()
    meta.update(model="lgnmnet", model_params=params, format_version=2)
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(path), metadata={"lgnm": json.dumps(meta)})
    with pytest.raises(UserError, match="bad.safetensors.*(temperature|scale)"):
        read_meta(path)


def test_a_file_that_lost_its_temperature_is_readable_by_older_programs(tmp_path: Path) -> None:
    """Averaging drops a stored temperature (tools.weights_ops): the plain LGNMNet file
    it writes carries format_version 1 again, not the 2 of the file it came from."""
    meta = read_meta(_weights(tmp_path, {"temperature": 2.0}))
    plain = save_weights(LGNMNet(), replace(meta, model_params={}), tmp_path / "plain.safetensors")
    with safe_open(str(plain), framework="pt") as f:
        stored = json.loads(f.metadata()["lgnm"])
    assert stored["format_version"] == 1 and "model_params" not in stored
