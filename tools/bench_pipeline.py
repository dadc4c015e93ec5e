"""Benchmark of the streaming pipeline against a naive per-pair pipeline (one table).

    python -m tools.bench_pipeline [--seconds 20] [--video FILE] [--weights ME MaE]

Measured in the same run, on a 640x480 30 fps synthetic face video (realtime.synthesis):
- replay, unpaced: end-to-end throughput of lgnm-live's pipeline (both types);
- replay paced at 2x real time (60 fps): per-frame latency, from the frame being read
  to both its scores being available (p50 / p99);
- replay, unpaced, with one flow thread (`CpuPairFeatures(workers=1)`): what computing
  a batch's pairs on several threads at once gains;
- naive: for every frame and type, detect + align both frames of the pair from scratch,
  flow from scratch, one model call per pair (no reuse, no batching);
- seed-style (the authors' offline code as a CPU pipeline): FaceMesh once per frame (with
  tracking), the aligned face at 224 px, Farneback computed afresh for every pair at
  224 px, the model batched 64 pairs at a time.
Goal on the 2-core CPU machine: >= 60 fps unpaced, p99 latency <= 33 ms at 60 fps.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from engines.features import pair_input
from engines.pair_features import CpuPairFeatures
from engines.scorers import make_scorer
from realtime.common.errors import OneLineParser, path_arg
from realtime.face import FaceAligner
from realtime.native_log import filtered_native_stderr
from realtime.pipeline import RunOptions, run_stream, setup_for_fps
from realtime.sinks import CollectSink
from realtime.sources import PacedSource, VideoFileSource
from realtime.stats import RunStats


def make_video(folder: Path, seconds: float) -> Path:
    from realtime.synthesis.generate import write_dataset

    write_dataset(folder, 1, 30.0, face_images=("grace_hopper",), seed=424242, duration_s=seconds)
    return folder / "synth_001.mp4"


def default_weights(folder: Path) -> tuple[list[Path], str]:
    from engines.demo_weights import default_weights as shipped

    weights = shipped()
    if all(w.is_file() for w in weights):
        return weights, "demo weights"
    from tools.sample_media import write_random_weights

    return write_random_weights(folder), "untrained weights (demo weights not built)"


def pipeline_run(video: Path, scorers: list, batch: int, speed: float | None,
                 flow_workers: int | None = None) -> RunStats:
    source = VideoFileSource(video)
    if speed is not None:
        source = PacedSource(source, speed=speed)
    setups = [setup_for_fps(s, source.fps) for s in scorers]
    flow = scorers[0].meta.flow
    return run_stream(source, setups, CpuPairFeatures(flow, workers=flow_workers), [CollectSink()],
                      RunOptions(batch=batch, face_size=flow.face_size))


def naive_run(video: Path, scorers: list, frames: int) -> tuple[int, float]:
    """Every pair from scratch: both frames detected + aligned, flow, model call of one."""
    source = VideoFileSource(video)
    images = [raw.image for raw, _ in zip(source, range(frames))]
    flow = scorers[0].meta.flow
    setups = [setup_for_fps(s, source.fps) for s in scorers]
    t0 = time.perf_counter()
    with FaceAligner(size=flow.face_size, static_image_mode=True) as aligner:
        for t in range(len(images)):
            for setup in setups:
                if t - setup.k < 0:
                    continue
                a, b = aligner.align(images[t - setup.k]), aligner.align(images[t])
                if a is None or b is None:
                    continue
                setup.scorer.score(pair_input(a, b, flow)[None])
    return len(images), time.perf_counter() - t0


def stage_row(stats: RunStats, stage: str) -> str:
    summary = stats.times.summary().get(stage)
    return f"{summary['p50_ms']:.2f} / {summary['p99_ms']:.2f}" if summary else "-"


def seed_run(video: Path, scorers: list, frames: int) -> tuple[int, float]:
    """The seed-style pipeline (module docstring): per-frame alignment, per-pair flow at
    224 px with nothing reused between the pairs a frame is in, batched model calls."""
    from dataclasses import replace

    from engines.features import encode_pair, flow_frame, pair_flow

    source = VideoFileSource(video)
    images = [raw.image for raw, _ in zip(source, range(frames))]
    flow = replace(scorers[0].meta.flow, face_size=224)
    setups = [setup_for_fps(s, source.fps) for s in scorers]
    pending: dict[str, list] = {s.type: [] for s in setups}

    def flush(setup, force: bool = False) -> None:
        if pending[setup.type] and (force or len(pending[setup.type]) >= 64):
            setup.scorer.score(np.stack(pending[setup.type]))
            pending[setup.type] = []

    t0 = time.perf_counter()
    with FaceAligner(size=224) as aligner:
        faces = []
        for t, image in enumerate(images):
            faces.append(aligner.align(image))
            for setup in setups:
                a, b = (faces[t - setup.k], faces[t]) if t >= setup.k else (None, None)
                if a is None or b is None:
                    continue
                # afresh: both frames' products and pyramids again, the weights' head-motion model
                fa, fb = flow_frame(a, flow), flow_frame(b, flow)
                pending[setup.type].append(encode_pair(pair_flow(fa, fb, flow), fa.geometry, flow))
                flush(setup)
    for setup in setups:
        flush(setup, force=True)
    return len(images), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the generated video")
    ap.add_argument("--video", type=path_arg, help="use this video instead of a generated one")
    ap.add_argument("--weights", type=path_arg, nargs=2, metavar=("ME", "MaE"))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--naive-frames", type=int, default=150, help="frames timed for the naive pipeline")
    ap.add_argument("--seed-frames", type=int, default=300, help="frames timed for the seed-style pipeline")
    args = ap.parse_args(argv)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp, filtered_native_stderr():
        folder = Path(tmp)
        video = args.video or make_video(folder, args.seconds)
        weights, which = (list(args.weights), "given weights") if args.weights else default_weights(folder)
        scorers = [make_scorer(w, "cpu") for w in weights]
        fast = pipeline_run(video, scorers, args.batch, None)
        paced = pipeline_run(video, scorers, args.batch, 2.0)
        single = pipeline_run(video, scorers, args.batch, None, flow_workers=1)
        n_naive, t_naive = naive_run(video, scorers, args.naive_frames)
        n_seed, t_seed = seed_run(video, scorers, args.seed_frames)
    naive_fps = n_naive / t_naive
    seed_fps = n_seed / t_seed
    table = Table(title=f"lgnm-live pipeline, {fast.frames} frames 640x480 @30 fps, ME+MaE, {which}, "
                        f"scorer {fast.backend}, flow {fast.flow}")
    table.add_column("measure")
    table.add_column("pipeline (unpaced)", justify="right")
    table.add_column("pipeline (paced 60 fps)", justify="right")
    table.add_column("unpaced, 1 flow thread", justify="right")
    table.add_column("naive per pair", justify="right")
    table.add_column("seed-style", justify="right")
    table.add_row("throughput (fps)", f"{fast.fps:.1f}", f"{paced.fps:.1f}", f"{single.fps:.1f}", f"{naive_fps:.1f}",
                  f"{seed_fps:.1f}")
    table.add_row("x real time (30 fps)", f"{fast.fps / 30:.2f}", f"{paced.fps / 30:.2f}", f"{single.fps / 30:.2f}",
                  f"{naive_fps / 30:.2f}", f"{seed_fps / 30:.2f}")
    table.add_row("ratio vs naive", f"{fast.fps / naive_fps:.1f}x", "", f"{single.fps / naive_fps:.1f}x", "1.0x", "")
    table.add_row("ratio vs seed-style", f"{fast.fps / seed_fps:.1f}x", "", f"{single.fps / seed_fps:.1f}x", "", "1.0x")
    for stage in ("align", "frame_products", "pair_inputs", "model_ME", "model_MaE", "spotter", "latency"):
        label = "per-frame latency ms p50/p99" if stage == "latency" else f"{stage} ms p50/p99"
        table.add_row(label, stage_row(fast, stage), stage_row(paced, stage), stage_row(single, stage), "")
    table.add_row("dropped frames", str(fast.dropped), str(paced.dropped), str(single.dropped), "")
    console.print(table)
    lat = paced.times.summary().get("latency", {})
    ok = fast.fps >= 60 and lat.get("p99_ms", 1e9) <= 33
    console.print(f"goal (>= 60 fps unpaced, p99 latency <= 33 ms at 60 fps): {'met' if ok else 'NOT met'}")
    for s in scorers:
        s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
