"""One `lgnm-live` run: plan the streams, load the scorers, run each stream (a failure
in one is reported and the others run), then the summary, tables and metrics.json.
`realtime.cli` parses the options and calls `run`."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from calibration.megc import evaluate, render_table, scored_truth
from engines.demo_weights import default_weights
from engines.pair_features import PairFeatures, make_pair_features
from engines.scorers import Scorer, make_scorer
from realtime.common.errors import EXIT_USER_ERROR, UserError
from realtime.common.types import FlowSettings
from realtime.connect import connect_first
from realtime.dashboard import live_view, performance_table
from realtime.intervals_csv import write_intervals
from realtime.lsl import LslMarkerOutlet, LslSettings
from realtime.pipeline import RunOptions, Sink, run_stream, setup_for_fps
from realtime.publisher import CurveServerKeys, EventPublisher
from realtime.replay import ReplayItem, ReplayPlan, plan_replay
from realtime.replay_log import ReplayLog
from realtime.run_config import RunConfig
from realtime.sinks import (
    CallbackSink,
    CollectSink,
    ConsoleSink,
    EafSink,
    PredictionsSink,
    PublisherSink,
    ScoresCsvSink,
    TraceSink,
)
from realtime.sources import FrameSource, PacedSource, open_source
from realtime.stats import RunStats


class ScorerSets:
    """The scorers a run uses. Explicit --weights: that one set for every stream. The
    demo default: per stream, the bundled pair trained nearest to its frame rate (loaded
    when first needed; the 30 fps pair up front so that bad options fail early)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._sets: dict[tuple[Path, ...], list[Scorer]] = {}
        self.first = self.for_fps(None)

    def for_fps(self, fps: float | None) -> list[Scorer]:
        key = self.config.weights or tuple(default_weights(fps))
        if key not in self._sets:
            self._sets[key] = load_scorers(self.config, key)
        return self._sets[key]

    def close(self) -> None:
        for scorers in self._sets.values():
            for s in scorers:
                s.close()


def load_scorers(config: RunConfig, weights: tuple[Path, ...]) -> list[Scorer]:
    """One scorer per wanted type from `weights` (one file per type) on config.backend."""
    engines = config.engines
    for w in weights:
        if not w.is_file():
            hint = " (the demo weights ship with the package; reinstall it)" if not config.weights else ""
            raise UserError(f"--weights {w}: no such file{hint}")
    wanted = config.types
    scorers: list[Scorer] = []
    for i, w in enumerate(weights):
        scorer = make_scorer(w, config.backend, engines[i] if engines else None)
        if scorer.type in wanted:
            if any(s.type == scorer.type for s in scorers):
                raise UserError(f"--weights {w}: a second set of {scorer.type} weights")
            scorers.append(scorer)
        else:
            scorer.close()
    missing = set(wanted) - {s.type for s in scorers}
    if missing:
        raise UserError(f"--weights: no weights for {', '.join(sorted(missing))}")
    return scorers


def common_flow(scorers: list[Scorer]) -> FlowSettings:
    flows = {s.meta.flow for s in scorers}
    if len(flows) != 1:
        raise UserError("--weights: the ME and MaE weights use different flow settings; "
                        "one stream computes one flow per frame pair, so train them alike")
    return flows.pop()


def open_lsl(config: RunConfig, stack: ExitStack, stop: threading.Event) -> LslMarkerOutlet | None:
    """The LSL outlet of --lsl (None without it), after waiting --lsl-wait for a consumer."""
    if config.lsl is None:
        return None
    outlet = LslMarkerOutlet(LslSettings(config.lsl, config.lsl_wait))
    stack.callback(outlet.close)
    if config.lsl_wait > 0:
        print(f"lsl: waiting up to {config.lsl_wait:g} s for a consumer of stream {config.lsl!r}",
              file=sys.stderr, flush=True)
        if not outlet.wait_for_consumer(stop.is_set) and not stop.is_set():
            print(f"warning: lsl: no consumer of stream {config.lsl!r} after {config.lsl_wait:g} s; "
                  "markers sent before one connects are lost", file=sys.stderr, flush=True)
    return outlet


