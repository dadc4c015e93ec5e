"""Real-motion driving (tools/synthesis/real_motion.py): a face photo moved by a real
landmark track. FaceMesh on the rendered frames must find the landmarks where the driver
put them, and the motion must follow the track (a real track is generated here: the
shared tracks are optional)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from realtime.errors import UserError
from realtime.face import FaceLandmarker
from tools.synthesis.faces import compose_scene, load_face
from tools.synthesis.real_motion import MotionDriver, MotionTrack, load_track, pingpong


def synthetic_track(n: int = 40) -> MotionTrack:
    """A head drift to the right (rigid) and a jaw drop (non-rigid), in IOD units."""
    disp = np.zeros((n, 468, 2), np.float32)
    t = np.linspace(0, 1, n, dtype=np.float32)
    disp[..., 0] += 0.15 * t[:, None]  # the whole face moves right by 0.15 IOD
    jaw = [152, 148, 176, 149, 150, 377, 400, 378, 379, 17, 84, 314, 14, 87, 317]
    disp[:, jaw, 1] += 0.08 * np.sin(np.pi * t)[:, None]
    return MotionTrack("synthetic", 30.0, disp)


@pytest.fixture(scope="module")
def scene():  # noqa: ANN201
    return compose_scene(load_face("grace_hopper"), 640, 480, 200.0, np.random.default_rng(1))


def test_facemesh_finds_the_landmarks_where_the_driver_put_them(scene) -> None:  # noqa: ANN001
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
