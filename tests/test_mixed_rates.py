"""One run, streams at 30 and 200 fps, default weights: each stream gets the demo pair
trained nearest its rate, with that pair's landmark filter (the 30 fps pair has one, the
200 fps pair none), and both share the run's one flow backend (stream_runner)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from realtime.cli import main as live_main
from realtime.synthesis.generate import write_dataset


def test_default_weights_serve_30_and_200_fps_streams_in_one_run(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    for fps, name in ((30.0, "cam30"), (200.0, "cam200")):
        write_dataset(tmp_path / name, 1, fps, seed=3, duration_s=3.0)
        shutil.copy(tmp_path / name / "synth_001.mp4", folder / f"{name}.mp4")
    out = tmp_path / "run"
    code = live_main(["--replay", str(folder), "--out", str(out), "--pub", "none", "--quiet"])
    assert code == 0, capsys.readouterr().err
    runs = {r["stream"]: r for r in json.loads((out / "metrics.json").read_text())["performance"]["runs"]}
    assert runs["cam30"]["status"] == runs["cam200"]["status"] == "ok"
    assert runs["cam30"]["models"]["MaE"]["trained_fps"] == 30.0
    assert runs["cam200"]["models"]["MaE"]["trained_fps"] == 200.0
    assert runs["cam30"]["frames"] == 90 and runs["cam200"]["frames"] == 600
