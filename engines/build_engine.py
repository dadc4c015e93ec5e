"""`lgnm-build-engine`: LGNMNet weights -> ONNX -> serialised TensorRT 10 engine + sidecar.

The TensorRT part is kept thin (`build_serialized_engine`); everything else (argument
checks, sidecar contents) is plain Python, tested without TensorRT. The engine is only
valid for the TensorRT version and GPU that built it: build it on the machine that runs it.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engines.engine_meta import PRECISIONS, EngineSidecar, Precision, write_sidecar
from engines.onnx_export import INPUT_NAME, export_onnx_bytes
from engines.weights import file_sha256, read_meta
from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg

WORKSPACE_BYTES = 1 << 30  # 1 GiB of builder scratch: ample for MobileNetV2 at batch <= 256


def make_sidecar(
    weights: Path, precision: Precision, max_batch: int, *, tensorrt_version: str, gpu_name: str, compute_capability: str
) -> EngineSidecar:
    """The sidecar describing an engine built from `weights` on this machine (pure)."""
    meta = read_meta(weights)
    return EngineSidecar(
        tensorrt_version=tensorrt_version, gpu_name=gpu_name, compute_capability=compute_capability,
        precision=precision, input_name=INPUT_NAME, input_shape=(3, meta.roi_size, meta.roi_size),
        max_batch=max_batch, weights_sha256=file_sha256(weights), weights_meta=meta.to_dict(),
        weights_file=weights.name,
    )


def default_engine_path(weights: Path, precision: str) -> Path:
    """`me.safetensors` -> `me.fp16.engine` beside it."""
    return weights.with_name(f"{weights.stem}.{precision}.engine")


def build_serialized_engine(
    onnx_bytes: bytes,
    precision: Precision,
    max_batch: int,
    roi_size: int = 112,
    calibrator: object | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> bytes:
    """Parse the ONNX graph and build a serialised engine (TensorRT 10 API)."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    step("parsing ONNX")
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse the exported ONNX graph: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
    profile = builder.create_optimization_profile()
    shape = (3, roi_size, roi_size)
    # opt = 1: the live path scores one pair per frame and type; replay batches still run.
    profile.set_shape(INPUT_NAME, (1, *shape), (1, *shape), (max_batch, *shape))
    config.add_optimization_profile(profile)
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 falls back to fp16 (not fp32) where faster
        pinned = pin_tail_fp32(network, trt)
        if pinned:
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        step(f"kept {pinned} layers after the last convolution in fp32")
    if precision == "int8":
        if calibrator is None:
            raise ValueError("int8 needs a calibrator")
        # Implicit (calibrator-based) INT8 is deprecated in TensorRT 10 in favour of
        # explicit Q/DQ graphs, but still supported; it needs no extra toolkit.
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    step(f"building {precision} engine (minutes for int8)")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT failed to build the engine (see its log above)")
    return bytes(serialized)


def pin_tail_fp32(network: Any, trt: Any) -> int:  # tensorrt.INetworkDefinition, the tensorrt module
    """Ask for fp32 in every float layer after the last convolution (L2-normalise, linear,
    cosine head, x64 scale, softmax); returns how many layers were pinned.

    Same reason as the torch CUDA scorer's fp32 tail: in fp16 the normalisation of an
    all-zero vector is 0/0 (its 1e-12 epsilon underflows) and the x64 head amplifies
    fp16 cosine error. These layers are a few hundred FLOPs: fp32 costs nothing."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    convs = [i for i, layer in enumerate(layers) if layer.type == trt.LayerType.CONVOLUTION]
    if not convs:
        return 0
    pinned = 0
    for layer in layers[convs[-1] + 1 :]:
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if not outputs or any(t.dtype != trt.float32 for t in outputs):
            continue  # shape/index arithmetic (int32/int64, bool) keeps its own types
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="lgnm-build-engine", description="Build a TensorRT engine from LGNMNet weights")
    ap.add_argument("--weights", required=True, type=path_arg, help="LGNMNet .safetensors weights")
    ap.add_argument("--precision", required=True, choices=PRECISIONS)
    ap.add_argument("--calib", type=path_arg, help="int8: .npy/.npz of real pre-processed ROIs (N,3,112,112)")
    ap.add_argument("--calib-batch", type=int, default=32, help="int8: calibration batch size")
    ap.add_argument("--calib-batches", type=int, default=32, help="int8: at most this many batches")
    ap.add_argument("--calib-cache", type=path_arg, help="int8: calibration table to reuse/write (default: beside --out)")
    ap.add_argument("--out", type=path_arg, help="engine file (default: <weights stem>.<precision>.engine)")
    ap.add_argument("--max-batch", type=int, default=64, help="largest batch the engine accepts")
    return ap


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # User mistakes first, so they are reported the same with or without TensorRT.
    if args.max_batch < 1:
        raise UserError(f"--max-batch: must be >= 1, got {args.max_batch}")
    if args.precision == "int8" and args.calib is None:
        raise UserError("--calib: required with --precision int8 (real pre-processed ROIs, .npy/.npz)")
    if args.precision != "int8" and args.calib is not None:
        raise UserError("--calib: only used with --precision int8")
    meta = read_meta(args.weights)  # UserError for a missing/bad weights file
    batches = None
    if args.precision == "int8":
        from calibration.int8 import CalibrationBatches

        batches = CalibrationBatches.from_file(args.calib, args.calib_batch, args.calib_batches, meta.roi_size)
    if importlib.util.find_spec("tensorrt") is None:
        raise UserError("tensorrt: not installed; install TensorRT 10 from NVIDIA (pip index https://pypi.nvidia.com) "
                        "on the GPU machine")
    import tensorrt as trt
    import torch

    if not torch.cuda.is_available():
        raise UserError("tensorrt: no CUDA GPU visible to torch; build the engine on the GPU that will run it")
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from engines.trt_runtime import live_gpu_facts

    out: Path = args.out or default_engine_path(args.weights, args.precision)
    gpu, cc = live_gpu_facts()
    sidecar = make_sidecar(args.weights, args.precision, args.max_batch,
                           tensorrt_version=trt.__version__, gpu_name=gpu, compute_capability=cc)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("exporting ONNX", total=None)

        def step(text: str) -> None:
            progress.update(task, description=text)

        onnx_bytes = export_onnx_bytes(args.weights)
        calibrator = None
        if batches is not None:
            from calibration.int8 import CalibrationCache, make_trt_calibrator

            cache_path = args.calib_cache or out.with_name(out.name + ".calib")
            calibrator = make_trt_calibrator(batches, CalibrationCache(cache_path, sidecar.weights_sha256, batches.data_sha256()))
        engine = build_serialized_engine(onnx_bytes, args.precision, args.max_batch, meta.roi_size, calibrator, step)
        step("writing engine")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(engine)
        side = write_sidecar(out, sidecar)
    console.print(f"[green]engine[/green] {out} ({len(engine) / 1e6:.1f} MB, {args.precision}, batch 1..{args.max_batch}, "
                  f"TensorRT {sidecar.tensorrt_version}, {gpu} sm {cc}); sidecar {side}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
