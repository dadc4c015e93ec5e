"""`lgnm-live --replay ... --ray [ADDRESS]`: one Ray task per video, the outputs written
here exactly as a single-process replay writes them.

    lgnm-live --replay CAS --data ROOT --annotations CAS.xlsx --out runs/cas --ray          a local cluster
    lgnm-live --replay SAMM --data ROOT --annotations S.xlsx --out runs/samm --ray auto     this machine's cluster
    lgnm-live --replay videos/ --truth T.csv --out runs/x --ray ray://head:10001            a remote cluster

Each task runs `realtime.ray_task.replay_item`: the single-process code path for one
stream (`runner.run_item`) with a recording sink. This driver feeds each result's
recorded calls to the run's real sinks (predictions.csv, scores.csv, .eaf, the ZeroMQ
publisher and journal, the console) in video order, so a video finished early waits for
the ones before it: the files are those of a single-process run row for row, and each
stream's events are published from here with its own gapless seq (a subscriber sees
each video's events once the video is done, not as they are spotted). A line per video
says when it finished (`replay 3/98 s15_0101: ...`, the ETA from this run's rate).

A task that fails (the stream's own error, or the worker dying) is run once more; if it
fails again it is reported as a single-process run reports it (`error: stream NAME:
...`, `failed` in metrics.json, exit 2 or 1) and the other videos stand. Ctrl-C cancels
the tasks still running; the videos done by then are written.

Cluster: without an address a local cluster is started for the run (and stopped after
it); `auto` joins the cluster `ray start` made on this machine; `HOST:PORT` or
`ray://HOST:10001` a remote one. Already inside `ray.init` (the API, tests), that
cluster is used and left running. Workers need the package, the weights files and the
videos at the same paths as here (a shared file system). Where the cluster has GPUs and
`--backend` is not cpu, each task asks for a quarter of one (small models: four videos
share a GPU). Workers' own logs stay in the cluster's session logs; what a stream
prints (warnings, notes) comes back with its result and is printed here.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from realtime.common.text import one_line
from realtime.ray_cluster import connect, import_ray
from realtime.ray_options import LOCAL
from realtime.ray_task import StreamFailure, StreamOutcome, replay_item
from realtime.replay import ReplayItem
from realtime.replay_log import ReplayLog
from realtime.run_config import RunConfig
from realtime.stats import RunStats
from realtime.stream_runner import run_isolated, say_output_errors, write_stream_eaf

RETRIES = 1
GPU_SHARE = 0.25


def replay_calls(outcome: StreamOutcome, sinks: Sequence[Any], publisher: Any) -> None:
    """Give the sinks what the worker's pipeline gave its recorder, in its order; then
    raise the stream's failure, as the pipeline raised it."""
    for call in outcome.calls:
        kind = call[0]
        if kind == "begin":
            if publisher is not None:
                publisher.begin_stream(call[1])
        elif kind == "event":
            for sink in sinks:
                sink.on_event(call[1], call[2])
        elif kind == "sample":
            for sink in sinks:
                sink.on_sample(call[1], call[2])
        elif kind == "status":
            for sink in sinks:
                sink.on_status(call[1])
    if outcome.failure is not None:
        outcome.failure.reraise()


def lost_task(index: int, item: ReplayItem, exc: Exception) -> StreamOutcome:
    """The outcome of a task that returned nothing (its worker died, Ray failed)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    error = RuntimeError(f"the Ray task failed ({type(exc).__name__}){': ' + first if first else ''}")
    stats = RunStats(stream=item.name, media=str(item.media.resolve()) if item.media else None)
    return StreamOutcome(index, [], stats, failure=StreamFailure(error, str(exc)))


def task_resources(ray: Any, config: RunConfig) -> dict[str, float]:
    gpus = ray.cluster_resources().get("GPU", 0)
    return {"num_cpus": 1, "num_gpus": GPU_SHARE if gpus and config.backend != "cpu" else 0}


def run_on_ray(items: Sequence[ReplayItem], config: RunConfig, sinks: Sequence[Any], publisher: Any,
               eaf: Any, has_truth: bool, runs: list[RunStats], console: Console, stop: threading.Event) -> None:
    """Run every item as a Ray task and feed the results to `sinks` in item order,
    appending each stream's RunStats to `runs` (as the single-process loop does)."""
    ray = import_ray()
    started = connect(ray, config.ray or LOCAL)
    try:
        task = ray.remote(replay_item).options(max_retries=0, **task_resources(ray, config))
        config_ref = ray.put(config)
        attempts = [0] * len(items)
        pending: dict[Any, int] = {}

        def submit(i: int) -> None:
            attempts[i] += 1
            pending[task.remote(i, items[i], config_ref)] = i

        for i in range(len(items)):
            submit(i)
        outcomes: list[StreamOutcome | None] = [None] * len(items)
        progress = ReplayLog({it.name: it.n_frames for it in items})
        show = config.shows_progress
        fed = 0
        while pending and not stop.is_set():
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            for ref in done:
                i = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died, or Ray lost the task
                    outcome = lost_task(i, items[i], exc)
                if outcome.failure is not None and attempts[i] <= RETRIES:
                    print(one_line(f"note: stream {items[i].name}: failed on the cluster ({outcome.failure.error}); "
                                   "running it once more"), file=sys.stderr, flush=True)
                    submit(i)
                    continue
                outcomes[i] = outcome
                if show:
                    console.print(progress.finish(items[i].name, outcome.stats.frames, outcome.stats.wall_s,
                                                  "failed" if outcome.failure is not None else None),
                                  highlight=False, soft_wrap=True, markup=False)
            while fed < len(items) and outcomes[fed] is not None:
                feed(items[fed], outcomes[fed], config, sinks, publisher, eaf, has_truth, runs)  # type: ignore[arg-type]
                fed += 1
        for ref in pending:  # Ctrl-C: what is still running is not waited for
            ray.cancel(ref, force=True)
        for i in range(fed, len(items)):
            if outcomes[i] is not None:
                feed(items[i], outcomes[i], config, sinks, publisher, eaf, has_truth, runs)  # type: ignore[arg-type]
    finally:
        if started:
            ray.shutdown()


def feed(item: ReplayItem, outcome: StreamOutcome, config: RunConfig, sinks: Sequence[Any],
         publisher: Any, eaf: Any, has_truth: bool, runs: list[RunStats]) -> None:
    """One finished stream into the run, as the single-process loop handles one."""
    stats = outcome.stats
    runs.append(stats)
    if outcome.stderr:
        sys.stderr.write(outcome.stderr)
        sys.stderr.flush()
    try:
        run_isolated(item, stats, config.out, lambda: replay_calls(outcome, sinks, publisher))
    finally:
        say_output_errors(stats)
        if eaf:
            write_stream_eaf(eaf, item, stats, has_truth)
