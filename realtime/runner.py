"""One `lgnm-live` run: plan the streams, load the scorers, run each stream (a failure
in one is reported and the others run), then the summary, tables and metrics.json.
`realtime.cli` parses the options and calls `run`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from calibration.megc import evaluate, render_table, scored_truth
from engines.scorers import make_scorer
from realtime.cli import default_weights
from realtime.connect import connect_first
from realtime.dashboard import live_view, performance_table
from realtime.errors import EXIT_USER_ERROR, UserError
from realtime.input_images import parse_frames
from realtime.intervals_csv import write_intervals
from realtime.lsl import LslMarkerOutlet, LslSettings
from realtime.pair_features import make_pair_features
from realtime.pipeline import PacedSource, RunOptions, run_stream, setup_for_fps
from realtime.publisher import CurveServerKeys, EventPublisher
from realtime.ray_options import check_ray_options
from realtime.replay import ReplayItem, ReplayPlan, plan_replay
from realtime.replay_log import ReplayLog
from realtime.sinks import (CollectSink, ConsoleSink, EafSink, NullSink, PredictionsSink, PublisherSink,
                            ScoresCsvSink, TraceSink)
from realtime.sources import open_source
from realtime.stats import RunStats
from realtime.types import EXPR_TYPES, FlowSettings
from realtime.upstream import open_upstream, wait_for_proxy


def parse_types(text: str) -> list[str]:
    types = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in types if t not in EXPR_TYPES]
    if bad or not types:
        raise UserError(f"--types: expected ME, MaE or ME,MaE, got {text!r}")
    return types


class ScorerSets:
    """The scorers a run uses. Explicit --weights: that one set for every stream. The
    demo default: per stream, the bundled pair trained nearest to its frame rate (loaded
    when first needed; the 30 fps pair up front so that bad options fail early)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._sets: dict[tuple[Path, ...], list[Any]] = {}
        self.first = self.for_fps(None)

    def for_fps(self, fps: float | None) -> list[Any]:
        weights = self.args.weights or default_weights(fps)
        key = tuple(weights)
        if key not in self._sets:
            self._sets[key] = load_scorers(self.args, weights)
        return self._sets[key]

    def close(self) -> None:
        for scorers in self._sets.values():
            for s in scorers:
                s.close()


def load_scorers(args: argparse.Namespace, weights: list[Path]) -> list[Any]:
    engines = args.engine or []
    if engines and len(engines) != len(weights):
        raise UserError("--engine: give one engine per --weights file, in the same order")
    for w in weights:
        if not w.is_file():
            hint = " (the demo weights ship with the package; reinstall it)" if not args.weights else ""
            raise UserError(f"--weights {w}: no such file{hint}")
    wanted = parse_types(args.types)
    scorers = []
    for i, w in enumerate(weights):
        scorer = make_scorer(w, args.backend, engines[i] if engines else None)
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


def common_flow(scorers: list[Any]) -> FlowSettings:
    flows = {s.meta.flow for s in scorers}
    if len(flows) != 1:
        raise UserError("--weights: the ME and MaE weights use different flow settings; "
                        "one stream computes one flow per frame pair, so train them alike")
    return flows.pop()


def open_lsl(args: argparse.Namespace, stack: ExitStack, stop: threading.Event) -> LslMarkerOutlet | None:
    """The LSL outlet of --lsl (None without it), after waiting --lsl-wait for a consumer."""
    if args.lsl is None:
        return None
    outlet = LslMarkerOutlet(LslSettings(args.lsl, args.lsl_wait))
    stack.callback(outlet.close)
    if args.lsl_wait > 0:
        print(f"lsl: waiting up to {args.lsl_wait:g} s for a consumer of stream {args.lsl!r}",
              file=sys.stderr, flush=True)
        if not outlet.wait_for_consumer(stop.is_set) and not stop.is_set():
            print(f"warning: lsl: no consumer of stream {args.lsl!r} after {args.lsl_wait:g} s; "
                  "markers sent before one connects are lost", file=sys.stderr, flush=True)
    return outlet


