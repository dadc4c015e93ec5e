"""Real-motion driving (realtime/synthesis/real_motion.py): a face photo moved by a real
landmark track. FaceMesh on the rendered frames must find the landmarks where the driver
put them, and the motion must follow the track (a real track is generated here: the
shared tracks are optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.common.errors import UserError
from realtime.face import FaceLandmarker
from realtime.synthesis.faces import compose_scene, load_face
from realtime.synthesis.real_motion import MotionDriver, MotionTrack, load_track, pingpong


def synthetic_track(n: int = 40) -> MotionTrack:
    """A head drift to the right (rigid) and a jaw drop (non-rigid), in IOD units."""
    disp = np.zeros((n, 468, 2), np.float32)
    t = np.linspace(0, 1, n, dtype=np.float32)
    disp[..., 0] += 0.15 * t[:, None]  # the whole face moves right by 0.15 IOD
    jaw = [152, 148, 176, 149, 150, 377, 400, 378, 379, 17, 84, 314, 14, 87, 317]
    disp[:, jaw, 1] += 0.08 * np.sin(np.pi * t)[:, None]
    return MotionTrack("synthetic", 30.0, disp)


@pytest.fixture(scope="module")
def scene():
    return compose_scene(load_face("grace_hopper"), 640, 480, 200.0, np.random.default_rng(1))


def test_facemesh_finds_the_landmarks_where_the_driver_put_them(scene) -> None:
    driver = MotionDriver(scene, synthetic_track())
    errors, moved = [], []
    with FaceLandmarker() as mesh:
        first = mesh.detect(driver.render(1))
        for i in (1, 10, 20, 30, 40):
            found = mesh.detect(driver.render(i))
            assert found is not None
            errors.append(float(np.median(np.linalg.norm(found - driver.landmarks(i), axis=1))))
            moved.append(float(np.median(found[:, 0] - first[:, 0])))
    iod = driver.iod
    assert max(errors) < 0.04 * iod  # within 4% of the IOD (a few px at 111 px)
    assert moved[-1] == pytest.approx(0.15 * iod, abs=0.04 * iod)  # the drift happened
    chin = driver.landmarks(20)[152] - driver.landmarks(20).mean(axis=0)
    chin0 = driver.landmarks(1)[152] - driver.landmarks(1).mean(axis=0)
    assert chin[1] - chin0[1] > 0.05 * iod  # the jaw dropped relative to the face


def test_tracks_load_resample_and_play_back_and_forth(tmp_path: Path) -> None:
    track = synthetic_track(25)
    np.savez(tmp_path / "real_x.npz", displacement=np.concatenate(
        [track.displacement, np.zeros((25, 468, 1), np.float32)], axis=2).astype(np.float16),
        face_found=np.ones(25, bool), fps=np.float32(25.0))
    loaded = load_track(tmp_path / "real_x.npz")
    assert loaded.n_frames == 25 and loaded.fps == 25.0
    assert loaded.at_fps(30.0).n_frames == 30
    assert [pingpong(k, 4) for k in range(8)] == [0, 1, 2, 3, 2, 1, 0, 1]
    with pytest.raises(UserError, match="no such motion track"):
        load_track(tmp_path / "nope.npz")


def write_track(path: Path, track: MotionTrack) -> Path:
    disp = np.concatenate([track.displacement, np.zeros((*track.displacement.shape[:2], 1), np.float32)], axis=2)
    np.savez(path, displacement=disp.astype(np.float16), face_found=np.ones(track.n_frames, bool),
             fps=np.float32(track.fps))
    return path


def test_training_videos_driven_by_a_real_track_keep_their_truth(tmp_path: Path) -> None:
    """lgnm-synth --real-motion: the face moves by the track (motion that is not an
    expression), the truth is the one of the same seed without it, and it is seeded."""
    from realtime.synthesis.generate import SynthConfig, generate_video

    track = write_track(tmp_path / "real_t.npz", synthetic_track(60))
    plain = generate_video(SynthConfig(name="v", fps=30.0, duration_s=8.0, size=(320, 240)), 4)
    config = SynthConfig(name="v", fps=30.0, duration_s=8.0, size=(320, 240), real_motion=(str(track),))
    moved, again = generate_video(config, 4), generate_video(config, 4)
    assert moved.truth == plain.truth and moved.motion is not None
    assert again.motion is not None
    assert (moved.motion.track.name, moved.motion.start, moved.motion.scale) == \
        (again.motion.track.name, again.motion.start, again.motion.scale)
    frames = [(plain.frame(i), moved.frame(i)) for i in (5, 25)]
    assert np.array_equal(moved.frame(25), again.frame(25))
    diffs = [float(np.abs(a.astype(int) - b.astype(int)).mean()) for a, b in frames]
    assert max(diffs) > 1.0  # the head really moved


def test_lgnm_synth_real_motion_option(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tools.synth import main

    track = write_track(tmp_path / "real_t.npz", synthetic_track(30))
    assert main(["--out", str(tmp_path / "out"), "--videos", "1", "--duration", "5", "--real-motion",
                 str(tmp_path)]) == 0
    rows = (tmp_path / "out" / "real_motion.csv").read_text().splitlines()
    assert rows[0] == "video,track,start_frame,scale" and rows[1].startswith("synth_001,real_t,")
    assert main(["--out", str(tmp_path / "o2"), "--real-motion", str(tmp_path / "none.npz")]) == 2
    assert "none.npz" in capsys.readouterr().err
    assert track.is_file()


def test_real_motion_check_refuses_a_pair_with_two_landmark_filters(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """The check aligns each frame once, with the pair's landmark filter: the filtered demo
    ME beside an unfiltered baseline MaE (the same flow otherwise) would measure the MaE on
    inputs it never sees."""
    from dataclasses import replace

    from engines.baseline import FlowMagnitudeNet
    from engines.weights import read_meta, save_weights
    from tools.real_motion_check import main

    weights = Path(__file__).resolve().parents[1] / "engines" / "weights"
    me = read_meta(weights / "demo_ME.safetensors")
    base = read_meta(weights / "baseline_MaE.safetensors")
    base = replace(base, flow=replace(me.flow, landmark_filter=None))
    assert base.flow != me.flow and base.flow.same_flow_as(me.flow)
    unfiltered = save_weights(FlowMagnitudeNet(base), base, tmp_path / "baseline_MaE.safetensors")
    rc = main(["--weights", str(weights / "demo_ME.safetensors"), str(unfiltered),
               "--tracks", str(weights)])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert "landmark filters" in err and "Traceback" not in err


def test_low_passed_track_keeps_slow_motion_and_drops_frame_jitter() -> None:
    """The check's jitter-free still rows: a 0.5 Hz head drift survives a 3 Hz low-pass,
    frame-to-frame landmark noise (FaceMesh jitter on a real clip) mostly does not."""
    rng = np.random.default_rng(0)
    n, fps = 300, 30.0
    slow = 0.1 * np.sin(2 * np.pi * 0.5 * np.arange(n) / fps)
    noise = rng.normal(0, 0.02, (n, 468, 2))
    track = MotionTrack("still", fps, (slow[:, None, None] + noise).astype(np.float32))
    out = track.low_passed(3.0)
    assert out.displacement.shape == track.displacement.shape and out.fps == fps
    kept = out.displacement[20:-20].mean(axis=(1, 2))  # the mean over points cancels the noise
    assert np.abs(kept - slow[20:-20]).max() < 0.01  # the drift, no delay (zero phase)
    step_in = np.abs(np.diff(track.displacement - slow[:, None, None], axis=0)).mean()
    step_out = np.abs(np.diff(out.displacement - slow[:, None, None], axis=0)).mean()
    assert step_out < 0.15 * step_in  # frame-to-frame jitter cut ~10x (white noise, 3 of 15 Hz kept)
    with pytest.raises(ValueError, match="cutoff"):
        track.low_passed(15.0)  # at Nyquist


def test_real_motion_check_refuses_a_low_pass_above_nyquist(capsys: pytest.CaptureFixture) -> None:
    from tools.real_motion_check import main

    rc = main(["--tracks", "nowhere", "--low-pass", "20"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--low-pass" in err[0]


def test_real_motion_check_bounds_follow_fps(capsys: pytest.CaptureFixture) -> None:
    """`--fps` sets the driven clips' rate: its Nyquist bounds --low-pass (100 Hz at 200
    fps, where 20 Hz is allowed), and a rate outside [1, 1000] is refused by name."""
    from tools.real_motion_check import main

    assert main(["--tracks", "nowhere", "--fps", "0.5"]) == 2
    assert "--fps" in capsys.readouterr().err
    assert main(["--tracks", "nowhere", "--fps", "200", "--low-pass", "150"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--low-pass" in err[0] and "100" in err[0]


def test_labelled_expressions_of_a_track_map_to_every_frame_that_shows_them() -> None:
    """A 40-frame track labelled 10-15-20 (frames at 30 fps) played back and forth over
    100 video frames: forwards (frames 10-20), backwards through it (60-70: the track's
    frames 20..10), forwards again (88-98); apex at the labelled frame each time."""
    from realtime.synthesis.real_expressions import TimedLabel, expression_truth
    from realtime.synthesis.real_motion import RealMotion

    motion = RealMotion(synthetic_track(40), start=0)
    labels = {"synthetic": [TimedLabel("MaE", 9 / 30, 14 / 30, 19 / 30)], "other": [TimedLabel("ME", 0, 0.1, 0.2)]}
    got = expression_truth(motion, labels, 30.0, 100, "v")
    assert [(iv.onset, iv.apex, iv.offset, iv.type, iv.video) for iv in got] == \
        [(10, 15, 20, "MaE", "v"), (60, 65, 70, "MaE", "v"), (88, 93, 98, "MaE", "v")]
    assert expression_truth(RealMotion(synthetic_track(40), start=25), labels, 30.0, 20, "v") == []  # not shown
    assert expression_truth(motion, {"other": labels["other"]}, 30.0, 100, "v") == []


def test_lgnm_synth_makes_a_tracks_labelled_expressions_truth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """--real-motion-labels: the track's labelled expression is truth of the video showing
    it, and no scheduled expression shares its frames."""
    from calibration.cross_type import overlaps_any
    from realtime.intervals_csv import read_intervals
    from realtime.synthesis.faces import BUILTIN_FACES, load_face
    from realtime.synthesis.generate import SynthConfig, generate_video
    from realtime.synthesis.real_expressions import expression_truth, load_track_labels
    from tools.synth import main

    (tmp_path / "tracks").mkdir()
    track = write_track(tmp_path / "tracks" / "real_t.npz", synthetic_track(60))
    labels = tmp_path / "labels.csv"
    labels.write_text("video,type,onset,apex,offset\nreal_t,MaE,5,20,40\n")
    out = tmp_path / "out"
    assert main(["--out", str(out), "--videos", "2", "--duration", "8", "--real-motion", str(tmp_path / "tracks"),
                 "--real-motion-labels", str(labels), "--seed", "3"]) == 0
    truth = read_intervals(out / "truth.csv")
    for i, name in enumerate(("synth_001", "synth_002")):  # described again as write_dataset made them
        config = SynthConfig(name=name, fps=30.0, duration_s=8.0, real_motion=(str(track),),
                             real_motion_labels=str(labels))
        video = generate_video(config, int(np.random.SeedSequence([3, i]).generate_state(1)[0]),
                               load_face(BUILTIN_FACES[i % len(BUILTIN_FACES)]))
        real = expression_truth(video.motion, load_track_labels(labels), 30.0, video.n_frames, name)
        assert real and set(real) <= set(video.truth)  # 240 frames of a 60-frame track: it shows it
        mine = [iv for iv in truth if iv.video == name]
        assert [(iv.onset, iv.offset) for iv in mine] == [(iv.onset, iv.offset) for iv in video.truth]
        others = [iv for iv in video.truth if iv not in real]
        assert not any(overlaps_any(a, real, [r.onset for r in real]) for a in others)
    assert main(["--out", str(tmp_path / "o2"), "--real-motion-labels", str(labels)]) == 2
    assert "--real-motion-labels: needs --real-motion" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("video,type,onset,apex,offset\nreal_x,MaE,5,20,40\n")
    assert main(["--out", str(tmp_path / "o3"), "--real-motion", str(tmp_path / "tracks"),
                 "--real-motion-labels", str(tmp_path / "other.csv")]) == 2
    assert "labels none of the tracks (real_t)" in capsys.readouterr().err
