"""MEGC matching, counts and the lgnm-eval CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from calibration.megc import evaluate, frame_iou, render_table
from realtime.common.types import Interval
from realtime.intervals_csv import write_intervals
from tools.evaluate import main

SHARED = Path(__file__).parents[1].parent / "shared" / "reference" / "megc2020"


def test_frame_iou_counts_inclusive_frames() -> None:
    a = Interval("v", "ME", 1, 10)
    assert frame_iou(a, Interval("v", "ME", 6, 15)) == pytest.approx(5 / 15)
    assert frame_iou(a, Interval("v", "ME", 10, 10)) == pytest.approx(1 / 10)
    assert frame_iou(a, Interval("v", "ME", 11, 20)) == 0.0
    assert frame_iou(a, a) == 1.0


def test_counts_on_hand_made_case() -> None:
    truth = [
        Interval("v1", "ME", 10, 19),  # matched (IoU 10/12)
        Interval("v1", "ME", 100, 109),  # IoU 5/15 < 0.5: missed
        Interval("v1", "MaE", 10, 19),  # an ME prediction cannot match a MaE truth
        Interval("v2", "MaE", 50, 59),  # matched by two predictions: one TP
    ]
    pred = [
        Interval("v1", "ME", 9, 20),
        Interval("v1", "ME", 105, 114),
        Interval("v2", "MaE", 50, 59),
        Interval("v2", "MaE", 51, 59),
        Interval("v3", "MaE", 1, 5),  # video only in predictions: FP
    ]
    res = evaluate(truth, pred).to_json()
    assert (res["ME"]["tp"], res["ME"]["fp"], res["ME"]["fn"]) == (1, 1, 1)
    assert (res["MaE"]["tp"], res["MaE"]["fp"], res["MaE"]["fn"]) == (1, 2, 1)
    assert res["ME"]["f1"] == pytest.approx(2 / 4)
    assert res["MaE"]["f1"] == pytest.approx(2 / 5)
    assert res["overall"]["tp"] == 2 and res["overall"]["f1"] == pytest.approx(4 / 9)
    assert isinstance(res["overall"]["precision"], float)


def test_one_prediction_may_match_several_truths() -> None:
    truth = [Interval("v", "MaE", 10, 19), Interval("v", "MaE", 11, 20)]
    res = evaluate(truth, [Interval("v", "MaE", 10, 20)])
    # Both truths are found (MEGC counts matched truths); FP is clamped at 0, not -1.
    assert res.per_type["MaE"].tp == 2 and res.per_type["MaE"].fp == 0


def test_empty_inputs_give_zero_f1() -> None:
    res = evaluate([], [])
    assert res.overall.f1 == 0.0 and res.overall.precision == 0.0
    assert render_table(res).row_count == 3


def test_cli_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = [Interval("v", "ME", 10, 19, apex=12), Interval("v", "MaE", 40, 80, apex=50)]
    write_intervals(tmp_path / "t.csv", truth, truth=True)
    write_intervals(tmp_path / "p.csv", [Interval("v", "ME", 10, 18, score=0.9)])
    assert main(["--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ME"]["tp"] == 1 and out["MaE"]["fn"] == 1 and out["overall"]["f1"] == pytest.approx(2 / 3)
    assert main(["--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv")]) == 0
    assert "overall" in capsys.readouterr().out
    assert main(["--truth", str(tmp_path / "nope.csv"), "--pred", str(tmp_path / "p.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared MEGC2020 reference files absent")
@pytest.mark.parametrize(
    ("name", "mae", "me", "overall"),
    [
        ("CAS", (109, 1523, 300, 0.1196), (21, 5035, 57, 0.0082), 0.0376),
        ("SAMM", (22, 356, 343, 0.0629), (29, 1436, 159, 0.0364), 0.0445),
    ],
)
def test_megc2020_baseline_figures(
    name: str, mae: tuple, me: tuple, overall: float, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--truth", str(SHARED / f"{name}_truth.csv"), "--pred", str(SHARED / f"{name}_mdmd_predictions.csv"), "--json"]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    for key, (tp, n_pred, n_truth, f1) in (("MaE", mae), ("ME", me)):
        assert res[key]["tp"] == tp
        assert res[key]["tp"] + res[key]["fp"] == n_pred
        assert res[key]["tp"] + res[key]["fn"] == n_truth
        assert round(res[key]["f1"], 4) == f1
    assert round(res["overall"]["f1"], 4) == overall


def test_overlapping_truths_keep_counts_and_ratios_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Truths [10,20] and [12,22] with one prediction [11,21] matching both: MEGC's
    `predictions - TP` would give FP -1, precision 2.0, F1 1.333. Both truths are found by
    the one prediction (TP 2), FP is 0 (never negative), and every ratio lies in [0, 1];
    a second, unmatched prediction in another video still counts as FP there."""
    truth = [Interval("v", "ME", 10, 20, apex=15), Interval("v", "ME", 12, 22, apex=17),
             Interval("w", "ME", 100, 110, apex=105)]
    pred = [Interval("v", "ME", 11, 21, score=0.9), Interval("w", "ME", 300, 310, score=0.5)]
    s = evaluate(truth, pred).per_type["ME"]
    assert (s.tp, s.fp, s.fn, s.n_pred, s.n_truth) == (2, 1, 1, 2, 3)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(4 / 6)
    only_v = evaluate(truth[:2], pred[:1]).overall
    assert (only_v.tp, only_v.fp, only_v.fn) == (2, 0, 0)
    assert only_v.precision == 1.0 and only_v.recall == 1.0 and only_v.f1 == 1.0
    write_intervals(tmp_path / "t.csv", truth[:2], truth=True)
    write_intervals(tmp_path / "p.csv", pred[:1])
    assert main(["--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("ME", "MaE", "overall"):
        assert out[key]["fp"] >= 0 and out[key]["fn"] >= 0
        assert all(0.0 <= out[key][r] <= 1.0 for r in ("precision", "recall", "f1"))


def test_the_table_shows_only_the_types_spotted() -> None:
    """--types ME printed a MaE row of zeros (F1 0.0000) as if MaE had been spotted and missed."""
    from rich.console import Console

    truth = [Interval("v", "ME", 10, 20), Interval("v", "MaE", 40, 80)]
    result = evaluate([iv for iv in truth if iv.type == "ME"], [Interval("v", "ME", 11, 20, 0.9)])
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(render_table(result, types=("ME",)))
    rows = [line.split("│")[1].strip() for line in console.export_text().splitlines() if line.startswith("│")]
    assert rows == ["ME", "overall"]
    console.print(render_table(result))
    assert "MaE" in console.export_text()  # both types by default
