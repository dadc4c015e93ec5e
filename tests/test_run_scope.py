"""What a run is scored on and what one stream's failure does to the others.

Real `lgnm-live` runs (in process) over real video files and a stand-in CAS(ME)^2
layout: a partial run is scored on the frames it replayed, truth of videos not replayed
is named and left out, OUT/truth.csv reproduces the table through `lgnm-eval`, dataset
replays use the dataset's video ids, and a failing stream is one error line while the
other streams run.
"""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calibration.megc import evaluate
from realtime.cli import main as live_main
from realtime.common.types import Interval
from realtime.intervals_csv import read_intervals, write_intervals
from tools.evaluate import main as eval_main

from media import write_face_clip, write_random_weights


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("scope")
    clip, truth = write_face_clip(folder, "face_clip", seconds=8.0, seed=10)  # two MaE
    return {"folder": folder, "clip": clip, "truth": truth, "truth_csv": folder / "face_clip_truth.csv",
            "weights": write_random_weights(folder, threshold=0.5)}


def weight_args(media: dict) -> list[str]:
    return [a for w in media["weights"] for a in ("--weights", str(w))]


def predictions(out: Path) -> list[Interval]:
    path = out / "predictions.csv"
    return read_intervals(path) if path.is_file() and path.stat().st_size else []


