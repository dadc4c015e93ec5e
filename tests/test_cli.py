"""`lgnm-live` end to end: a real process replays a real video through the real model,
a real ZMQ subscriber on loopback receives its events; outputs are scored by lgnm-eval;
dataset replays on stand-in CAS(ME)^2 / SAMM-LV layouts; bad input exits 2 cleanly."""

from __future__ import annotations

import csv
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from calibration.megc import evaluate
from engines.weights import read_meta
from realtime.cli import main as live_main
from realtime.events import EventMessage, StatusMessage
from realtime.intervals_csv import read_intervals
from tools.evaluate import main as eval_main

from media import CLIP_SIZE, Collector, free_port, write_face_clip, write_random_weights


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("cli")
    clip, _ = write_face_clip(folder, "face_clip", seconds=8.0, seed=11)
    weights = write_random_weights(folder, threshold=0.5)
    return {"folder": folder, "clip": clip, "truth": folder / "face_clip_truth.csv", "weights": weights}


def weight_args(media: dict) -> list[str]:
    return [a for w in media["weights"] for a in ("--weights", str(w))]


@pytest.fixture(scope="module")
def replay_run(media: dict) -> dict:
    out = media["folder"] / "run"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    cmd = [sys.executable, "-m", "realtime.cli", "--replay", str(media["clip"]), "--truth", str(media["truth"]),
           *weight_args(media), "--out", str(out), "--pub", endpoint, "--journal", str(out / "events.jsonl"),
           "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    collector.done.set()
    collector.join(10)
    return {"proc": proc, "out": out, "messages": collector.messages}


def test_replay_exits_cleanly_without_native_noise(replay_run: dict) -> None:
    proc = replay_run["proc"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "XNNPACK" not in proc.stderr and "W0000" not in proc.stderr


def test_subscriber_receives_every_event_in_order_with_gapless_seq(replay_run: dict) -> None:
    msgs = replay_run["messages"]
    assert msgs, "no message reached the subscriber"
    seqs = [m.seq for m in msgs]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap
    events = [m for m in msgs if isinstance(m, EventMessage)]
    assert any(isinstance(m, StatusMessage) for m in msgs)
    predicted = read_intervals(replay_run["out"] / "predictions.csv")
    assert len(events) == len(predicted) > 0
    assert [(e.type, e.onset_frame, e.offset_frame) for e in events] == \
        [(p.type, p.onset, p.offset) for p in predicted]
    assert all(e.stream == "face_clip" and e.latency_ms >= 0 for e in events)


def test_journal_holds_every_event(replay_run: dict) -> None:
    lines = (replay_run["out"] / "events.jsonl").read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    events = [m for m in replay_run["messages"] if isinstance(m, EventMessage)]
    assert [d["seq"] for d in docs] == [e.seq for e in events]


def test_predictions_csv_says_what_the_events_say(replay_run: dict) -> None:
    """predictions.csv carries each event's apex and times (README, Formats), row by row."""

    with (replay_run["out"] / "predictions.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    docs = [json.loads(line) for line in (replay_run["out"] / "events.jsonl").read_text().splitlines()]
    assert rows and len(rows) == len(docs)
    for row, doc in zip(rows, docs):
        assert (row["type"], int(row["onset"]), int(row["apex"]), int(row["offset"])) == \
            (doc["type"], doc["onset_frame"], doc["apex_frame"], doc["offset_frame"])
        assert float(row["onset_s"]) == doc["onset_s"] and float(row["offset_s"]) == doc["offset_s"]
        assert float(row["score"]) == pytest.approx(doc["score"])
        # 30 fps clip: a frame's time is (n - 1) / fps
        assert float(row["onset_s"]) == pytest.approx((int(row["onset"]) - 1) / 30.0, abs=1e-3)


def test_metrics_json_agrees_with_lgnm_eval(replay_run: dict, media: dict, capsys: pytest.CaptureFixture) -> None:
    metrics = json.loads((replay_run["out"] / "metrics.json").read_text())
    assert metrics["performance"]["frames"] == 240
    assert metrics["performance"]["dropped"] == 0
    assert eval_main(["--truth", str(media["truth"]), "--pred", str(replay_run["out"] / "predictions.csv"),
                      "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == metrics["megc"]
    summary = json.loads(replay_run["proc"].stdout.strip().splitlines()[-1])["summary"]
    assert summary["megc"] == metrics["megc"]


@pytest.mark.parametrize("layout", ["cas", "samm"])
def test_dataset_replay_on_stand_in_layouts(layout: str, media: dict, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from realtime.synthesis.generate import write_dataset

    fps = 30.0 if layout == "cas" else 200.0
    seconds = 4.0 if layout == "cas" else 3.0
    root = tmp_path / layout
    write_dataset(root, 1, fps, seed=7, layout=layout, duration_s=seconds)
    workbook = next(root.glob("*.xlsx"))
    out = tmp_path / "out"
    code = live_main(["--replay", layout.upper(), "--data", str(root), "--annotations", str(workbook),
                      *weight_args(media), "--out", str(out), "--pub", "none", "--quiet"])
    assert code == 0
    predicted = read_intervals(out / "predictions.csv") if (out / "predictions.csv").stat().st_size else []
    truth = read_intervals(root / "truth.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["performance"]["frames"] == round(seconds * fps)
    assert metrics["megc"] == evaluate(truth, predicted).to_json()
    assert metrics["megc"]["overall"]["fn"] + metrics["megc"]["overall"]["tp"] == len(truth)


def run_main(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = live_main(args)
    return code, capsys.readouterr().err


def test_a_demo_replay_error_prints_nothing_on_stdout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The demo clip's progress bar (never shown: the clip was cached, or the run fails
    first) printed a blank line on stdout when stopped, before the error line."""
    from realtime.replay import demo_items

    demo_items()  # the clip cached, as on every run after the first
    assert live_main(["--replay", "demo", "--weights", str(tmp_path / "nothere.safetensors"), "--pub", "none"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == f"error: --weights {tmp_path / 'nothere.safetensors'}: no such file\n"


def test_missing_video_is_one_line_exit_2(media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = run_main(["--replay", str(tmp_path / "nope.mp4"), *weight_args(media), "--pub", "none"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "nope.mp4" in err and err.startswith("error:")


def test_dataset_replay_needs_data_and_annotations(media: dict, capsys: pytest.CaptureFixture) -> None:
    code, err = run_main(["--replay", "CAS", *weight_args(media), "--pub", "none"], capsys)
    assert code == 2 and "--data" in err


def test_corrupt_weights_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture, media: dict) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights at all")
    code, err = run_main(["--replay", str(media["clip"]), "--weights", str(bad), "--pub", "none"], capsys)
    assert code == 2 and "bad.safetensors" in err


def test_frame_folder_needs_fps(tmp_path: Path, media: dict, capsys: pytest.CaptureFixture) -> None:
    import cv2
    import numpy as np

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(1, 4):
        cv2.imwrite(str(folder / f"img{i}.jpg"), np.zeros((CLIP_SIZE[1], CLIP_SIZE[0], 3), np.uint8))
    code, err = run_main(["--replay", str(folder), *weight_args(media), "--pub", "none"], capsys)
    assert code == 2 and "--fps" in err


def test_source_notices_are_printed_as_warnings(media: dict, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    """A frame folder with a hole: the numbers are kept, the chain breaks, the user is told."""
    import cv2

    from realtime.sources import VideoFileSource

    folder = tmp_path / "holey"
    folder.mkdir()
    with VideoFileSource(media["clip"]) as src:
        for raw in src:
            if raw.index > 40:
                break
            if raw.index != 20:
                cv2.imwrite(str(folder / f"img{raw.index}.png"), raw.image)
    out = tmp_path / "out"
    code = live_main(["--replay", str(folder), "--fps", "30", *weight_args(media), "--pub", "none",
                      "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().err
    assert "warning: holey: 1 frame missing from the numbering (20); the frame chain breaks at each hole" \
        in printed
    run = json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]
    assert run["frames"] == 39 and run["chain_breaks"] >= 1


def test_a_bad_second_video_keeps_the_first_videos_predictions(media: dict, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_good.avi").write_bytes(media["clip"].read_bytes())
    (folder / "b_bad.avi").write_bytes(b"\x00" * 1000)  # not a video
    out = tmp_path / "out"
    code, err = run_main(["--replay", str(folder), *weight_args(media), "--out", str(out), "--pub", "none",
                          "--quiet"], capsys)
    assert code == 2 and "b_bad.avi" in err
    rows = read_intervals(out / "predictions.csv")
    assert rows and {r.video for r in rows} == {"a_good"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["performance"]["frames"] == 240  # the first video's summary is kept


def test_a_stream_too_short_for_a_pair_is_named_not_silently_empty(media: dict, tmp_path: Path) -> None:
    """A photo given as a video and a 12-frame clip: a type whose pair (K + 1 frames) does
    not fit scored nothing, which the summary must say (it printed nothing at all)."""
    import cv2

    from realtime.sources import VideoFileSource

    folder = tmp_path / "short"
    folder.mkdir()
    writer = cv2.VideoWriter(str(folder / "short.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, CLIP_SIZE)
    with VideoFileSource(media["clip"]) as src:
        for raw in itertools.islice(src, 12):
            writer.write(raw.image)
    writer.release()
    ok, png = cv2.imencode(".png", raw.image)
    (folder / "photo.mp4").write_bytes(png.tobytes())  # a still image under a video's name
    out = tmp_path / "out"
    assert live_main(["--replay", str(folder), *weight_args(media), "--pub", "none", "--quiet",
                      "--out", str(out)]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert "stream short: only 12 frames, fewer than one frame pair needs (K + 1 frames at 30 fps: MaE 19): " \
           "MaE not scored" in notes
    assert any(n.startswith("stream photo: only 1 frame, fewer than one frame pair needs (") and
               n.endswith("): nothing could be scored") for n in notes), notes


def test_a_too_short_notice_under_a_frame_limit_blames_the_limit(media: dict, tmp_path: Path) -> None:
    """--max-frames 12 on a long clip: the stream is short because the run stopped it, and
    the notice must say so rather than suggest the input is too short."""
    out = tmp_path / "out"
    assert live_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                      "--max-frames", "12", "--out", str(out)]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert any("only 12 frames (the run's frame limit of 12 stopped it), fewer than one frame pair needs"
               in n for n in notes), notes



def test_a_clip_exactly_as_long_as_the_frame_limit_is_not_blamed_on_the_limit(media: dict, tmp_path: Path) -> None:
    """A 12-frame clip under --max-frames 12 ended by itself: the too-short notice must
    blame its length, not the limit (it said "the run's frame limit of 12 stopped it")."""
    import cv2

    from realtime.sources import VideoFileSource

    clip = tmp_path / "twelve.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, CLIP_SIZE)
    with VideoFileSource(media["clip"]) as src:
        for raw in itertools.islice(src, 12):
            writer.write(raw.image)
    writer.release()
    out = tmp_path / "out"
    assert live_main(["--replay", str(clip), *weight_args(media), "--pub", "none", "--quiet",
                      "--max-frames", "12", "--out", str(out)]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    short = [n for n in notes if "only 12 frames" in n]
    assert short and not any("frame limit" in n for n in short), notes

def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder no file can be created in: mode 0o500, or for root (who ignores the mode)
    sysfs, which refuses new files to everyone."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    folder = Path("/sys/kernel")
    if not folder.is_dir():
        pytest.skip("running as root and no sysfs: no folder refuses a new file")
    return folder


def test_an_out_folder_that_cannot_be_written_is_one_line(media: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    folder = _unwritable_folder(tmp_path)
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                          "--max-frames", "5", "--out", str(folder)], capsys)
    assert code == 2 and err.strip() == f"error: --out {folder}: cannot write in the folder (Permission denied)"


@pytest.mark.parametrize("blocked", ["predictions.csv", "scores.csv", "metrics.json"])
def test_an_output_file_that_cannot_be_written_is_one_line_and_the_others_are_kept(
        blocked: str, media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A folder where an output file goes (or a file a previous run left read-only): one
    error line and exit 2, and the stream still runs and writes every other output (a
    blocked scores.csv or predictions.csv ended the run before the stream, leaving a
    header-only predictions.csv and no metrics.json)."""
    out = tmp_path / "out"
    (out / blocked).mkdir(parents=True)
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                          "--max-frames", "30", "--out", str(out)], capsys)
    assert code == 2 and f"error: --out: cannot write {out / blocked} (Is a directory)" in err
    assert "Traceback" not in err
    outputs = {"predictions.csv": lambda p: len(p.read_text().splitlines()) >= 1,
               "scores.csv": lambda p: len(p.read_text().splitlines()) > 1,
               "metrics.json": lambda p: json.loads(p.read_text())["performance"]["runs"][0]["frames"] == 30}
    for name, complete in outputs.items():
        if name != blocked:
            assert (out / name).is_file() and complete(out / name), name
    assert (out / "eaf").is_dir()


def test_no_report_is_drawn_from_an_output_this_run_could_not_write(media: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """--report after a blocked scores.csv drew an earlier run's file in its place (or
    failed on a folder); it now says why there is no report (review)."""
    out = tmp_path / "out"
    (out / "scores.csv").mkdir(parents=True)
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                          "--max-frames", "30", "--out", str(out), "--report"], capsys)
    assert code == 2 and "note: --report: not written: scores.csv of this run could not be written" in err
    assert not (out / "report").exists()


def test_performance_table_names_the_backend_when_the_first_stream_failed(
        media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_bad.avi").write_bytes(b"\x00" * 1000)  # not a video: fails before it has a backend
    (folder / "b_good.avi").write_bytes(media["clip"].read_bytes())
    assert live_main(["--replay", str(folder), *weight_args(media), "--pub", "none", "--max-frames", "20"]) == 2
    row = [ln for ln in capsys.readouterr().out.splitlines() if "backend / flow" in ln]
    assert len(row) == 1 and re.search(r"backend / flow .*│ +[a-z]+-cpu / cpu │", row[0]), row


@pytest.mark.parametrize("option", ["--video", "--replay", "--out", "--truth"])
def test_an_empty_path_is_refused_not_taken_for_the_current_folder(
        option: str, media: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--out "$DIR"` with DIR unset: Path('') is '.', so the run wrote its files into the
    current folder (`--replay ""` replayed all of it, `--video ""` said 'None: no such file')."""
    monkeypatch.chdir(tmp_path)
    args = {"--video": ["--video", ""], "--replay": ["--replay", ""],
            "--out": ["--replay", str(media["clip"]), "--out", ""],
            "--truth": ["--replay", str(media["clip"]), "--truth", ""]}[option]
    with pytest.raises(SystemExit) as exc:
        live_main([*args, *weight_args(media), "--pub", "none", "--quiet", "--max-frames", "3"])
    assert exc.value.code == 2
    err = capsys.readouterr().err  # one line, not argparse's usage block before it
    assert err == f"error: argument {option}: empty value (an unset shell variable?); see lgnm-live --help\n"
    assert list(tmp_path.iterdir()) == []


def test_max_frames_stops_early(media: dict, tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert live_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                      "--max-frames", "50", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["performance"]["frames"] == 50


def test_rtsp_stream_from_a_real_server_on_loopback(media: dict, rtsp_server, tmp_path: Path) -> None:
    server = rtsp_server(media["clip"])
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    out = tmp_path / "rtsp"
    cmd = [sys.executable, "-m", "realtime.cli", "--rtsp", server.url, "--max-frames", "120", "--max-retries", "2",
           *weight_args(media), "--pub", endpoint, "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    collector.done.set()
    collector.join(10)
    assert proc.returncode == 0, proc.stderr
    status = [m for m in collector.messages if isinstance(m, StatusMessage)]
    assert status, "no status message reached the subscriber"
    assert status[-1].source == "up" and status[-1].extra["flow"] == "cpu" and status[-1].face
    metrics = json.loads((out / "metrics.json").read_text())
    run = metrics["performance"]["runs"][0]
    assert run["frames"] == 120 and run["faces"] > 100  # the face survives the RTSP round trip
    # A live source drops frames when scoring falls behind (a loaded machine): the last
    # frame's number is then beyond 120, and status says the same number as metrics.json.
    assert status[-1].frame == run["last_frame"] >= 120 and status[-1].dropped == run["dropped"]


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_ctrl_c_stops_cleanly_with_journal_and_summary(signame: str, media: dict, tmp_path: Path) -> None:
    """Ctrl-C, and SIGTERM as a batch system's time limit or `docker stop` sends it: the
    run stops with everything written (SIGTERM used to kill it before metrics.json) and
    exits 0 for Ctrl-C, 143 (128 + SIGTERM, as a killed job) for SIGTERM."""
    import signal

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    out = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "realtime.cli", "--video", str(media["clip"]), *weight_args(media),
           "--pub", endpoint, "--journal", str(tmp_path / "j.jsonl"), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = 120.0
        import time

        t0 = time.monotonic()
        while not any(isinstance(m, StatusMessage) and m.frame >= 45 for m in collector.messages):
            assert proc.poll() is None and time.monotonic() - t0 < deadline, "no progress before Ctrl-C"
            time.sleep(0.1)
        proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        collector.done.set()
        collector.join(10)
    assert proc.returncode == (0 if signame == "SIGINT" else 128 + signal.SIGTERM), stderr  # cut short: 143
    assert "Traceback" not in stderr
    assert "performance" in stdout  # the summary is printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert 45 <= metrics["performance"]["frames"] < 240  # stopped early
    journal = [json.loads(line) for line in (tmp_path / "j.jsonl").read_text().splitlines()]
    events = [m for m in collector.messages if isinstance(m, EventMessage)]
    assert [d["seq"] for d in journal] == [e.seq for e in events]
    assert len(read_intervals(out / "predictions.csv")) == len(journal)


def test_default_weights_follow_the_source_frame_rate() -> None:
    from engines.demo_weights import default_weights

    def prefix(fps: float | None) -> set[str]:
        return {p.name.split("_")[0] for p in default_weights(fps)}

    assert prefix(None) == prefix(25.0) == prefix(30.0) == prefix(60.0) == {"demo"}
    assert prefix(100.0) == prefix(200.0) == prefix(500.0) == {"demo200"}
    assert all(p.is_file() for fps in (None, 200.0) for p in default_weights(fps))


def test_a_200_fps_replay_uses_the_200_fps_demo_pair(media: dict, tmp_path: Path) -> None:
    """Without --weights, each stream gets the bundled pair trained nearest to its fps:
    the 30 fps test clip the 30 fps pair, a 200 fps synthetic video the 200 fps one."""
    from realtime.synthesis.generate import write_dataset

    fast = tmp_path / "fast"
    write_dataset(fast, 1, 200.0, ["astronaut"], seed=2, layout="mp4", duration_s=3)
    runs = {}
    for name, clip in (("slow", media["clip"]), ("fast", fast / "synth_001.mp4")):
        out = tmp_path / name
        assert live_main(["--replay", str(clip), "--pub", "none", "--quiet", "--max-frames", "120",
                          "--out", str(out)]) == 0
        runs[name] = json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]["models"]
    assert runs["slow"] == {"ME": {"k": 6, "trained_fps": 30.0, "shift": 3},
                            "MaE": {"k": 18, "trained_fps": 30.0, "shift": 9}}
    bundled = Path(__file__).resolve().parents[1] / "engines" / "weights"
    want = {t: read_meta(bundled / f"demo200_{t}.safetensors") for t in ("ME", "MaE")}
    assert runs["fast"] == {t: {"k": m.k, "trained_fps": 200.0, "shift": m.k // 2} for t, m in want.items()}
    assert want["ME"].k != 6 and want["MaE"].k != 18  # not the 30 fps pair's K


def test_one_run_of_30_and_200_fps_videos_gives_each_its_own_pairs_flow(media: dict, tmp_path: Path) -> None:
    """One run of both rates scores each stream with its own rate's demo pair exactly as a
    run of it alone (stream_runner.FlowBackends: one flow backend per pair's flow
    settings, built when first needed; test_flow_backends_one_per_flow_setting)."""
    import shutil

    from realtime.synthesis.generate import write_dataset

    mixed = tmp_path / "mixed"
    write_dataset(mixed, 1, 200.0, ["astronaut"], seed=2, layout="mp4", duration_s=3)
    shutil.copy(media["clip"], mixed / "slow.mp4")

    def scores(replay: Path, out: Path) -> dict[str, list[list[str]]]:
        assert live_main(["--replay", str(replay), "--pub", "none", "--quiet", "--max-frames", "90",
                          "--out", str(out)]) == 0
        rows: dict[str, list[list[str]]] = {}
        with open(out / "scores.csv", newline="") as f:
            for row in list(csv.reader(f))[1:]:
                rows.setdefault(row[0], []).append(row)
        return rows

    together = scores(mixed, tmp_path / "together")
    alone = {**scores(mixed / "slow.mp4", tmp_path / "slow"), **scores(mixed / "synth_001.mp4", tmp_path / "fast")}
    assert set(together) == set(alone) == {"slow", "synth_001"}
    for video in alone:
        assert together[video] == alone[video], video


def test_flow_backends_one_per_flow_setting() -> None:
    """Pairs whose flow settings differ (the dominant head model against the nose box)
    get a backend each; the landmark filter is the aligner's, not the backend's."""
    from dataclasses import replace

    from realtime.common.types import DEFAULT_LANDMARK_FILTER, FlowSettings
    from realtime.stream_runner import FlowBackends

    backends = FlowBackends("cpu")
    dominant = FlowSettings(head_motion="dominant", landmark_filter=DEFAULT_LANDMARK_FILTER)
    a = backends.for_flow(dominant)
    assert backends.for_flow(replace(dominant, landmark_filter=None)) is a
    b = backends.for_flow(FlowSettings())
    assert b is not a and backends.for_flow(FlowSettings()) is b


def test_save_inputs_writes_what_the_model_saw(media: dict, tmp_path: Path) -> None:
    """--save-inputs: four PNGs per chosen pair and type; the saved network input, fed to
    the model, gives the raw score the run wrote in scores.csv (it is what the model saw)."""

    import cv2
    import numpy as np

    from engines.features import normalise
    from engines.scorers import make_scorer

    out = tmp_path / "out"
    code = live_main(["--replay", str(media["clip"]), *weight_args(media), "--out", str(out), "--pub", "none",
                      "--quiet", "--save-inputs", "40,60-61", "--max-frames", "90"])
    assert code == 0
    folder = out / "inputs" / "face_clip"
    ks = {read_meta(w).type: read_meta(w).k for w in media["weights"]}
    expected = {f"{t}_{i}-{i + k}_{part}.png" for t, k in ks.items() for i in (40, 60, 61)
                for part in ("face_a", "face_b", "flow_hs", "input")}
    assert {p.name for p in folder.iterdir()} == expected
    with (out / "scores.csv").open(newline="") as fh:
        raw = {(r["type"], int(r["frame"])): float(r["raw"]) for r in csv.DictReader(fh) if r["raw"]}
    for weights in media["weights"]:
        meta = read_meta(weights)
        scorer = make_scorer(weights, "cpu")
        for i in (40, 60, 61):
            image = cv2.imread(str(folder / f"{meta.type}_{i}-{i + meta.k}_input.png"), cv2.IMREAD_COLOR)
            assert image.shape == (112, 112, 3)
            score = float(scorer.score(normalise(image)[None])[0])
            assert score == pytest.approx(raw[(meta.type, i)], rel=1e-4, abs=1e-6)
        face = cv2.imread(str(folder / f"{meta.type}_40-{40 + meta.k}_face_a.png"), cv2.IMREAD_UNCHANGED)
        assert face.ndim == 2 and face.std() > 5  # a grey face crop, not a blank
        hs = cv2.imread(str(folder / f"{meta.type}_40-{40 + meta.k}_flow_hs.png"), cv2.IMREAD_COLOR)
        assert hs.ndim == 3 and np.ptp(hs) > 0


@pytest.mark.parametrize("extra, needle", [
    (["--save-inputs", "9-3"], "--save-inputs: '9-3'"),
    (["--save-inputs", "ten"], "--save-inputs: 'ten' is not a frame number"),
    (["--save-inputs", "0"], "--save-inputs: '0'"),
])
def test_save_inputs_mistakes_are_one_line(media: dict, tmp_path: Path, capsys: pytest.CaptureFixture,
                                           extra: list[str], needle: str) -> None:
    code = live_main(["--replay", str(media["clip"]), "--out", str(tmp_path / "o"), "--pub", "none", *extra])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and "Traceback" not in err


def test_save_inputs_needs_out(media: dict, capsys: pytest.CaptureFixture) -> None:
    code = live_main(["--replay", str(media["clip"]), "--pub", "none", "--save-inputs", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "--save-inputs: needs --out" in err


def test_the_default_weights_say_they_are_synthetic(media: dict, capsys: pytest.CaptureFixture) -> None:
    """Run on the user's own input with the bundled weights, lgnm-live says what they are
    (trained on synthetic faces only); with weights of one's own it does not."""
    assert live_main(["--replay", str(media["clip"]), "--pub", "none", "--max-frames", "20"]) == 0
    assert "note: the bundled demo weights were trained on synthetic faces only" in capsys.readouterr().err
    assert live_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--max-frames", "20"]) == 0
    assert "bundled demo weights" not in capsys.readouterr().err


def test_a_pipe_or_device_given_as_a_video_is_one_line(tmp_path: Path, capsys) -> None:
    """`--video /dev/stdin` (a piped video), a FIFO, /dev/null: the path exists but is no
    regular file; it was listed as a folder (NotADirectoryError traceback, exit 1)."""
    import os

    from realtime.api import spot
    from realtime.common.errors import UserError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for option, path in (("--video", fifo), ("--replay", fifo), ("--video", Path("/dev/null"))):
        code, err = run_main([option, str(path), "--pub", "none", "--quiet"], capsys)
        assert code == 2 and f"error: {path}: not a regular file (a pipe, device or socket)" in err, err
        assert "Traceback" not in err
    with pytest.raises(UserError, match="/dev/null: not a regular file"):
        next(spot("/dev/null"))


def test_an_eaf_that_cannot_be_written_fails_the_run_and_keeps_the_rest(media: dict, tmp_path: Path, capsys) -> None:
    """A file named `eaf` in --out: the .eaf cannot be written. That printed an error line
    but exited 0; every output that cannot be written is exit 2, the others are kept."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "eaf").write_text("in the way")
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                          "--max-frames", "60", "--out", str(out)], capsys)
    assert code == 2 and f"error: stream {media['clip'].stem}: cannot write its .eaf" in err, err
    assert (out / "predictions.csv").is_file() and json.loads((out / "metrics.json").read_text())["performance"]


def test_save_inputs_that_cannot_be_written_keep_the_stream(media: dict, tmp_path: Path, capsys) -> None:
    """A file named `inputs` in --out: the debug PNGs cannot be written. The stream died
    there as an 'internal error' (exit 1, spotting after that frame lost); now it runs to
    its end, the failure is one error line and the run exits 2."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "inputs").write_text("in the way")
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--pub", "none", "--quiet",
                          "--max-frames", "90", "--save-inputs", "40", "--out", str(out)], capsys)
    assert code == 2 and "--save-inputs: cannot create" in err and "internal error" not in err, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["performance"]["frames"] == 90 and metrics["performance"]["runs"][0]["status"] == "ok"


def test_save_inputs_past_the_stream_says_nothing_was_saved(media: dict, tmp_path: Path, capsys) -> None:
    """--save-inputs 5000 on a 40-frame run saved nothing and said nothing."""
    out = tmp_path / "out"
    code, err = run_main(["--replay", str(media["clip"]), *weight_args(media), "--out", str(out), "--pub", "none",
                          "--quiet", "--save-inputs", "5000", "--max-frames", "40"], capsys)
    assert code == 0 and "--save-inputs: nothing saved (frames 1-40 of this stream hold no pair" in err, err
    notices = json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]["notices"]
    assert any("--save-inputs: nothing saved" in n for n in notices)


def test_a_reused_out_names_the_eaf_files_of_an_earlier_run(media: dict, tmp_path: Path) -> None:
    """A second run into the same --out left the first run's other .eaf files beside its
    own, without a word, while metrics.json and predictions.csv named only its streams."""
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("first", "second"):
        shutil.copy(media["clip"], videos / f"{name}.avi")
    out = tmp_path / "out"
    common = [*weight_args(media), "--pub", "none", "--quiet", "--max-frames", "30", "--out", str(out)]
    assert live_main(["--replay", str(videos), *common]) == 0
    assert live_main(["--replay", str(videos / "second.avi"), *common]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert f"--out {out}: eaf/ also holds 1 .eaf file(s) of an earlier run, left as they were: first.eaf" in notes
    assert not any("truth.csv" in n for n in notes)  # no run had truth: no truth.csv to speak of


def test_a_reused_out_names_an_earlier_runs_truth_csv(media: dict, tmp_path: Path) -> None:
    """A run without truth into the --out of a run with truth left that truth.csv beside a
    metrics.json without MEGC table, unsaid: lgnm-eval on the folder scored the new
    predictions against the old truth."""
    out = tmp_path / "out"
    common = [*weight_args(media), "--pub", "none", "--quiet", "--max-frames", "30", "--out", str(out)]
    assert live_main(["--replay", str(media["clip"]), "--truth", str(media["truth"]), *common]) == 0
    assert live_main(["--replay", str(media["clip"]), *common]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["megc"] is None
    assert (f"--out {out}: truth.csv is an earlier run's, left as it was; this run had no truth (metrics.json has "
            "no MEGC table)") in metrics["notes"]


def test_status_latency_is_the_median_event_latency_so_far(media: dict) -> None:
    """README (Events): --video status messages carry the median latency of the stream's
    events so far, once it has had one. They carried the per-frame read -> scores time,
    from the first status on (23 ms beside events of 2800 ms)."""
    import statistics

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    cmd = [sys.executable, "-m", "realtime.cli", "--video", str(media["clip"]), *weight_args(media),
           "--pub", endpoint, "--quiet", "--max-frames", "150"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    collector.done.set()
    collector.join(10)
    assert proc.returncode == 0, proc.stderr
    latencies: list[float] = []
    statuses = 0
    for message in collector.messages:
        if isinstance(message, EventMessage):
            latencies.append(message.latency_ms)
        elif isinstance(message, StatusMessage):
            statuses += 1
            if latencies:
                assert message.extra["latency_ms"] == pytest.approx(statistics.median(latencies), abs=0.05)
            else:
                assert "latency_ms" not in message.extra, message
    assert latencies and statuses >= 3  # the comparison means something


def test_the_cross_type_note_is_said_once_per_run_on_stderr(media: dict, tmp_path: Path, capsys) -> None:
    """--types ME with the demo ME weights (cross-type rule on): the note that the rule is
    off went to stdout once per stream of a replay, wrapped at 80 columns, and not into
    metrics.json."""
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a", "b"):
        shutil.copy(media["clip"], videos / f"{name}.avi")
    out = tmp_path / "out"
    assert live_main(["--replay", str(videos), "--types", "ME", "--pub", "none", "--max-frames", "20",
                      "--out", str(out)]) == 0
    captured = capsys.readouterr()
    note = "the ME weights' cross-type rule (drop ME inside MaE) needs the MaE model; it is off for this run"
    assert captured.err.count(note) == 1 and note not in captured.out
    runs = json.loads((out / "metrics.json").read_text())["performance"]["runs"]
    assert all(note in r["notices"] for r in runs)


@pytest.mark.parametrize("module, argv", [
    ("tools.bench_pipeline", ["--video", ""]),
    ("tools.bench_engines", ["--weights-me", ""]),
    ("tools.real_motion_check", ["--tracks", ""]),
    ("tools.quality", ["--weights", "x.safetensors", "--work", ""]),
])
def test_the_tools_refuse_an_empty_path_too(module: str, argv: list[str], capsys) -> None:
    """Path('') is '.': an unset variable made these tools read or write the current folder."""
    import importlib

    with pytest.raises(SystemExit) as exit_:
        importlib.import_module(module).main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "empty value (an unset shell variable?)" in err
    assert len(err.splitlines()) == 1 and err.startswith("error: argument "), err  # no usage block


def test_a_type_whose_every_pair_a_hole_breaks_is_named(media: dict, tmp_path: Path) -> None:
    """Every 2nd frame of a clip exported as a folder (frame_00002.png, frame_00004.png,
    ...): long enough for both pairs, yet every hole breaks the chain, so nothing was
    scored and the summary said nothing (exit 0, notes [])."""
    import cv2

    from realtime.sources import VideoFileSource

    folder = tmp_path / "halves"
    folder.mkdir()
    with VideoFileSource(media["clip"]) as src:
        for i, raw in enumerate(itertools.islice(src, 80), start=1):
            if i % 2 == 0:
                cv2.imwrite(str(folder / f"frame_{i:05d}.png"), raw.image)
    out = tmp_path / "out"
    assert live_main(["--replay", str(folder), "--fps", "30", *weight_args(media), "--pub", "none", "--quiet",
                      "--out", str(out)]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    broken = [n for n in notes if "not scored: no runs of K + 1 frames in a row with a face" in n]
    assert len(broken) == 1 and broken[0].startswith("stream halves: ME, MaE not scored") and "ME 7, MaE 19" in broken[0]


def test_an_empty_truth_file_is_said_to_make_every_prediction_an_fp(replay_run: dict, media: dict,
                                                                    tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("video,type,onset,apex,offset\n", encoding="utf-8")
    out = tmp_path / "out"
    assert live_main(["--replay", str(media["clip"]), "--truth", str(empty), *weight_args(media), "--pub", "none",
                      "--quiet", "--max-frames", "40", "--out", str(out)]) == 0
    notes = json.loads((out / "metrics.json").read_text())["notes"]
    assert f"--truth {empty} holds no intervals: every prediction counts as a false positive" in notes


def test_a_stop_before_the_first_stream_ends_the_run_at_once(media: dict, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture, monkeypatch) -> None:
    """Ctrl-C (or SIGTERM) while the models loaded: the run loaded them, replayed nothing,
    wrote an empty summary and said nothing; a stop between two videos did not name the
    video it left out."""
    import threading

    from rich.console import Console

    from realtime import runner
    from realtime.cli import build_parser, config_from_args

    def config(*args: str):
        return config_from_args(build_parser().parse_args(
            ["--replay", *args, *weight_args(media), "--pub", "none", "--quiet", "--out", str(tmp_path / "out")]))

    stop = threading.Event()
    stop.set()
    assert runner.run(config(str(media["clip"])), Console(quiet=True), stop) == 0
    assert capsys.readouterr().err == "note: stopped before the first stream started; nothing was replayed or written\n"
    assert not (tmp_path / "out" / "predictions.csv").exists()

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("a", "b"):
        (folder / f"{name}.avi").symlink_to(media["clip"])
    stop = threading.Event()
    real = runner.run_isolated

    def first_then_stop(*args, **kwargs):  # the user presses Ctrl-C during the first video
        try:
            return real(*args, **kwargs)
        finally:
            stop.set()

    monkeypatch.setattr(runner, "run_isolated", first_then_stop)
    assert runner.run(config(str(folder), "--max-frames", "20"), Console(quiet=True), stop) == 0
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert [r["stream"] for r in metrics["performance"]["runs"]] == ["a"]
    assert "stopped before 1 of 2 stream(s) started, not replayed: b" in metrics["notes"]


def test_a_journal_that_cannot_be_written_stops_itself_not_the_run(media: dict, tmp_path: Path) -> None:
    """A full disk under --journal (here: the process may write no file past 700 bytes,
    RLIMIT_FSIZE, as a quota does) failed the stream with an internal error and a
    traceback, and every later stream of the run with it. Now the journal stops with one
    `error:` line naming it, every event is still published (--json), exit 2."""
    import resource
    import signal

    journal = tmp_path / "events.jsonl"

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
        resource.setrlimit(resource.RLIMIT_FSIZE, (700, 700))

    cmd = [sys.executable, "-m", "realtime.cli", "--replay", str(media["clip"]), *weight_args(media),
           "--pub", "none", "--journal", str(journal), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--journal {journal}: cannot write" in errors[0], proc.stderr
    lines = journal.read_bytes().splitlines()
    events = [json.loads(line) for line in proc.stdout.splitlines() if '"onset_frame"' in line]
    assert 1 <= len(lines) < len(events), (len(lines), len(events))
    journaled = [json.loads(line) for line in lines]  # whole lines only: the torn one was cut off
    assert [(j["type"], j["onset_frame"]) for j in journaled] == [(e["type"], e["onset_frame"])
                                                                  for e in events[: len(lines)]]


def test_a_journal_that_is_no_regular_file_is_refused(media: dict) -> None:
    """--journal /dev/full (a device) was read back at start-up without end (GBs of
    memory before the first frame); a journal is a file."""
    proc = subprocess.run([sys.executable, "-m", "realtime.cli", "--replay", str(media["clip"]), *weight_args(media),
                           "--pub", "none", "--journal", "/dev/full"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "error: --journal /dev/full: not a regular file" in proc.stderr, proc.stderr


def test_a_killed_run_into_a_reused_out_leaves_no_earlier_summary_behind(media: dict, tmp_path: Path) -> None:
    """A run killed (kill -9) into an --out an earlier run had completed left that run's
    metrics.json beside its own partial predictions.csv, and lgnm-report mixed the two
    without a word (the earlier MEGC table over this run's rows). The earlier summary is
    removed when a run starts; the report then says this run left none."""
    import signal
    import time

    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.json").write_text('{"megc": null, "streams": []}')
    proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", "--replay", str(media["clip"]), *weight_args(media),
                             "--out", str(out), "--pub", "none", "--realtime", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "predictions.csv").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (out / "predictions.csv").exists() and not (out / "metrics.json").exists()
    report = subprocess.run([sys.executable, "-m", "realtime.report", str(out)], capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 2 and "metrics.json" in report.stderr, report.stderr
