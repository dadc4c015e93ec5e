"""`lgnm-calibrate` end to end on a real (small) synthetic set with real untrained weights:
it re-fits the post-processing, decides the cross-type rule, and leaves the tensors alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from score_shapes import two_bump_videos

from engines.weights import load_weights
from realtime.synthesis.generate import write_dataset
from tools.calibrate import main
from tools.train import load_sets, load_videos

from media import write_random_weights


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("calibrate")
    data = root / "data"
    write_dataset(data, 2, 30.0, ["astronaut"], seed=7, layout="mp4", duration_s=8)
    weights = write_random_weights(root / "weights", threshold=0.55)
    return {"root": root, "data": data, "weights": weights}


def test_recalibrates_both_types_and_keeps_the_tensors(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["root"] / "out"
    rc = main(["--weights", *map(str, setup["weights"]), "--dataset", "synth", "--data", str(setup["data"]),
               "--out", str(out), "--no-half"])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "cross-type rule" in printed and "F1 before" in printed
    for src in setup["weights"]:
        net0, meta0 = load_weights(src)
        net1, meta1 = load_weights(out / src.name)
        assert (meta1.type, meta1.k, meta1.fps, meta1.flow) == (meta0.type, meta0.k, meta0.fps, meta0.flow)
        assert "lgnm-calibrate" in meta1.trained_on
        assert meta1.post["threshold"] is not None and meta1.post["k"] == meta0.k
        assert isinstance(meta1.post["drop_inside_mae"], bool)
        for (name, a), (_, b) in zip(net0.state_dict().items(), net1.state_dict().items()):
            assert torch.equal(a, b), name
    assert (out / "cache").is_dir()  # pair inputs cached for the next run


def test_user_errors_exit_2_with_one_line(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    me, mae = map(str, setup["weights"])
    data = str(setup["data"])
    assert main(["--weights", me, me, "--dataset", "synth", "--data", data, "--out", str(tmp_path)]) == 2
    assert "two ME files" in capsys.readouterr().err
    same = str(Path(me).parent)
    assert main(["--weights", me, "--dataset", "synth", "--data", data, "--out", same]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["--weights", me, "--dataset", "synth", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    at200 = tmp_path / "d200"
    write_dataset(at200, 1, 200.0, ["astronaut"], seed=1, layout="mp4", duration_s=3)
    assert main(["--weights", mae, "--dataset", "synth", "--data", str(at200), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "200" in err and "30" in err and len(err.strip().splitlines()) == 1


def test_pools_several_sets_with_distinct_ids(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "second"
    write_dataset(other, 1, 30.0, ["grace_hopper"], seed=8, layout="mp4", duration_s=8)
    videos = load_sets("synth", [setup["data"], other], None)
    # Both sets name their first video synth_001: pooled, the ids carry the folder.
    assert sorted(v.id for v in videos) == ["data/synth_001", "data/synth_002", "second/synth_001"]
    for v in videos:
        assert v.truth and all(iv.video == v.id for iv in v.truth)
    own = {v.id: v for v in load_videos("synth", other, None)}
    assert [(iv.onset, iv.offset, iv.type) for iv in videos[-1].truth] == \
        [(iv.onset, iv.offset, iv.type) for iv in own["synth_001"].truth]

    out = tmp_path / "out"
    rc = main(["--weights", *map(str, setup["weights"]), "--dataset", "synth", "--data", str(setup["data"]),
               str(other), "--out", str(out), "--cache", str(setup["root"] / "out" / "cache")])  # fmt: skip
    assert rc == 0
    assert "on 3 synth videos" in capsys.readouterr().out
    _, meta = load_weights(out / setup["weights"][0].name)
    assert "3 synth videos (data, second)" in meta.trained_on

    twin = tmp_path / "x" / "data"
    twin.mkdir(parents=True)
    assert main(["--weights", str(setup["weights"][0]), "--dataset", "synth", "--data", str(setup["data"]),
                 str(twin), "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "share a name" in capsys.readouterr().err
    assert main(["--weights", str(setup["weights"][0]), "--dataset", "CAS", "--data", str(setup["data"]), str(other),
                 "--annotations", str(other / "truth.csv"), "--out", str(tmp_path / "o")]) == 2  # fmt: skip
    assert "--annotations" in capsys.readouterr().err


@pytest.mark.parametrize(("rules", "expected"), [(("peaks",), "peaks"), (("runs",), "runs"),
                                                 (("peaks", "runs"), "runs")])
def test_the_fit_searches_the_rules_asked_for(rules: tuple[str, ...], expected: str) -> None:
    """`--interval-rule` reaches the fit: on expressions whose onset and offset motion are
    4.5K apart the runs rule wins when searched, and is never chosen when not."""
    from types import SimpleNamespace

    from rich.console import Console

    from calibration.postprocess import PostParams
    from tools.calibrate import _fit

    k = 18
    seqs, truth = two_bump_videos(k, hold=int(3.5 * k))  # onset and offset motion 4.5K apart
    models = {"MaE": (Path("mae.safetensors"), None, SimpleNamespace(k=k, fps=30.0))}
    before = {"MaE": PostParams(k=k, threshold=0.95, tiny=0.1, win=9, order=2)}
    fitted = _fit({"MaE": seqs}, truth, models, before, False, Console(quiet=True), rules)
    assert fitted["MaE"].rule == expected


def test_interval_rule_option_is_checked(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--weights", str(setup["weights"][0]), "--dataset", "synth", "--data", str(setup["data"]),
              "--out", str(tmp_path), "--interval-rule", "plateau"])  # fmt: skip
    assert exit_.value.code == 2 and "--interval-rule" in capsys.readouterr().err


def test_temperature_fit_stores_a_temperature_and_scores_with_it(setup: dict, capsys: pytest.CaptureFixture[str]) -> None:
    """--temperature fit: each LGNMNet file gets the NLL-optimal temperature of these
    videos' IRL labels in model_params (printed with the NLL before and after); the
    post-processing is then fitted on the tempered scores; the tensors stay."""
    out = setup["root"] / "tempered"
    me, mae = setup["weights"]
    common = ["--dataset", "synth", "--data", str(setup["data"]), "--out", str(out),
              "--cache", str(setup["root"] / "out" / "cache"), "--no-half", "--temperature", "fit"]
    # These two videos hold macro-expressions only: no ME frame is positive.
    assert main(["--weights", str(me), *common]) == 2
    err = capsys.readouterr().err
    assert "--temperature fit: ME" in err and "one class" in err and len(err.strip().splitlines()) == 1
    assert main(["--weights", str(mae), *common]) == 0
    printed = capsys.readouterr().out
    for src in (mae,):
        net0, _ = load_weights(src)
        net1, meta1 = load_weights(out / src.name)
        t = meta1.model_params["temperature"]
        assert net1.temperature == t and t > 0 and t != 1.0
        assert f"{meta1.type}: temperature 1 -> {t:.3g}" in printed and "NLL" in printed
        x = torch.randn(4, 3, 112, 112)
        with torch.no_grad():
            torch.testing.assert_close(net1.predict_proba(x), torch.sigmoid(net0.margin(x) / t))


def test_temperature_fit_refuses_a_baseline(setup: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundled = Path(__file__).resolve().parents[1] / "engines" / "weights" / "baseline_ME.safetensors"
    rc = main(["--weights", str(bundled), "--dataset", "synth", "--data", str(setup["data"]),
               "--out", str(tmp_path / "o"), "--cache", str(setup["root"] / "out" / "cache"),
               "--temperature", "fit"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--temperature fit" in err and "baseline_ME.safetensors" in err
    assert len(err.strip().splitlines()) == 1


def test_a_new_fit_of_adaptive_weights_says_it_is_fixed(setup: dict, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The grid search scores fixed thresholds, so a file whose threshold was adaptive
    leaves with the fitted (fixed) one and a note says so."""
    import dataclasses

    from engines.weights import save_weights

    net, meta = load_weights(setup["weights"][1])
    adaptive = save_weights(net, dataclasses.replace(meta, post={**meta.post, "adaptive": True}),
                            tmp_path / setup["weights"][1].name)
    out = tmp_path / "out"
    assert main(["--weights", str(adaptive), "--dataset", "synth", "--data", str(setup["data"]), "--out", str(out),
                 "--cache", str(setup["root"] / "out" / "cache"), "--no-half", "--temperature", "fit"]) == 0
    assert "note: MaE: the new threshold is fixed; the input file's was adaptive" in capsys.readouterr().out
    assert load_weights(out / adaptive.name)[1].post["adaptive"] is False
