"""tools.real_expressions: faces driven by the real tracks, scored against the labels made
by eye (tools/real_motion_labels). Needs ../shared/reference/real-motion (skipped without)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.intervals_csv import read_intervals
from realtime.synthesis.real_motion import load_track
from tools import real_expressions as rx

needs_tracks = pytest.mark.skipif(not rx.TRACKS.is_dir(), reason=f"no real tracks at {rx.TRACKS}")


@needs_tracks
def test_every_label_lies_inside_its_clip_at_the_labels_rate() -> None:
    """The labels are 30 fps frame numbers of each track played once (25 fps tracks
    resampled): an interval past a clip's end would be a label no spotter can match."""
    labels = read_intervals(rx.LABELS)
    assert {iv.type for iv in labels} <= {"ME", "MaE"} and labels
    for iv in labels:
        n = load_track(rx.TRACKS / f"{iv.video}.npz").at_fps(rx.FPS).n_frames
        assert 1 <= iv.onset <= iv.offset <= n, (iv, n)


@needs_tracks
def test_a_clip_is_rendered_once_and_scored_as_lgnm_eval_scores_it(tmp_path: Path, capsys) -> None:
    """real_d12 (a 25 fps track: 183 frames, 220 at 30 fps): the saved clip has the
    label's frame count, truth.csv holds exactly the clip's labels, and the printed MEGC
    table is lgnm-eval's on the written files."""
    import cv2

    from tools.evaluate import main as eval_main

    out = tmp_path / "out"
    assert rx.main(["--only", "real_d12", "--out", str(out), "--save-clips"]) == 0
    printed = capsys.readouterr().out
    cap = cv2.VideoCapture(str(out / "real_d12.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 220
    cap.release()
    assert read_intervals(out / "truth.csv") == [iv for iv in read_intervals(rx.LABELS) if iv.video == "real_d12"]
    assert all(iv.video == "real_d12" for iv in read_intervals(out / "predictions.csv"))
    assert eval_main(["--truth", str(out / "truth.csv"), "--pred", str(out / "predictions.csv")]) == 0
    evaluated = capsys.readouterr().out
    rows = [line for line in evaluated.splitlines() if line.startswith(("│ MaE", "│ ME", "│ overall"))]
    assert len(rows) == 3 and all(row in printed for row in rows), (evaluated, printed)


def test_user_mistakes_are_one_line(tmp_path: Path, capsys) -> None:
    assert rx.main(["--only", "real_x1"]) == 2
    assert "--only: no labels for real_x1" in capsys.readouterr().err
    assert rx.main(["--tracks", str(tmp_path), "--only", "real_s29"]) == 2
    assert "real_s29.npz not found" in capsys.readouterr().err
    assert rx.main(["--save-clips"]) == 2
    assert "--save-clips: needs --out" in capsys.readouterr().err
