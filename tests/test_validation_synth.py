"""The independent validation generator (tools/validation_synth): determinism, truth,
motion where the truth says, faces FaceMesh can find, one-line CLI errors. Tiny clips."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.face import FaceLandmarker
from realtime.intervals_csv import read_intervals
from tools.validation_synth import cli, profiles

REPO = Path(__file__).resolve().parents[1]


def _frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        out.append(frame)
    cap.release()
    return out


def _generate(out: Path, *extra: str) -> None:
    assert cli.main(["--out", str(out), "--quiet", *extra]) == 0


@pytest.fixture(scope="module")
def twin_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 1.2 s clip (negatives on, real head motion when shared/ is there) twice."""
    args = ("--videos", "1", "--seconds", "1.2", "--seed", "4", "--me-fraction", "1")
    first, second = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    _generate(first, *args)
    _generate(second, *args)
    return first, second


@pytest.fixture(scope="module")
def calm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4 s clip with no negatives at all; seed 11 draws one ME and one MaE."""
    out = tmp_path_factory.mktemp("calm")
    _generate(out, "--seconds", "4", "--seed", "11", "--me-fraction", "0.5", "--no-negatives", "--mean-spacing", "1.2")
    return out


def test_same_seed_same_bytes(twin_runs: tuple[Path, Path]) -> None:
    first, second = twin_runs
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    assert "truth.csv" in names and "manifest.json" in names
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_other_seed_other_video(twin_runs: tuple[Path, Path], calm: Path) -> None:
    a = _frames(next(twin_runs[0].glob("*.mp4")))[0]
    b = _frames(next(calm.glob("*.mp4")))[0]
    assert a.shape != b.shape or np.abs(a.astype(int) - b.astype(int)).mean() > 2


def test_truth_well_formed(twin_runs: tuple[Path, Path], calm: Path) -> None:
    kinds = set()
    for folder in (twin_runs[0], calm):
        header = (folder / "truth.csv").read_text().splitlines()[0]
        assert header == "video,type,onset,apex,offset"
        manifest = json.loads((folder / "manifest.json").read_text())["videos"]
        frames = {v["video"]: v["frames"] for v in manifest}
        truth = read_intervals(folder / "truth.csv")
        assert truth, folder
        for row in truth:
            assert row.video in frames
            n = len(_frames(folder / f"{row.video}.mp4"))
            assert n == frames[row.video]
            assert 1 <= row.onset < row.apex < row.offset <= n
            kinds.add(row.type)
            seconds = (row.offset - row.onset) / 30.0
            if row.type == "ME":
                assert seconds <= 0.5
            else:
                assert 0.25 <= seconds <= 4.0
    assert kinds == {"ME", "MaE"}


def test_motion_inside_truth_exceeds_outside(calm: Path) -> None:
    truth = read_intervals(calm / "truth.csv")
    assert {r.type for r in truth} == {"ME", "MaE"}
    frames = [f.astype(np.float32) for f in _frames(calm / f"{truth[0].video}.mp4")]
    with FaceLandmarker(static_image_mode=True) as mesh:
        lm = mesh.detect(frames[0].astype(np.uint8))
    assert lm is not None
    x0, y0 = np.floor(lm.min(0)).astype(int)
    x1, y1 = np.ceil(lm.max(0)).astype(int)
    diff = np.array([np.abs(b - a)[y0:y1, x0:x1].mean() for a, b in zip(frames, frames[1:])])
    inside = np.zeros(len(diff), bool)
    for row in truth:  # diff[k] compares 0-based frames k and k+1 (1-based k+1, k+2)
        inside[row.onset - 1 : row.offset - 1] = True
    assert inside.any() and (~inside).any()
    assert diff[inside].mean() > 3 * diff[~inside].mean()
    for row in truth:  # the apex frame differs from the onset frame more than any two
        seg = np.abs(frames[row.apex - 1] - frames[row.onset - 1])[y0:y1, x0:x1].mean()
        assert seg > 3 * diff[~inside].mean()


def test_faces_detected_in_output(twin_runs: tuple[Path, Path]) -> None:
    frames = _frames(next(twin_runs[0].glob("*.mp4")))
    with FaceLandmarker(static_image_mode=True) as mesh:
        found = [mesh.detect(f) is not None for f in frames[::12]]
    assert all(found), found


def test_profile_asymmetric_and_zero_outside() -> None:
    prof = profiles.Profile(start=1.0, rise=0.1, hold=0.05, decay=0.3, q=2.0, p=3.0)
    t = np.linspace(0, 2, 2001)
    y = prof(t)
    assert y[t <= 1.0].max() == 0 and y[t >= prof.end].max() == 0
    assert y.max() == pytest.approx(1.0)
    assert (y > 0.5).sum() > 0  # rises and falls over different times
    above = t[y >= 0.5]
    assert above[0] - 1.0 < prof.end - above[-1]


def test_truth_frames_thresholds() -> None:
    m = np.array([0, 0, 0.01, 0.3, 1.0, 1.0, 1.0, 0.5, 0.04, 0, 0])
    assert profiles.truth_frames(m) == (3, 6, 9)
    assert profiles.truth_frames(np.zeros(5)) is None


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.validation_synth", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_missing_face_file(tmp_path: Path) -> None:
    result = _run_cli("--out", str(tmp_path / "o"), "--faces", str(tmp_path / "nobody.jpg"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "nobody.jpg" in result.stderr
    assert not (tmp_path / "o").exists()


def test_cli_errors_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    for args in (["--videos", "0"], ["--seconds", "0.5"], ["--faces", str(blank), "--seconds", "1"],
                 ["--real-motion", str(tmp_path)], ["--crf", "80"]):
        assert cli.main(["--out", str(tmp_path / "o"), *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)


def test_help_documents_everything() -> None:
    text = cli.build_parser().format_help()
    for word in ("--out", "--videos", "--fps", "--seconds", "--seed", "--faces", "truth.csv",
                 "blinks", "real_s18", "public-domain", "AU12"):
        assert word in text, word
