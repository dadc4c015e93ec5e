"""Benchmark the scorer backends: batch-1 latency (median, p99) and batch-64 throughput.

The live path scores one new pair per frame for each type, so the headline row is
"ME+MaE": both types' batch-1 scores back to back, i.e. the model cost per frame.
Runs every backend available here; ratios are speed-ups over torch CPU (higher is better).
Without --weights-* it builds randomly initialised weights (timing does not depend on
the values) in a temporary folder and says so.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from engines.lgnmnet import LGNMNet
from engines.scorers import OnnxRuntimeScorer, Scorer, TorchCpuScorer, TorchCudaScorer, tensorrt_usable
from engines.weights import WeightsMeta, save_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg
from realtime.common.types import FlowSettings


@dataclass(frozen=True, slots=True)
class Result:
    backend: str
    what: str  # "ME", "MaE" or "ME+MaE"
    median_ms: float
    p99_ms: float
    throughput: float  # ROIs per second at batch 64 (0 when not measured)


def time_calls(fn: Callable[[], object], iters: int, warmup: int) -> list[float]:
    """Wall times (ms) of `iters` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


def random_weights(folder: Path) -> dict[str, Path]:
    torch.manual_seed(0)
    paths = {}
    for t, k in (("ME", 6), ("MaE", 18)):
        meta = WeightsMeta(type=t, k=k, fps=30.0, k_seconds=k / 30.0, flow=FlowSettings(), trained_on="random (benchmark)")
        paths[t] = save_weights(LGNMNet().eval(), meta, folder / f"{t}.safetensors")
    return paths


def bench_pair(scorers: dict[str, Scorer], iters: int, batch_iters: int) -> list[Result]:
    rng = np.random.default_rng(0)
    one = rng.normal(0, 0.5, (1, 3, 112, 112)).astype(np.float32)
    many = rng.normal(0, 0.5, (64, 3, 112, 112)).astype(np.float32)
    rows = []
    backend = next(iter(scorers.values())).backend
    for t, s in scorers.items():
        lat = time_calls(lambda s=s: s.score(one), iters, warmup=3)
        thr = time_calls(lambda s=s: s.score(many), batch_iters, warmup=1)
        rows.append(Result(backend, t, statistics.median(lat), p99(lat), 64e3 / statistics.median(thr)))
    both = time_calls(lambda: [s.score(one) for s in scorers.values()], iters, warmup=2)
    thr_both = time_calls(lambda: [s.score(many) for s in scorers.values()], batch_iters, warmup=1)
    rows.append(Result(backend, "+".join(scorers), statistics.median(both), p99(both),
                       64e3 * len(scorers) / statistics.median(thr_both)))
    return rows


def available_factories(engines: dict[str, Path | None]) -> dict[str, Callable[[Path, str], Scorer]]:
    f: dict[str, Callable[[Path, str], Scorer]] = {
        "torch-cpu": lambda w, t: TorchCpuScorer(w),
        "onnxruntime-cpu": lambda w, t: OnnxRuntimeScorer(w),
    }
    if torch.cuda.is_available():
        f["torch-cuda"] = lambda w, t: TorchCudaScorer(w)
    if tensorrt_usable() and all(engines.values()):
        from engines.trt_runtime import TensorRTScorer

        f["tensorrt"] = lambda w, t: TensorRTScorer(w, engines[t])  # type: ignore[arg-type]
    return f


def render(rows: list[Result], console: Console, note: str) -> None:
    base = {r.what: r for r in rows if r.backend == "torch-cpu"}
    table = Table(title=f"LGNMNet scorers, 112x112x3 ROI ({note})")
    for col in ("backend", "types", "b1 median ms", "b1 p99 ms", "b1 speed-up", "b64 ROI/s", "b64 speed-up"):
        text = col in ("backend", "types")
        table.add_column(col, justify="left" if text else "right", no_wrap=text)
    for r in rows:
        b = base.get(r.what)
        table.add_row(
            r.backend, r.what, f"{r.median_ms:.2f}", f"{r.p99_ms:.2f}",
            f"{b.median_ms / r.median_ms:.2f}x" if b else "-",
            f"{r.throughput:.0f}", f"{r.throughput / b.throughput:.2f}x" if b else "-",
        )
    console.print(table)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights-me", type=path_arg)
    ap.add_argument("--weights-mae", type=path_arg)
    ap.add_argument("--engine-me", type=path_arg, help="TensorRT engine for the ME weights")
    ap.add_argument("--engine-mae", type=path_arg, help="TensorRT engine for the MaE weights")
    ap.add_argument("--iters", type=int, default=50, help="timed batch-1 calls per type")
    ap.add_argument("--batch-iters", type=int, default=5, help="timed batch-64 calls per type")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    if args.iters < 1 or args.batch_iters < 1:
        raise UserError("--iters/--batch-iters: must be >= 1")
    if (args.weights_me is None) != (args.weights_mae is None):
        raise UserError("--weights-me/--weights-mae: give both or neither")
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        if args.weights_me is None:
            weights = random_weights(Path(tmp))
            note = "random weights"
        else:
            weights = {"ME": args.weights_me, "MaE": args.weights_mae}
            note = "given weights"
        note += f", torch threads {torch.get_num_threads()}"
        engines = {"ME": args.engine_me, "MaE": args.engine_mae}
        rows: list[Result] = []
        for name, make in available_factories(engines).items():
            if not args.json:
                console.print(f"[dim]benchmarking {name} ...[/dim]")
            scorers = {t: make(weights[t], t) for t in ("ME", "MaE")}
            try:
                rows += bench_pair(scorers, args.iters, args.batch_iters)
            finally:
                for s in scorers.values():
                    s.close()
    if args.json:
        print(json.dumps({"note": note, "results": [asdict(r) for r in rows]}))
    else:
        render(rows, console, note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
