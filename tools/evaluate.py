"""`lgnm-eval`: MEGC evaluation of a prediction CSV against a truth CSV."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from calibration.megc import evaluate, render_table
from realtime.common.errors import OneLineParser, UserError, cli_entry, text_arg
from realtime.common.types import Interval
from realtime.intervals_csv import read_intervals


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


def _some(names: set[str]) -> str:
    shown = sorted(names)[:3]
    return ", ".join(shown) + (", ..." if len(names) > 3 else "")


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    truth = read_intervals(args.truth)
    pred = read_intervals(args.pred, truth=False)
    check_common_videos(truth, pred, args.truth, args.pred)
    result = evaluate(truth, pred)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        Console().print(render_table(result, title=f"MEGC: {args.pred}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