def open_publisher(config: RunConfig, stack: ExitStack, stream: str,
                   lsl: LslMarkerOutlet | None = None) -> EventPublisher | None:
    """The publisher: a ZeroMQ socket (--pub), or with --pub none only the numbering
    that --journal and --lsl need (None when nothing needs it)."""
    listeners = [lsl.send] if lsl is not None else []
    endpoint: str | None = config.pub
    if config.pub.lower() == "none":
        if not config.journal and not listeners:
            return None
        endpoint = None
    curve = None
    if config.curve_secret is not None and config.curve_clients is not None:  # RunConfig: both or neither
        curve = CurveServerKeys(config.curve_secret, config.curve_clients)
    pub = EventPublisher(endpoint, stream=stream, journal=config.journal, curve=curve, listeners=listeners)
    stack.callback(pub.close)
    return pub


def live_item(config: RunConfig) -> ReplayItem:
    if config.camera is not None:
        kind, value = "camera", config.camera
    else:
        kind, value = "rtsp", str(config.rtsp)

    def opener() -> FrameSource:
        return open_source(kind, value, fps=config.fps, width=config.width, height=config.height,
                           max_retries=config.max_retries)

    return ReplayItem(f"{kind}{value}" if kind == "camera" else value, opener)


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every stream of a run shares: its configuration, scorers, flow backend, sinks
    and publisher, the console and the Ctrl-C flag."""

    config: RunConfig
    scorer_sets: ScorerSets
    pair_features: PairFeatures
    sinks: list[Sink]
    console: Console
    stop: threading.Event
    publisher: EventPublisher | None


def run(config: RunConfig, console: Console, stop: threading.Event) -> int:
    """Run every stream `config` names; the process's exit code (see `exit_code`).
    Raises UserError for a mistake found before the first stream starts."""
    out = config.out
    plan = make_plan(config, console)  # input mistakes first: loading models takes seconds
    if plan.submission is not None and out is None:
        raise UserError("--replay MEGC: needs --out DIR (the submission files are written there)")
    scorer_sets = ScorerSets(config)
    flow = common_flow(scorer_sets.first)
    pair_features = make_pair_features(config.flow, flow)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)

    runs: list[RunStats] = []
    items = [live_item(config)] if config.live else plan.items
    with ExitStack() as stack:
        lsl = open_lsl(config, stack, stop)
        publisher = open_publisher(config, stack, items[0].name, lsl)
        predictions = PredictionsSink(out / "predictions.csv") if out else None
        if predictions:
            stack.callback(predictions.close)
        scores_csv = ScoresCsvSink(out / "scores.csv") if out else None
        if scores_csv:
            stack.callback(scores_csv.close)
        eaf = EafSink(out / "eaf") if out else None
        collected = CollectSink()
        sinks: list[Sink] = [collected]
        if predictions:
            sinks.append(predictions)
        if eaf:
            sinks.append(eaf)
        if scores_csv:
            sinks.append(scores_csv)
        if publisher:
            sinks.append(PublisherSink(publisher))
        if not config.quiet or config.json:
            sinks.append(ConsoleSink(console, as_json=config.json))
        # Not a terminal (a log file, CI): no progress bar can show, a line per video does.
        log = ReplayLog([it.n_frames for it in items]) \
            if not config.live and config.shows_progress and not console.is_terminal else None
        context = RunContext(config, scorer_sets, pair_features, sinks, console, stop, publisher)
        t0 = time.monotonic()
        try:
            for item in items:
                if stop.is_set():
                    break
                # Appended before the run: a stream that ends in an error still counts
                # the frames it processed in the summary and metrics.json.
                stats = RunStats(stream=item.name, media=str(item.media.resolve()) if item.media else None)
                runs.append(stats)
                t_item = time.monotonic()
                try:
                    run_isolated(item, stats, out, functools.partial(run_item, item, context, stats))
                finally:
                    if eaf:
                        write_stream_eaf(eaf, item, stats, plan.has_truth)
                if log is not None:
                    console.print(log.finish(item.name, stats.frames, time.monotonic() - t_item, stats.error),
                                  highlight=False, soft_wrap=True)
        finally:
            wall = time.monotonic() - t0
            scorer_sets.close()
            # Whatever was spotted is already in predictions.csv (flushed per row) and the
            # journal; the summary is written even after a failure or Ctrl-C.
            summarise(config, console, plan, runs, collected, wall)
            if plan.submission is not None and out is not None:  # a challenge test set (realtime.megc_testset)
                for path in plan.submission.write(collected.intervals, out):
                    print(f"wrote {path} (MEGC submission)", file=sys.stderr)
    if config.report and out is not None:
        write_run_report(out)
    return exit_code(runs)


def write_run_report(out: Path) -> None:
    """--report: the page and PNGs of what the run just wrote to `out` (after the
    summary, so a failed stream or Ctrl-C is in it too)."""
    from realtime.report import write_report  # matplotlib only when asked for

    files = write_report(out)
    print(f"report: {files.page}", file=sys.stderr)


def run_isolated(item: ReplayItem, stats: RunStats, out: Path | None, run_one: Callable[[], object]) -> None:
    """Run one stream; a failure inside it is one `error:` line naming the stream, the
    stream is marked failed (metrics.json), and the next stream still runs. Faults that
    are not the user's (a bug) also leave their traceback in OUT/errors.log (`out`)."""
    try:
        run_one()
    except UserError as exc:
        stats.error = str(exc)
        print(f"error: stream {item.name}: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one stream's fault must not end the others
        stats.error = f"internal error: {type(exc).__name__}: {exc}"
        log = f"; traceback in {out / 'errors.log'}" if out else ""
        print(f"error: stream {item.name}: {stats.error}{log}", file=sys.stderr)
        if out:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "errors.log", "a", encoding="utf-8") as fh:
                fh.write(f"stream {item.name}:\n{traceback.format_exc()}\n")


