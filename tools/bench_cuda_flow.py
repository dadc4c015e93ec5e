"""Benchmark the dense-flow + encoding stage: CPU (cv2 chain, numpy reference) and GPU
(engines.cuda_flow.CudaFarneback) at each flow size.

Live: per captured frame the pipeline pushes one frame and computes two pairs
(t-K_ME -> t and t-K_MaE -> t), flow and encoding. Replay: many pairs per launch.

    python -m tools.bench_cuda_flow [--sizes 112 224] [--batch 256] [--repeats 20] [--json]
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable

import cv2
import numpy as np

from engines import cuda_flow as cf
from engines import farneback_ref as fr
from engines import features as ft
from realtime.common.errors import OneLineParser, UserError, cli_entry
from realtime.common.types import FlowSettings


def synthetic_face(n: int, seed: int) -> list[np.ndarray]:
    """A short clip of a textured 'face' drifting and warping (flow has work to do)."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((n // 6, n // 6)).astype(np.float32), (n, n), interpolation=cv2.INTER_CUBIC)
    base = np.clip(base * 255, 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    frames = []
    for t in range(8):
        mx = xx + 0.4 * t + np.sin(yy / n * 6 + t) * 0.8
        my = yy + 0.2 * t
        frames.append(cv2.remap(base, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


def geometry(n: int) -> ft.FaceGeometry:
    q = n / 112
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)

    def eye(cx: float) -> np.ndarray:
        return np.stack([cx * q + 9 * q * np.cos(t), 45 * q + 4 * q * np.sin(t)], 1).round().astype(np.int32)

    def box(*v: int) -> tuple[int, int, int, int]:
        return tuple(int(x * q) for x in v)  # type: ignore[return-value]

    return ft.FaceGeometry(size=n, nose_box=box(50, 58, 61, 69), left_eye=eye(35), right_eye=eye(77),
                           brow_box=box(18, 25, 95, 55), mouth_box=box(30, 75, 82, 102))


def timed(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """Median seconds of one call after one warm-up call."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_cpu(n: int, repeats: int) -> dict[str, float]:
    s = FlowSettings(face_size=n)
    frames, geo = synthetic_face(n, n), geometry(n)
    a, b, c = frames[0], frames[3], frames[7]

    def cv_live() -> None:  # two pairs ending at the same frame, flow + encoding
        for x in (a, b):
            ft.encode_pair(ft.compute_flow(x, c, s), geo, s)

    pc = fr.frame_products(c, s)
    pa, pb = fr.frame_products(a, s), fr.frame_products(b, s)

    def ref_live() -> None:  # numpy port: one frame's products, two pairs (flow only)
        fr.frame_products(c, s)
        fr.pair_flow(pa, pc, s)
        fr.pair_flow(pb, pc, s)

    cv_frame = timed(cv_live, repeats)
    ref_frame = timed(ref_live, max(1, repeats // 4))
    return {"cv2_live_ms": cv_frame * 1e3, "cv2_replay_pairs_s": 2 / cv_frame,
            "numpy_ref_live_ms": ref_frame * 1e3}


def bench_gpu(n: int, batch: int, repeats: int) -> dict[str, float]:
    import cupy

    sync = cupy.cuda.Device().synchronize
    s = FlowSettings(face_size=n)
    frames, geo = synthetic_face(n, n), geometry(n)
    eng = cf.CudaFarneback(s, max_pairs=batch, capacity=2 * batch + 8, backend="cupy")
    slots = eng.push_frames(frames, [geo] * len(frames))

    def live() -> None:
        t = eng.push_frame(frames[-1], geo)
        eng.pair_inputs([(slots[0], t), (slots[3], t)])

    def replay() -> None:
        new = eng.push_frames([frames[i % len(frames)] for i in range(batch)], [geo] * batch)
        pairs = [(new[i], new[(i + 3) % batch]) for i in range(batch)]
        eng.pair_inputs(pairs)

    def flow_only() -> None:
        eng.flow_batch([(slots[i % 8], slots[(i + 3) % 8]) for i in range(batch)])

    live_s = timed(live, repeats, sync)
    replay_s = timed(replay, max(3, repeats // 4), sync)
    flow_s = timed(flow_only, max(3, repeats // 4), sync)
    return {"gpu_live_ms": live_s * 1e3, "gpu_replay_pairs_s": batch / replay_s,
            "gpu_flow_only_pairs_s": batch / flow_s}


def render(rows: dict[int, dict[str, float]], gpu: bool) -> None:
    labels = {"cv2_live_ms": "cv2 ms/frame", "numpy_ref_live_ms": "numpy flow ms/frame",
              "cv2_replay_pairs_s": "cv2 pairs/s", "gpu_live_ms": "GPU ms/frame",
              "gpu_replay_pairs_s": "GPU pairs/s", "gpu_flow_only_pairs_s": "GPU flow pairs/s"}
    cols = list(labels)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        Console = None
    if Console is None:
        print("size | " + " | ".join(labels[c] for c in cols))
        for n, r in rows.items():
            print(n, " ".join(f"{r[c]:.2f}" if c in r else "n/m" for c in cols))
    else:
        table = Table(title="flow + encoding: live ms per frame (2 pairs), replay pairs/s")
        table.add_column("size")
        for c in cols:
            table.add_column(labels[c], justify="right")
        for n, r in rows.items():
            table.add_row(str(n), *(f"{r[c]:.2f}" if c in r else "n/m" for c in cols))
        Console().print(table)
    if not gpu:
        print("GPU columns not measured (n/m): no CUDA device or CuPy on this machine.")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    p.add_argument("--batch", type=int, default=256, help="pairs per replay launch")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-cpu", action="store_true", help="skip the CPU columns")
    args = p.parse_args(argv)
    if args.batch < 1 or args.repeats < 1 or any(n < 32 for n in args.sizes):
        raise UserError("--batch and --repeats must be >= 1 and --sizes >= 32")
    gpu = cf.cuda_available()
    rows: dict[int, dict[str, float]] = {}
    for n in args.sizes:
        rows[n] = {} if args.no_cpu else bench_cpu(n, args.repeats)
        if gpu:
            rows[n].update(bench_gpu(n, args.batch, args.repeats))
    if args.json:
        print(json.dumps({"gpu": gpu, "results": {str(k): v for k, v in rows.items()}}))
    else:
        render(rows, gpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