def open_publisher(args: argparse.Namespace, stack: ExitStack, stream: str,
                   lsl: LslMarkerOutlet | None = None) -> EventPublisher | None:
    """The publisher: a ZeroMQ socket (--pub), or with --pub none only the numbering
    that --journal and --lsl need (None when nothing needs it)."""
    listeners = [lsl.send] if lsl is not None else []
    upstream = open_upstream(args, stream, listeners)  # --connect: into an lgnm-proxy
    if upstream is not None:
        stack.callback(upstream.close)
        return upstream
    endpoint: str | None = args.pub
    if args.pub.lower() == "none":
        if not args.journal and not listeners:
            return None
        endpoint = None
    curve = None
    if args.curve_secret or args.curve_clients:
        if not (args.curve_secret and args.curve_clients):
            raise UserError("--curve-secret and --curve-clients go together")
        curve = CurveServerKeys(args.curve_secret, args.curve_clients)
    pub = EventPublisher(endpoint, stream=stream, journal=args.journal, curve=curve, listeners=listeners)
    stack.callback(pub.close)
    return pub


def live_item(args: argparse.Namespace) -> ReplayItem:
    if args.camera is not None:
        kind, value = "camera", args.camera
    else:
        kind, value = "rtsp", args.rtsp

    def opener():  # noqa: ANN202
        source = open_source(kind, value, fps=args.fps, width=args.width, height=args.height,
                             max_retries=args.max_retries)
        if getattr(args, "stream", None):  # --stream: ids unique across the hosts of a proxy
            source.name = args.stream
        return source

    name = getattr(args, "stream", None) or (f"{kind}{value}" if kind == "camera" else value)
    return ReplayItem(name, opener)


def save_inputs(args: argparse.Namespace) -> frozenset[int]:
    """The frames of `--save-inputs` (empty without it); it needs --out."""
    if args.save_inputs is None:
        return frozenset()
    if args.out is None:
        raise UserError("--save-inputs: needs --out (the images go to OUT/inputs/<stream>/)")
    return parse_frames(args.save_inputs)


