"""Synthetic long face videos: determinism, truth, visible motion, readable outputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from realtime.datasets import load_cas, load_samm
from realtime.face import FaceLandmarker
from realtime.intervals_csv import read_intervals
from realtime.synthesis.actions import ACTIONS
from realtime.synthesis.faces import load_face
from realtime.synthesis.generate import SynthConfig, generate_video, write_dataset
from realtime.synthesis.timeline import VISIBLE
from tools.synth import main


@pytest.fixture(scope="module")
def astronaut():
    return load_face("astronaut")


@pytest.fixture(scope="module")
def hopper():
    return load_face("grace_hopper")


def _sample(video, step: int = 7) -> list[np.ndarray]:
    return [video.frame(i) for i in range(1, video.n_frames + 1, step)]


def test_same_seed_same_frames_and_truth_other_seed_differs(astronaut):
    config = SynthConfig(duration_s=12)
    a, b = generate_video(config, 11, astronaut), generate_video(config, 11, astronaut)
    c = generate_video(config, 12, astronaut)
    assert a.truth == b.truth and a.distractors == b.distractors
    assert all(np.array_equal(x, y) for x, y in zip(_sample(a), _sample(b)))
    assert a.truth != c.truth
    assert not np.array_equal(a.frame(1), c.frame(1))


@pytest.mark.parametrize("fps,me_max_s", [(30, 0.5), (200, 0.5)])
def test_truth_inside_video_with_type_durations_and_gaps(astronaut, fps, me_max_s):
    config = SynthConfig(fps=fps, duration_s=240 if fps == 30 else 60)
    truths = [generate_video(config, seed, astronaut) for seed in (1, 2)]
    for video in truths:
        assert video.truth, "an informative video has events"
        previous = None
        for iv, event in zip(video.truth, video.events):
            assert 1 <= iv.onset <= iv.apex <= iv.offset <= video.n_frames
            seconds = iv.length / fps
            if iv.type == "ME":
                assert 0.2 - 1.5 / fps <= seconds <= me_max_s
            else:
                assert 0.5 - 1.5 / fps <= seconds <= 4.0 + 1.5 / fps
            # truth is exactly where the rendered profile is visible
            p = event.profile(np.array([iv.onset - 1, iv.onset, iv.apex, iv.offset, iv.offset + 1]))
            assert p[0] <= VISIBLE < p[1] and p[2] == pytest.approx(1.0) and p[3] > VISIBLE >= p[4]
            if previous is not None:
                assert iv.onset - previous.offset >= fps  # >= 1 s apart
            previous = iv
    minutes = sum(v.n_frames for v in truths) / fps / 60
    per_min = {t: sum(iv.type == t for v in truths for iv in v.truth) / minutes for t in ("ME", "MaE")}
    assert 2 <= per_min["ME"] <= 8 and 3 <= per_min["MaE"] <= 10, per_min


def _region_mask(video, names: list[str]) -> np.ndarray:
    """Pixels near the anchors of the given actions."""
    h, w = video.frame(1).shape[:2]
    mask = np.zeros((h, w), np.uint8)
    radius = max(3, int(0.08 * video.face_scale))
    for name in names:
        for index, _, _ in ACTIONS[name].anchors:
            x, y = np.round(video.landmarks[index]).astype(int)
            cv2.circle(mask, (int(x), int(y)), radius, 1, -1)
    return mask.astype(bool)


def _diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(cv2.absdiff(a, b)[mask].mean())


def test_face_moves_during_events_and_nowhere_else_without_distractors(hopper):
    video = generate_video(SynthConfig(duration_s=40, distractors=False), 5, hopper)
    assert video.truth and not video.distractors
    busy = np.zeros(video.n_frames + 2, bool)
    for e in video.events:
        lo, hi = e.support()
        busy[max(lo, 0) : hi + 1] = True
    quiet = [i for i in range(1, video.n_frames) if not busy[i] and not busy[i + 1]]
    assert quiet
    for i in quiet[:: max(1, len(quiet) // 20)]:  # outside events nothing changes at all
        assert np.array_equal(video.frame(i), video.frame(i + 1))
    for iv, e in zip(video.truth, video.events):
        mask = _region_mask(video, [name for name, _ in e.actions])
        moved = _diff(video.frame(iv.onset - 1), video.frame(iv.apex), mask)
        assert moved > (1.0 if iv.type == "MaE" else 0.3), (iv, e.actions, moved)


def test_event_motion_stands_out_from_noise_with_distractors(astronaut):
    video = generate_video(SynthConfig(duration_s=60), 8, astronaut)
    distracted = np.zeros(video.n_frames + 2, bool)  # blinks, head moves, light ramps
    for d in video.distractors:
        distracted[max(0, d.start - 2) : d.end + 3] = True
    busy = distracted.copy()  # ... and events: all but drift and sensor noise
    for e in video.events:
        lo, hi = e.support()
        busy[max(0, lo - 1) : hi + 2] = True
    checked = 0
    for iv, e in zip(video.truth, video.events):
        if iv.type != "MaE" or distracted[iv.onset - 1 : iv.apex + 1].any():
            continue  # a distractor overlaps this event
        lag = iv.apex - iv.onset + 1
        # a quiet stretch of the same lag (drift and sensor noise only)
        quiet = [s for s in range(lag + 1, video.n_frames) if not busy[s - lag : s + 1].any()]
        if not quiet:
            continue
        mask = _region_mask(video, [name for name, _ in e.actions])
        moved = _diff(video.frame(iv.onset - 1), video.frame(iv.apex), mask)
        still = _diff(video.frame(quiet[0] - lag), video.frame(quiet[0]), mask)
        assert moved > 1.5 * still, (iv, e.actions, moved, still)
        checked += 1
    assert checked >= 2


def test_amplitudes_are_px_at_112_face_scale(hopper):
    video = generate_video(SynthConfig(duration_s=30), 6, hopper)
    unit = video.face_scale / 112
    for basis in video.renderer.bases:  # amplitude 1 moves the most-moved pixel by 1 px at 112
        assert np.sqrt((basis**2).sum(axis=2)).max() == pytest.approx(unit, rel=1e-4)
    for e in video.events:
        lo, hi = (1.0, 2.0) if e.type == "ME" else (3.0, 6.0)
        assert lo <= e.actions[0][1] <= hi and all(0.6 * lo <= a <= hi for _, a in e.actions)


def test_mediapipe_finds_the_face_in_generated_frames(astronaut):
    video = generate_video(SynthConfig(duration_s=30), 4, astronaut)
    picks = [video.truth[0].apex, next(d for d in video.distractors if d.kind == "blink").start + 2, 1]
    picks += [(d.start + d.end) // 2 for d in video.distractors if d.kind in ("turn", "nod")][:1]
    with FaceLandmarker(static_image_mode=True) as mesh:
        for i in picks:
            found = mesh.detect(video.frame(i))
            assert found is not None, f"no face in frame {i}"
            error = np.linalg.norm(found - video.landmarks, axis=1).mean()
            assert error < 0.15 * video.face_scale, (i, error)


def test_mp4_readable_with_right_frame_count_and_truth_csv_round_trips(tmp_path):
    summary = write_dataset(tmp_path, 2, 30.0, ["astronaut"], seed=3, layout="mp4", duration_s=6)
    for name in summary.videos:
        cap = cv2.VideoCapture(str(tmp_path / f"{name}.mp4"))
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 180
        count = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            count += 1
            assert frame.shape == (480, 640, 3)
        cap.release()
        assert count == 180
    assert read_intervals(tmp_path / "truth.csv") == summary.truth
    text = (tmp_path / "distractors.csv").read_bytes()
    assert text.startswith(b"video,kind,start,end") and b"\r" not in text  # LF, as truth.csv


def test_cas_and_samm_layouts_read_back_by_the_dataset_readers(tmp_path, hopper):
    hopper_png = tmp_path / "face.png"  # a user-given face path must work too
    cv2.imwrite(str(hopper_png), hopper.image)
    cas = write_dataset(tmp_path / "cas", 2, 30.0, [str(hopper_png)], seed=1, layout="cas", duration_s=4)
    assert cas.truth, "the workbook must carry some events"
    records = load_cas(tmp_path / "cas", tmp_path / "cas" / "CAS.xlsx")
    assert [r.id for r in records] == sorted(cas.videos)
    assert all(len(r.frames) == 120 for r in records)
    assert sorted((iv.video, iv.onset, iv.offset) for r in records for iv in r.truth) == sorted(
        (iv.video, iv.onset, iv.offset) for iv in cas.truth
    )
    samm = write_dataset(tmp_path / "samm", 1, 200.0, ["astronaut"], seed=1, layout="samm", duration_s=3)
    records = load_samm(tmp_path / "samm", tmp_path / "samm" / "SAMM.xlsx")
    assert [r.id for r in records] == samm.videos and len(records[0].frames) == 600
    assert cv2.imread(str(records[0].frames[0])).shape == (288, 352, 3)


def test_cli_writes_and_reports_user_errors(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "o"), "--duration", "4", "--faces", "astronaut", "--seed", "2"]) == 0
    assert (tmp_path / "o" / "synth_001.mp4").is_file() and (tmp_path / "o" / "truth.csv").is_file()
    assert main(["--out", str(tmp_path / "o2"), "--duration", "4", "--faces", "astronaut", "--seed", "2"]) == 0
    for name in ("synth_001.mp4", "truth.csv", "distractors.csv"):  # same seed, same bytes
        assert (tmp_path / "o" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    assert main(["--out", str(tmp_path / "x"), "--faces", str(tmp_path / "nope.jpg")]) == 2
    assert "nope.jpg" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "y"), "--videos", "0"]) == 2
    assert main(["--out", str(tmp_path / "z"), "--duration", "1"]) == 2
    assert main(["--out", str(tmp_path / "z"), "--seed", "-3"]) == 2
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200, 3), 128, np.uint8))
    assert main(["--out", str(tmp_path / "w"), "--faces", str(blank)]) == 2
    assert "no face" in capsys.readouterr().err


def test_user_face_file_from_matplotlib_sample_path():
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photo = load_face(Path(path))
    assert photo.landmarks.shape == (468, 2) and photo.name == "grace_hopper"


def test_jitter_gives_each_video_its_own_look_and_keeps_schedule_and_determinism(hopper):
    plain = generate_video(SynthConfig(duration_s=8), 21, hopper)
    a = generate_video(SynthConfig(duration_s=8, jitter=True), 21, hopper)
    b = generate_video(SynthConfig(duration_s=8, jitter=True), 21, hopper)
    other = generate_video(SynthConfig(duration_s=8, jitter=True), 22, hopper)
    # The look has its own seed stream: the schedule and distractors of a seed do not change.
    assert a.truth == plain.truth and a.distractors == plain.distractors
    assert np.array_equal(a.frame(1), b.frame(1))
    face = (plain.scene.mask > 0.9)[..., None]
    assert np.abs(a.frame(1).astype(int) - plain.frame(1).astype(int))[face.repeat(3, 2)].mean() > 5
    # The face of every look is found again, so mirrored landmarks are real landmarks.
    with FaceLandmarker(static_image_mode=True) as mesh:
        for video in (a, other):
            found = mesh.detect(video.frame(1))
            assert found is not None
            assert np.linalg.norm(found - video.landmarks, axis=1).mean() < 0.1 * video.face_scale


def test_appearance_mirror_swaps_sides_and_heldout_looks_are_inside_the_jitter_ranges():
    from realtime.synthesis.faces import Appearance
    from tools.quality import HELDOUT_LOOKS

    img = np.zeros((8, 8, 3), np.uint8)
    img[:, :2] = 200
    assert Appearance(mirror=True).apply(img)[:, -2:].min() == 200
    assert np.array_equal(Appearance().apply(img), img)  # the identity look changes nothing
    draws = [Appearance.draw(np.random.default_rng(s)) for s in range(200)]
    for look in HELDOUT_LOOKS:  # held-out looks are new draws, not a new kind of change
        assert min(d.hue_shift for d in draws) <= look.hue_shift <= max(d.hue_shift for d in draws)
        assert min(d.gamma for d in draws) <= look.gamma <= max(d.gamma for d in draws)
        assert min(d.resample for d in draws) <= look.resample <= max(d.resample for d in draws)
        assert look not in draws


def _field_sides(video, action) -> tuple[float, float, float]:
    """Largest displacement (frame px) of an action's basis field on the subject's right
    (image left of the eye-corner midline, beyond 12 % of the face scale), on the left, and
    anywhere; the field of the canonical action sizes the ROI."""
    from realtime.synthesis.actions import basis_field, face_roi

    h, w = video.frame(1).shape[:2]
    roi = face_roi(video.landmarks, video.face_scale, w, h, action.width)
    mag = np.linalg.norm(basis_field(action, video.landmarks, video.face_scale, roi), axis=2)
    xs = np.arange(roi.x0, roi.x1)[None, :].repeat(mag.shape[0], 0)
    mid = video.landmarks[[33, 263], 0].mean()
    margin = 0.12 * video.face_scale
    return float(mag[xs < mid - margin].max()), float(mag[xs > mid + margin].max()), float(mag.max())


def test_action_shapes_one_sided_asymmetric_turned_and_unit_amplitude(hopper):
    from realtime.synthesis.actions import CANONICAL, ActionShape, shaped

    video = generate_video(SynthConfig(duration_s=4, distractors=False), 1, hopper)
    unit = video.face_scale / 112.0  # 1 px at 112-px face scale, in frame px
    au12 = ACTIONS["AU12"]
    assert shaped(au12, CANONICAL, video.landmarks, video.face_scale) is au12
    right, left, peak = _field_sides(video, au12)
    assert right == pytest.approx(left, rel=0.15) and peak == pytest.approx(unit, rel=1e-5)
    # One-sided: the subject's right (image left) moves, the left does not; the peak is still 1 px.
    one = shaped(au12, ActionShape(side="right"), video.landmarks, video.face_scale)
    right, left, peak = _field_sides(video, one)
    assert peak == pytest.approx(unit, rel=1e-5) and right > 0.9 * unit and left < 0.02 * unit
    one = shaped(au12, ActionShape(side="left"), video.landmarks, video.face_scale)
    right, left, _ = _field_sides(video, one)
    assert left > 0.9 * unit and right < 0.02 * unit
    # Asymmetric: the subject's left at 0.4 of the right.
    weak = shaped(au12, ActionShape(weaker=0.4), video.landmarks, video.face_scale)
    right, left, _ = _field_sides(video, weak)
    assert left / right == pytest.approx(0.4, abs=0.08)
    # Turned directions, mirrored: AU1+2 (straight up) turned by 30 deg gets a sideways part
    # of sin(30 deg) on both brows, in opposite directions; extent scaled.
    turned = shaped(ACTIONS["AU1+2"], ActionShape(rotation_deg=30, width_scale=1.4), video.landmarks, video.face_scale)
    dx = {i: d for i, d, _ in turned.anchors}
    assert dx[70] == pytest.approx(0.5) and dx[300] == pytest.approx(-0.5)
    assert turned.width == pytest.approx(1.4 * ACTIONS["AU1+2"].width)
    # Midline anchors are neither side: a one-sided lip unit keeps them at half strength
    # and keeps exactly one side's lip points, whichever side (review: an off-centre mouth
    # moved points across a midline drawn through the eyes).
    for side, kept, gone in (("right", (37, 82, 84, 87), (267, 312, 314, 317)),
                             ("left", (267, 312, 314, 317), (37, 82, 84, 87))):
        lips = shaped(ACTIONS["AU24"], ActionShape(side=side), video.landmarks, video.face_scale)
        by_index = {i: (dx, dy) for i, dx, dy in lips.anchors}
        assert set(kept) <= set(by_index) and not set(gone) & set(by_index)
        assert by_index[0] == pytest.approx((0.0, 0.35)) and by_index[37 if side == "right" else 267][1] == 0.7
    chin = shaped(ACTIONS["AU17"], ActionShape(side="left"), video.landmarks, video.face_scale)
    assert {i for i, _, _ in chin.anchors} == {18, 200, 199, 175, 17, 152, 14, 317}
    with pytest.raises(ValueError, match="side"):
        shaped(au12, ActionShape(side="up"), video.landmarks, video.face_scale)


def test_vary_actions_draws_all_units_with_shapes_deterministically_and_the_default_keeps_the_eight(hopper):
    from realtime.synthesis.actions import CANONICAL_ACTIONS
    from realtime.synthesis.timeline import ScheduleSettings

    varied = ScheduleSettings(vary_actions=True, mae_per_min=12, me_per_min=8)
    videos = [generate_video(SynthConfig(duration_s=60, schedule=varied, distractors=False), s, hopper) for s in (1, 2, 3)]
    units = {n for v in videos for e in v.events for n, _ in e.actions}
    assert len(units) >= 14 and set(units) <= set(ACTIONS)
    shapes = [e.shape_of(k) for v in videos for e in v.events for k in range(len(e.actions))]
    assert all(len(e.shapes) == len(e.actions) for v in videos for e in v.events)
    assert {s.side for s in shapes} == {"both", "right", "left"}
    assert max(abs(s.rotation_deg) for s in shapes) > 15 and min(s.width_scale for s in shapes) < 0.9
    again = generate_video(SynthConfig(duration_s=60, schedule=varied, distractors=False), 1, hopper)
    assert again.events == videos[0].events and np.array_equal(again.frame(200), videos[0].frame(200))
    plain = [generate_video(SynthConfig(duration_s=60), s, hopper) for s in (1, 2, 3)]
    assert {n for v in plain for e in v.events for n, _ in e.actions} <= set(CANONICAL_ACTIONS)
    assert all(e.shapes == () for v in plain for e in v.events)
    # A one-sided event moves its side of the face: the frame difference at the apex lies
    # mostly on that side (no distractors: nothing else moves).
    checked = 0
    for v in videos:
        mid = v.landmarks[[33, 263], 0].mean()
        for iv, e in zip(v.truth, v.events):
            if len(e.actions) == 1 and e.shapes[0].side != "both" and e.type == "MaE":
                diff = cv2.absdiff(v.frame(iv.onset - 1), v.frame(iv.apex)).sum(axis=2).astype(float)
                xs = np.arange(diff.shape[1])
                right, left = diff[:, xs < mid].sum(), diff[:, xs >= mid].sum()
                moved, still = (right, left) if e.shapes[0].side == "right" else (left, right)
                if e.actions[0][0] not in ("AU17", "AU25+26", "AU10", "AU23", "AU24"):  # mostly midline: both
                    assert moved > 2 * still, (e, moved, still)
                    checked += 1
    assert checked >= 2


def test_cli_vary_actions_lists_each_events_units_and_shapes(tmp_path):
    import csv

    out = tmp_path / "v"
    assert main(["--out", str(out), "--duration", "12", "--faces", "astronaut", "--seed", "4", "--vary-actions"]) == 0
    truth = read_intervals(out / "truth.csv")
    rows = list(csv.DictReader(open(out / "actions.csv")))
    assert {(r["type"], int(r["onset"]), int(r["offset"])) for r in rows} == {(iv.type, iv.onset, iv.offset) for iv in truth}
    assert all(r["action"] in ACTIONS and r["side"] in ("both", "right", "left") for r in rows)


@pytest.mark.parametrize("argv, said", [(["--videos", "0"], "error: --videos: must be at least 1, got 0"),
                                        (["--duration", "1"], "error: --duration: 1.0 s is too short, need at least 3 s")])
def test_a_bad_option_is_one_line_without_a_progress_bar(tmp_path, capsys, argv, said) -> None:
    """The progress bar was drawn (0/0) before write_dataset refused the option."""
    assert main(["--out", str(tmp_path / "x"), *argv]) == 2
    assert capsys.readouterr().err == said + "\n"
