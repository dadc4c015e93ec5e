"""lgnm-train on a user's own folder (videos + truth.csv): what is read, and what is said
about truth that cannot be used. Field trial: rows naming `clip1.mp4` (ids are stems),
a row for a video not in the folder and a row past a video's end were dropped or kept
without a word, changing K and leaving expressions labelled as negatives."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.intervals_csv import write_intervals
from tools import train
from tools.features_cache import iter_frames


def _clip(path: Path, n: int = 40, pause_after: int | None = None) -> Path:
    """A small video; with `pause_after`, a 10-frame pause in its timestamps after that frame."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 30)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 + 4 * i, np.uint8), format="bgr24")
            frame.pts = i + (10 if pause_after is not None and i > pause_after else 0)
            frame.time_base = fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    _clip(tmp_path / "clip1.mp4")
    _clip(tmp_path / "clip2.MP4")  # a camera's upper-case suffix
    _clip(tmp_path / "clip3.mov")
    return tmp_path


def test_every_video_suffix_is_read_and_unusable_truth_is_said(folder: Path, capsys: pytest.CaptureFixture) -> None:
    write_intervals(folder / "truth.csv", [
        Interval("clip1", "MaE", 5, 20, apex=10), Interval("clip2", "MaE", 5, 20, apex=10),
        Interval("clip3", "MaE", 30, 60, apex=35),  # past its 40 frames
        Interval("clip9", "MaE", 5, 20, apex=10),  # no such video
        Interval("clip1.mp4", "ME", 5, 8, apex=6),  # a file name, not the id
    ], truth=True)
    videos = train.load_videos("synth", folder, None)
    assert [(v.id, v.fps, len(v.truth)) for v in videos] == [("clip1", 30.0, 1), ("clip2", 30.0, 1), ("clip3", 30.0, 1)]
    notes = capsys.readouterr().err.splitlines()
    assert notes[0] == f"note: {folder / 'truth.csv'}: 1 interval(s) of clip3 end after its last frame (40): MaE 30-60"
    assert notes[1].startswith(f"note: {folder / 'truth.csv'}: 2 interval(s) of 2 video(s) not in {folder}, not used: "
                               "clip1.mp4, clip9; video ids are file stems without a suffix ('clip1.mp4' is 'clip1')")
    assert len(notes) == 2


def test_truth_naming_no_video_and_a_workbook_for_synth_are_errors(folder: Path) -> None:
    write_intervals(folder / "truth.csv", [Interval("clip1.mp4", "MaE", 5, 20, apex=10)], truth=True)
    with pytest.raises(UserError, match=r"none of its videos \(clip1.mp4\) is in .*'clip1.mp4' is 'clip1'"):
        train.load_videos("synth", folder, None)
    with pytest.raises(UserError, match=r"--annotations: not read with --dataset synth"):
        train.load_videos("synth", folder, folder / "CAS.xlsx")


