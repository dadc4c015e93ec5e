"""`python -m tools.bench_scale`: replay throughput on a local Ray cluster of one worker
vs two (the same videos, the same `lgnm-live --replay ... --ray` run), and the hours a
whole dataset would take on N workers at the measured cost per frame.

The videos are synthetic (tools.synth, 640x480 at 30 fps, the demo weights). The
projection is arithmetic, not a measurement: frames / (N x the per-worker rate of the
two-worker run), i.e. it assumes each worker has a core of this machine's speed to
itself and that videos keep every worker busy (a dataset has many more videos than
workers). Prints tables; nothing is asserted.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from realtime.common.errors import OneLineParser

# Frame counts of the long-video datasets (MEGC spotting): what the projection is for.
DATASETS = (("CAS(ME)^2 (30 fps)", 435_000), ("SAMM Long Videos (200 fps)", 1_040_000))
PROJECTED_WORKERS = (1, 2, 8, 32, 128)


@dataclass(frozen=True)
class Measured:
    workers: int
    videos: int
    frames: int
    wall_s: float

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s


def replay_on(workers: int, videos: Path, out: Path) -> Measured:
    """One `lgnm-live --replay videos --ray` run on a fresh local cluster of `workers` CPUs."""
    import ray

    from realtime.cli import main as live_main

    ray.init(num_cpus=workers, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        # Warm the workers (torch, mediapipe, the models load once per worker process),
        # so that the measured run is the replay, not the imports.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            live_main(["--replay", str(videos), "--ray", "--pub", "none", "--quiet", "--max-frames", "10"])
        t0 = time.monotonic()
        code = live_main(["--replay", str(videos), "--ray", "--pub", "none", "--quiet", "--out", str(out)])
        wall = time.monotonic() - t0
    finally:
        ray.shutdown()
    if code != 0:
        raise SystemExit(f"bench_scale: the {workers}-worker replay exited {code}")
    perf = json.loads((out / "metrics.json").read_text())["performance"]
    return Measured(workers, perf["streams"], perf["frames"], wall)


def measured_table(runs: list[Measured]) -> Table:
    table = Table(title="replay on a local Ray cluster (this machine)")
    for col in ("workers", "videos", "frames", "wall s", "fps", "speed-up"):
        table.add_column(col, justify="right")
    for r in runs:
        table.add_row(str(r.workers), str(r.videos), str(r.frames), f"{r.wall_s:.1f}", f"{r.fps:.1f}",
                      f"{r.fps / runs[0].fps:.2f}x")
    return table


def projection_table(per_worker_fps: float) -> Table:
    table = Table(title=f"projected hours at {per_worker_fps:.1f} fps per worker (a projection, not measured)")
    table.add_column("dataset")
    table.add_column("frames", justify="right")
    for n in PROJECTED_WORKERS:
        table.add_column(f"{n} worker{'s' if n > 1 else ''}", justify="right")
    for name, frames in DATASETS:
        table.add_row(name, f"{frames:,}", *[f"{frames / (per_worker_fps * n) / 3600:.2f} h" for n in PROJECTED_WORKERS])
    return table


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m tools.bench_scale", description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=4, help="synthetic videos replayed (default 4)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each video (default 8 s)")
    args = ap.parse_args(argv)
    from tools.synth import write_dataset

    console = Console(width=130)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        videos = Path(tmp) / "videos"
        write_dataset(videos, args.videos, 30.0, seed=5, layout="mp4", duration_s=args.seconds)
        for extra in videos.glob("*.csv"):  # the truth: not needed for throughput
            extra.unlink()
        runs = [replay_on(n, videos, Path(tmp) / f"out{n}") for n in (1, 2)]
    table = measured_table(runs)
    # A worker's pipeline is itself threaded (reader, OpenCV, ONNX Runtime): on a machine
    # with few cores one worker can already keep them busy, which caps the speed-up.
    table.caption = (f"{os.cpu_count()} CPU cores, load average {load:.1f} before the runs; "
                     "640x480 synthetic video, demo weights")
    console.print(table)
    projection = projection_table(runs[-1].fps / runs[-1].workers)
    projection.caption = ("frames / (N x the per-worker rate of the two-worker run); SAMM's frames are "
                          "larger than these, so its figure is a lower bound")
    console.print(projection)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
