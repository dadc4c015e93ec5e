"""`lgnm-calibrate` end to end on a real (small) synthetic set with real untrained weights:
it re-fits the post-processing, decides the cross-type rule, and leaves the tensors alone."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from media import write_random_weights

from engines.weights import load_weights
from tools.calibrate import main
from tools.synth import write_dataset


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
