"""MEGC unseen test sets: clips found in the test-set layout, the per-clip frame-rate rule,
a replay through the real pipeline, and the submission files checked column by column
against predictions.csv."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from realtime.cli import main as live_main
from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.intervals_csv import read_intervals
from realtime.megc_testset import HEADER, ChallengeClip, Submission, clip_fps, find_clips

from media import write_random_weights


def _folder(path: Path, names: list[str]) -> Path:
    import cv2

    path.mkdir(parents=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(path / name), np.full((16, 16, 3), 10 * i, np.uint8))
    return path


def test_clips_one_or_two_levels_down_and_their_frame_rates(tmp_path: Path) -> None:
    _folder(tmp_path / "CAS_Test" / "sub01", ["img1.jpg", "img2.jpg"])
    _folder(tmp_path / "CAS_Test" / "dzw_h3", ["0.jpg", "1.jpg", "2.jpg"])
    _folder(tmp_path / "SAMM_Test" / "002_4", ["002_4_0001.jpg", "002_4_0002.jpg"])
    _folder(tmp_path / "017_3", ["017_3_00001.jpg"])
    (tmp_path / ".hidden").mkdir()
    clips = {c.name: c for c in find_clips(tmp_path, None)}
    assert sorted(clips) == ["002_4", "017_3", "dzw_h3", "sub01"]
    assert {n: c.fps for n, c in clips.items()} == {"002_4": 200.0, "017_3": 200.0, "dzw_h3": 30.0, "sub01": 30.0}
    assert {n: c.part for n, c in clips.items()} == {"002_4": "samm", "017_3": "samm", "dzw_h3": "cas",
                                                     "sub01": "cas"}
    assert {n: c.file_shift for n, c in clips.items()} == {"002_4": 0, "017_3": 0, "dzw_h3": 1, "sub01": 0}
    assert {c.fps for c in find_clips(tmp_path, 25.0)} == {25.0}  # --fps: every clip
    assert clip_fps("002_4", None) == 200.0 and clip_fps("spNO.1_a", None) == 30.0


def test_test_set_mistakes(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope: test set folder not found"):
        find_clips(tmp_path / "nope", None)
    (tmp_path / "empty" / "CAS_Test").mkdir(parents=True)
    with pytest.raises(UserError, match="no clip folders"):
        find_clips(tmp_path / "empty", None)
    _folder(tmp_path / "two" / "a" / "c1", ["1.jpg"])
    _folder(tmp_path / "two" / "b" / "c1", ["1.jpg"])
    with pytest.raises(UserError, match="a second clip named c1"):
        find_clips(tmp_path / "two", None)


def test_submission_rows(tmp_path: Path) -> None:
    clips = [ChallengeClip("sub01", tmp_path, 30.0), ChallengeClip("dzw_h3", tmp_path, 30.0, file_shift=1),
             ChallengeClip("002_4", tmp_path, 200.0)]
    intervals = [Interval("sub01", "MaE", 40, 80), Interval("sub01", "ME", 5, 9), Interval("dzw_h3", "ME", 1, 6),
                 Interval("002_4", "MaE", 100, 300), Interval("other", "ME", 1, 2)]
    written = Submission(clips).write(intervals, tmp_path / "out")
    assert [p.name for p in written] == ["cas_pred.csv", "samm_pred.csv"]
    assert (tmp_path / "out" / "cas_pred.csv").read_text().splitlines() == [
        "vid,pred_onset,pred_offset,type", "dzw_h3,0,5,me", "sub01,5,9,me", "sub01,40,80,mae"]
    assert (tmp_path / "out" / "samm_pred.csv").read_text().splitlines() == [
        "vid,pred_onset,pred_offset,type", "002_4,100,300,mae"]
    only_cas = Submission(clips[:1]).write([], tmp_path / "cas_only")
    assert [p.name for p in only_cas] == ["cas_pred.csv"]
    assert (tmp_path / "cas_only" / "cas_pred.csv").read_text() == "vid,pred_onset,pred_offset,type\n"


@pytest.fixture(scope="module")
def test_set(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A CAS(ME)^3-style clip `sub01` (30 fps, img1.jpg...), the same frames numbered from
    0 as `sub02`, and a SAMM-style clip `002_4` (200 fps), from synthetic face videos."""
    from realtime.synthesis.generate import write_dataset

    work = tmp_path_factory.mktemp("megc")
    write_dataset(work / "cas", 1, 30.0, seed=17, layout="cas", duration_s=5.0)
    write_dataset(work / "samm", 1, 200.0, seed=5, layout="samm", duration_s=3.0)
    root = work / "testset"
    cas_clip = next((work / "cas" / "rawpic").glob("s*/*"))
    shutil.copytree(cas_clip, root / "CAS_Test" / "sub01")
    zero = root / "CAS_Test" / "sub02"
    zero.mkdir()
    for frame in cas_clip.iterdir():
        shutil.copy(frame, zero / f"{int(frame.stem[3:]) - 1}.jpg")
    samm = root / "SAMM_Test" / "002_4"
    samm.mkdir(parents=True)
    for n in range(1, 301):  # 1.5 s is enough here, and cheaper to replay
        shutil.copy(work / "samm" / "SAMM_longvideos" / "006_1" / f"006_1_{n:04d}.jpg", samm / f"002_4_{n:04d}.jpg")
    # A low threshold: untrained weights spot something, so the comparison below has rows.
    return {"root": root, "weights": write_random_weights(work, threshold=0.05)}


