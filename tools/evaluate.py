"""`lgnm-eval`: MEGC evaluation of a prediction CSV against a truth CSV."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from calibration.megc import evaluate, render_table
from realtime.common.errors import OneLineParser, UserError, cli_entry, text_arg
from realtime.common.text import one_line
from realtime.common.types import Interval
from realtime.intervals_csv import read_intervals
from realtime.replay import suffix_twins


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lgnm-eval",
        description="Score spotted intervals with the MEGC protocol (IoU >= 0.5, F1 per type and overall).",
    )
    parser.add_argument("--truth", required=True, type=text_arg, help="truth CSV: video,type,onset,offset (apex optional)")
    parser.add_argument("--pred", required=True, type=text_arg, help="prediction CSV: video,type,onset,offset[,score]")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    return parser


def check_common_videos(truth: list[Interval], pred: list[Interval], truth_path: str, pred_path: str) -> None:
    """Predictions that share no video id with the truth mean mismatched ids (a folder name
    against a dataset's video code), not a spotter that found nothing: an error, not F1 0."""
    t_videos, p_videos = {iv.video for iv in truth}, {iv.video for iv in pred}
    if p_videos and t_videos and not t_videos & p_videos:
        raise UserError(f"--pred {pred_path}: none of its video ids ({_some(p_videos)}) is in "
                        f"--truth {truth_path} ({_some(t_videos)}); the two files name videos differently")


def coverage_notes(truth: list[Interval], pred: list[Interval], truth_path: str, pred_path: str) -> list[str]:
    """What the table counts without saying: an empty truth (every prediction is an FP),
    truth videos with no prediction (their truth counts as missed: a video the spotter
    never saw looks the same as one where it found nothing) and predicted videos with no
    truth (their predictions count as FPs); ids that differ only by a file suffix are
    named, as they are one video under two names."""
    t_videos, p_videos = {iv.video for iv in truth}, {iv.video for iv in pred}
    notes = []
    if not truth:
        notes.append(f"--truth {truth_path} holds no intervals: " + ("every prediction counts as a false positive"
                                                                     if pred else "there is nothing to score"))
        return notes
    unpredicted, unknown = t_videos - p_videos, p_videos - t_videos
    alike = suffix_lookalikes(t_videos, p_videos)
    if unpredicted and pred:
        notes.append(f"{len(unpredicted)} truth video(s) have no prediction in --pred {pred_path}, their truth "
                     f"counted as missed: {_some(unpredicted)} (lgnm-live's own table leaves out videos it did "
                     "not replay; its --out truth.csv holds the truth it scored)")
    if unknown:
        notes.append(f"{len(unknown)} predicted video(s) have no truth in --truth {truth_path}, their predictions "
                     f"counted as false positives: {_some(unknown)}")
    if alike:
        notes.append(f"video ids that differ only by a file suffix are two videos here: {', '.join(alike[:3])}")
    return notes


def suffix_lookalikes(truth_ids: set[str], pred_ids: set[str]) -> list[str]:
    """'a' and 'b' for ids of the two files that differ only by a file suffix ('clip.mp4'
    and 'clip'), where one of them is missing from the other file: one video, two names
    (`realtime.replay.suffix_twins` in both directions)."""
    pairs = [*suffix_twins(truth_ids - pred_ids, pred_ids),
             *((t, q) for q, t in suffix_twins(pred_ids - truth_ids, truth_ids))]
    return sorted({f"{a!r} and {b!r}" for a, b in pairs})


def _some(names: set[str]) -> str:
    shown = sorted(names)[:3]
    return ", ".join(shown) + (", ..." if len(names) > 3 else "")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    truth = read_intervals(args.truth)
    pred = read_intervals(args.pred, truth=False)
    check_common_videos(truth, pred, args.truth, args.pred)
    for note in coverage_notes(truth, pred, args.truth, args.pred):
        print(one_line(f"note: {note}"), file=sys.stderr)
    result = evaluate(truth, pred)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        Console().print(render_table(result, title=f"MEGC: {args.pred}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
