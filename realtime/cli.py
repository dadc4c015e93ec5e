"""`lgnm-live`: spot macro- and micro-expressions in a camera, RTSP stream, video file or
dataset replay; publish them over ZeroMQ as they become final.

    lgnm-live --camera 0                 live camera, dashboard, events on tcp://127.0.0.1:5556
    lgnm-live --rtsp rtsp://host/stream  the same for a network stream
    lgnm-live --video clip.mp4           a file played at its own frame rate
    lgnm-live --replay demo              built-in synthetic demo with its truth (MEGC table)
    lgnm-live --replay CAS --data ROOT --annotations CAS.xlsx --out runs/cas
    lgnm-live --replay MEGC --data TESTSET --out runs/test   challenge test set -> submission CSVs

This module only parses the command line: torch, OpenCV, mediapipe and scipy are imported
by `realtime.runner` once a run needs them, so `--help` and option mistakes answer at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import cast

from rich.console import Console

from engines.backends import BACKENDS, FLOW_KINDS
from realtime.choices import DEFAULT_ENDPOINT
from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg, text_arg
from realtime.common.types import EXPR_TYPES, ExprType
from realtime.native_log import native_stderr_filtered
from realtime.ray_options import LOCAL
from realtime.run_config import THRESHOLDS, ConfigError, RunConfig, parse_frames


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-live", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("source (one of)")
    one = src.add_mutually_exclusive_group(required=True)
    one.add_argument("--camera", metavar="N", help="OpenCV camera device index")
    one.add_argument("--rtsp", type=text_arg, metavar="URL", help="RTSP stream URL (rtsp:// or rtsps://)")
    one.add_argument("--video", type=text_arg, metavar="PATH", help="a video file, played at its frame rate")
    one.add_argument("--replay", type=text_arg, metavar="demo|CAS|SAMM|CASME3|MEGC|PATH",
                     help="replay as fast as possible: the built-in demo, a dataset (CASME3: CAS(ME)^3 "
                          "Part A), an MEGC challenge test set (writes its submission files to --out), "
                          "or a video file / frame folder / folder of either")
    src.add_argument("--width", type=int, help="camera frame width")
    src.add_argument("--height", type=int, help="camera frame height")
    src.add_argument("--fps", type=float, help="the rate asked of a camera (it still runs at the rate it delivers), "
                                               "the rate of an RTSP stream or a video file (overriding what it reports), "
                                               "or the fps of frame folders (--replay MEGC: of every clip; default 200 "
                                               "for SAMM-style ids, else 30)")
    src.add_argument("--data", type=path_arg, help="dataset root for --replay CAS|SAMM|CASME3, test set for MEGC")
    src.add_argument("--annotations", type=path_arg,
                     help="dataset workbook for --replay CAS|SAMM|CASME3 (CASME3: a workbook or a folder of them)")
    src.add_argument("--truth", type=path_arg, help="truth CSV (video,type,onset,apex,offset) for --replay PATH")
    src.add_argument("--realtime", action="store_true", help="pace a replay at the source fps")
    src.add_argument("--max-frames", type=int, default=None, metavar="N",
                     help="stop after N frames of each stream (tests, benchmarks)")
    src.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDRESS",
                     help="with --replay: one task per video on a Ray cluster (no ADDRESS: a local one; "
                          "'auto': this machine's `ray start` cluster; HOST:PORT or ray://HOST:10001); "
                          "needs pip install 'lgnm-live[ray]'")
    src.add_argument("--stream", metavar="NAME",
                     help="--camera/--rtsp: the stream id in events and outputs (default cameraN or the URL "
                          "path); make it unique when several hosts publish into one lgnm-proxy")
    src.add_argument("--max-retries", type=int, default=None,
                     help="live sources: reconnect attempts before giving up (default: forever)")

    model = p.add_argument_group("model")
    model.add_argument("--weights", type=path_arg, action="append",
                       help="weights file (.safetensors, one per type; default: the demo pair trained "
                            "nearest to each source's fps, 30 or 200)")
    model.add_argument("--types", default="ME,MaE", help="expression types to spot (default ME,MaE)")
    model.add_argument("--backend", default="auto", choices=BACKENDS, help="scoring backend")
    model.add_argument("--engine", type=path_arg, action="append",
                       help="TensorRT engine per type (built by lgnm-build-engine), same order as --weights")
    model.add_argument("--flow", default="auto", choices=FLOW_KINDS, help="dense-flow backend")
    model.add_argument("--threshold", default="calibrated", choices=THRESHOLDS,
                       help="spotting threshold: calibrated (the weights' rule: their fixed threshold, "
                            "lowered by the rolling one where they say adaptive), fixed (their fixed "
                            "threshold alone), adaptive (their fixed threshold, lowered by the rolling one "
                            "where the stream's scores run lower) or rolling (Moilanen's, relative to the "
                            "stream's scores)")
    model.add_argument("--batch", type=int, default=16, help="most frames scored in one model call")

    out = p.add_argument_group("output")
    where = out.add_mutually_exclusive_group()
    where.add_argument("--pub", default=DEFAULT_ENDPOINT, metavar="ENDPOINT",
                       help=f"ZeroMQ PUB endpoint (default {DEFAULT_ENDPOINT}); 'none': no socket "
                            "(--journal and --lsl still work)")
    where.add_argument("--connect", metavar="ENDPOINT",
                       help="publish into an lgnm-proxy at ENDPOINT (its --publishers side) instead of binding")
    out.add_argument("--journal", type=path_arg, help="append every event as a JSON line here too")
    out.add_argument("--curve-secret", type=path_arg,
                     help="server secret key file (CurveZMQ); with --connect: this publisher's own secret key")
    out.add_argument("--curve-clients", type=path_arg, help="folder of authorised client public keys")
    out.add_argument("--curve-server-key", type=path_arg, metavar="FILE",
                     help="with --connect: the proxy's public key file (--curve-secret: this publisher's own)")
    out.add_argument("--lsl", nargs="?", const="lgnm-live", default=None, metavar="NAME",
                     help="also send every event as a JSON string marker on a Lab Streaming Layer outlet "
                          "(type Markers, name NAME, default lgnm-live; stamped with the LSL time the onset "
                          "frame was read)")
    out.add_argument("--lsl-wait", type=float, default=0.0, metavar="SECONDS",
                     help="with --lsl: wait up to SECONDS for an LSL consumer (a recorder) before the first "
                          "frame; markers sent while none is connected are lost (default 0: do not wait)")
    out.add_argument("--out", type=path_arg, help="write predictions.csv, scores.csv, metrics.json and eaf/VIDEO.eaf (ELAN) here")
    out.add_argument("--save-inputs", metavar="FRAMES",
                     help="with --out: write what the model saw for the pairs starting at these frames "
                          "(e.g. 120,300-310): aligned faces, flow HS image and network input as PNGs "
                          "in OUT/inputs/<stream>/")
    out.add_argument("--report", action="store_true",
                     help="at the end, write OUT/report/report.html (one page: scores, intervals, MEGC table) "
                          "and a PNG per video (needs --out; the same as lgnm-report OUT)")
    out.add_argument("--quiet", action="store_true",
                     help="nothing on stdout: no dashboard, progress, event lines or summary tables "
                          "(warnings, errors and notes about the input still on stderr)")
    out.add_argument("--json", action="store_true", help="events and the final summary as JSON lines")
    return p


# RunConfig parameters set by an option of another name (the rest: --max-frames sets max_frames).
OPTION_OF = {"paced": "--realtime", "engines": "--engine", "source": "a source"}


def option_name(parameter: str) -> str:
    """The option that sets a RunConfig parameter."""
    return OPTION_OF.get(parameter, "--" + parameter.replace("_", "-"))


def parse_types(text: str) -> tuple[ExprType, ...]:
    """`--types ME,MaE` -> ("ME", "MaE")."""
    types = [t.strip() for t in text.split(",") if t.strip()]
    if not types or any(t not in EXPR_TYPES for t in types):
        raise UserError(f"--types: expected ME, MaE or ME,MaE, got {text!r}")
    return cast(tuple[ExprType, ...], tuple(dict.fromkeys(types)))  # checked above; repeats once


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run the parsed options ask for; a mistake is a UserError naming the options."""
    save_inputs = frozenset() if args.save_inputs is None else parse_frames(args.save_inputs)
    try:
        return RunConfig(
            camera=args.camera, rtsp=args.rtsp, video=args.video, replay=args.replay, width=args.width,
            height=args.height, fps=args.fps, data=args.data, annotations=args.annotations, truth=args.truth,
            paced=args.realtime, max_frames=args.max_frames, max_retries=args.max_retries,
            weights=tuple(args.weights or ()), types=parse_types(args.types), backend=args.backend,
            engines=tuple(args.engine or ()), flow=args.flow, threshold=args.threshold, batch=args.batch,
            pub=args.pub, journal=args.journal, curve_secret=args.curve_secret, curve_clients=args.curve_clients,
            lsl=args.lsl, lsl_wait=args.lsl_wait, out=args.out, save_inputs=save_inputs, report=args.report,
            quiet=args.quiet, json=args.json, stream=args.stream, ray=args.ray, connect=args.connect,
            curve_server_key=args.curve_server_key,
        )
    except ConfigError as exc:
        raise exc.with_names({p: option_name(p) for p in exc.params}) from None