def _read_submission(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_replay_writes_the_submission_of_its_predictions(test_set: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    weights = [a for w in test_set["weights"] for a in ("--weights", str(w))]
    code = live_main(["--replay", "MEGC", "--data", str(test_set["root"]), *weights, "--out", str(out),
                      "--pub", "none", "--quiet"])
    assert code == 0
    err = capsys.readouterr().err
    assert f"wrote {out / 'cas_pred.csv'} (MEGC submission)" in err
    assert "incomplete" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["megc"] is None  # no truth
    runs = {r["stream"]: r for r in metrics["performance"]["runs"]}
    assert sorted(runs) == ["002_4", "sub01", "sub02"]
    # The frame-rate rule: K of the 30 fps weights (6 frames = 0.2 s) is 40 frames at 200 fps.
    assert runs["sub01"]["models"]["ME"]["k"] == 6 and runs["002_4"]["models"]["ME"]["k"] == 40
    assert runs["002_4"]["frames"] == 300 and runs["sub01"]["frames"] == runs["sub02"]["frames"] == 150

    predicted = read_intervals(out / "predictions.csv")
    assert {iv.video for iv in predicted} >= {"sub01", "sub02"}  # else the check below says little
    shift = {"sub01": 0, "sub02": 1, "002_4": 0}
    for name, clips in (("cas_pred.csv", {"sub01", "sub02"}), ("samm_pred.csv", {"002_4"})):
        header, rows = _read_submission(out / name)
        assert header == HEADER == ["vid", "pred_onset", "pred_offset", "type"]
        expected = sorted((iv.video, iv.onset - shift[iv.video], iv.offset - shift[iv.video],
                           {"ME": "me", "MaE": "mae"}[iv.type]) for iv in predicted if iv.video in clips)
        assert [r[0] for r in rows] == [e[0] for e in expected]  # vid
        assert [int(r[1]) for r in rows] == [e[1] for e in expected]  # pred_onset
        assert [int(r[2]) for r in rows] == [e[2] for e in expected]  # pred_offset
        assert [r[3] for r in rows] == [e[3] for e in expected]  # type
    # sub02 is sub01 numbered from 0: the same spots, one lower in file numbers.
    _, cas_rows = _read_submission(out / "cas_pred.csv")
    assert [r[1:] for r in cas_rows if r[0] == "sub01"] == [
        [str(int(r[1]) + 1), str(int(r[2]) + 1), r[3]] for r in cas_rows if r[0] == "sub02"]


def test_a_clip_that_fails_makes_the_submission_say_it_is_incomplete(
        test_set: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "testset"
    shutil.copytree(test_set["root"] / "CAS_Test" / "sub01", root / "CAS_Test" / "sub01")
    broken = root / "CAS_Test" / "sub09"
    broken.mkdir()
    for n in range(1, 4):
        (broken / f"{n}.jpg").write_bytes(b"not a jpeg")
    weights = [a for w in test_set["weights"] for a in ("--weights", str(w))]
    code = live_main(["--replay", "MEGC", "--data", str(root), *weights, "--out", str(tmp_path / "out"),
                      "--pub", "none", "--quiet", "--max-frames", "30"])
    err = capsys.readouterr().err
    assert code == 2 and "error: stream sub09" in err
    assert "warning: the MEGC submission is incomplete: 1 of 2 clips failed or were not replayed (sub09)" in err
    assert (tmp_path / "out" / "cas_pred.csv").is_file()  # what was spotted is still written


def test_megc_replay_needs_out_and_data(test_set: dict, capsys: pytest.CaptureFixture) -> None:
    weights = [a for w in test_set["weights"] for a in ("--weights", str(w))]
    assert live_main(["--replay", "MEGC", "--data", str(test_set["root"]), *weights, "--pub", "none"]) == 2
    assert "needs --out DIR" in capsys.readouterr().err
    assert live_main(["--replay", "MEGC", *weights, "--pub", "none"]) == 2
    assert "needs --data ROOT" in capsys.readouterr().err
