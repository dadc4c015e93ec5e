"""The numpy Farneback port agrees with cv2.calcOpticalFlowFarneback (project settings)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engines import farneback_ref as fr
from realtime.common.types import FlowSettings

S = FlowSettings()
EPE_MAX = 1e-3  # measured ~1e-6 px; 0.1 px is the project requirement, keep margin visible


def cv_flow(a: np.ndarray, b: np.ndarray, s: FlowSettings = S) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(
        a, b, None, s.pyr_scale, s.levels, s.winsize, s.iterations, s.poly_n, s.poly_sigma,
        cv2.OPTFLOW_FARNEBACK_GAUSSIAN,
    )


def texture(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.random((n // 4 + 2, n // 4 + 2)).astype(np.float32)
    return np.clip(cv2.resize(small, (n, n), interpolation=cv2.INTER_CUBIC) * 255, 0, 255).astype(np.uint8)


def translate(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, img.shape[::-1], borderMode=cv2.BORDER_REFLECT)


def sine_warp(img: np.ndarray, amp: float) -> np.ndarray:
    n = img.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    mx = xx + amp * np.sin(2 * np.pi * yy / n)
    my = yy + amp * np.cos(2 * np.pi * xx / n)
    return cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def face_crop(n: int) -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    grey = cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2GRAY)
    return cv2.resize(grey[30:230, 150:350], (n, n), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("n", [112, 224])
@pytest.mark.parametrize("dx,dy", [(1.3, -0.7), (4.0, 2.5)])
def test_translation_matches_cv2(n: int, dx: float, dy: float) -> None:
    a = texture(n, 1)
    b = translate(a, dx, dy)
    ref = fr.farneback(a, b, S)
    assert fr.epe(ref, cv_flow(a, b)) <= EPE_MAX
    # and the flow is a flow: it finds the motion in the interior
    inner = ref[n // 4 : -n // 4, n // 4 : -n // 4].reshape(-1, 2).mean(0)
    assert abs(inner[0] + dx) < 0.5 or abs(inner[0] - dx) < 0.5


def test_sine_warp_matches_cv2() -> None:
    a = texture(112, 2)
    b = sine_warp(a, 2.0)
    assert fr.epe(fr.farneback(a, b, S), cv_flow(a, b)) <= EPE_MAX


@pytest.mark.parametrize("n", [112, 224])
def test_face_pair_matches_cv2(n: int) -> None:
    a = face_crop(n)
    b = sine_warp(translate(a, 0.6, 0.3), 1.0)
    assert fr.epe(fr.farneback(a, b, S), cv_flow(a, b)) <= EPE_MAX


def test_frame_products_reuse_is_bit_identical() -> None:
    a, b, c = face_crop(112), sine_warp(face_crop(112), 1.5), translate(face_crop(112), 1, 1)
    pa, pb, pc = (fr.frame_products(x, S) for x in (a, b, c))
    # reuse frame a's products for two pairs, as the streaming pipeline does
    f_ab, f_ac = fr.pair_flow(pa, pb, S), fr.pair_flow(pa, pc, S)
    assert np.array_equal(f_ab, fr.farneback(a, b, S))
    assert np.array_equal(f_ac, fr.farneback(a, c, S))
    assert not np.array_equal(f_ab, f_ac)


def test_level_geometry_matches_opencv_rule() -> None:
    sizes = [(g.width, g.ksize) for g in fr.level_geometry(112, 112, S)]
    assert sizes == [(112, 3), (79, 3), (55, 3), (39, 5)]
    assert len(fr.level_geometry(224, 224, S)) == 6


def test_pieces_match_cv2_primitives() -> None:
    img = face_crop(112).astype(np.float32)
    for g in fr.level_geometry(112, 112, S):
        want = cv2.resize(cv2.GaussianBlur(img, (g.ksize, g.ksize), g.sigma, g.sigma), (g.width, g.height))
        got = fr.resize_linear(fr.gaussian_blur(img, g.ksize, g.sigma), g.width, g.height)
        assert np.abs(got - want).max() < 1e-2
    flow = np.random.default_rng(3).normal(size=(20, 30, 2)).astype(np.float32)
    want = cv2.resize(flow, (43, 29), interpolation=cv2.INTER_LINEAR)
    assert np.abs(fr.resize_linear(flow, 43, 29) - want).max() < 1e-5


def test_rejects_colour_input() -> None:
    with pytest.raises(ValueError):
        fr.frame_products(np.zeros((8, 8, 3), np.uint8), S)
