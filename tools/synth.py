"""Synthetic long face videos with exact ground truth (`lgnm-synth`).

A real face photo is animated with landmark-anchored dense deformations that imitate
facial action units (realtime/synthesis/actions.py). Expressions follow an onset-apex-
offset profile whose visible frames are the truth (realtime/synthesis/timeline.py);
blinks, head drift / turns / nods, illumination ramps, sensor noise and video
compression are added as distractors that carry no truth. Same seed -> same frames and
truth. Output: mp4 files + truth CSV (`video,type,onset,apex,offset`), or the
CAS(ME)^2 / SAMM-LV / CAS(ME)^3 Part A folder layouts with their workbooks
(realtime/synthesis/layouts.py; the generator is realtime/synthesis/generate.py, which the built-in demo uses too).

    lgnm-synth --out synth/ --videos 10                       # 60 s, 30 fps, 640x480 mp4
    lgnm-synth --out samm/ --fps 200 --layout samm --videos 4 # 30 s, 200 fps, 352x288 jpgs
    lgnm-synth --out mine/ --faces me.jpg --no-distractors    # any photo with one face
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from realtime.common.errors import OneLineParser, cli_entry, path_arg
from realtime.common.types import EXPR_TYPES
from realtime.native_log import native_stderr_filtered
from realtime.synthesis.faces import BUILTIN_FACES
from realtime.synthesis.generate import LAYOUTS, write_dataset


def _parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-synth", description=(__doc__ or "").splitlines()[0])
    p.add_argument("--out", required=True, type=path_arg, help="output folder")
    p.add_argument("--videos", type=int, default=1, help="number of videos (default 1)")
    p.add_argument("--fps", type=int, choices=(30, 200), default=30, help="30 (CAS-like) or 200 (SAMM-like)")
    p.add_argument("--duration", type=float, default=None, help="seconds per video (default 60 at 30 fps, 30 at 200)")
    p.add_argument("--faces", nargs="+", default=list(BUILTIN_FACES), help="face images (or astronaut, grace_hopper)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layout", choices=LAYOUTS, default="mp4",
                   help="mp4 + truth.csv, or the CAS / SAMM / CAS(ME)^3 (casme3) folder layout")
    p.add_argument("--no-distractors", action="store_true", help="no blinks, head motion, light changes or noise")
    p.add_argument("--jitter", action="store_true",
                   help="a random appearance per video: mirror, hue, colour cast, gamma, softer texture (training data)")
    p.add_argument("--real-motion", nargs="+", default=(), metavar="TRACK",
                   help="real landmark tracks (real_*.npz files or folders of them) driving the faces: talking, "
                        "blinks, gaze, head turns and jitter of real faces, as motion that is not an expression")
    p.add_argument("--real-motion-labels", type=path_arg, metavar="CSV",
                   help="the expressions inside those tracks (a truth CSV naming the tracks, frames of each track "
                        "played once at 30 fps, e.g. tools/real_motion_labels/truth.csv): they become truth of "
                        "the videos that show them instead of motion that is not an expression")
    p.add_argument("--vary-actions", action="store_true",
                   help="17 action units at their frequencies in the real workbooks (the canonical 8 otherwise), "
                        "each occurrence one-sided or asymmetric, its directions turned by up to 30 deg and its "
                        "extent 0.67-1.5x (training data); actions.csv lists them")
    p.add_argument("--head-turns", action="store_true",
                   help="heads turning and nodding in depth (yaw/pitch sway and 3-12 deg turns, ~6 per minute), "
                        "as motion that is not an expression (training data); distractors.csv lists the turns")
    return p


@cli_entry
@native_stderr_filtered
def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    duration = args.duration if args.duration is not None else (60.0 if args.fps < 100 else 30.0)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=console)  # fmt: skip
    task = progress.add_task("rendering", total=max(int(round(duration * args.fps)) * args.videos, 0))

    def on_frame(video: str, k: int, n: int) -> None:
        if not progress.live.is_started:  # shown from the first frame: after write_dataset checked the options
            progress.start()
        if k == 1:
            progress.update(task, description=video)
        progress.advance(task)

    try:
        summary = write_dataset(args.out, args.videos, float(args.fps), args.faces, args.seed, args.layout,
                                duration, not args.no_distractors, args.jitter, on_frame,
                                args.real_motion, args.vary_actions, args.head_turns,
                                args.real_motion_labels)  # fmt: skip
    finally:
        if progress.live.is_started:  # (stopping one never started prints a blank line)
            progress.stop()
    rate = summary.frames / max(summary.seconds, 1e-9)
    console.print(f"wrote {len(summary.videos)} video(s), {summary.frames} frames in {summary.seconds:.1f} s "
                  f"({rate:.0f} frames/s) to {args.out}")  # fmt: skip
    console.print("events per minute: " + ", ".join(f"{t} {summary.per_minute(t):.1f}" for t in EXPR_TYPES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
