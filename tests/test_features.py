"""Per-pair feature chain on a real aligned face (grace_hopper)."""

from __future__ import annotations

import dataclasses

import cv2
import matplotlib.cbook
import numpy as np
import pytest

from engines import features as ft
from realtime import face as fl
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, FlowSettings

SETTINGS = FlowSettings()


@pytest.fixture(scope="module")
def hopper_face() -> AlignedFace:
    """Grace Hopper aligned at 224 px (the CPU path's crop size)."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    img = cv2.imread(str(path))
    with fl.FaceLandmarker(static_image_mode=True) as mesh:
        lm = mesh.detect(img)
    face = fl.align_face(img, lm, 224)
    assert face is not None
    return face


@pytest.fixture(scope="module")
def frame(hopper_face: AlignedFace) -> ft.FlowFrame:
    return ft.flow_frame(hopper_face, SETTINGS)


def shifted(grey: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """grey moved by (dx, dy): pixel content at x appears at x + dx."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(grey, m, grey.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


@pytest.mark.parametrize("algorithm", ["farneback", "dis", "tvl1"])
def test_flow_recovers_a_known_translation(frame: ft.FlowFrame, algorithm: str) -> None:
    settings = FlowSettings(algorithm=algorithm)
    flow = ft.compute_flow(frame.grey, shifted(frame.grey, 1.5, -0.75), settings)
    assert flow.shape == (112, 112, 2) and flow.dtype == np.float32
    inner = flow[12:-12, 12:-12]
    epe = np.linalg.norm(inner - np.array([1.5, -0.75], np.float32), axis=2).mean()
    assert epe < 0.2


def test_compute_flow_resizes_other_sizes_like_flow_image(hopper_face: AlignedFace, frame: ft.FlowFrame) -> None:
    moved = shifted(hopper_face.grey, 2.0, 0.0)
    flow = ft.compute_flow(hopper_face.grey, moved, SETTINGS)
    assert flow.shape == (112, 112, 2)
    assert np.array_equal(flow, ft.compute_flow(frame.grey, ft.to_flow_size(moved, 112), SETTINGS))
    assert abs(np.median(flow[..., 0]) - 1.0) < 0.1  # 2 px at 224 is 1 px at 112


def test_unknown_flow_algorithm_is_a_user_error(frame: ft.FlowFrame) -> None:
    with pytest.raises(UserError, match="raft"):
        ft.compute_flow(frame.grey, frame.grey, FlowSettings(algorithm="raft"))


