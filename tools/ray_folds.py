"""`lgnm-train --folds loso|N --ray [ADDRESS]`: the folds of one expression type side by
side, one Ray task per fold; the final model is then trained in this process as without
--ray.

Each task runs `tools.train.run_fold`, the code of a sequential fold, and returns its
(test subjects, MEGC counts, best epoch); the table is made from the results in fold
order, so it is the sequential run's table for the same `--seed`, provided the fold
trains with the same number of torch threads (torch's CPU reductions depend on it): the
task uses `--threads`, or this process's torch thread count when it is 0. A fold asks
Ray for one CPU, and one GPU where `--device` is CUDA (Ray then shows the task only its
GPU, so the task trains on `cuda`).

Feature cache: each task calls `prepare`, which reads the pair inputs from the cache
folder (`--cache`, default OUT/cache) and computes and writes those it does not find.
This process fills the cache before the folds start, so on one machine or with the
cache on a shared file system (NFS; same path on every node) the tasks only read it;
on a node without that path each task rebuilds the features it needs into its own
local folder of that name (correct, but the feature time is spent per fold).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from calibration import megc
from realtime.common.errors import UserError
from realtime.common.types import ExprType, FlowSettings
from realtime.ray_cluster import connect, import_ray

FoldResult = tuple[list[str], megc.TypeScore, int]


@dataclass
class FoldJob:
    """What every fold of one type shares (sent to the cluster once)."""

    videos: Sequence[Any]  # tools.train.TrainVideo
    expr_type: ExprType
    k: int
    fps: float
    flow: FlowSettings
    cache: Path | None
    args: argparse.Namespace
    cfg: Any  # tools.train.TrainConfig
    init: dict[str, torch.Tensor] | None
    backbone: dict[str, torch.Tensor] | None
    # tools.train.prepare and tools.train.run_fold, handed over (Ray pickles them by
    # reference) so that this module and tools.train do not import each other
    prepare: Callable[..., Any]
    run_fold: Callable[..., FoldResult]


def fold_task(job: FoldJob, fi: int, test_subjects: list[str], threads: int) -> FoldResult:
    """One fold on a worker: the features (from the cache), then `run_fold`."""
    torch.set_num_threads(threads)
    console = Console(quiet=True)
    device = "cuda" if job.cfg.device.startswith("cuda") else job.cfg.device  # Ray's GPU is cuda:0 there
    cfg = replace(job.cfg, quiet=True, device=device)
    prepared = job.prepare(job.videos, job.expr_type, job.k, job.flow, job.cache, console)
    return job.run_fold(fi, test_subjects, prepared, job.expr_type, job.k, job.fps, job.args, cfg, console,
                    job.init, job.backbone)


def run_folds_on_ray(job: FoldJob, folds: Sequence[list[str]]) -> list[FoldResult]:
    """Every fold as a task (a failed one is run once more); results in fold order.
    UserError when Ray is missing, the cluster cannot be reached or a fold fails twice."""
    if not folds:  # --folds none: nothing to spread
        return []
    ray = import_ray()
    started = connect(ray, job.args.ray)
    try:
        gpus = 1 if job.cfg.device.startswith("cuda") else 0
        task = ray.remote(fold_task).options(num_cpus=1, num_gpus=gpus, max_retries=1, retry_exceptions=True)
        threads = job.args.threads or torch.get_num_threads()
        job_ref = ray.put(job)
        refs = [task.remote(job_ref, fi, list(ts), threads) for fi, ts in enumerate(folds)]
        results = []
        for fi, ref in enumerate(refs):
            try:
                results.append(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - a fold that failed twice ends the run
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"--ray: fold {fi + 1} (test {folds[fi]}) failed twice on the cluster: {first}") \
                    from None
        return results
    finally:
        if started:
            ray.shutdown()
