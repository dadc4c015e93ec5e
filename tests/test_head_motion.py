"""The rigid head-motion model (`engines.head_motion`, FlowSettings.head_motion "rigid3d"):
the motion of a head turning in depth is fitted on rigid landmarks and taken out of the
flow, and expression motion is not.

Synthetic landmark geometry for the fit itself; real FaceMesh on a bundled photo turned
in depth (rendered by `realtime.synthesis.real_motion`) for the whole chain.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engines import features as ft
from engines import head_motion as hm
from engines.weights import load_weights
from realtime.common.types import FlowSettings
from realtime.face import FaceLandmarker, align_face
from realtime.synthesis.faces import compose_scene, load_face
from realtime.synthesis.real_motion import MotionDriver, MotionTrack, turn_track
from tools import make_face_shape, weights_ops

SIZE = 112


def mean_face() -> tuple[np.ndarray, np.ndarray]:
    """(468,2) landmarks and (468,) depth (px) of the mean face in a 112-px crop."""
    shape = hm.face_shape().astype(np.float64) * SIZE
    return shape[:, :2], shape[:, 2]


def nose_box() -> tuple[int, int, int, int]:
    lm, _ = mean_face()
    return ft.face_geometry(lm.astype(np.float32), SIZE).nose_box


def at(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    ij = np.rint(points).astype(int)
    return field[ij[:, 1], ij[:, 0]]


def test_a_turn_in_depth_is_fitted_and_predicted_at_the_brows_and_mouth() -> None:
    lm, depth = mean_face()
    yaw, pitch = 0.06, -0.04  # rad, first order: u = x (cos - 1) + d sin
    cx, cy = lm.mean(axis=0)
    moved = np.column_stack([cx + (lm[:, 0] - cx) * np.cos(yaw) + depth * np.sin(yaw),
                             cy + (lm[:, 1] - cy) * np.cos(pitch) + depth * np.sin(pitch)])
    coef = hm.fit_rigid_motion(lm, moved, SIZE)
    assert coef[0, 3] == pytest.approx(np.sin(yaw), rel=1e-3)
    assert coef[1, 3] == pytest.approx(np.sin(pitch), rel=1e-3)
    field = hm.rigid_motion_field(lm, moved, SIZE, nose_box())
    x0, y0, x1, y1 = nose_box()
    assert np.abs(field[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)).max() < 1e-4  # the nose keeps its flow
    # At the brows and mouth the field is the turn's displacement relative to the nose box's.
    true = moved - lm
    brows_mouth = np.array([105, 334, 66, 296, 13, 14, 61, 291])
    ref = at(field, lm[brows_mouth]) - (true[brows_mouth] - true[brows_mouth].mean(axis=0))
    assert np.ptp(ref, axis=0).max() < 0.25  # px: the same offset everywhere (depth map is per pixel)
    assert np.abs(at(field, lm[brows_mouth])).max() > 1.0  # a turn of this size moves them > 1 px


def test_motion_away_from_the_rigid_points_is_not_taken_as_head_motion() -> None:
    """By construction only RIGID_POINTS enter the fit: a brow raise, a smile, a jaw drop
    that leave them in place subtract nothing. (Expressions that do move them, e.g. a
    smile moving the face outline, leak into the fit: weights README, thirteenth session.)"""
    lm, _ = mean_face()
    moved = lm.copy()
    expressive = np.setdiff1d(np.arange(468), hm.RIGID_POINTS)
    moved[expressive, 1] -= 2.0  # everything but the rigid points rises 2 px (a brow raise and more)
    field = hm.rigid_motion_field(lm, moved, SIZE, nose_box())
    assert np.abs(field).max() < 1e-4


def test_motion_in_the_image_plane_is_fitted_exactly() -> None:
    lm, _ = mean_face()
    a, s, t = np.deg2rad(1.5), 1.02, np.array([0.7, -0.4])
    rot = s * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    moved = (lm - 56) @ rot.T + 56 + t
    field = hm.rigid_motion_field(lm, moved, SIZE, nose_box())
    want = moved - lm
    x0, y0, x1, y1 = nose_box()
    ys, xs = np.mgrid[y0:y1, x0:x1]
    box = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    nose_mean = ((box - 56) @ rot.T + 56 + t - box).mean(axis=0)
    ij = np.rint(lm).astype(int)
    got = field[ij[:, 1], ij[:, 0]]
    exact = (ij - 56) @ rot.T + 56 + t - ij - nose_mean  # the affine field at those pixels
    assert np.abs(got - exact).max() < 1e-3
    assert np.abs(want).max() > 1.0


def test_depth_map_is_the_mean_face_and_read_only() -> None:
    d = hm.depth_map(SIZE)
    lm, depth = mean_face()
    nose = np.rint(lm[1]).astype(int)
    assert d.shape == (SIZE, SIZE) and not d.flags.writeable
    assert d[nose[1], nose[0]] == pytest.approx(depth[1], abs=1.0)  # the nose tip stands out most
    assert d[nose[1], nose[0]] > d[int(lm[105, 1]), int(lm[105, 0])] + 10  # ~0.3 IOD before the brows


# ------------------------------------------------------------ the whole chain, real FaceMesh

def roi_motion(a: ft.FlowFrame, b: ft.FlowFrame, settings: FlowSettings) -> float:
    """95th percentile px of |flow - nose-box mean| over the brow and mouth boxes (eyes
    out): what the value channel of the network input shows."""
    flow = ft.pair_flow(a, b, settings)
    x0, y0, x1, y1 = a.geometry.nose_box
    rel = np.linalg.norm(flow - flow[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0), axis=2)
    return float(np.percentile(rel[ft.value_region(a.geometry)], 95))


@pytest.fixture(scope="module")
def scene():
    return compose_scene(load_face("grace_hopper"), 640, 480, 180.0, np.random.default_rng(3))


def frames_of(scene, track: MotionTrack, indices: list[int], settings: FlowSettings) -> list[ft.FlowFrame]:
    driver = MotionDriver(scene, track)
    out = []
    with FaceLandmarker(static_image_mode=True) as mesh:
        for i in indices:
            img = driver.render(i)
            face = align_face(img, mesh.detect(img), settings.face_size)
            assert face is not None
            out.append(ft.flow_frame(face, settings))
    return out


def photo_points(scene) -> np.ndarray:
    from tools.real_motion_check import scene_points3d

    return scene_points3d(scene)


@pytest.mark.parametrize("model", ["rigid3d", "dominant"])
def test_a_real_face_turning_in_depth_moves_its_brows_and_mouth_far_less(scene, model: str) -> None:
    nose, rigid = FlowSettings(), FlowSettings(head_motion=model)
    for axis in ("yaw", "pitch"):
        # 4 degrees in 0.6 s (a slow sway; the photo's own FaceMesh depth drives it)
        track = turn_track(photo_points(scene), axis, 8.0, 8.0, 30.0, 2.0)
        a, b = frames_of(scene, track, [1, 19], nose)
        before, after = roi_motion(a, b, nose), roi_motion(a, b, rigid)
        assert before > 0.5, axis  # the turn shows as brow/mouth motion to the nose rule
        assert after < 0.75 * before, (axis, before, after)  # measured: 0.63 (yaw), 0.56 (pitch)


@pytest.mark.parametrize("model", ["rigid3d", "dominant"])
def test_a_still_face_and_a_brow_raise_are_left_as_they_were(scene, model: str) -> None:
    nose, rigid = FlowSettings(), FlowSettings(head_motion=model)
    n = 20
    raise_brows = np.zeros((n, 468, 2), np.float32)
    from realtime.face import LEFT_BROW, RIGHT_BROW

    brows = np.array(sorted(set(LEFT_BROW) | set(RIGHT_BROW)))
    raise_brows[:, brows, 1] = -np.linspace(0, 0.06, n)[:, None]  # 0.06 IOD up (a brow raise)
    track = MotionTrack("brow_raise", 30.0, raise_brows)
    a, still, raised = frames_of(scene, track, [1, 1, n], nose)
    assert roi_motion(a, still, rigid) == pytest.approx(roi_motion(a, still, nose), abs=0.05)
    kept = roi_motion(a, raised, rigid) / roi_motion(a, raised, nose)
    assert roi_motion(a, raised, nose) > 1.0 and kept > 0.8, kept


# ------------------------------------------------------------ the dominant-motion fit

def head_field(coef: np.ndarray) -> np.ndarray:
    """(SIZE,SIZE,2) float32 parametric field of (2,4) coefficients over (1, x, y, depth)."""
    return (hm.field_basis(SIZE) @ np.asarray(coef, np.float32).T).astype(np.float32)


def face_only_mask() -> np.ndarray:
    lm, _ = mean_face()
    return hm.face_mask(lm, SIZE)


# A head turning a little and rolling: yaw parallax 0.02 px per px of depth, a 1% scale
# and a 0.5 degree roll the alignment left, 0.4 px of translation.
HEAD = np.array([[0.4, 0.01 - 1.0 + np.cos(0.0087), -np.sin(0.0087), 0.02],
                 [-0.3, np.sin(0.0087), 0.01 - 1.0 + np.cos(0.0087), 0.0]])


def test_the_dominant_fit_recovers_a_head_field_exactly() -> None:
    coef = hm.fit_dominant_motion(head_field(HEAD), face_only_mask())
    assert np.abs(coef - HEAD).max() < 1e-4


def test_the_dominant_fit_leaves_an_expression_on_top_of_head_motion() -> None:
    """Brows raised 2 px and mouth corners pulled 2.5 px (a minority of the face's pixels),
    on top of the head field: the fit finds the head field, not the expression, so after
    removal the expression is all that moves. Plain least squares over the same pixels is
    pulled by the expression (the reason for the robust fit)."""
    lm, _ = mean_face()
    flow = head_field(HEAD)
    from engines.landmarks import LEFT_BROW, MOUTH, RIGHT_BROW

    geometry = ft.face_geometry(lm.astype(np.float32), SIZE)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]

    def near(points: np.ndarray, px: float) -> np.ndarray:  # pixels within px of the points
        d = np.hypot(xs[..., None] - points[:, 0], ys[..., None] - points[:, 1]).min(axis=-1)
        return d <= px

    expression = np.zeros_like(flow)
    expression[near(lm[np.r_[LEFT_BROW, RIGHT_BROW]], 6.0), 1] = -2.0  # brows and the skin about them
    mouth = near(lm[MOUTH], 6.0)
    expression[mouth, 0] = np.sign(xs - lm[MOUTH, 0].mean())[mouth] * 2.5  # corners pulled apart
    mask = hm.face_mask(lm, SIZE, (geometry.left_eye, geometry.right_eye))
    share = expression[mask].any(axis=1).mean()
    assert 0.15 < share < 0.4, share  # a minority of the fitted pixels, not a sliver
    coef = hm.fit_dominant_motion(flow + expression, mask)
    assert np.abs(coef - HEAD).max() < 0.01
    remaining = hm.remove_dominant_motion(flow + expression, lm, geometry.nose_box,
                                          (geometry.left_eye, geometry.right_eye))
    nose = remaining[geometry.nose_box[1]:geometry.nose_box[3], geometry.nose_box[0]:geometry.nose_box[2]]
    rel = remaining - nose.reshape(-1, 2).mean(axis=0)
    assert np.abs(rel - expression)[mask].max() < 0.05  # px: the expression, whole, and nothing else
    basis = hm.field_basis(SIZE)[mask].astype(np.float64)
    plain, *_ = np.linalg.lstsq(basis, (flow + expression)[mask].astype(np.float64), rcond=None)
    assert np.abs(plain.T - HEAD).max() > 0.05  # least squares takes part of the expression


def test_the_dominant_field_keeps_the_nose_flow_and_is_zero_on_a_still_face() -> None:
    lm, _ = mean_face()
    x0, y0, x1, y1 = nose_box()
    field = hm.dominant_motion_field(head_field(HEAD), lm, nose_box())
    assert np.abs(field[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)).max() < 1e-4
    noise = np.random.default_rng(0).normal(0, 0.05, (SIZE, SIZE, 2)).astype(np.float32)
    assert np.abs(hm.dominant_motion_field(noise, lm, nose_box())).max() < 0.05
    # No face in the mask (landmarks collapsed to one point): nothing is subtracted.
    point = np.full((468, 2), 56.0)
    assert not hm.dominant_motion_field(head_field(HEAD), point, nose_box()).any()


# ------------------------------------------------------------ settings, weights, data

def test_settings_default_to_the_authors_rule_and_refuse_unknown_models() -> None:
    old = FlowSettings().to_dict()
    del old["head_motion"]  # weights written before the field
    assert FlowSettings.from_dict(old).head_motion == "nose"
    for model in ("rigid3d", "dominant"):
        assert FlowSettings.from_dict(FlowSettings(head_motion=model).to_dict()).head_motion == model
    with pytest.raises(ValueError, match="head_motion"):
        FlowSettings(head_motion="full3d")


def test_weights_ops_sets_the_head_motion_model_and_keeps_the_network(tmp_path, capsys) -> None:
    src = "engines/weights/demo_MaE.safetensors"
    out = tmp_path / "w.safetensors"
    assert weights_ops.main(["head-motion", src, "--model", "rigid3d", "--out", str(out)]) == 0
    (net0, meta0), (net1, meta1) = load_weights(src), load_weights(out)
    assert meta1.flow == dataclasses.replace(meta0.flow, head_motion="rigid3d")
    assert f"head motion {meta0.flow.head_motion} -> rigid3d" in meta1.trained_on
    for (k, t0), t1 in zip(net0.state_dict().items(), net1.state_dict().values(), strict=True):
        assert np.array_equal(t0.numpy(), t1.numpy()), k
    with pytest.raises(SystemExit) as exc:
        weights_ops.main(["head-motion", src, "--model", "full3d", "--out", str(out)])
    assert exc.value.code == 2 and "--model" in capsys.readouterr().err


def test_the_stored_mean_face_is_what_facemesh_gives_on_the_bundled_photos() -> None:
    assert make_face_shape.main(["--check"]) == 0


def test_turn_track_turns_and_comes_back() -> None:
    _, depth = mean_face()
    points = np.column_stack([mean_face()[0], depth])
    track = turn_track(points, "yaw", 6.0, 4.0, 30.0, 4.0)
    d = track.displacement
    assert track.n_frames == 120 and np.abs(d[0]).max() == 0.0
    quarter = d[30]  # +6 degrees: what stands out (the nose tip) and what lies back (the outline) part
    assert quarter[1, 0] > 0.02 and quarter[234, 0] < -0.02 and np.abs(quarter[:, 1]).max() < 1e-6
    assert np.abs(d[60]).max() < 1e-6  # half a period: back where it started
    assert d[90, 1, 0] < -0.02  # then the other way
    with pytest.raises(ValueError):
        turn_track(points, "roll", 6.0, 4.0, 30.0, 1.0)


def test_a_small_expression_under_noise_is_mostly_kept() -> None:
    """A 0.5 px brow raise (a micro-expression's size) over the brows, with 0.1 px of flow
    noise and the head field: most of it survives the fit (the cut-off is loose, README)."""
    from engines.landmarks import LEFT_BROW, RIGHT_BROW

    lm, _ = mean_face()
    geometry = ft.face_geometry(lm.astype(np.float32), SIZE)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    brows = lm[np.r_[LEFT_BROW, RIGHT_BROW]]
    near = np.hypot(xs[..., None] - brows[:, 0], ys[..., None] - brows[:, 1]).min(axis=-1) <= 6.0
    expression = np.zeros((SIZE, SIZE, 2), np.float32)
    expression[near, 1] = -0.5
    noise = np.random.default_rng(1).normal(0, 0.1, (SIZE, SIZE, 2)).astype(np.float32)
    eyes = (geometry.left_eye, geometry.right_eye)
    remaining = hm.remove_dominant_motion(head_field(HEAD) + expression + noise, lm, geometry.nose_box, eyes)
    nose = remaining[geometry.nose_box[1]:geometry.nose_box[3], geometry.nose_box[0]:geometry.nose_box[2]]
    moved = -(remaining - nose.reshape(-1, 2).mean(axis=0))[near & hm.face_mask(lm, SIZE, eyes), 1]
    assert 0.7 * 0.5 < float(np.median(moved)) < 1.1 * 0.5


def test_the_dominant_fit_survives_bad_pixels_and_a_degenerate_face() -> None:
    """A NaN in the flow stays out of the fit (it used to turn every coefficient NaN), and
    weighted pixels on one line, which do not determine the field, keep the last fit
    instead of a wild solution of a rank-deficient system."""
    flow = head_field(HEAD)
    flow[60, 60] = np.nan
    coef = hm.fit_dominant_motion(flow, face_only_mask())
    assert np.isfinite(coef).all() and np.abs(coef - HEAD).max() < 1e-4
    band = np.zeros((SIZE, SIZE), bool)
    band[40:42, 20:90] = True  # 2 rows: one sampled row, where 1 and y coincide
    flow = head_field(HEAD)
    coef = hm.fit_dominant_motion(flow, band)
    # The starting translation is kept: no slope extrapolated from one line of pixels.
    assert np.array_equal(coef[:, 1:], np.zeros((2, 3)))
    assert np.allclose(coef[:, 0], np.median(flow[40, 20:90], axis=0), atol=1e-6)
