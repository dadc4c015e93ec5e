"""TensorRT INT8 entropy calibration fed with real pre-processed ROIs.

INT8 ranges are only as good as the data they are measured on: calibrate on ROIs the
pipeline produced (a replay of real videos or a dataset export, saved as .npy/.npz of
shape (N,3,112,112) float32, normalised like the network input), never on random noise.
`CalibrationBatches.from_file` refuses arrays that are not normalised ROIs or that look
like noise (no spatial correlation between neighbouring pixels, which real HS-encoded
flow images always have).

Batch feeding (`CalibrationBatches`) and cache I/O (`CalibrationCache`) are plain Python,
tested without TensorRT; `make_trt_calibrator` builds the thin TensorRT adapter and is
only callable where tensorrt and CUDA exist.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from realtime.common.errors import UserError

NOISE_CORRELATION = 0.3  # mean neighbour-pixel correlation below this = noise
NORMALISED_LIMIT = 1.01  # (p - 127.5) / 128 lies in [-0.996, 0.996]


def neighbour_correlation(rois: np.ndarray, sample: int = 64) -> float:
    """Mean correlation between horizontally adjacent pixels over up to `sample` ROIs."""
    x = rois[: min(sample, len(rois))].astype(np.float64)
    a, b = x[..., :, :-1].reshape(len(x), -1), x[..., :, 1:].reshape(len(x), -1)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    ok = den > 0
    if not ok.any():
        return 0.0
    return float(((a * b).sum(axis=1)[ok] / den[ok]).mean())


class CalibrationBatches:
    """Fixed-size batches of ROIs, in order, once; `reset()` starts again.

    When the data holds more than `max_batches` batches, rows are taken evenly spaced
    over the whole array (a cache of consecutive frames is highly redundant: the first
    rows alone would calibrate on the first seconds of one recording)."""

    def __init__(self, rois: np.ndarray, batch_size: int, max_batches: int | None = None) -> None:
        if batch_size < 1:
            raise UserError(f"--calib-batch: must be >= 1, got {batch_size}")
        n = len(rois) // batch_size  # TensorRT calibrates with one fixed batch size: drop the tail
        if n == 0:
            raise UserError(f"--calib: {len(rois)} ROIs are fewer than one batch of {batch_size}")
        self.n_batches = n if max_batches is None else max(1, min(n, max_batches))
        self.batch_size = batch_size
        used = self.n_batches * batch_size
        rows = np.arange(used) if used == n * batch_size else np.linspace(0, len(rois) - 1, used).round().astype(np.int64)
        # Fancy indexing copies only the used rows (works on a memory-mapped .npy too).
        self._rois = np.ascontiguousarray(rois[rows], dtype=np.float32)
        self._next = 0

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self._rois.shape[1:])

    @property
    def rois(self) -> np.ndarray:
        return self._rois

    def data_sha256(self) -> str:
        """Identifies the calibration data (part of the cache key)."""
        return hashlib.sha256(self._rois.tobytes()).hexdigest()

    def next_batch(self) -> np.ndarray | None:
        if self._next >= self.n_batches:
            return None
        b = self._rois[self._next * self.batch_size : (self._next + 1) * self.batch_size]
        self._next += 1
        return b

    def reset(self) -> None:
        self._next = 0

    @classmethod
    def from_file(cls, path: str | Path, batch_size: int, max_batches: int | None = None,
                  roi_size: int = 112) -> CalibrationBatches:
        """Load and validate ROIs from .npy (memory-mapped; float16 caches of
        tools/features_cache.py work as they are), or .npz (array "roi", or its only array)."""
        path = Path(path)
        rois = load_rois(path)
        if rois.ndim != 4 or rois.shape[1:] != (3, roi_size, roi_size):
            raise UserError(f"{path}: expected ROIs of shape (N,3,{roi_size},{roi_size}), got {rois.shape}")
        if not np.issubdtype(rois.dtype, np.floating):
            raise UserError(f"{path}: ROIs must be float (normalised (p-127.5)/128), got {rois.dtype}")
        batches = cls(rois, batch_size, max_batches)
        used = batches.rois  # validate what will be fed, without reading a large file twice
        if not np.isfinite(used).all() or np.abs(used).max() > NORMALISED_LIMIT:
            raise UserError(f"{path}: ROIs are not normalised like the network input ((pixel-127.5)/128 in [-1,1])")
        corr = neighbour_correlation(used)
        if corr < NOISE_CORRELATION:
            raise UserError(
                f"{path}: ROIs look like noise or carry no signal (neighbour-pixel correlation {corr:.2f} < "
                f"{NOISE_CORRELATION}); calibrate on ROIs from a replay or dataset, with motion in them"
            )
        return batches


def load_rois(path: Path) -> np.ndarray:
    if not path.is_file():
        raise UserError(f"{path}: calibration data not found")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)  # never unpickle user files
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npy/.npz file ({exc})") from exc
    if isinstance(data, np.ndarray):
        return data
    with data:
        names = list(data.files)
        if "roi" in names:
            return data["roi"]
        if len(names) == 1:
            return data[names[0]]
    raise UserError(f"{path}: .npz must hold an array named 'roi' (or exactly one array), found {names}")


class CalibrationCache:
    """TensorRT's calibration table, reused only for the same weights and data.

    The table itself stays in TensorRT's own format at `path`; a JSON key file beside it
    (`path + ".json"`) records which weights and calibration data produced it, so a stale
    table (new weights, other data) is ignored and recalibrated instead of silently used.
    """

    def __init__(self, path: str | Path, weights_sha256: str, data_sha256: str) -> None:
        self.path = Path(path)
        self.key = {"weights_sha256": weights_sha256, "data_sha256": data_sha256}

    @property
    def key_path(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    def read(self) -> bytes | None:
        if not (self.path.is_file() and self.key_path.is_file()):
            return None
        try:
            key = json.loads(self.key_path.read_text())
        except ValueError:
            return None
        return self.path.read_bytes() if key == self.key else None

    def write(self, table: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(bytes(table))
        self.key_path.write_text(json.dumps(self.key, sort_keys=True) + "\n")


def make_trt_calibrator(batches: CalibrationBatches, cache: CalibrationCache) -> Any:  # a tensorrt.IInt8EntropyCalibrator2
    """A `trt.IInt8EntropyCalibrator2` over `batches` and `cache` (needs tensorrt + CUDA).

    The device buffer is a torch CUDA tensor (same allocator as the runtime scorer)."""
    import tensorrt as trt
    import torch

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # required by the pybind11 trampoline
            self._buf = torch.empty((batches.batch_size, *batches.sample_shape), dtype=torch.float32, device="cuda")

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            b = batches.next_batch()
            if b is None:
                return None  # tells TensorRT the data is exhausted
            self._buf.copy_(torch.from_numpy(b))
            torch.cuda.synchronize()
            return [int(self._buf.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read()

        def write_calibration_cache(self, table: Any) -> None:
            cache.write(bytes(table))

    return _EntropyCalibrator()