def test_a_type_without_truth_stops_before_any_training(folder: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """ME-only truth with --type both trained and wrote ME, then failed on MaE."""
    write_intervals(folder / "truth.csv", [Interval("clip1", "ME", 5, 8, apex=6)], truth=True)
    out = tmp_path / "out"
    assert train.main(["--dataset", "synth", "--data", str(folder), "--out", str(out), "--epochs", "1"]) == 2
    assert "no MaE intervals in the annotations of" in capsys.readouterr().err
    assert not any(out.glob("*.safetensors"))


def test_ctrl_c_during_training_is_one_line(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_intervals(folder / "truth.csv", [Interval("clip1", "ME", 5, 8, apex=6),
                                           Interval("clip1", "MaE", 5, 20, apex=10)], truth=True)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run_type", interrupted)
    assert train.main(["--dataset", "synth", "--data", str(folder), "--out", str(tmp_path / "o"), "--epochs", "1"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: interrupted; weights in ")


def test_training_frames_are_numbered_as_lgnm_live_numbers_them(tmp_path: Path) -> None:
    """A pause in the timestamps: OpenCV read the frames back to back (and the rate as the
    average), so labels after it were shifted; now the numbers it leaves out are None (no
    face: no pair spans the hole, as lgnm-live's chain breaks there; the aligner never
    sees them, as lgnm-live's does not)."""
    from realtime.sources import VideoFileSource

    path = _clip(tmp_path / "paused.mp4", n=40, pause_after=19)
    frames = list(iter_frames(path))
    assert len(frames) == 50 == VideoFileSource(path).last_number
    assert all(f is None for f in frames[20:30]) and all(f is not None for f in frames[:20] + frames[30:])
    live = [r.image for r in VideoFileSource(path)]
    assert all(np.array_equal(a, b) for a, b in zip(frames[:20] + frames[30:], live, strict=True))  # type: ignore[arg-type]


def test_lgnm_live_notes_a_pair_trained_at_two_rates(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An interrupted lgnm-train into a folder of older weights leaves ME from one run and
    MaE from another: lgnm-calibrate refuses such a pair, lgnm-live ran it without a word."""
    import dataclasses

    from engines.weights import load_weights, save_weights
    from realtime.run_config import RunConfig
    from realtime.stream_runner import load_scorers
    from tools.sample_media import write_random_weights

    me, mae = write_random_weights(tmp_path)
    net, meta = load_weights(me)
    me60 = save_weights(net, dataclasses.replace(meta, fps=60.0, k=12, post={**meta.post, "k": 12}),
                        tmp_path / "me60.safetensors")
    scorers = load_scorers(RunConfig(replay="demo", weights=(me60, mae), backend="cpu"), (me60, mae))
    assert len(scorers) == 2
    assert capsys.readouterr().err == ("note: --weights: ME trained at 60 fps and MaE trained at 30 fps; a pair from "
                                       "two trainings? (each is scaled to the stream's rate)\n")
    load_scorers(RunConfig(replay="demo", weights=(me, mae), backend="cpu"), (me, mae))
    assert capsys.readouterr().err == ""


def test_no_positive_frames_names_the_training_videos_and_the_way_out() -> None:
    """Two videos, the only labelled one drawn for validation: the message blamed the
    annotations and K, which were fine."""
    from types import SimpleNamespace

    prepared = [SimpleNamespace(video=SimpleNamespace(id="clip2"), labels=np.zeros(30, bool),
                                inputs=SimpleNamespace(valid=np.ones(30, bool)))]
    with pytest.raises(UserError, match=r"in the 1 training video\(s\) \(clip2\): .*--val-frac 0 keeps every video"):
        train.balanced_indices(prepared, train.TrainConfig(), np.random.default_rng(0))  # type: ignore[arg-type]


def test_ctrl_c_in_any_tool_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """lgnm-calibrate (and every tool without its own handling) printed a KeyboardInterrupt
    traceback."""
    from tools import calibrate

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(calibrate, "build_parser", interrupted)
    assert calibrate.main([]) == 130
    assert capsys.readouterr().err == ("error: interrupted (Ctrl-C); what was written before stays, nothing after\n")


def test_mixed_rates_name_the_videos_at_each_rate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _clip(tmp_path / "a.mp4")
    with av.open(str(tmp_path / "b.mp4"), "w") as out:  # the same at 25 fps
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(30):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 50 + i, np.uint8),
                                                                   format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    write_intervals(tmp_path / "truth.csv", [Interval("a", "ME", 5, 8, apex=6), Interval("b", "ME", 5, 8, apex=6)],
                    truth=True)
    assert train.main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--type", "ME",
                       "--epochs", "1"]) == 2
    assert "mix frame rates (25 fps: b; 30 fps: a); train one rate at a time" in capsys.readouterr().err


def test_the_aligner_never_sees_the_frames_a_file_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Black frames at a pause reset the training aligner's tracker and landmark filter,
    which lgnm-live's never sees: faces after the pause differed by up to 3 px."""
    from tools import features_cache

    seen: list[float] = []

    class Recording:
        def align(self, frame: np.ndarray, t: float) -> None:
            seen.append(round(t * 30))

        def close(self) -> None:
            pass

    monkeypatch.setattr(features_cache, "_make_aligner", lambda *_args, **_kw: Recording())
    faces = features_cache.align_video(_clip(tmp_path / "paused.mp4", n=40, pause_after=19), 112, None, 30.0)
    assert len(faces) == 50 and all(f is None for f in faces)
    assert seen == list(range(20)) + list(range(30, 50))  # frame times, the hole skipped


def test_two_videos_with_one_stem_are_refused(folder: Path) -> None:
    _clip(folder / "clip1.MOV")
    write_intervals(folder / "truth.csv", [Interval("clip1", "MaE", 5, 20, apex=10)], truth=True)
    with pytest.raises(UserError, match=r"several videos share the id 'clip1' \(the file stem\); rename one"):
        train.load_videos("synth", folder, None)


def test_a_link_loop_named_like_an_image_is_no_frame(tmp_path: Path) -> None:
    """os.scandir's is_file() raised ELOOP: a traceback, or the folder not taken as frames."""
    import os

    import cv2

    from realtime.sources import has_image_files, image_files

    for i in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"img{i}.jpg"), np.full((8, 8, 3), 9 * i, np.uint8))
    os.symlink("xa.jpg", tmp_path / "xa.jpg")
    assert [p.name for p in image_files(tmp_path)] == ["img1.jpg", "img2.jpg", "img3.jpg"]
    assert has_image_files(tmp_path)
