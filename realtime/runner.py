"""One `lgnm-live` run: plan the streams, load the scorers, run each stream (a failure
in one is reported and the others run), then the summary, tables and metrics.json.
`realtime.cli` parses the options and calls `run`."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from calibration.megc import evaluate, render_table, scored_truth
from realtime.common.errors import EXIT_USER_ERROR, UserError, output_dir
from realtime.common.text import first_few, one_line, text_name
from realtime.dashboard import performance_table
from realtime.intervals_csv import write_intervals
from realtime.lsl import LslMarkerOutlet, LslSettings
from realtime.pipeline import Sink
from realtime.publisher import CurveServerKeys, EventPublisher
from realtime.ray_options import check_ray_options
from realtime.replay import ReplayItem, ReplayPlan, plan_replay
from realtime.replay_log import ReplayLog
from realtime.run_config import RunConfig
from realtime.sinks import CollectSink, ConsoleSink, EafSink, PredictionsSink, PublisherSink, ScoresCsvSink
from realtime.sources import FrameSource, open_source
from realtime.stats import RunStats
from realtime.stream_runner import (
    FlowBackends,
    RunContext,
    ScorerSets,
    common_flow,
    run_isolated,
    run_item,
    say_output_errors,
    write_stream_eaf,
)
from realtime.upstream import open_upstream, wait_for_proxy

T = TypeVar("T")


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
    upstream = open_upstream(config, stream, listeners)  # --connect: into an lgnm-proxy
    if upstream is not None:
        stack.callback(upstream.close)
        return upstream
    endpoint: str | None = config.pub
    if config.pub.lower() == "none":
        if not config.journal and not listeners:
            return None
        endpoint = None
    curve = None
    if config.curve_secret is not None and config.curve_clients is not None:  # RunConfig: both or neither
        curve = CurveServerKeys(config.curve_secret, config.curve_clients)
    pub = EventPublisher(endpoint, stream=stream, journal=config.journal, curve=curve, listeners=listeners,
                         on_refused=lambda message: print(one_line(f"warning: {message}"), file=sys.stderr, flush=True),
                         on_journal_error=lambda message: print(one_line(f"error: {message}"), file=sys.stderr,
                                                                flush=True))
    stack.callback(pub.close)
    return pub


def live_item(config: RunConfig) -> ReplayItem:
    if config.camera is not None:
        kind, value = "camera", config.camera
    else:
        kind, value = "rtsp", str(config.rtsp)

    def opener() -> FrameSource:
        source = open_source(kind, value, fps=config.fps, width=config.width, height=config.height,
                             max_retries=config.max_retries)
        if config.stream:  # --stream: ids unique across the hosts of a proxy (NFC, as every id)
            source.name = text_name(config.stream)
        return source

    name = text_name(config.stream) if config.stream else (f"{kind}{value}" if kind == "camera" else value)
    return ReplayItem(name, opener)


def run(config: RunConfig, console: Console, stop: threading.Event) -> int:
    """Run every stream `config` names; the process's exit code (see `exit_code`).
    Raises UserError for a mistake found before the first stream starts."""
    out = config.out
    check_ray_options(config)
    plan = make_plan(config, console)  # input mistakes first: loading models takes seconds
    if plan.submission is not None and out is None:
        raise UserError("--replay MEGC: needs --out DIR (the submission files are written there)")
    if out is not None:
        output_dir(out, "--out")
    if stopped_early(stop):
        return 0
    scorer_sets = ScorerSets(config)
    if stopped_early(stop):  # loading the models takes seconds: a stop then ends the run now
        scorer_sets.close()
        return 0
    if not config.weights and config.replay != "demo" and not config.quiet:
        # What a user of the defaults must know before trusting the events (README, Real faces).
        print("note: the bundled demo weights were trained on synthetic faces only; on faces moved by "
              "real people's motion the 30 fps pair misses almost every expression and the 200 fps pair "
              "takes talking and a still face's motion for micro-expressions (README, Real faces). Train on "
              "labelled real videos (lgnm-train) and pass --weights for real use.", file=sys.stderr)
    flow_backends = FlowBackends(config.flow, common_flow(scorer_sets.first))

    runs: list[RunStats] = []
    items = [live_item(config)] if config.live else plan.items
    with ExitStack() as stack:
        lsl = open_lsl(config, stack, stop)
        publisher = open_publisher(config, stack, items[0].name, lsl)
        if config.connect and publisher is not None:
            wait_for_proxy(publisher, stop)
        unopened: list[Path] = []  # outputs in the way of a folder or a read-only file
        if out is not None:  # an earlier run's summary must not pass for this run's if this one is killed
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                (out / "metrics.json").unlink()
        predictions = open_output(out / "predictions.csv", PredictionsSink, unopened) if out else None
        if predictions:
            stack.callback(predictions.close)
        scores_csv = open_output(out / "scores.csv", ScoresCsvSink, unopened) if out else None
        if scores_csv:
            stack.callback(scores_csv.close)
        eaf = EafSink(out / "eaf") if out else None
        earlier_eaf = sorted((out / "eaf").glob("*.eaf")) if out and (out / "eaf").is_dir() else []
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
        log = ReplayLog({it.name: it.n_frames for it in items}) \
            if not config.live and config.shows_progress and not console.is_terminal else None
        context = RunContext(config, scorer_sets, flow_backends, sinks, console, stop, publisher)
        t0 = time.monotonic()
        try:
            if config.ray is not None:  # one task per video on a Ray cluster
                from realtime.ray_replay import run_on_ray

                run_on_ray(items, config, sinks, publisher, eaf, plan.has_truth, runs, console, stop)
            for item in items if config.ray is None else ():
                if stop.is_set():
                    break
                # Appended before the run: a stream that ends in an error still counts
                # the frames it processed in the summary and metrics.json.
                # The video file an .eaf links: not with --fps, whose frame times no longer
                # follow the file's own timestamps (ELAN would play it out of step).
                media = str(item.media.resolve()) if item.media and config.fps is None else None
                stats = RunStats(stream=item.name, media=media)
                runs.append(stats)
                t_item = time.monotonic()
                try:
                    run_isolated(item, stats, out, functools.partial(run_item, item, context, stats))
                finally:
                    say_output_errors(stats)
                    if eaf:
                        write_stream_eaf(eaf, item, stats, plan.has_truth)
                if log is not None:
                    console.print(log.finish(item.name, stats.frames, time.monotonic() - t_item, stats.error,
                                             stopped=stop.is_set()), highlight=False, soft_wrap=True, markup=False)
            left = [it.name for it in items[len(runs):]] if config.ray is None and stop.is_set() else []
            if left:  # metrics.json and the summary say what the stop left out
                plan.notes.append(f"stopped before {len(left)} of {len(items)} stream(s) started, not replayed: "
                                  f"{first_few(left)}")
        finally:
            wall = time.monotonic() - t0
            scorer_sets.close()
            if eaf is not None:  # a reused --out: ELAN files of streams this run did not have
                stale = [p.name for p in earlier_eaf if p not in eaf.written]
                if stale:
                    plan.notes.append(f"--out {out}: eaf/ also holds {len(stale)} .eaf file(s) of an earlier run, "
                                      f"left as they were: {first_few(stale)}")
            if out is not None and not plan.has_truth and (out / "truth.csv").exists():
                # lgnm-eval on it would score this run's predictions against another run's truth
                plan.notes.append(f"--out {out}: truth.csv is an earlier run's, left as it was; this run had no "
                                  "truth (metrics.json has no MEGC table)")
            # Whatever was spotted is already in predictions.csv (flushed per row) and the
            # journal; the summary is written even after a failure or Ctrl-C.
            written = summarise(config, console, plan, runs, collected, wall)
            if plan.submission is not None and out is not None:  # a challenge test set (realtime.megc_testset)
                for path in plan.submission.write(collected.intervals, out):
                    print(one_line(f"wrote {path} (MEGC submission)"), file=sys.stderr)
                missing = [r.stream for r in runs if r.error is not None]
                missing += [it.name for it in items[len(runs):]]  # not reached: Ctrl-C
                if missing:
                    print(one_line(f"warning: the MEGC submission is incomplete: {len(missing)} of {len(items)} clips "
                                   f"failed or were not replayed ({', '.join(missing[:5])}"
                                   f"{', ...' if len(missing) > 5 else ''}); they have no rows"), file=sys.stderr)
    if config.report and out is not None:
        if unopened:  # a report of an earlier run's file in its place, or of none, would not be this run's
            print(one_line(f"note: --report: not written: {first_few([p.name for p in unopened])} of this run could "
                           "not be written"), file=sys.stderr)
        else:
            write_run_report(out)
    written = (written and not unopened and not (eaf is not None and eaf.failed)
               and not any(r.output_errors for r in runs) and getattr(publisher, "journal_error", None) is None)
    return exit_code(runs) or (0 if written else EXIT_USER_ERROR)


def open_output(path: Path, opener: Callable[[Path], T], unopened: list[Path]) -> T | None:
    """An output file of --out opened before the first stream; None when a path is in
    the way (a folder of that name, a read-only file a previous run left): one `error:`
    line naming it, the path added to `unopened` (the run exits 2), and the run goes on
    with the other outputs, as for a summary file that cannot be written."""
    try:
        return opener(path)
    except OSError as exc:
        print(f"error: --out: cannot write {path} ({exc.strerror or exc}); the run goes on without it",
              file=sys.stderr, flush=True)
        unopened.append(path)
        return None


def write_output(path: Path, write: Callable[[Path], object]) -> bool:
    """A summary file of --out (truth.csv, metrics.json) written after the run; a failure
    is one `error:` line and False, so that the other outputs are still written."""
    try:
        write(path)
    except OSError as exc:
        print(f"error: --out: cannot write {path} ({exc.strerror or exc})", file=sys.stderr)
        return False
    return True


def write_run_report(out: Path) -> None:
    """--report: the page and PNGs of what the run just wrote to `out` (after the
    summary, so a failed stream or Ctrl-C is in it too)."""
    from realtime.report import write_report  # matplotlib only when asked for

    files = write_report(out)
    print(f"report: {files.page}", file=sys.stderr)


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
    prog = Progress(TextColumn("generating the demo clip"), BarColumn(), MofNCompleteColumn(),
                    console=console, transient=True, disable=config.quiet or replay != "demo")
    task = prog.add_task("demo", total=None)

    def progress(k: int, n: int) -> None:
        if not prog.live.is_started:  # only when the clip is generated (not when it is cached)
            prog.start()
        prog.update(task, completed=k, total=n)

    try:
        return plan_replay(replay, data=config.data, annotations=config.annotations, truth=config.truth,
                           fps=config.fps, demo_progress=progress)
    finally:
        if prog.live.is_started:  # (stopping a bar never shown printed a blank line on stdout)
            prog.stop()


def stopped_early(stop: threading.Event) -> bool:
    """True, after saying so, when Ctrl-C or SIGTERM came before the first stream started:
    nothing was read or written, so the run ends at once rather than load models first."""
    if not stop.is_set():
        return False
    print("note: stopped before the first stream started; nothing was replayed or written", file=sys.stderr)
    return True


def summarise(config: RunConfig, console: Console, plan: ReplayPlan, runs: list[RunStats],
              collected: CollectSink, wall: float) -> bool:
    """MEGC table (when truth is known), performance table, metrics.json; False when a
    file of --out could not be written (said in an `error:` line).

    A run is scored on what it replayed (`calibration.megc.scored_truth`): truth videos
    not replayed and truth intervals after the last frame read are left out and said so;
    with --out the scored truth is written to truth.csv, so that `lgnm-eval --truth
    OUT/truth.csv --pred OUT/predictions.csv` gives the same table."""
    result = None
    written = True  # every summary file written (else an `error:` line each said why)
    notes = plan.notes + [f"stream {r.stream}: {n}" for r in runs if r.error is None for n in r.coverage()]
    if plan.has_truth:
        scope = scored_truth(plan.all_truth(), {r.stream: r.last_frame for r in runs if r.frames},
                             {r.stream: r.first_frame for r in runs if r.frames})
        # Truth of a type the run did not spot (--types) would only count as misses.
        unspotted = [iv for iv in scope.truth if iv.type not in config.types]
        if unspotted:
            scope = dataclasses.replace(scope, truth=[iv for iv in scope.truth if iv.type in config.types])
            kinds = sorted({iv.type for iv in unspotted})
            notes.append(f"{len(unspotted)} truth interval(s) of {', '.join(kinds)} in the frames read, not spotted "
                         f"(--types {','.join(config.types)}), not scored")
        result = evaluate(scope.truth, collected.intervals)
        failed = {r.stream for r in runs if r.error is not None and not r.frames}
        for why, names in (("whose stream failed before its first frame", [v for v in scope.not_replayed
                                                                            if v in failed]),
                           ("not replayed", [v for v in scope.not_replayed if v not in failed])):
            if names:
                notes.append(f"truth of {len(names)} video(s) {why}, not scored: {first_few(names)}")
        if scope.beyond:
            cut = [f"{iv.video} {iv.type} {iv.onset}-{iv.offset}" for iv in scope.beyond]
            notes.append(f"{len(cut)} truth interval(s) end after the last frame read of their "
                         f"video, not scored: {first_few(cut)}")
        if scope.before:
            cut = [f"{iv.video} {iv.type} {iv.onset}-{iv.offset}" for iv in scope.before]
            notes.append(f"{len(cut)} truth interval(s) start before the first frame read of their "
                         f"video, not scored: {first_few(cut)}")
        if config.out:
            written &= write_output(config.out / "truth.csv",
                                    lambda p: write_intervals(p, scope.truth, truth=True))
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
        written &= write_output(config.out / "metrics.json",
                                lambda p: p.write_text(json.dumps(metrics, indent=2) + "\n"))
    for note in notes:
        print(one_line(f"note: {note}"), file=sys.stderr)
    if config.json:
        sys.stdout.write(json.dumps({"summary": metrics}) + "\n")
        return written
    if result is not None:
        console.print(render_table(result, title="MEGC spotting (vs truth)", types=config.types))
    if any(r.frames for r in runs):
        console.print(performance_table(runs, wall, unpaced=not (config.live or config.video or config.paced)))
    return written