def hsv_of(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(int)


@pytest.mark.parametrize(("direction", "hue"), [((1, 0), 0), ((0, 1), 45), ((-1, 0), 90), ((0, -1), 135)])
def test_encode_hs_hue_is_direction(direction: tuple[int, int], hue: int) -> None:
    # uniform direction, magnitude growing along x (a constant magnitude would normalise to 0)
    mag = np.tile(np.linspace(1, 4, 64, dtype=np.float32), (64, 1))
    flow = np.stack([mag * direction[0], mag * direction[1]], axis=2)
    hsv = hsv_of(ft.encode_hs(flow, 15.0))
    bright = hsv[..., 2] > 60
    assert np.abs(hsv[..., 0][bright] - hue).max() <= 1
    assert (hsv[..., 1][bright] >= 250).all()
    assert hsv[..., 2].min() == 0 and hsv[..., 2].max() == 255


def test_encode_hs_clips_before_normalising() -> None:
    flow = np.zeros((8, 8, 2), np.float32)
    flow[0, 0] = (40.0, 0.0)  # clipped to 15
    flow[1, 1] = (7.5, 0.0)  # half of the clipped maximum
    value = hsv_of(ft.encode_hs(flow, 15.0))[..., 2]
    assert value[0, 0] == 255 and abs(value[1, 1] - 128) <= 1


def test_encode_hs_can_normalise_within_a_region() -> None:
    flow = np.zeros((16, 16, 2), np.float32)
    flow[0, 0] = (10.0, 0.0)  # a spurious outlier outside the region
    flow[8, 8] = (1.0, 0.0)
    within = np.zeros((16, 16), bool)
    within[4:12, 4:12] = True
    assert hsv_of(ft.encode_hs(flow, 15.0))[8, 8, 2] < 30  # the outlier sets the max
    value = hsv_of(ft.encode_hs(flow, 15.0, within))[..., 2]
    assert value[8, 8] == 255 and value[0, 0] == 255 and value[5, 5] == 0


def test_encode_hs_keeps_an_absolute_scale_below_the_floor() -> None:
    # A 1 px and a 2 px motion (a micro- vs a small macro-expression) must not look alike:
    # under the floor the value is magnitude / floor, above it min-max as the authors do.
    def peak(px: float, floor: float) -> int:
        flow = np.zeros((16, 16, 2), np.float32)
        flow[4:12, 4:12] = (px, 0.0)
        return int(hsv_of(ft.encode_hs(flow, 15.0, floor=floor))[..., 2].max())

    assert peak(1.0, 0.0) == peak(2.0, 0.0) == 255  # min-max: both stretched to the top
    assert peak(1.0, 3.0) == 85 and peak(2.0, 3.0) == 170  # 255 * px / 3
    assert peak(6.0, 3.0) == 255  # above the floor: min-max again


def test_encode_hs_of_constant_motion_is_black() -> None:
    flow = np.full((16, 16, 2), 2.0, np.float32)
    assert not ft.encode_hs(flow, 15.0).any()


def test_remove_head_motion_rule(frame: ft.FlowFrame) -> None:
    geom = frame.geometry
    img = np.full((112, 112, 3), 30, np.uint8)
    img[0, 0] = (10, 250, 10)
    x0, y0, x1, y1 = geom.nose_box
    assert not (x0 <= 0 < x1 and y0 <= 0 < y1)
    out = ft.remove_head_motion(img, geom)
    assert out.dtype == np.uint8
    assert tuple(out[0, 0]) == (20, 220, 0)  # |10-30|, |250-30|, max(10-30, 0)
    assert not out[5:, 5:].any()


def test_head_motion_removal_zeroes_a_global_translation(frame: ft.FlowFrame) -> None:
    geom = frame.geometry
    # head moves by (3, 1) everywhere; the mouth also moves up (an expression)
    flow = np.empty((112, 112, 2), np.float32)
    flow[...] = (3.0, 1.0)
    mx0, my0, mx1, my1 = geom.mouth_box
    yy, xx = np.mgrid[0:112, 0:112]
    bump = np.exp(-(((xx - (mx0 + mx1) / 2) / 8.0) ** 2 + ((yy - (my0 + my1) / 2) / 5.0) ** 2))
    flow[..., 1] -= 4.0 * bump.astype(np.float32)
    residual = ft.remove_head_motion(ft.encode_hs(flow, 15.0), geom)
    bx0, by0, bx1, by1 = geom.brow_box
    assert residual[by0:by1, bx0:bx1].max() <= 2
    assert residual[my0:my1, mx0:mx1].max() > 100


def test_eyes_are_masked_to_zero(frame: ft.FlowFrame) -> None:
    img = np.full((112, 112, 3), 200, np.uint8)
    out = ft.mask_eyes(img, frame.geometry)
    for group in (fl.LEFT_EYE, fl.RIGHT_EYE):
        centre = np.round(frame.landmarks[group].mean(axis=0)).astype(int)
        corners = np.round(frame.landmarks[group][[0, 8]]).astype(int)
        for x, y in [centre, *corners]:
            assert not out[y, x].any()
    assert (img == 200).all()  # input untouched
    masked = (out == 0).all(axis=2).sum()
    assert 100 < masked < 0.1 * 112 * 112  # the eyes, not the face
    assert out[100, 56].tolist() == [200, 200, 200]


def test_roi_places_brows_on_top_and_mouth_below(frame: ft.FlowFrame) -> None:
    geom = frame.geometry
    img = np.full((112, 112, 3), 128, np.uint8)
    bx0, by0, bx1, by1 = geom.brow_box
    mx0, my0, mx1, my1 = geom.mouth_box
    img[by0:by1, bx0:bx1] = (255, 0, 0)
    img[my0:my1, mx0:mx1] = (0, 0, 255)
    roi = ft.select_roi(img, geom)
    assert roi.shape == (112, 112, 3) and roi.dtype == np.uint8
    assert (roi[:56] == (255, 0, 0)).all()
    assert (roi[56:] == (0, 0, 255)).all()


def test_roi_boxes_cover_the_landmark_groups(frame: ft.FlowFrame) -> None:
    geom, lm = frame.geometry, frame.landmarks

    def inside(points: np.ndarray, box: ft.Box) -> bool:
        x0, y0, x1, y1 = box
        return bool(((points[:, 0] >= x0) & (points[:, 0] < x1) & (points[:, 1] >= y0) & (points[:, 1] < y1)).all())

    assert inside(lm[np.concatenate([fl.LEFT_BROW, fl.RIGHT_BROW, fl.LEFT_EYE, fl.RIGHT_EYE])], geom.brow_box)
    assert inside(lm[fl.MOUTH], geom.mouth_box)
    assert inside(lm[fl.NOSE_TIP[:2]], geom.nose_box)
    assert geom.brow_box[3] <= geom.mouth_box[1]  # brows+eyes above the mouth


def test_normalise_values_and_layout() -> None:
    roi = np.zeros((112, 112, 3), np.uint8)
    roi[..., 1] = 255
    roi[0, 0, 2] = 128
    x = ft.normalise(roi)
    assert x.shape == (3, 112, 112) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0].max() == x[0].min() == pytest.approx(-127.5 / 128)
    assert x[1].min() == pytest.approx(127.5 / 128)
    assert x[2, 0, 0] == pytest.approx(0.5 / 128)


