"""INT8 calibration data feeding and cache reuse (plain Python, no TensorRT needed).

The ROIs are real pre-processed inputs: engines.features.pair_input of a real face photo
(matplotlib's grace_hopper.jpg, real FaceMesh landmarks) against copies of it with the
mouth or brow region moved by various small offsets. The TensorRT adapter test needs
tensorrt and CUDA and is skipped elsewhere.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import torch

from calibration.int8 import CalibrationBatches, CalibrationCache, make_trt_calibrator, neighbour_correlation
from engines import features as ft
from realtime import face as fl
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, FlowSettings


@pytest.fixture(scope="module")
def rois() -> np.ndarray:
    img = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    with fl.FaceLandmarker(static_image_mode=True) as mesh:
        face = fl.align_face(img, mesh.detect(img), 224)
    assert face is not None
    g = ft.face_geometry(face.landmarks, 224)
    out = []
    for dx, dy in [(0, 1), (0, 2), (1, 0), (-1, 1), (0, -2), (2, 2)]:
        shifted = cv2.warpAffine(face.grey, np.float32([[1, 0, dx], [0, 1, dy]]), face.grey.shape[::-1],
                                 flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        for x0, y0, x1, y1 in (g.mouth_box, g.brow_box):
            grey = face.grey.copy()
            grey[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6] = shifted[y0 + 6 : y1 - 6, x0 + 6 : x1 - 6]
            out.append(ft.pair_input(face, AlignedFace(grey=grey, landmarks=face.landmarks, matrix=face.matrix), FlowSettings()))
    return np.stack(out)  # (12, 3, 112, 112)


def test_batches_cover_the_data_in_order_and_reset(rois: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "rois.npy", rois)
    b = CalibrationBatches.from_file(tmp_path / "rois.npy", batch_size=5)
    assert b.n_batches == 2 and b.batch_size == 5 and b.sample_shape == (3, 112, 112)
    first, second = b.next_batch(), b.next_batch()
    assert first is not None and second is not None and b.next_batch() is None
    np.testing.assert_array_equal(np.concatenate([first, second]), rois[:10])  # tail of 2 dropped
    b.reset()
    np.testing.assert_array_equal(b.next_batch(), rois[:5])


def test_npz_and_max_batches(rois: np.ndarray, tmp_path: Path) -> None:
    np.savez(tmp_path / "r.npz", roi=rois, other=np.zeros(3))
    b = CalibrationBatches.from_file(tmp_path / "r.npz", batch_size=2, max_batches=3)
    assert b.n_batches == 3
    count = 0
    while b.next_batch() is not None:
        count += 1
    assert count == 3


def test_max_batches_spreads_rows_over_the_file_and_float16_cache_works(rois: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "cache.x.npy", rois.astype(np.float16))  # tools/features_cache.py layout
    b = CalibrationBatches.from_file(tmp_path / "cache.x.npy", batch_size=2, max_batches=2)
    used = b.rois
    assert used.dtype == np.float32 and used.shape == (4, 3, 112, 112)
    # rows 0, 4, 7, 11 of 12: first and last included, not just the head of the file
    np.testing.assert_array_equal(used[0], rois[0].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(used[-1], rois[-1].astype(np.float16).astype(np.float32))


def test_real_rois_are_correlated_noise_is_not(rois: np.ndarray) -> None:
    assert neighbour_correlation(rois) > 0.8
    noise = np.random.default_rng(0).uniform(-1, 1, rois.shape).astype(np.float32)
    assert abs(neighbour_correlation(noise)) < 0.1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda r: np.random.default_rng(0).uniform(-1, 1, r.shape).astype(np.float32), "look like noise"),
        (lambda r: (r * 128 + 127.5), "not normalised"),
        (lambda r: r[:, :, :64, :64], r"shape \(N,3,112,112\)"),
        (lambda r: (r * 128 + 127.5).astype(np.uint8), "must be float"),
    ],
)
def test_bad_calibration_data_is_refused(rois: np.ndarray, tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    np.save(tmp_path / "bad.npy", make(rois))
    with pytest.raises(UserError, match=f"bad.npy: .*{message}"):
        CalibrationBatches.from_file(tmp_path / "bad.npy", batch_size=2)


def test_unreadable_or_ambiguous_files(rois: np.ndarray, tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(UserError, match="x.npy"):
        CalibrationBatches.from_file(tmp_path / "x.npy", 2)
    np.savez(tmp_path / "two.npz", a=rois, b=rois)
    with pytest.raises(UserError, match="two.npz.*'roi'"):
        CalibrationBatches.from_file(tmp_path / "two.npz", 2)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="obj.npy"):
        CalibrationBatches.from_file(tmp_path / "obj.npy", 2)  # pickled objects are never loaded
    with pytest.raises(UserError, match="missing.npy"):
        CalibrationBatches.from_file(tmp_path / "missing.npy", 2)


def test_too_few_rois(rois: np.ndarray) -> None:
    with pytest.raises(UserError, match="fewer than one batch"):
        CalibrationBatches(rois, batch_size=64)


def test_cache_round_trip_and_staleness(rois: np.ndarray, tmp_path: Path) -> None:
    data = CalibrationBatches(rois, 4).data_sha256()
    cache = CalibrationCache(tmp_path / "calib.cache", "w" * 64, data)
    assert cache.read() is None
    cache.write(b"TRT-8601-EntropyCalibration2\nroi: 3c010a14\n")
    assert CalibrationCache(tmp_path / "calib.cache", "w" * 64, data).read() == b"TRT-8601-EntropyCalibration2\nroi: 3c010a14\n"
    # other weights or other data: the table is stale and must not be reused
    assert CalibrationCache(tmp_path / "calib.cache", "v" * 64, data).read() is None
    other = CalibrationBatches(rois[::-1].copy(), 4).data_sha256()
    assert other != data
    assert CalibrationCache(tmp_path / "calib.cache", "w" * 64, other).read() is None


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_trt_adapter_feeds_device_batches(rois: np.ndarray, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (NVIDIA's index is unreachable here)")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    batches = CalibrationBatches(rois, 4)
    calib = make_trt_calibrator(batches, CalibrationCache(tmp_path / "c.cache", "w" * 64, batches.data_sha256()))
    assert calib.get_batch_size() == 4
    ptrs = [calib.get_batch(["roi"]) for _ in range(4)]
    assert all(p is not None and p[0] != 0 for p in ptrs[:3]) and ptrs[3] is None
    assert calib.read_calibration_cache() is None
    calib.write_calibration_cache(b"table")
    assert calib.read_calibration_cache() == b"table"