def run(args: argparse.Namespace, console: Console, stop: threading.Event) -> int:
    save_inputs(args)  # an option mistake answers before anything loads
    if args.batch < 1:
        raise UserError(f"--batch: must be >= 1, got {args.batch}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames: must be >= 1, got {args.max_frames}")
    if args.report and not args.out:
        raise UserError("--report: needs --out DIR (the report is made from the files written there)")
    if getattr(args, "stream", None) is not None and (args.camera is None and args.rtsp is None or not args.stream):
        raise UserError("--stream: names a live stream (--camera or --rtsp) and must not be empty")
    if args.lsl is None and args.lsl_wait:
        raise UserError("--lsl-wait: needs --lsl")
    check_ray_options(args)
    live = args.camera is not None or args.rtsp is not None
    plan = make_plan(args, console, live)  # input mistakes first: loading models takes seconds
    if plan.submission is not None and not args.out:
        raise UserError("--replay MEGC: needs --out DIR (the submission files are written there)")
    scorer_sets = ScorerSets(args)
    if args.weights is None and args.replay != "demo" and not args.quiet:
        # What a user of the defaults must know before trusting the events (README, Real faces).
        print("note: the bundled demo weights were trained on synthetic faces only; on real faces they "
              "take most facial motion (talking, blinks, a still face's jitter) for expressions. Train on "
              "labelled real videos (lgnm-train) and pass --weights for real use.", file=sys.stderr)
    flow = common_flow(scorer_sets.first)
    pair_features = make_pair_features(args.flow, flow)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)

    runs: list[RunStats] = []
    items = [live_item(args)] if live else plan.items
    with ExitStack() as stack:
        lsl = open_lsl(args, stack, stop)
        publisher = open_publisher(args, stack, items[0].name, lsl)
        if getattr(args, "connect", None) and publisher is not None:
            wait_for_proxy(publisher, stop)
        predictions = PredictionsSink(args.out / "predictions.csv") if args.out else None
        if predictions:
            stack.callback(predictions.close)
        scores_csv = ScoresCsvSink(args.out / "scores.csv") if args.out else None
        if scores_csv:
            stack.callback(scores_csv.close)
        eaf = EafSink(args.out / "eaf") if args.out else None
        collected = CollectSink()
        sinks: list[Any] = [collected]
        if predictions:
            sinks.append(predictions)
        if eaf:
            sinks.append(eaf)
        if scores_csv:
            sinks.append(scores_csv)
        if publisher:
            sinks.append(PublisherSink(publisher))
        if not args.quiet or args.json:
            sinks.append(ConsoleSink(console, as_json=args.json))
        # Not a terminal (a log file, CI): no progress bar can show, a line per video does.
        log = ReplayLog([it.n_frames for it in items]) \
            if not live and not args.quiet and not args.json and not console.is_terminal else None
        t0 = time.monotonic()
        try:
            if getattr(args, "ray", None) is not None:  # one task per video on a Ray cluster
                from realtime.ray_replay import run_on_ray

                run_on_ray(items, args, sinks, publisher, eaf, plan.has_truth, runs, console, stop)
            for item in items if getattr(args, "ray", None) is None else ():
                if stop.is_set():
                    break
                # Appended before the run: a stream that ends in an error still counts
                # the frames it processed in the summary and metrics.json.
                # The video file an .eaf links: not with --fps, whose frame times no longer
                # follow the file's own timestamps (ELAN would play it out of step).
                media = str(item.media.resolve()) if item.media and args.fps is None else None
                stats = RunStats(stream=item.name, media=media)
                runs.append(stats)
                t_item = time.monotonic()
                try:
                    run_isolated(item, stats, args, lambda: run_item(
                        item, args, scorer_sets, pair_features, sinks, console, stop, live, publisher, stats))
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
            summarise(args, console, plan, runs, collected, wall)
            if plan.submission is not None:  # a challenge test set (realtime.megc_testset)
                for path in plan.submission.write(collected.intervals, args.out):
                    print(f"wrote {path} (MEGC submission)", file=sys.stderr)
                missing = [r.stream for r in runs if r.error is not None]
                missing += [it.name for it in items[len(runs):]]  # not reached: Ctrl-C
                if missing:
                    print(f"warning: the MEGC submission is incomplete: {len(missing)} of {len(items)} clips "
                          f"failed or were not replayed ({', '.join(missing[:5])}"
                          f"{', ...' if len(missing) > 5 else ''}); they have no rows", file=sys.stderr)
    if args.report:
        write_run_report(args.out)
    return exit_code(runs)


def write_run_report(out: Path) -> None:
    """--report: the page and PNGs of what the run just wrote to `out` (after the
    summary, so a failed stream or Ctrl-C is in it too)."""
    from realtime.report import write_report  # matplotlib only when asked for

    files = write_report(out)
    print(f"report: {files.page}", file=sys.stderr)


