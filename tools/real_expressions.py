"""Spotting on faces moved by real people, scored against expression labels made by eye.

    python -m tools.real_expressions [--weights ME MaE] [--out DIR] [--save-clips]

Each real landmark track of ../shared/reference/real-motion plays once at 30 fps and
drives the bundled photo (`tools.real_motion_check.driven_frames`: the head by the
track's similarity, the rest by a Delaunay-interpolated warp, sensor noise of sigma 2);
lgnm-live's pipeline (`realtime.api.spot`, with its post-processing and cross-type rule)
spots each clip, and the intervals are scored with the MEGC rule (IoU >= 0.5) against
`tools/real_motion_labels/truth.csv` (labels made by an annotator blind to the spotter;
how, in that folder's README).

Prints a row per clip (labelled and predicted intervals, matches, events a minute) and
two MEGC tables: the clips labelled by eye, and `real_d6` apart (continuous grimacing,
labelled by machine segmentation: more an event-rate check than a score). `--out` writes
`predictions.csv` and `truth.csv` (what `lgnm-eval` reads) and, with `--save-clips`, the
rendered clips as `<clip>.mp4`. A warped photo lacks the texture of a real face moving,
so these figures bound what the spotter does on real video; they are not a measurement
of it. Nothing is asserted (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from calibration.megc import evaluate, render_table, score_type
from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.common.types import EXPR_TYPES, Interval
from realtime.intervals_csv import read_intervals, write_intervals
from realtime.native_log import filtered_native_stderr
from realtime.synthesis.real_motion import load_track
from tools.real_motion_check import driven_frames

LABELS = Path(__file__).with_name("real_motion_labels") / "truth.csv"
TRACKS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "real-motion"
FPS = 30.0  # the labels' frame rate: every track is rendered at it
MACHINE_LABELLED = frozenset({"real_d6"})  # segments found by a program, not by eye


def clip_frames(track: Path, n: int, seed: int, save: Path | None = None) -> Iterator[np.ndarray]:
    """The n (480, 640, 3) uint8 BGR frames of the photo driven by `track` played once at
    FPS (n: its frame count at FPS, `clip_length`); with `save`, also written there as an MP4."""
    writer = None
    if save is not None:
        import cv2

        writer = cv2.VideoWriter(str(save), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    try:
        for image in driven_frames(track, FPS, n / FPS, seed):
            if writer is not None:
                writer.write(image)
            yield image
    finally:
        if writer is not None:
            writer.release()


def clip_length(track: Path) -> int:
    """Frames of `track` played once at FPS (25 fps tracks are resampled, same duration)."""
    return load_track(track).at_fps(FPS).n_frames


def spot_clip(track: Path, n: int, weights: list[Path] | None, seed: int,
              save: Path | None = None) -> list[Interval]:
    """The intervals lgnm-live's pipeline spots on one driven clip of n frames, named
    after the track."""
    from realtime.api import SpotEvent, spot

    name = track.stem
    return [Interval(name, e.type, e.onset_frame, e.offset_frame, e.score, e.apex_frame)
            for e in spot(clip_frames(track, n, seed, save), fps=FPS, weights=weights)
            if isinstance(e, SpotEvent)]


def clip_rows(names: list[str], truth: list[Interval], pred: list[Interval], frames: dict[str, int]) -> Table:
    table = Table(title=f"faces driven by real tracks, {FPS:g} fps")
    for col in ("clip", "s", "labelled MaE / ME", "spotted MaE / ME", "matched MaE / ME", "events/min"):
        table.add_column(col, justify="left" if col == "clip" else "right")
    for name in names:
        t = [iv for iv in truth if iv.video == name]
        p = [iv for iv in pred if iv.video == name]
        count = {kind: [sum(iv.type == x for iv in ivs) for x in EXPR_TYPES[::-1]] for kind, ivs in (("t", t), ("p", p))}
        tp = [score_type(t, p, x).tp for x in EXPR_TYPES[::-1]]
        seconds = frames[name] / FPS
        table.add_row(name + (" (machine labels)" if name in MACHINE_LABELLED else ""), f"{seconds:.1f}",
                      "{} / {}".format(*count["t"]), "{} / {}".format(*count["p"]), "{} / {}".format(*tp),
                      f"{60.0 * len(p) / seconds:.1f}")
    return table


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tools.real_expressions", description=__doc__.split("\n")[0])
    p.add_argument("--weights", nargs=2, type=path_arg, metavar=("ME", "MaE"),
                   help="weights (default: the demo pair lgnm-live takes at 30 fps)")
    p.add_argument("--tracks", type=path_arg, default=TRACKS, help="folder of the real_*.npz tracks")
    p.add_argument("--only", nargs="+", metavar="CLIP", help="these clips only (e.g. real_s29)")
    p.add_argument("--out", type=path_arg, help="write predictions.csv and truth.csv here")
    p.add_argument("--save-clips", action="store_true", help="with --out: also the rendered clips (mp4)")
    p.add_argument("--seed", type=int, default=0, help="placement and sensor noise of the photo")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    if a.save_clips and a.out is None:
        raise UserError("--save-clips: needs --out DIR")
    truth_all = read_intervals(LABELS)
    names = sorted({iv.video for iv in truth_all} | {"real_s18", "real_s20", "real_s29"})
    if a.only:
        unknown = sorted(set(a.only) - set(names))
        if unknown:
            raise UserError(f"--only: no labels for {', '.join(unknown)} (labelled: {', '.join(names)})")
        names = [n for n in names if n in a.only]
    tracks = {n: a.tracks / f"{n}.npz" for n in names}
    missing = [str(p) for p in tracks.values() if not p.is_file()]
    if missing:
        raise UserError(f"--tracks: {', '.join(missing)} not found")
    if a.out is not None:
        output_dir(a.out, "--out")
    weights = list(a.weights) if a.weights else None
    truth = [iv for iv in truth_all if iv.video in tracks]
    pred: list[Interval] = []
    frames: dict[str, int] = {}
    with filtered_native_stderr():
        for name, track in tracks.items():
            save = a.out / f"{name}.mp4" if a.save_clips else None
            frames[name] = clip_length(track)
            pred += spot_clip(track, frames[name], weights, a.seed, save)
    if a.out is not None:
        write_intervals(a.out / "predictions.csv", pred)
        write_intervals(a.out / "truth.csv", truth, truth=True)
    console = Console()
    console.print(clip_rows(names, truth, pred, frames))
    for title, keep in (("clips labelled by eye", lambda n: n not in MACHINE_LABELLED),
                        ("real_d6 (machine labels)", lambda n: n in MACHINE_LABELLED)):
        chosen = [n for n in names if keep(n)]
        if chosen:
            console.print(render_table(evaluate([iv for iv in truth if iv.video in chosen],
                                                [iv for iv in pred if iv.video in chosen]), title=title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
