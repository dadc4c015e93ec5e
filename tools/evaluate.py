"""`lgnm-eval`: MEGC evaluation of a prediction CSV against a truth CSV."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from calibration.megc import evaluate, render_table
from realtime.errors import cli_entry
from realtime.intervals_csv import read_intervals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lgnm-eval",
        description="Score spotted intervals with the MEGC protocol (IoU >= 0.5, F1 per type and overall).",
    )
    parser.add_argument("--truth", required=True, help="truth CSV: video,type,onset,apex,offset")
    parser.add_argument("--pred", required=True, help="prediction CSV: video,type,onset,offset[,score]")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    return parser


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    truth = read_intervals(args.truth)
    pred = read_intervals(args.pred)
    result = evaluate(truth, pred)
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        Console().print(render_table(result, title=f"MEGC: {args.pred}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
