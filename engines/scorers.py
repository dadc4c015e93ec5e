"""One scorer interface over torch CPU, ONNX Runtime (CPU), torch CUDA and TensorRT.

A scorer maps a batch of pre-processed ROIs (N,3,S,S) float32 to P(expression) (N,)
float32 for the one expression type its weights were trained for.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from engines.backends import BACKENDS, Backend  # noqa: F401 (re-exported)
from engines.lgnmnet import ExpressionProbability, LGNMNet
from engines.onnx_export import INPUT_NAME, OUTPUT_NAME, export_onnx_bytes
from engines.scorer_input import check_batch
from engines.weights import MODEL_FLOW_MAGNITUDE, WeightsMeta, load_weights, read_meta
from realtime.common.errors import UserError
from realtime.common.types import ExprType

LIVE_BATCHES: tuple[int, ...] = (1, 64)  # live: one new pair per frame; replay: chunks of 64


@runtime_checkable
class Scorer(Protocol):
    backend: str
    type: ExprType
    meta: WeightsMeta

    def score(self, x: np.ndarray) -> np.ndarray: ...  # (N,3,S,S) float32 -> (N,) float32

    def close(self) -> None: ...


class TorchCpuScorer:
    backend = "torch-cpu"

    def __init__(self, weights_path: str | Path) -> None:
        net, self.meta = load_weights(weights_path)
        self.type: ExprType = self.meta.type
        self._model = ExpressionProbability(net).eval()

    def score(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.meta.roi_size)
        if x.shape[0] == 0:
            return np.empty((0,), np.float32)
        with torch.inference_mode():
            return self._model(torch.from_numpy(x)).numpy().astype(np.float32, copy=False)

    def close(self) -> None:
        self._model = None  # type: ignore[assignment]


class OnnxRuntimeScorer:
    """ONNX Runtime, CPU execution provider. The graph is exported in memory from the
    weights at start (about 0.5 s), so there is no second model file to keep in sync."""

    backend = "onnxruntime-cpu"

    def __init__(self, weights_path: str | Path, threads: int = 0) -> None:
        import onnxruntime as ort

        _, self.meta = load_weights(weights_path)
        self.type: ExprType = self.meta.type
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads  # 0: ORT's default (physical cores)
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between calls: the ME and MaE sessions alternate every frame
        # and share the cores with the flow; spinning threads of one session starved
        # the other (ME+MaE batch-1 was slower than the two alone, see bench_engines).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sess = ort.InferenceSession(export_onnx_bytes(weights_path), opts, providers=["CPUExecutionProvider"])

    def score(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.meta.roi_size)
        if x.shape[0] == 0:
            return np.empty((0,), np.float32)
        return self._sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0].astype(np.float32, copy=False)

    def close(self) -> None:
        self._sess = None


class _HalfBodyFloatHead(torch.nn.Module):
    """fp16 backbone + neck convolutions, fp32 from the L2-normalisation on.

    Why fp32 there: normalising an all-zero 512-vector in fp16 gives NaN (the 1e-12
    epsilon underflows), and the head multiplies cosines by 64, so fp16's ~1e-3 cosine
    error would become ~0.06 in the logits. That tail is a 512x256 matmul: free in fp32."""

    def __init__(self, net: LGNMNet) -> None:
        super().__init__()
        # Module.to(memory_format=...) is torch API; its type stub lacks the keyword.
        net.backbone.half().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        net.neck_conv.half().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        net.neck_bn.half()
        self.net = net

    def forward(self, roi: torch.Tensor) -> torch.Tensor:
        emb = self.net.embed(self.net.features(roi).float())
        return self.net.proba(self.net.head.logits(emb))


class TorchCudaScorer:
    """fp16 (fp32 tail), channels-last, one CUDA graph per fixed live batch size (launch overhead
    dominates a batch-1 MobileNetV2, and a graph replays all kernels in one launch).
    Other batch sizes run eagerly."""

    backend = "torch-cuda"

    def __init__(
        self, weights_path: str | Path, graph_batches: Iterable[int] = LIVE_BATCHES, device: str = "cuda", half: bool = True
    ) -> None:
        net, self.meta = load_weights(weights_path, device=device)
        self.type: ExprType = self.meta.type
        self._dev = torch.device(device)
        self._dtype = torch.float16 if half else torch.float32
        if half:
            self._model: torch.nn.Module = _HalfBodyFloatHead(net).eval()
        else:
            channels_last = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (see above)
            self._model = ExpressionProbability(channels_last).eval()
        s = self.meta.roi_size
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor]] = {}
        for b in sorted(set(graph_batches)):
            static_in = torch.zeros((b, 3, s, s), dtype=self._dtype, device=self._dev).to(memory_format=torch.channels_last)
            side = torch.cuda.Stream(self._dev)
            side.wait_stream(torch.cuda.current_stream(self._dev))
            with torch.cuda.stream(side), torch.inference_mode():
                for _ in range(3):  # warm-up: create cuDNN/cuBLAS handles and workspaces before capture
                    self._model(static_in)
            torch.cuda.current_stream(self._dev).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.inference_mode(), torch.cuda.graph(graph):
                static_out = self._model(static_in)
            self._graphs[b] = (graph, static_in, static_out)

    def score(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.meta.roi_size)
        n = x.shape[0]
        if n == 0:
            return np.empty((0,), np.float32)
        src = torch.from_numpy(x).to(self._dev, non_blocking=False).to(self._dtype)
        with torch.inference_mode():
            if n in self._graphs:
                graph, static_in, static_out = self._graphs[n]
                static_in.copy_(src)
                graph.replay()
                out = static_out
            else:
                out = self._model(src.contiguous(memory_format=torch.channels_last))
            return out.float().cpu().numpy()

    def close(self) -> None:
        self._graphs.clear()
        self._model = None  # type: ignore[assignment]


def tensorrt_usable() -> bool:
    """TensorRT importable and a CUDA device present."""
    return importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available()


def make_cpu_scorer(weights_path: str | Path) -> Scorer:
    """The faster CPU backend: ONNX Runtime, in every condition measured.

    tools/bench_engines.py on this project's 2-core dev machine (torch 2.13 CPU,
    onnxruntime 1.32, random weights; medians, batch 1 / batch 64):
                                 torch CPU             onnxruntime           ratio
      quiet (load ~1), 2 thr     10-11 ms / ~150 ROI/s  2.8 ms / ~640 ROI/s   ~4x / ~4x
      ME+MaE per frame, quiet    ~20 ms                 5.6 ms                ~3.6x
      loaded (load ~6), 1 thr    12 ms / 67 ROI/s       3.3-6.7 ms / ~240     2-4x / 2-4x
      loaded (load ~6), 2 thr    57-100 ms / 20-37      2.8 ms / ~230         20-37x
    (torch's OpenMP threads collapse when the cores are shared; ORT's do not.)
    """
    return OnnxRuntimeScorer(weights_path)


def make_scorer(weights_path: str | Path, backend: str = "auto", engine_path: str | Path | None = None) -> Scorer:
    """Scorer for `weights_path` on `backend` ("auto", "tensorrt", "cuda" or "cpu").

    auto: TensorRT when an engine is given and TensorRT + CUDA are usable, else torch
    CUDA when a GPU is present, else the faster CPU backend.

    The kind of scorer comes from the weights' metadata (`WeightsMeta.model`): a
    training-free flow-magnitude baseline (`engines.baseline`) is numpy on the CPU for
    every backend (it has no network; `engine_path` is not used for it), so a run may pair
    it with LGNMNet weights on any backend.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend: must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if read_meta(weights_path).model == MODEL_FLOW_MAGNITUDE:
        from engines.baseline import FlowMagnitudeScorer

        return FlowMagnitudeScorer(weights_path)
    if backend == "auto":
        if engine_path is not None and tensorrt_usable():
            backend = "tensorrt"
        elif torch.cuda.is_available():
            backend = "cuda"
        else:
            backend = "cpu"
    if backend == "tensorrt":
        if engine_path is None:
            raise UserError("--engine: required with --backend tensorrt (build one with lgnm-build-engine)")
        if not tensorrt_usable():
            raise UserError("--backend: tensorrt needs the tensorrt package and a CUDA GPU, not found here")
        from engines.trt_runtime import TensorRTScorer

        return TensorRTScorer(weights_path, engine_path)
    if backend == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--backend: cuda requested but torch sees no CUDA GPU")
        return TorchCudaScorer(weights_path)
    return make_cpu_scorer(weights_path)

