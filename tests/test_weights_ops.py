"""tools.weights_ops: checkpoint averaging and re-timing on real weights files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from engines.lgnmnet import LGNMNet
from engines.scorers import make_cpu_scorer
from engines.weights import WeightsMeta, load_weights, read_meta, save_weights
from realtime.common.types import FlowSettings
from realtime.pipeline import setup_for_fps
from tools import weights_ops


def _meta(k: int = 6, trained_on: str = "run a") -> WeightsMeta:
    return WeightsMeta(
        type="ME", k=k, fps=30.0, k_seconds=k / 30.0, flow=FlowSettings(),
        post={"tiny": 0.6, "win": 11, "order": 0, "threshold": 0.3, "drop_inside_mae": True},
        trained_on=trained_on,
    )


def _net(seed: int) -> LGNMNet:
    torch.manual_seed(seed)
    net = LGNMNet()
    net.train()  # distinct BatchNorm statistics per network
    with torch.no_grad():
        net(torch.randn(4, 3, 112, 112))
    return net.eval()


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("w")
    a, b = d / "a.safetensors", d / "b.safetensors"
    save_weights(_net(1), _meta(), a)
    save_weights(_net(2), _meta(trained_on="run b"), b)
    return a, b


def test_average_is_the_elementwise_mean(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "soup.safetensors"
    assert weights_ops.main(["average", str(pair[0]), str(pair[1]), "--out", str(out), "--no-half"]) == 0
    soup, meta = load_weights(out)
    (na, _), (nb, _) = load_weights(pair[0]), load_weights(pair[1])
    sa, sb, ss = na.state_dict(), nb.state_dict(), soup.state_dict()
    for name, t in ss.items():
        if t.is_floating_point():
            assert torch.allclose(t, (sa[name] + sb[name]) / 2, atol=1e-6), name
        else:  # BatchNorm's counters are not averaged
            assert torch.equal(t, sa[name])
    assert not torch.equal(ss["fc.weight"], sa["fc.weight"])
    assert meta.k == 6 and meta.post == _meta().post
    assert "run a" in meta.trained_on and "run b" in meta.trained_on


def test_average_refuses_other_k_and_writing_over_an_input(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "k7.safetensors"
    save_weights(_net(3), _meta(k=7), other)
    assert weights_ops.main(["average", str(pair[0]), str(other), "--out", str(tmp_path / "x.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: average:") and "K=7" in err and err.count("\n") == 1
    assert not (tmp_path / "x.safetensors").exists()
    assert weights_ops.main(["average", str(pair[0]), str(pair[1]), "--out", str(pair[1])]) == 2
    assert "--out" in capsys.readouterr().err


def test_retime_keeps_tensors_and_matches_a_live_stream_at_that_rate(pair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "at200.safetensors"
    assert weights_ops.main(["retime", str(pair[0]), "--fps", "200", "--out", str(out), "--no-half"]) == 0
    meta = read_meta(out)
    assert (meta.k, meta.fps, meta.k_seconds) == (40, 200.0, 0.2)
    src_net, src_meta = load_weights(pair[0])
    net, _ = load_weights(out)
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(net.predict_proba(x), src_net.predict_proba(x))
    # What lgnm-live would run with the 30 fps file on a 200 fps stream, the re-timed file
    # states explicitly: same K, same window (11 frames at 30 fps -> 73 at 200 fps).
    live = setup_for_fps(make_cpu_scorer(pair[0]), 200.0)
    assert live.k == meta.k and live.params.win == meta.post["win"] == 73
    own = setup_for_fps(make_cpu_scorer(out), 200.0)
    assert dataclasses.asdict(own.params) == dataclasses.asdict(live.params)
    assert src_meta.fps == 30.0  # the input is left alone


def test_retime_refuses_a_bad_rate(pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert weights_ops.main(["retime", str(pair[0]), "--fps", "0", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "--fps" in capsys.readouterr().err
