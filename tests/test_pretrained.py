"""`--backbone-weights`: ImageNet MobileNetV2 weights in torchvision's layout start the
backbone. The real ImageNet file cannot be downloaded here, so the checkpoints are real
MobileNetV2 feature tensors (a differently seeded network) written in torchvision's key
layout and containers; key names were checked against torchvision's published layout
(features.N.conv.M..., features.18.0.weight, classifier.1.*)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from safetensors.torch import save_file

from engines.mobilenetv2 import mobilenet_v2_features
from engines.pretrained import load_backbone_state
from realtime.common.errors import UserError
from tools.features_cache import CachedInputs
from tools.train import Prepared, TrainConfig, TrainVideo, _start_note, build_parser, main, train_model


class NotATensor:
    """A pickled object: a weights-only load must refuse to build it."""


def _torchvision_state(seed: int = 7, half: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    feats = mobilenet_v2_features()
    with torch.no_grad():  # BN statistics away from the 0/1 defaults, as in trained weights
        for m in feats.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    state = {f"features.{k}": (v.half() if half and v.is_floating_point() else v) for k, v in feats.state_dict().items()}
    state["classifier.1.weight"] = torch.randn(1000, 1280)
    state["classifier.1.bias"] = torch.zeros(1000)
    return state


def _assert_same(loaded: dict[str, torch.Tensor], source: dict[str, torch.Tensor]) -> None:
    assert set(loaded) == {k.removeprefix("features.") for k in source if k.startswith("features.")}
    for k, v in loaded.items():
        torch.testing.assert_close(v, source[f"features.{k}"].to(v.dtype), rtol=0, atol=0)


def test_torchvision_layout_loads_from_pth_safetensors_and_wrapped(tmp_path: Path) -> None:
    source = _torchvision_state()
    pth = tmp_path / "mobilenet_v2-test.pth"
    torch.save(source, pth)
    _assert_same(load_backbone_state(pth), source)

    st = tmp_path / "mobilenet_v2.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(st))
    _assert_same(load_backbone_state(st), source)

    wrapped = tmp_path / "ckpt.pt"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in source.items()}}, wrapped)
    _assert_same(load_backbone_state(wrapped), source)
    assert all(v.dtype != torch.float16 for v in load_backbone_state(pth).values())  # trains in fp32


def test_refusals_name_the_file(tmp_path: Path) -> None:
    source = _torchvision_state()
    with pytest.raises(UserError, match="not found"):
        load_backbone_state(tmp_path / "absent.pth")

    evil = tmp_path / "evil.pth"
    torch.save({"features.0.0.weight": NotATensor()}, evil)
    with pytest.raises(UserError, match=r"evil\.pth.*weights-only"):
        load_backbone_state(evil)

    narrow = dict(source)
    narrow["features.0.0.weight"] = torch.zeros(16, 3, 3, 3)  # a width-0.5 stem
    torch.save(narrow, tmp_path / "narrow.pth")
    with pytest.raises(UserError, match=r"narrow\.pth: features\.0\.0\.weight has shape \(16, 3, 3, 3\)"):
        load_backbone_state(tmp_path / "narrow.pth")

    short = {k: v for k, v in source.items() if not k.startswith("features.18.")}
    torch.save(short, tmp_path / "short.pth")
    with pytest.raises(UserError, match=r"short\.pth: not a width-1.0 MobileNetV2 backbone: 6 missing"):
        load_backbone_state(tmp_path / "short.pth")

    torch.save({"conv_stem.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "timm.pth")  # another layout
    with pytest.raises(UserError, match=r"timm\.pth: no MobileNetV2 'features\.\*' tensors"):
        load_backbone_state(tmp_path / "timm.pth")

    (tmp_path / "text.safetensors").write_text("not tensors")
    with pytest.raises(UserError, match=r"text\.safetensors: not a readable safetensors file"):
        load_backbone_state(tmp_path / "text.safetensors")


def _prepared_noise(n: int = 24) -> list[Prepared]:
    """Random network inputs with a few positives: this test is about where the weights
    start, not about what they learn."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 112, 112)).astype(np.float16)
    labels = np.zeros(n, bool)
    labels[8:14] = True
    inputs = CachedInputs("v0", "ME", 3, x, np.ones(n, bool))
    return [Prepared(TrainVideo("v0", "s1", 30.0, [], []), inputs, labels)]


def test_training_starts_from_the_backbone_weights(tmp_path: Path) -> None:
    source = _torchvision_state(half=False)
    torch.save(source, tmp_path / "mnv2.pth")
    backbone = load_backbone_state(tmp_path / "mnv2.pth")
    frozen = TrainConfig(epochs=1, batch=8, lr=1e-12, max_steps=1, quiet=True)  # one step that moves no weight
    res = train_model(_prepared_noise(), [], "ME", 3, frozen, Console(quiet=True), backbone=backbone)
    got = res.model.backbone.state_dict()
    for k in ("0.0.weight", "7.conv.1.0.weight", "18.0.weight", "18.1.weight"):
        torch.testing.assert_close(got[k].cpu(), backbone[k], rtol=0, atol=1e-6)
    fresh = train_model(_prepared_noise(), [], "ME", 3, frozen, Console(quiet=True))
    assert not torch.allclose(fresh.model.backbone.state_dict()["0.0.weight"].cpu(), backbone["0.0.weight"])


def test_cli_records_the_backbone_and_refuses_it_with_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save(_torchvision_state(), tmp_path / "mobilenet_v2-b0353104.pth")
    args = build_parser().parse_args(
        ["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path),
         "--backbone-weights", str(tmp_path / "mobilenet_v2-b0353104.pth")]
    )  # fmt: skip
    note = _start_note(args)
    assert note.startswith(", backbone mobilenet_v2-b0353104.pth sha256 ") and len(note.split()[-1]) == 12
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path), "--type", "ME",
                 "--init", "w.safetensors", "--backbone-weights", "b.pth"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--backbone-weights" in err and "--init" in err
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path),
                 "--backbone-weights", str(tmp_path / "absent.pth")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--backbone-weights" in err and "absent.pth" in err