def eval_json(truth: Path, pred: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert eval_main(["--truth", str(truth), "--pred", str(pred), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_partial_run_is_scored_on_the_frames_it_replayed(media: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """--max-frames N: truth after frame N is not scored (it was never seen), and
    lgnm-eval on OUT/truth.csv gives the run's own table."""
    truth = media["truth"]
    assert len(truth) >= 2
    stop = min(iv.offset for iv in truth) + 10  # the first truth interval ends by then, not the last
    out = tmp_path / "out"
    assert live_main(["--replay", str(media["clip"]), "--truth", str(media["truth_csv"]), *weight_args(media),
                      "--max-frames", str(stop), "--pub", "none", "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    inside = [iv for iv in truth if iv.offset <= stop]
    assert 0 < len(inside) < len(truth)
    assert metrics["megc"]["overall"]["n_truth"] == len(inside)
    assert f"{len(truth) - len(inside)} truth interval(s) end after the last frame read" in err
    cut = [iv for iv in truth if iv.offset > stop]  # named, as README says
    assert f"{cut[0].video} {cut[0].type} {cut[0].onset}-{cut[0].offset}" in err
    assert metrics["performance"]["runs"][0]["last_frame"] == stop
    assert sorted((iv.onset, iv.offset) for iv in read_intervals(out / "truth.csv")) == \
        sorted((iv.onset, iv.offset) for iv in inside)
    assert eval_json(out / "truth.csv", out / "predictions.csv", capsys) == metrics["megc"]


def test_truth_of_videos_not_replayed_is_named_and_not_scored(media: dict, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture) -> None:
    truth_csv = tmp_path / "truth.csv"
    other = [Interval("another_video", "MaE", 100, 140, apex=120), Interval("another_video", "ME", 300, 305, apex=302)]
    write_intervals(truth_csv, [*media["truth"], *other], truth=True)
    out = tmp_path / "out"
    assert live_main(["--replay", str(media["clip"]), "--truth", str(truth_csv), *weight_args(media),
                      "--pub", "none", "--quiet", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "truth of 1 video(s) not replayed, not scored: another_video" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["megc"]["overall"]["n_truth"] == len(media["truth"])
    assert any("another_video" in n for n in metrics["notes"])
    assert eval_json(out / "truth.csv", out / "predictions.csv", capsys) == metrics["megc"]
    assert metrics["megc"] == evaluate(media["truth"], predictions(out)).to_json()


def test_lgnm_eval_refuses_files_with_no_video_in_common(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Folder names against dataset ids gave F1 0.000 without a word."""
    write_intervals(tmp_path / "t.csv", [Interval("s15_0101", "MaE", 10, 40, apex=20)], truth=True)
    write_intervals(tmp_path / "p.csv", [Interval("15_0101disgustingteeth", "MaE", 10, 40, score=0.9)])
    assert eval_main(["--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --pred") and "15_0101disgustingteeth" in err and "s15_0101" in err


def test_lgnm_eval_says_what_it_counts_without_saying(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Truth videos with no prediction count as missed, predicted videos with no truth as
    false positives, an empty truth makes every prediction one: each is a note on stderr
    (the table, or --json on stdout, is unchanged); a suffix look-alike is named."""
    write_intervals(tmp_path / "t.csv", [Interval("clip", "MaE", 10, 40, apex=20),
                                         Interval("clip.mp4", "ME", 50, 55, apex=52),
                                         Interval("other", "MaE", 5, 30, apex=9)], truth=True)
    write_intervals(tmp_path / "p.csv", [Interval("clip", "MaE", 10, 40, score=0.9),
                                         Interval("extra", "MaE", 1, 9, score=0.5)])
    assert eval_main(["--truth", str(tmp_path / "t.csv"), "--pred", str(tmp_path / "p.csv"), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["overall"]["tp"] == 1
    notes = captured.err.splitlines()
    assert len(notes) == 3 and all(n.startswith("note: ") for n in notes)
    assert "2 truth video(s) have no prediction" in notes[0] and "clip.mp4, other" in notes[0]
    assert "1 predicted video(s) have no truth" in notes[1] and "extra" in notes[1]
    assert notes[2].endswith("differ only by a file suffix are two videos here: 'clip.mp4' and 'clip'")
    from tools.evaluate import suffix_lookalikes

    assert suffix_lookalikes({"s1/vid.mp4"}, {"s1/vid"}) == ["'s1/vid.mp4' and 's1/vid'"]  # ids with a folder
    assert suffix_lookalikes({"take.v2"}, {"take"}) == []  # not a video file's suffix
    write_intervals(tmp_path / "empty.csv", [], truth=True)
    assert eval_main(["--truth", str(tmp_path / "empty.csv"), "--pred", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"note: --truth {tmp_path / 'empty.csv'} holds no intervals: every "
                                        "prediction counts as a false positive"]


def test_cas_replay_names_streams_by_the_workbooks_video_ids(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The design card's benchmark: `lgnm-synth --layout cas` then `--replay CAS`. Streams,
    events and predictions carry `s15_0101`-style ids (the truth's keys), not folder names,
    so the bundled demo weights are scored against the truth (they scored 0 before)."""
    from realtime.synthesis.generate import write_dataset

    root = tmp_path / "cas"
    write_dataset(root, 1, 30.0, seed=5, layout="cas", duration_s=12.0)
    truth = read_intervals(root / "truth.csv")
    assert truth, "the stand-in clip must have truth"
    video_id = truth[0].video
    folders = [p.name for p in (root / "rawpic").glob("s*/*")]
    assert folders and video_id not in folders  # the folder name differs from the id
    out = tmp_path / "out"
    assert live_main(["--replay", "CAS", "--data", str(root), "--annotations", str(next(root.glob("*.xlsx"))),
                      "--out", str(out), "--pub", "none", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["performance"]["runs"][0]["stream"] == video_id
    assert {iv.video for iv in predictions(out)} <= {video_id}
    assert metrics["megc"]["overall"]["n_truth"] == len(truth)
    assert metrics["megc"]["overall"]["tp"] >= 1  # the demo weights find some of it


def test_a_failing_stream_is_one_line_and_the_others_run(media: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(media["clip"], folder / "a_good.avi")
    (folder / "b_bad.avi").write_bytes(b"\x00" * 1000)  # not a video
    shutil.copy(media["clip"], folder / "c_good.avi")
    out = tmp_path / "out"
    code = live_main(["--replay", str(folder), *weight_args(media), "--out", str(out), "--pub", "none", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "stream b_bad" in errors[0] and "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    status = {r["stream"]: r["status"] for r in metrics["performance"]["runs"]}
    assert status == {"a_good": "ok", "b_bad": "failed", "c_good": "ok"}
    assert {iv.video for iv in predictions(out)} == {"a_good", "c_good"}


def test_inputs_sharing_a_video_id_are_refused(media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """clip.avi beside clip.mkv would be two streams named `clip` sharing one truth."""
    folder = tmp_path / "dup"
    folder.mkdir()
    shutil.copy(media["clip"], folder / "clip.avi")
    shutil.copy(media["clip"], folder / "clip.mkv")
    code = live_main(["--replay", str(folder), *weight_args(media), "--pub", "none", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "share the video id 'clip'" in err


def test_an_internal_fault_in_one_stream_does_not_end_the_others(media: dict, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug inside one stream (injected here: the real pipeline raises for stream b) is
    one line naming the stream, exit 1, its traceback in OUT/errors.log, and the next
    stream still runs."""
    import realtime.stream_runner as runner

    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("a", "b", "c"):
        shutil.copy(media["clip"], folder / f"{name}.avi")
    real_run_stream = runner.run_stream

    def faulty(source, *args, **kwargs):
        if source.name == "b":
            raise RuntimeError("injected fault")
        return real_run_stream(source, *args, **kwargs)

    monkeypatch.setattr(runner, "run_stream", faulty)
    out = tmp_path / "out"
    code = live_main(["--replay", str(folder), *weight_args(media), "--out", str(out), "--pub", "none",
                      "--quiet", "--max-frames", "60"])
    err = capsys.readouterr().err
    assert code == 1
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        f"error: stream b: internal error: RuntimeError: injected fault; traceback in {out / 'errors.log'}"]
    assert "injected fault" in (out / "errors.log").read_text()
    runs = json.loads((out / "metrics.json").read_text())["performance"]["runs"]
    assert [(r["stream"], r["status"], r["frames"]) for r in runs] == [("a", "ok", 60), ("b", "failed", 0),
                                                                        ("c", "ok", 60)]


def test_a_stream_failing_midway_keeps_what_it_spotted(media: dict, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """Frame 181 of a frame folder changes aspect ratio (a spliced input): the stream fails (one
    error line, exit 2), but the intervals of frames 1-180 are final and published exactly
    as a run that stopped after frame 180 (found by review: they were lost, yet their
    truth was scored). (An unreadable image no longer fails a stream: it is skipped.)"""
    import cv2

    from realtime.sources import VideoFileSource

    intact, broken = tmp_path / "intact" / "face_clip", tmp_path / "broken" / "face_clip"  # the truth's id
    intact.mkdir(parents=True)
    broken.mkdir(parents=True)
    with VideoFileSource(media["clip"]) as src:
        for raw in src:
            if raw.index > 200:
                break
            for folder in (intact, broken):
                cv2.imwrite(str(folder / f"img{raw.index}.png"), raw.image)
    frame = cv2.imread(str(broken / "img181.png"))
    cv2.imwrite(str(broken / "img181.png"), cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0])))
    runs = {}
    for name, folder, extra in (("broken", broken, []), ("stopped", intact, ["--max-frames", "180"])):
        out = tmp_path / f"out_{name}"
        code = live_main(["--replay", str(folder), "--fps", "30", "--truth", str(media["truth_csv"]),
                          *weight_args(media), "--out", str(out), "--pub", "none", "--quiet", *extra])
        runs[name] = (code, predictions(out), json.loads((out / "metrics.json").read_text()))
    assert runs["broken"][0] == 2 and runs["stopped"][0] == 0
    assert "img181.png" in capsys.readouterr().err
    assert runs["broken"][1] == runs["stopped"][1]  # the same final intervals
    assert runs["broken"][2]["megc"] == runs["stopped"][2]["megc"]
    assert runs["broken"][2]["performance"]["runs"][0]["last_frame"] == 180


def test_a_stream_failing_early_is_not_called_too_short(media: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """Frame 13 of 30 changes aspect ratio: the stream fails after 12 frames, and the
    summary said it had 'only 12 frames, fewer than one frame pair needs' as if the input
    were too short; the error is the reason, said once."""
    import cv2

    from realtime.sources import VideoFileSource

    folder = tmp_path / "clips" / "clip"
    folder.mkdir(parents=True)
    with VideoFileSource(media["clip"]) as src:
        for raw in itertools.islice(src, 30):
            image = raw.image if raw.index <= 12 else cv2.resize(raw.image, (raw.image.shape[0],) * 2)
            cv2.imwrite(str(folder / f"img{raw.index}.png"), image)
    out = tmp_path / "out"
    code = live_main(["--replay", str(folder.parent), "--fps", "30", *weight_args(media), "--out", str(out),
                      "--pub", "none", "--quiet"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 2 and "img13.png" in capsys.readouterr().err
    assert not [n for n in metrics["notes"] if "fewer than one frame pair" in n], metrics["notes"]
    assert not [n for n in metrics["performance"]["runs"][0].get("notices", []) if "fewer than one" in n]
    blank = tmp_path / "blank" / "clip"  # no face either: the error is still the one reason given
    blank.mkdir(parents=True)
    for i in range(1, 31):
        cv2.imwrite(str(blank / f"img{i}.png"), np.full((48, 64, 3) if i <= 12 else (48, 48, 3), 90, np.uint8))
    out = tmp_path / "out_blank"
    assert live_main(["--replay", str(blank.parent), "--fps", "30", *weight_args(media), "--out", str(out),
                      "--pub", "none", "--quiet"]) == 2
    assert json.loads((out / "metrics.json").read_text())["notes"] == []


def test_truth_before_the_first_frame_read_is_left_out_with_a_note(media: dict, tmp_path: Path) -> None:
    """A clip cut from a longer recording that kept its numbers (frames 1001-1060): truth
    at 10-20 was scored as a miss (F1 halved) with no word, while truth after the last
    frame was left out with a note; both ends are now treated alike."""
    import cv2

    from realtime.intervals_csv import read_intervals
    from realtime.sources import VideoFileSource

    folder = tmp_path / "clips" / "clip"
    folder.mkdir(parents=True)
    with VideoFileSource(media["clip"]) as src:
        for raw in itertools.islice(src, 60):
            cv2.imwrite(str(folder / f"f{raw.index + 1000}.png"), raw.image)
    truth = tmp_path / "truth.csv"
    truth.write_text("video,type,onset,apex,offset\nclip,MaE,10,15,20\nclip,MaE,1020,1025,1030\n")
    out = tmp_path / "out"
    assert live_main(["--replay", str(folder.parent), "--fps", "30", "--truth", str(truth), *weight_args(media),
                      "--out", str(out), "--pub", "none", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "1 truth interval(s) start before the first frame read of their video, not scored: clip MaE 10-20" \
        in metrics["notes"], metrics["notes"]
    assert metrics["megc"]["MaE"]["n_truth"] == 1 and metrics["performance"]["runs"][0]["first_frame"] == 1001
    assert [(iv.onset, iv.offset) for iv in read_intervals(out / "truth.csv")] == [(1020, 1030)]


def test_a_replay_logs_a_line_per_video_when_output_is_not_a_terminal(
        media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Under capture stdout is not a terminal: no progress bar can show, so each finished
    video prints one `replay i/N` line with its frames, rate, state and an ETA."""
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(media["clip"], folder / "a_good.avi")
    (folder / "b_bad.avi").write_bytes(b"\x00" * 1000)
    shutil.copy(media["clip"], folder / "c_good.avi")
    code = live_main(["--replay", str(folder), *weight_args(media), "--pub", "none", "--max-frames", "45"])
    out = capsys.readouterr().out.splitlines()
    lines = [ln for ln in out if ln.startswith("replay ")]
    assert code == 2 and len(lines) == 3, lines
    # nothing between them: a stopped progress bar left a blank line after each video
    assert "" not in out[out.index(lines[0]):out.index(lines[2])], out
    assert lines[0].startswith("replay 1/3 a_good: 45 frames in ") and ", ok; 2 left, ETA " in lines[0]
    assert lines[1].startswith("replay 2/3 b_bad: 0 frames in ") and ", failed; 1 left" in lines[1]
    assert lines[2].startswith("replay 3/3 c_good: 45 frames in ") and "left" not in lines[2]


def test_replay_log_eta_uses_frames_when_every_count_is_known() -> None:
    from realtime.replay_log import ReplayLog

    now = [0.0]  # the run's clock: 2 s have passed when "a" finishes
    log = ReplayLog({"a": 100, "b": 300, "c": 600}, clock=lambda: now[0])
    now[0] = 2.0
    log.finish("a", 100, 2.0, None)  # 50 fps so far
    assert log.eta_s() == pytest.approx(900 / 50)
    now[0] = 0.0
    by_videos = ReplayLog({"a": 100, "b": None, "c": 600}, clock=lambda: now[0])
    now[0] = 2.0
    by_videos.finish("a", 100, 2.0, None)
    assert by_videos.eta_s() == pytest.approx(2 * 2.0)  # two videos left at 2 s each
    assert ReplayLog({"a": 10}).eta_s() is None
    # On a cluster videos finish in any order and side by side: what is left is what has
    # not finished, at the run's own elapsed time (not the sum of the videos' times)
    now[0] = 0.0
    parallel = ReplayLog({"a": 100, "b": 300, "c": 600}, clock=lambda: now[0])
    now[0] = 3.0
    parallel.finish("c", 600, 3.0, None)
    parallel.finish("b", 300, 3.0, None)
    assert parallel.eta_s() == pytest.approx(100 * 3.0 / 900)


def test_replay_log_lines_after_a_stop_or_a_failure_promise_nothing() -> None:
    """Ctrl-C during the first of two videos printed 'ok; 1 left, ETA 0:00:08' and then
    nothing; a first video that failed to open printed '(0 fps), failed; 2 left, ETA 0:00:00'."""
    from realtime.replay_log import ReplayLog

    stopped = ReplayLog({"a": 450, "b": 450}).finish("a", 221, 7.6, None, stopped=True)
    assert stopped == "replay 1/2 a: 221 frames in 7.6 s (29 fps), stopped; 1 not replayed"
    failed = ReplayLog({"a": None, "b": None, "c": None}).finish("a", 0, 0.2, "cannot open")
    assert failed == "replay 1/3 a: 0 frames in 0.2 s, failed; 2 left"