def test_pair_input_of_identical_frames_is_constant(hopper_face: AlignedFace) -> None:
    x = ft.pair_input(hopper_face, hopper_face, SETTINGS)
    assert x.shape == (3, 112, 112) and x.dtype == np.float32
    # Farneback's residual flow on a still face (~5e-4 px) stays under the value floor:
    # at most one grey level anywhere.
    assert x.max() - x.min() <= 1.0 / 128 + 1e-6


def test_value_range_roi_ignores_background_flow(hopper_face: AlignedFace) -> None:
    flow = np.zeros((112, 112, 2), np.float32)
    flow[:4, :] = (10.0, 0.0)  # spurious border flow, outside both ROI boxes
    g = ft.face_geometry(ft.resize_landmarks(hopper_face.landmarks, 224, 112), 112)
    x0, y0, x1, y1 = g.mouth_box
    flow[(y0 + y1) // 2, (x0 + x1) // 2] = (1.0, 0.0)  # a small expression motion
    low_floor = dataclasses.replace(SETTINGS, value_floor=0.25)  # the 1 px motion is above it
    roi = ft.encode_pair(flow, g, low_floor)
    pair = ft.encode_pair(flow, g, dataclasses.replace(low_floor, value_range="pair"))
    assert roi.max() > pair.max() + 1.0  # "roi": the 1 px motion gets the full range
    with pytest.raises(UserError):
        ft.encode_pair(flow, g, dataclasses.replace(SETTINGS, value_range="face"))


def test_pair_input_sees_a_local_motion(hopper_face: AlignedFace) -> None:
    # move the mouth region of frame b by 2 px down (an expression, no head motion)
    grey_b = hopper_face.grey.copy()
    moved = shifted(hopper_face.grey, 0.0, 2.0)
    g = ft.face_geometry(hopper_face.landmarks, 224)
    x0, y0, x1, y1 = g.mouth_box
    grey_b[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6] = moved[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6]
    b = AlignedFace(grey=grey_b, landmarks=hopper_face.landmarks, matrix=hopper_face.matrix)
    x = ft.pair_input(hopper_face, b, SETTINGS)
    energy = np.abs(x - x.min()).sum(axis=0)
    assert energy[56:].mean() > 5 * energy[:56].mean()


def test_per_frame_products_are_computed_once(hopper_face: AlignedFace, monkeypatch) -> None:
    # flow-size crops are used as they are (no copy, no resize)
    small = AlignedFace(
        grey=cv2.resize(hopper_face.grey, (112, 112), interpolation=cv2.INTER_AREA),
        landmarks=ft.resize_landmarks(hopper_face.landmarks, 224, 112),
        matrix=hopper_face.matrix,
    )
    assert ft.flow_image(small, SETTINGS) is small.grey
    calls = {"geometry": 0}
    real = ft.face_geometry

    def counting(*args, **kwargs):
        calls["geometry"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ft, "face_geometry", counting)
    frames = [ft.flow_frame(hopper_face, SETTINGS), ft.flow_frame(small, SETTINGS)]
    assert calls["geometry"] == 2
    outs = [ft.pair_input_frames(frames[0], frames[1], SETTINGS) for _ in range(3)]
    assert calls["geometry"] == 2  # pairs reuse the frames' geometry
    assert all(np.array_equal(outs[0], o) for o in outs)
    assert np.array_equal(outs[0], ft.pair_input(hopper_face, small, SETTINGS))


def test_flow_frame_scales_landmarks_to_flow_size(hopper_face: AlignedFace, frame: ft.FlowFrame) -> None:
    assert frame.grey.shape == (112, 112)
    assert np.allclose(frame.landmarks, (hopper_face.landmarks + 0.5) / 2 - 0.5, atol=1e-4)
    assert frame.geometry.size == 112


def test_encode_pair_accepts_landmarks_or_geometry(frame: ft.FlowFrame) -> None:
    flow = ft.compute_flow(frame.grey, shifted(frame.grey, 0.0, 1.0), SETTINGS)
    assert np.array_equal(ft.encode_pair(flow, frame.landmarks, SETTINGS), ft.encode_pair(flow, frame.geometry, SETTINGS))
