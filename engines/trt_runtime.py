"""TensorRT 10 scorer: deserialise an engine, check it fits, run it on a CUDA stream.

Device buffers come from torch's CUDA caching allocator rather than pycuda: the process
already has torch (and its CUDA context) for the flow and the CUDA scorer, so one
allocator and one context serve everything, and no extra dependency is needed. A buffer
is passed to TensorRT as its raw pointer (`tensor.data_ptr()`); work is enqueued on a
torch stream (`stream.cuda_stream`) so ordering with torch ops is explicit.

Only importable usefully where `tensorrt` and CUDA exist; nothing here runs on CPU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engines.engine_meta import check_engine_compat, read_sidecar
from engines.onnx_export import INPUT_NAME, OUTPUT_NAME
from engines.scorer_input import check_batch
from engines.weights import WeightsMeta, file_sha256, read_meta
from realtime.common.errors import UserError


def live_gpu_facts() -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") of the current CUDA device."""
    import torch

    major, minor = torch.cuda.get_device_capability()
    return torch.cuda.get_device_name(), f"{major}.{minor}"


class TensorRTScorer:
    """Scores with a serialised TensorRT engine built by lgnm-build-engine."""

    backend = "tensorrt"

    def __init__(self, weights_path: str | Path, engine_path: str | Path) -> None:
        import tensorrt as trt
        import torch

        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise UserError(f"{engine_path}: engine file not found")
        sidecar = read_sidecar(engine_path)
        gpu, cc = live_gpu_facts()
        check_engine_compat(
            sidecar, engine_path, weights_sha256=file_sha256(weights_path),
            tensorrt_version=trt.__version__, gpu_name=gpu, compute_capability=cc,
        )
        self.meta: WeightsMeta = read_meta(weights_path)
        self.type = self.meta.type
        self.precision = sidecar.precision
        self.max_batch = sidecar.max_batch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self._engine is None:
            raise UserError(f"{engine_path}: TensorRT could not deserialise the engine (see the log above)")
        names = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        if names != {INPUT_NAME, OUTPUT_NAME}:
            raise UserError(f"{engine_path}: engine I/O is {sorted(names)}, expected {INPUT_NAME!r} -> {OUTPUT_NAME!r}")
        for name in names:
            if self._engine.get_tensor_dtype(name) != trt.float32:
                raise UserError(f"{engine_path}: engine tensor {name!r} is {self._engine.get_tensor_dtype(name)}, "
                                "expected float32")
        self._context = self._engine.create_execution_context()
        c, h, w = sidecar.input_shape
        self._device = torch.device("cuda")
        # Both I/O tensors are float32 whatever the engine precision (the builder keeps
        # network I/O types from the ONNX graph).
        self._inp = torch.empty((self.max_batch, c, h, w), dtype=torch.float32, device=self._device)
        self._out = torch.empty((self.max_batch,), dtype=torch.float32, device=self._device)
        self._host_out = torch.empty((self.max_batch,), dtype=torch.float32, pin_memory=True)
        self._stream = torch.cuda.Stream()
        # The buffers never move, so the addresses are bound once; a smaller batch uses
        # the leading rows of the same (contiguous) buffers.
        self._context.set_tensor_address(INPUT_NAME, self._inp.data_ptr())
        self._context.set_tensor_address(OUTPUT_NAME, self._out.data_ptr())

    def score(self, x: np.ndarray) -> np.ndarray:
        x = check_batch(x, self.meta.roi_size)
        out = np.empty((x.shape[0],), np.float32)
        for start in range(0, x.shape[0], self.max_batch):
            out[start : start + self.max_batch] = self._run(x[start : start + self.max_batch])
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        n = x.shape[0]
        with torch.cuda.stream(self._stream):
            self._inp[:n].copy_(torch.from_numpy(x), non_blocking=False)
            if not self._context.set_input_shape(INPUT_NAME, tuple(x.shape)):
                raise RuntimeError(f"TensorRT refused input shape {x.shape}")
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            self._host_out[:n].copy_(self._out[:n], non_blocking=True)
        self._stream.synchronize()
        return self._host_out[:n].numpy().copy()

    def close(self) -> None:
        # Drop in dependency order: context before engine before runtime.
        self._context = None
        self._engine = None
        self._runtime = None
