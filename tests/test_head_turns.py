"""Training faces that turn and nod in depth (`lgnm-synth --head-turns`,
`realtime.synthesis.head_turns`): drawn as listed, deterministic, off by default, and
seen by the real chain (FaceMesh, alignment, flow) as brow and mouth motion that the
image-plane head motion of the other distractors does not make."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from engines import features as ft
from realtime.common.types import FlowSettings
from realtime.face import FaceLandmarker, align_face
from realtime.synthesis.faces import load_face
from realtime.synthesis.generate import SynthConfig, generate_video
from realtime.synthesis.head_turns import TURN_DEG, draw_head_turns
from realtime.synthesis.real_motion import turned_track
from tools.synth import main


@pytest.fixture(scope="module")
def hopper():
    return load_face("grace_hopper")


def test_turns_are_drawn_listed_deterministic_and_off_by_default(hopper) -> None:
    turning = [generate_video(SynthConfig(duration_s=60, head_turns=True), s, hopper) for s in (1, 2)]
    for v in turning:
        turns = [d for d in v.distractors if d.kind in ("yaw", "pitch")]
        assert 2 <= len(turns) <= 12  # ~6 per minute
        assert v.turns is not None and v.turns.n_frames == v.n_frames
        assert all(1 <= d.start < d.end <= v.n_frames for d in turns)
    again = generate_video(SynthConfig(duration_s=60, head_turns=True), 1, hopper)
    assert again.distractors == turning[0].distractors
    assert again.turns is not None and np.array_equal(again.turns.displacement, turning[0].turns.displacement)
    plain = generate_video(SynthConfig(duration_s=60), 1, hopper)
    assert plain.turns is None and not any(d.kind in ("yaw", "pitch") for d in plain.distractors)
    # Turns come from their own random stream: the schedule and the other distractors stay.
    assert plain.truth == turning[0].truth
    assert [d for d in turning[0].distractors if d.kind not in ("yaw", "pitch")] == list(plain.distractors)


def test_turn_angles_stay_in_their_ranges() -> None:
    rng = np.random.default_rng(0)
    drawn = draw_head_turns(rng, 1800, 30.0, [])
    limit = TURN_DEG[1] + 3.0  # a turn plus the sway
    assert np.abs(drawn.yaw).max() <= limit and np.abs(drawn.pitch).max() <= limit
    assert np.abs(drawn.yaw).max() > TURN_DEG[0] or np.abs(drawn.pitch).max() > TURN_DEG[0]
    points = np.column_stack([np.random.default_rng(1).uniform(0, 100, (468, 2)), np.zeros(468)])
    flat = turned_track(points, drawn.yaw, drawn.pitch, 30.0)  # a flat face: no parallax, only narrowing
    assert np.abs(flat.displacement).max() < 0.05


def roi_motion(a: ft.FlowFrame, b: ft.FlowFrame) -> float:
    flow = ft.pair_flow(a, b, FlowSettings())
    x0, y0, x1, y1 = a.geometry.nose_box
    rel = np.linalg.norm(flow - flow[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0), axis=2)
    return float(np.percentile(rel[ft.value_region(a.geometry)], 95))


def test_a_turn_in_depth_shows_as_brow_and_mouth_motion_after_the_nose_rule(hopper) -> None:
    """The rendered turn is what the networks mistake for an expression: at its peak the
    aligned brows and mouth move (relative to the nose) several times more than in the
    same frames of the same video without turns."""
    cfg = dict(duration_s=30, distractors=False)
    turning = generate_video(SynthConfig(head_turns=True, **cfg), 7, hopper)
    plain = generate_video(SynthConfig(**cfg), 7, hopper)
    assert turning.turns is not None
    nose_x = turning.turns.displacement[:, 1, 0]  # IOD units, the nose tip moves most
    peak = int(np.argmax(np.abs(nose_x)))
    start = max(0, peak - 18)
    s = FlowSettings()
    moved = {}
    with FaceLandmarker(static_image_mode=True) as mesh:
        for name, video in (("turning", turning), ("plain", plain)):
            frames = []
            for i in (start + 1, peak + 1):
                img = video.frame(i)
                face = align_face(img, mesh.detect(img), s.face_size)
                assert face is not None
                frames.append(ft.flow_frame(face, s))
            moved[name] = roi_motion(*frames)
    assert abs(nose_x[peak] - nose_x[start]) > 0.01
    assert moved["turning"] > 0.5 and moved["turning"] > 2 * moved["plain"], moved


def test_cli_head_turns_lists_the_turns(tmp_path) -> None:
    out = tmp_path / "t"
    assert main(["--out", str(out), "--duration", "12", "--faces", "astronaut", "--seed", "4", "--head-turns"]) == 0
    rows = list(csv.DictReader(open(out / "distractors.csv")))
    assert {r["kind"] for r in rows} & {"yaw", "pitch"}
