"""The flow seam of the streaming pipeline, and its one picker (`--flow`).

A backend turns an aligned face into its per-frame products once (in the capture
thread) and turns a batch of (earlier, later) product pairs into network inputs
(N,3,112,112) float32. The CPU backend is `engines.features` (OpenCV Farneback, DIS or
TV-L1, whichever the weights were trained on); the CUDA backend (`engines.cuda_flow`)
implements Farneback with a Gaussian window only and keeps the products on the device.
`make_pair_features` is the only place that chooses between them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from engines import cuda_flow, features
from engines.backends import FLOW_KINDS
from engines.head_motion import field_basis
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, FlowSettings


class PairFeatures(Protocol):
    """What the pipeline needs of a flow backend."""

    name: str  # "cpu" or "cuda": reported in status messages and metrics.json

    def prepare(self, face: AlignedFace) -> Any:
        """The per-frame products of one aligned face (called once per frame)."""
        ...

    def inputs(self, pairs: Sequence[tuple[Any, Any]]) -> np.ndarray:
        """(N,3,112,112) float32 network inputs of N (frame i, frame i+K) product pairs."""
        ...


def default_flow_workers() -> int:
    """Threads that compute one batch's pairs at once: the CPUs this process may run on
    (its affinity: a container's or a job's share, not the machine's count), at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # (macOS, Windows)
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class CpuPairFeatures:
    """OpenCV flow + the numpy/OpenCV encoding chain of `engines.features`.

    The pairs of one batch (a live frame brings one per type) are computed by `workers`
    threads at once: OpenCV's Farneback and most of the numpy work release the GIL, and
    the scoring thread is the pipeline's bottleneck while the capture thread leaves a
    core mostly idle (README, *Measured speed*). Each pair's input is the same as
    computed alone (pure functions of the two frames' products).
    """

    name = "cpu"

    def __init__(self, settings: FlowSettings, workers: int | None = None) -> None:
        self.settings = settings
        self.workers = default_flow_workers() if workers is None else int(workers)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        # Started on the first batch of two or more pairs; its idle threads end when this
        # object is collected (ThreadPoolExecutor's own weak reference) or at exit.
        self._pool: ThreadPoolExecutor | None = None
        if settings.head_motion != "nose":
            field_basis(settings.face_size)  # built now, not on the first live pair

    def prepare(self, face: AlignedFace) -> features.FlowFrame:
        return features.flow_frame(face, self.settings)

    def inputs(self, pairs: Sequence[tuple[features.FlowFrame, features.FlowFrame]]) -> np.ndarray:
        out = np.empty((len(pairs), 3, features.ROI_SIZE, features.ROI_SIZE), np.float32)

        def one(i: int) -> None:
            a, b = pairs[i]
            out[i] = features.pair_input_frames(a, b, self.settings)

        if self.workers == 1 or len(pairs) < 2:
            for i in range(len(pairs)):
                one(i)
            return out
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="lgnm-flow")
        for _ in self._pool.map(one, range(len(pairs))):  # re-raises a pair's exception
            pass
        return out


def cuda_flow_available() -> bool:
    """True when CuPy imports and sees a CUDA device; never raises."""
    try:
        return bool(cuda_flow.cuda_available())
    except Exception:  # noqa: BLE001 - any driver problem means "not available"
        return False


def make_pair_features(kind: str, settings: FlowSettings) -> PairFeatures:
    """The flow backend of `--flow auto|cpu|cuda` for weights trained on `settings`.

    auto: CUDA when it implements the weights' flow (`cuda_flow.implements`: Farneback,
    Gaussian window), a GPU is present and the kernels build; the CPU otherwise (weights
    trained on DIS or TV-L1 flow run on the CPU). cuda: the same conditions, each one
    that fails a UserError naming --flow. Raises UserError for an unknown kind.
    """
    if kind not in FLOW_KINDS:
        raise UserError(f"--flow: must be one of {', '.join(FLOW_KINDS)}, got {kind!r}")
    if kind == "cpu":
        return CpuPairFeatures(settings)
    why_not = cuda_flow.why_not_implemented(settings)
    if kind == "auto":
        if why_not is not None or not cuda_flow_available():
            return CpuPairFeatures(settings)
        try:
            return cuda_flow.CudaPairFeatures(settings)
        except Exception:  # noqa: BLE001 - kernels that fail to build on an odd driver: the CPU does it
            return CpuPairFeatures(settings)
    if why_not is not None:
        raise UserError(f"--flow cuda: {why_not}; use --flow cpu or auto")
    if not cuda_flow_available():
        raise UserError("--flow cuda: no CUDA GPU or CuPy was found; use --flow cpu or auto")
    try:
        return cuda_flow.CudaPairFeatures(settings)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"--flow cuda: the CUDA kernels failed to build: {exc}") from exc