@cli_entry
@native_stderr_filtered
def main(argv: list[str] | None = None) -> int:
    config = config_from_args(build_parser().parse_args(argv))
    console = Console(stderr=config.json, quiet=config.quiet and not config.json)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        from realtime import runner  # the heavy imports, once the options parsed

        code = runner.run(config, console, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Ctrl-C is the user's own stop (0); SIGTERM is somebody else's (a batch system's time
    # limit, `docker stop`), so the run says it was cut short, as a killed job would.
    return 128 + signal.SIGTERM if signal.SIGTERM in received and code == 0 else code


# Signals that end a run as Ctrl-C does, outputs finished and written. Not SIGHUP: after a
# hang-up every write to the terminal fails (EIO) and would end the run as an internal
# error before its later outputs; `nohup` is the way to outlive a terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# Threads that may be inside a native OpenCV/FFmpeg call that Ctrl-C abandoned.
NATIVE_THREAD_PREFIXES = ("capture-", "connect-")


def entry() -> None:
    """The `lgnm-live` process: `main`, then exit with its code.

    When Ctrl-C abandoned a read or open blocked in FFmpeg (a server that stopped sending),
    that thread is still inside OpenCV's C++ code. Python's finalisation ends such a
    daemon thread with pthread_exit when it returns, and the forced unwind through C++
    frames calls std::terminate: "terminate called without an active exception", SIGABRT
    (CPython gh-87135). By then everything is written and closed (`main` has returned),
    so the process leaves without finalising.
    """
    code = main()
    if any(t.is_alive() and t.name.startswith(NATIVE_THREAD_PREFIXES) for t in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