def run_isolated(item: ReplayItem, stats: RunStats, args: argparse.Namespace, run_one: Any) -> None:
    """Run one stream; a failure inside it is one `error:` line naming the stream, the
    stream is marked failed (metrics.json), and the next stream still runs. Faults that
    are not the user's (a bug) also leave their traceback in OUT/errors.log."""
    try:
        run_one()
    except UserError as exc:
        stats.error = str(exc)
        print(f"error: stream {item.name}: {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - one stream's fault must not end the others
        stats.error = f"internal error: {type(exc).__name__}: {exc}"
        log = f"; traceback in {args.out / 'errors.log'}" if args.out else ""
        print(f"error: stream {item.name}: {stats.error}{log}", file=sys.stderr)
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            with open(args.out / "errors.log", "a", encoding="utf-8") as fh:
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


def make_plan(args: argparse.Namespace, console: Console, live: bool) -> ReplayPlan:
    if live:
        return ReplayPlan([], has_truth=False)  # the live item is built in run_item
    if args.video:
        return plan_replay(args.video, data=None, annotations=None, truth=args.truth, fps=args.fps)
    with Progress(TextColumn("generating the demo clip"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True, disable=args.quiet or args.replay != "demo") as prog:
        task = prog.add_task("demo", total=None)
        return plan_replay(args.replay, data=args.data, annotations=args.annotations, truth=args.truth,
                           fps=args.fps, demo_progress=lambda k, n: prog.update(task, completed=k, total=n))


def run_item(item: ReplayItem | None, args: argparse.Namespace, scorer_sets: ScorerSets, pair_features: Any,
             sinks: list[Any], console: Console, stop: threading.Event, live: bool,
             publisher: EventPublisher | None, stats: RunStats) -> RunStats:
    """Run one stream with the dashboard (live, --video) or a progress bar (replay)."""
    source = item.open()
    if not live:
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
    if live and not connect_first(source, stop.is_set):
        return stats  # Ctrl-C before the first frame: nothing ran; the summary follows
    if publisher is not None:
        publisher.begin_stream(source.name)  # the stream id: video id or URL path
    if args.video or (args.replay and args.realtime):
        source = PacedSource(source)
    scorers = scorer_sets.for_fps(source.fps)
    if common_flow(scorers) != common_flow(scorer_sets.first):
        raise UserError("--weights: the demo pairs use different flow settings; reinstall the package")
    setups = [setup_for_fps(s, source.fps, rolling=args.threshold == "rolling") for s in scorers]
    options = RunOptions(batch=args.batch, face_size=max(s.meta.flow.face_size for s in scorers),
                         max_frames=args.max_frames, save_inputs=save_inputs(args),
                         inputs_dir=args.out / "inputs" if args.out else None)
    show = not args.quiet and not args.json
    types = {s.type: s for s in setups}
    if show and "MaE" not in types and "ME" in types and types["ME"].params.drop_inside_mae:
        console.print("note: the ME weights' cross-type rule (drop ME inside MaE) needs the MaE model; "
                      "it is off for this run")


    if live or args.video:
        trace = TraceSink()
        thresholds = {s.type: s.params.threshold for s in setups}

        def latency() -> dict[str, Any]:
            lat = stats.times.samples.get("latency")
            return {"latency_ms": float(sorted(lat)[len(lat) // 2])} if lat else {}

        view = Live(live_view(trace, thresholds), console=console, refresh_per_second=4) if show else None

        class Refresh(NullSink):
            def on_status(self, status: dict[str, Any]) -> None:
                if view is not None:
                    view.update(live_view(trace, thresholds))

        with view if view is not None else contextlib.nullcontext():
            return run_stream(source, setups, pair_features, [*sinks, trace, Refresh()], options, stats,
                              stop=stop.is_set, status_extra=latency, on_notice=note)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[fps]:.0f} fps"), TimeRemainingColumn(),
                  console=console, transient=True, disable=not show) as progress:
        task = progress.add_task(item.name, total=item.n_frames or source.n_frames, fps=0.0)

        class Advance(NullSink):
            def on_scores(self, scores: Any) -> None:
                progress.update(task, completed=stats.frames, fps=stats.fps_so_far())

            def on_status(self, status: dict[str, Any]) -> None:
                progress.update(task, completed=stats.frames, fps=status.get("fps", 0.0))

        return run_stream(source, setups, pair_features, [*sinks, Advance()], options, stats,
                          stop=stop.is_set, on_notice=note)


def summarise(args: argparse.Namespace, console: Console, plan: ReplayPlan, runs: list[RunStats],
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
        if args.out:
            write_intervals(args.out / "truth.csv", scope.truth, truth=True)
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
    if args.out:
        (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps({"summary": metrics}) + "\n")
        return
    if result is not None:
        console.print(render_table(result, title="MEGC spotting (vs truth)"))
    if any(r.frames for r in runs):
        console.print(performance_table(runs, wall))
