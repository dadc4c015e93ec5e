"""`lgnm-train --folds loso --ray`: the folds as tasks on a real local Ray cluster give
the sequential run's fold table and weights (tiny real set, a few optimiser steps)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

ray = pytest.importorskip("ray")

from test_train import EXPR, _face, _video  # noqa: E402

from realtime.common.types import Interval  # noqa: E402
from tools.train import TrainConfig, TrainVideo, build_parser, run_type  # noqa: E402


def weights_of(path: Path) -> tuple[dict, dict]:
    """Tensors (as bytes) and metadata of a weights file, less its creation time."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        meta = json.loads(fh.metadata()["lgnm"])
        tensors = {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys()}
    meta.pop("created")
    return tensors, meta


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_folds_on_ray_give_the_sequential_table_and_weights(cluster, tmp_path: Path) -> None:
    from realtime.face import FaceLandmarker

    face = _face()
    with FaceLandmarker(static_image_mode=True) as lm:
        mouth = tuple(lm.detect(face)[[13, 14]].mean(axis=0))
    videos = [TrainVideo(f"v{i}", f"s{i}", 30.0, _video(face, mouth, 32, amp), [Interval(f"v{i}", "ME", *EXPR)])
              for i, amp in enumerate((4.0, 5.0, 6.0))]  # three subjects: three LOSO folds
    cfg = TrainConfig(epochs=2, batch=8, max_steps=2, quiet=True, seed=3)
    outputs = {}
    for mode, extra in (("sequential", []), ("ray", ["--ray"])):
        out = tmp_path / mode
        args = build_parser().parse_args(
            ["--dataset", "synth", "--data", str(tmp_path), "--out", str(out), "--cache", str(tmp_path / "cache"),
             "--folds", "loso", "--val-frac", "0", "--batch", "8", "--seed", "3", *extra])
        console = Console(record=True, width=200, quiet=False, file=open("/dev/null", "w"))
        path, pooled = run_type(videos, "ME", args, cfg, console)
        lines = [line for line in console.export_text().splitlines() if line.startswith("  fold") or "│" in line]
        outputs[mode] = (weights_of(path), pooled, lines)
    assert len([line for line in outputs["sequential"][2] if line.startswith("  fold")]) == 3
    assert any("pooled" in line for line in outputs["sequential"][2])
    assert outputs["ray"][1] == outputs["sequential"][1]  # pooled MEGC counts
    assert outputs["ray"][2] == outputs["sequential"][2]  # per-fold lines and the table
    assert outputs["ray"][0] == outputs["sequential"][0]  # the final weights: tensors and metadata


def test_train_ray_without_ray_installed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    from tools.train import main

    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path), "--ray"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --ray: Ray is not installed (pip install 'lgnm-live[ray]')"
