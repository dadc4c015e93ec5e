"""CAS(ME)^3 Part A: the reader on stand-ins written in the real layout (frame folders and
the two real workbooks, written with openpyxl), a replay through the real pipeline scored
with the MEGC protocol, and lgnm-train --dataset CASME3 for a few steps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from calibration.megc import evaluate
from engines.weights import read_meta
from realtime.casme3 import CASME3_FPS, load_casme3, read_casme3_annotations
from realtime.cli import main as live_main
from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.intervals_csv import read_intervals
from realtime.labels import k_from_intervals
from realtime.synthesis.layouts import (
    CASME3_MAE_BOOK,
    CASME3_ME_BOOK,
    StandInVideo,
    casme3_video_id,
    write_casme3_layout,
)

from media import write_random_weights

SYNTH_SEED = 17  # two 5 s videos: spNO.1_a holds an ME (frames 37-50), spNO.1_b a MaE (68-90)


def _frames(count: int, seed: int) -> list[np.ndarray]:
    """Flat frames whose grey level encodes the frame number (survives jpeg)."""
    return [np.full((32, 32, 3), (seed * 40 + 11 * n) % 256, np.uint8) for n in range(1, count + 1)]


def _standins() -> list[StandInVideo]:
    return [
        StandInVideo(1, 1, _frames(12, 0), [Interval("x", "MaE", 2, 9, apex=5), Interval("x", "ME", 10, 11, apex=10)]),
        StandInVideo(1, 3, _frames(3, 1), []),
        StandInVideo(16, 2, _frames(4, 2), [Interval("x", "ME", 1, 4, apex=2)]),
    ]


def _rows(intervals: list[Interval]) -> list[tuple[str, int, int | None, int]]:
    return sorted((iv.type, iv.onset, iv.apex, iv.offset) for iv in intervals)


def _error(call: object, *fragments: str) -> str:
    with pytest.raises(UserError) as info:
        call()  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_stand_in_round_trip(tmp_path: Path) -> None:
    videos = _standins()
    layout = write_casme3_layout(tmp_path, videos)
    assert layout.video_ids == ["spNO.1_a", "spNO.1_c", "spNO.16_b"] == [casme3_video_id(v) for v in videos]
    assert (tmp_path / "part_A" / "spNO.1" / "a" / "color" / "12.jpg").is_file()
    me = openpyxl.load_workbook(layout.annotations / CASME3_ME_BOOK)
    assert me.sheetnames == ["label"]
    assert [c.value for c in me["label"][1]] == ["Subject", "Filename", "Onset", "Apex", "Offset", "AU",
                                                  "Objective class", "emotion"]
    mae = openpyxl.load_workbook(layout.annotations / CASME3_MAE_BOOK)
    assert [c.value for c in mae["Sheet1"][1]] == ["sub", "seq", "onset", "apex", "offset", "emotion"]

    for root in (layout.root, tmp_path):  # the frame root or the folder holding part_A
        records = {r.id: r for r in load_casme3(root, layout.annotations)}
        assert sorted(records) == sorted(layout.video_ids)
        for video, vid in zip(videos, layout.video_ids):
            record = records[vid]
            assert record.fps == CASME3_FPS and record.subject == vid.rsplit("_", 1)[0]
            assert _rows(record.truth) == _rows(video.truth) and all(iv.video == vid for iv in record.truth)
            levels = np.array([round(cv2.imread(str(p)).mean()) for p in record.frames])
            expected = [int(f.mean()) for f in video.frames]  # type: ignore[union-attr]
            assert np.abs(levels - expected).max() <= 2
    # 10.jpg comes after 9.jpg, not after 1.jpg
    assert [p.name for p in records["spNO.1_a"].frames[8:]] == ["9.jpg", "10.jpg", "11.jpg", "12.jpg"]


def test_one_workbook_with_a_type_column_and_subject_spellings(tmp_path: Path) -> None:
    """A combined workbook says each row's type; subjects may read `spNo.1` or `1`, onset 0
    is the apex (the authors' rule), an offset before the apex is raised to it."""
    layout = write_casme3_layout(tmp_path, _standins())
    book = tmp_path / "combined.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = "label"
    sheet.append(["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Expression type"])
    sheet.append(["spNo.1", "a", 0, 4, 7, "12", "macro-expression"])
    sheet.append([1, "a", 10, 11, 10, "4", "micro-expression"])
    wb.save(book)
    truth = read_casme3_annotations(book)
    assert list(truth) == ["spNO.1_a"]
    assert _rows(truth["spNO.1_a"]) == [("ME", 10, 11, 11), ("MaE", 4, 4, 7)]
    records = {r.id: r for r in load_casme3(layout.root, book)}
    assert records["spNO.16_b"].truth == [] and len(records["spNO.16_b"].frames) == 4


def test_folder_numbered_from_zero_keeps_truth_on_its_jpg(tmp_path: Path) -> None:
    layout = write_casme3_layout(tmp_path, _standins())
    color = layout.root / "spNO.1" / "a" / "color"
    for n in range(1, 13):
        (color / f"{n}.jpg").rename(color / f"{n - 1}.jpg")
    record = next(r for r in load_casme3(layout.root, layout.annotations) if r.id == "spNO.1_a")
    assert record.frames[0].name == "0.jpg" and record.numbers[0] == 1
    # The workbook's jpg 2..9 (MaE) is frames 3..10 now: the same files.
    assert ("MaE", 3, 6, 10) in _rows(record.truth)


def test_bad_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    layout = write_casme3_layout(tmp_path, _standins())
    me_book = layout.annotations / CASME3_ME_BOOK
    wb = openpyxl.load_workbook(me_book)
    wb["label"]["D1"] = "Peak"  # the Apex column renamed
    wb.save(me_book)
    _error(lambda: read_casme3_annotations(layout.annotations), CASME3_ME_BOOK, "'label'", "lacks column(s) Apex")
    wb["label"]["D1"] = "Apex"
    wb["label"]["A2"] = "subject one"
    wb.save(me_book)
    _error(lambda: read_casme3_annotations(me_book), CASME3_ME_BOOK, "row 2", "'subject one'")
    wb["label"]["A2"] = "spNO.1"
    wb.save(me_book)

    untyped = layout.annotations / "labels.xlsx"
    shutil.copy(layout.annotations / CASME3_MAE_BOOK, untyped)
    _error(lambda: read_casme3_annotations(untyped), "labels.xlsx", "cannot tell ME from MaE")
    untyped.unlink()
    shutil.copy(me_book, layout.annotations / "cas(me)3_part_A_ME_label_JpgIndex_v1.xlsx")
    _error(lambda: read_casme3_annotations(layout.annotations), "2 ME workbooks")

    _error(lambda: load_casme3(tmp_path / "nope", me_book), "nope", "not found")
    _error(lambda: read_casme3_annotations(tmp_path / "none.xlsx"), "none.xlsx", "not found")
    (layout.root / "spNO.1" / "a" / "color" / "5.jpg").unlink()
    _error(lambda: load_casme3(layout.root, me_book), "color", "frame 5 missing")


# ------------------------------------------------------------- real pipeline


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from realtime.synthesis.generate import write_dataset

    root = tmp_path_factory.mktemp("casme3")
    summary = write_dataset(root / "set", 2, 30.0, seed=SYNTH_SEED, layout="casme3", duration_s=5.0)
    assert {iv.type for iv in summary.truth} == {"ME", "MaE"}  # the seed's promise (SYNTH_SEED)
    return {"root": root / "set", "truth": read_intervals(root / "set" / "truth.csv"),
            "weights": write_random_weights(root, threshold=0.5)}


def test_replay_is_scored_with_the_megc_protocol(synth: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    weights = [a for w in synth["weights"] for a in ("--weights", str(w))]
    code = live_main(["--replay", "CASME3", "--data", str(synth["root"]), "--annotations",
                      str(synth["root"] / "annotation"), *weights, "--out", str(out), "--pub", "none", "--quiet"])
    assert code == 0
    predicted = read_intervals(out / "predictions.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    runs = {r["stream"]: r for r in metrics["performance"]["runs"]}
    assert sorted(runs) == ["spNO.1_a", "spNO.1_b"]  # streams named by the video ids
    assert all(r["frames"] == 150 and r["status"] == "ok" for r in runs.values())
    assert {iv.video for iv in predicted} <= set(runs)
    assert read_intervals(out / "truth.csv") == synth["truth"]  # what the run was scored on
    assert metrics["megc"] == evaluate(synth["truth"], predicted).to_json()
    assert metrics["megc"]["overall"]["tp"] + metrics["megc"]["overall"]["fn"] == len(synth["truth"])


def test_lgnm_train_casme3_a_few_steps(synth: dict, tmp_path: Path) -> None:
    from tools.train import main as train_main

    out = tmp_path / "train"
    code = train_main(["--dataset", "CASME3", "--data", str(synth["root"]), "--annotations",
                       str(synth["root"] / "annotation"), "--out", str(out), "--type", "ME", "--epochs", "1",
                       "--batch", "4", "--max-neg", "4", "--pos-repeat", "1", "--neg-every", "8", "--folds", "none",
                       "--val-frac", "0", "--val-metric", "frame", "--threads", "1", "--no-half"])
    assert code == 0
    meta = read_meta(out / "lgnm_ME.safetensors")
    truth_me = [iv for iv in synth["truth"] if iv.type == "ME"]
    assert (meta.type, meta.fps, meta.k) == ("ME", CASME3_FPS, k_from_intervals(truth_me))
    assert meta.trained_on.startswith("CASME3:set (2 videos")
    assert meta.post["threshold"] is not None


def test_cli_bad_workbook_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    layout = write_casme3_layout(tmp_path, _standins())
    missing = tmp_path / "missing.xlsx"
    assert live_main(["--replay", "CASME3", "--data", str(layout.root), "--annotations", str(missing),
                      "--pub", "none"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "missing.xlsx" in err
    assert live_main(["--replay", "CASME3", "--data", str(tmp_path / "none"), "--annotations",
                      str(layout.annotations), "--pub", "none"]) == 2
    assert "none: dataset folder not found" in capsys.readouterr().err


def test_the_datasets_own_name_is_not_a_type() -> None:
    """`cas(me)3` holds "(me)": a workbook named only after the dataset does not say its type."""
    from realtime.casme3 import _workbook_type

    assert _workbook_type(Path("cas(me)3_part_A_label_JpgIndex_v2.xlsx")) is None
    assert _workbook_type(Path("cas(me)^3_part_A_label.xlsx")) is None
    assert _workbook_type(Path("cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx")) == "ME"
    assert _workbook_type(Path("cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx")) == "MaE"


def test_excel_lock_file_beside_the_workbooks_is_not_a_workbook(tmp_path: Path) -> None:
    """Field review: with a workbook open in Excel, its `~$` lock file sits in the folder
    and was taken for a second ME workbook ("keep one")."""
    layout = write_casme3_layout(tmp_path, _standins())
    expected = read_casme3_annotations(layout.annotations)
    (layout.annotations / f"~${CASME3_ME_BOOK}").write_bytes(b"\x0cuser" + bytes(150))  # Excel's owner file
    assert read_casme3_annotations(layout.annotations) == expected