def write_stream_eaf(eaf: EafSink, item: ReplayItem, stats: RunStats, has_truth: bool) -> None:
    """The stream's .eaf, with the truth it is scored on (as truth.csv: intervals that end
    by the last frame read) when the run has truth. A failure to write is one `error:`
    line; the other outputs stand."""
    truth = scored_truth(item.truth, {stats.stream: stats.last_frame}).truth if has_truth else None
    try:
        eaf.end_stream(stats, truth)
    except OSError as exc:
        print(f"error: stream {stats.stream}: cannot write its .eaf ({exc})", file=sys.stderr)


def exit_code(runs: list[RunStats]) -> int:
    """0 when every stream ran to its end (or was stopped by Ctrl-C); 2 when a stream
    failed on the user's input; 1 when one failed on an internal error."""
    errors = [r.error for r in runs if r.error is not None]
    if not errors:
        return 0
    return 1 if any(e.startswith("internal error") for e in errors) else EXIT_USER_ERROR


def make_plan(config: RunConfig, console: Console) -> ReplayPlan:
    if config.live:
        return ReplayPlan([], has_truth=False)  # the live item is built by live_item
    if config.video:
        return plan_replay(config.video, data=None, annotations=None, truth=config.truth, fps=config.fps)
    replay = str(config.replay)  # RunConfig: the one source left
    with Progress(TextColumn("generating the demo clip"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True, disable=config.quiet or replay != "demo") as prog:
        task = prog.add_task("demo", total=None)
        return plan_replay(replay, data=config.data, annotations=config.annotations, truth=config.truth,
                           fps=config.fps, demo_progress=lambda k, n: prog.update(task, completed=k, total=n))


def run_item(item: ReplayItem, context: RunContext, stats: RunStats) -> RunStats:
    """Run one stream with the dashboard (live, --video) or a progress bar (replay)."""
    config, console = context.config, context.console
    source = item.open()
    if not config.live:
        # One video id per dataset video: the replay's id (the truth's key: `s15_0101`
        # for CAS(ME)^2, not its folder `15_0101disgustingteeth`) names the stream, its
        # events and its predictions alike.
        source.name = item.name

    def note(message: str) -> None:
        """What the face tracker notices (capture thread); also kept in RunStats.notices."""
        print(f"note: stream {source.name}: {message}", file=sys.stderr, flush=True)

    def warn(message: str) -> None:
        """What the source says about its input (damaged frames, a short file, a hole in
        the numbering): one `warning:` line each, also with --quiet; kept for metrics.json."""
        stats.notices.append(message)
        print(f"warning: {message}", file=sys.stderr, flush=True)

    source.on_notice = warn
    if config.live and not connect_first(source, context.stop.is_set):
        return stats  # Ctrl-C before the first frame: nothing ran; the summary follows
    if context.publisher is not None:
        context.publisher.begin_stream(source.name)  # the stream id: video id or URL path
    if config.video or (config.replay and config.paced):
        source = PacedSource(source)
    scorers = context.scorer_sets.for_fps(source.fps)
    if common_flow(scorers) != common_flow(context.scorer_sets.first):
        raise UserError("--weights: the demo pairs use different flow settings; reinstall the package")
    setups = [setup_for_fps(s, source.fps, rolling=config.threshold == "rolling") for s in scorers]
    options = RunOptions(batch=config.batch, face_size=max(s.meta.flow.face_size for s in scorers),
                         max_frames=config.max_frames, save_inputs=config.save_inputs,
                         inputs_dir=config.out / "inputs" if config.out else None)
    show = config.shows_progress
    types = {s.type: s for s in setups}
    if show and "MaE" not in types and "ME" in types and types["ME"].params.drop_inside_mae:
        console.print("note: the ME weights' cross-type rule (drop ME inside MaE) needs the MaE model; "
                      "it is off for this run")

    if config.live or config.video:
        trace = TraceSink()
        thresholds = {s.type: s.params.threshold for s in setups}

        def latency() -> dict[str, Any]:
            lat = stats.times.samples.get("latency")
            return {"latency_ms": float(sorted(lat)[len(lat) // 2])} if lat else {}

        view = Live(live_view(trace, thresholds), console=console, refresh_per_second=4) if show else None
        sinks: list[Sink] = [*context.sinks, trace]
        if view is not None:
            sinks.append(CallbackSink(on_status=lambda _: view.update(live_view(trace, thresholds))))
        with view if view is not None else contextlib.nullcontext():
            return run_stream(source, setups, context.pair_features, sinks, options, stats,
                              stop=context.stop.is_set, status_extra=latency, on_notice=note)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:.0f} fps"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not show) as progress:
        task = progress.add_task(item.name, total=item.n_frames or source.n_frames, fps=0.0)
        advance = CallbackSink(
            on_scores=lambda _: progress.update(task, completed=stats.frames, fps=stats.fps_so_far()),
            on_status=lambda status: progress.update(task, completed=stats.frames, fps=status.fps))
        return run_stream(source, setups, context.pair_features, [*context.sinks, advance], options, stats,
                          stop=context.stop.is_set, on_notice=note)


def summarise(config: RunConfig, console: Console, plan: ReplayPlan, runs: list[RunStats],
              collected: CollectSink, wall: float) -> None:
    """MEGC table (when truth is known), performance table, metrics.json.

    A run is scored on what it replayed (`calibration.megc.scored_truth`): truth videos
    not replayed and truth intervals after the last frame read are left out and said so;
    with --out the scored truth is written to truth.csv, so that `lgnm-eval --truth
    OUT/truth.csv --pred OUT/predictions.csv` gives the same table."""
    result = None
    notes = [f"stream {r.stream}: {r.face_coverage()}" for r in runs if r.face_coverage()]
    if plan.has_truth:
        scope = scored_truth(plan.all_truth(),
                             {r.stream: r.last_frame for r in runs if r.frames})
        result = evaluate(scope.truth, collected.intervals)
        failed = {r.stream for r in runs if r.error is not None and not r.frames}
        for why, names in (("whose stream failed before its first frame", [v for v in scope.not_replayed
                                                                            if v in failed]),
                           ("not replayed", [v for v in scope.not_replayed if v not in failed])):
            if names:
                shown = ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")
                notes.append(f"truth of {len(names)} video(s) {why}, not scored: {shown}")
        if scope.beyond:
            notes.append(f"{len(scope.beyond)} truth interval(s) end after the last frame read of their "
                         "video, not scored")
        if config.out:
            write_intervals(config.out / "truth.csv", scope.truth, truth=True)
    metrics = {
        "megc": result.to_json() if result else None,
        "notes": notes,
        "performance": {
            "streams": len(runs),
            "failed": sum(r.error is not None for r in runs),
            "frames": sum(r.frames for r in runs),
            "wall_s": round(wall, 3),
            "fps": round(sum(r.frames for r in runs) / wall, 2) if wall > 0 else 0.0,
            "dropped": sum(r.dropped for r in runs),
            "runs": [r.to_dict() for r in runs],
        },
    }
    if config.out:
        (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if config.json:
        sys.stdout.write(json.dumps({"summary": metrics}) + "\n")
        return
    if result is not None:
        console.print(render_table(result, title="MEGC spotting (vs truth)"))
    if any(r.frames for r in runs):
        console.print(performance_table(runs, wall))
