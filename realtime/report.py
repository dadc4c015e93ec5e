"""`lgnm-report RUN_DIR`: one self-contained HTML page of a run written by
`lgnm-live --out RUN_DIR`, plus one PNG figure per video for papers.

    lgnm-report runs/demo                 -> runs/demo/report/report.html, runs/demo/report/<video>.png
    lgnm-report runs/demo --out figs      -> figs/report.html, figs/<video>.png

`lgnm-live --report --out DIR` writes the same at the end of its run. What the page
shows and how frames map to time: realtime/report_plot.py and README (Report).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.report_data import RunFiles, read_run
from realtime.report_html import VideoFigure, render_page
from realtime.report_marks import TypeMarks, mark_type
from realtime.report_plot import TYPE_ORDER, video_png

REPORT_FOLDER = "report"
PAGE_NAME = "report.html"


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote: the page and the PNG of each video that had frames
    (video name -> path)."""

    page: Path
    pngs: dict[str, Path]


def run_marks(run: RunFiles) -> dict[str, dict[str, TypeMarks] | None]:
    """Per video, per type, the TP / FP / FN marks (None per video when the run had no truth)."""
    out: dict[str, dict[str, TypeMarks] | None] = {}
    for v in run.videos:
        out[v.name] = None if v.truth is None else {t: mark_type(v.truth, v.predictions, t) for t in TYPE_ORDER}
    return out


def png_names(names: list[str]) -> list[str]:
    """File names for the videos' PNGs: the name with characters other than letters,
    digits, '.', '_', '-' replaced (a stream may be a URL), made unique."""
    used: set[str] = set()
    out = []
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "video"
        candidate, n = stem, 2
        while candidate.lower() in used:
            candidate, n = f"{stem}_{n}", n + 1
        used.add(candidate.lower())
        out.append(f"{candidate}.png")
    return out


def write_report(run_dir: Path, out_dir: Path | None = None) -> ReportFiles:
    """Read RUN_DIR, write OUT/report.html and OUT/<video>.png (OUT defaults to
    RUN_DIR/report). UserError naming the file when RUN_DIR is missing or garbled."""
    run = read_run(Path(run_dir))
    out = Path(out_dir) if out_dir is not None else run.folder / REPORT_FOLDER
    output_dir(out, "--out" if out_dir is not None else "report folder")
    marks = run_marks(run)
    figures: dict[str, VideoFigure] = {}
    pngs: dict[str, Path] = {}
    for video, name in zip(run.videos, png_names([v.name for v in run.videos]), strict=True):
        png = video_png(video, marks[video.name])
        if png is not None:
            pngs[video.name] = out / name
            _write(out / name, png)
        figures[video.name] = VideoFigure(png, name if png is not None else None)
    page = out / PAGE_NAME
    _write(page, render_page(run, marks, figures).encode("utf-8"))
    return ReportFiles(page, pngs)


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror})") from None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-report", description=(
        "One self-contained HTML page of an lgnm-live run (scores, thresholds, truth and predicted intervals "
        "with TP/FP/FN, chain breaks, frames without a face, the MEGC table) and one PNG per video."))
    p.add_argument("run_dir", metavar="RUN_DIR", type=path_arg, help="the --out folder of an lgnm-live run")
    p.add_argument("--out", type=path_arg, default=None,
                   help=f"where to write {PAGE_NAME} and the PNGs (default: RUN_DIR/{REPORT_FOLDER})")
    return p


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    files = write_report(args.run_dir, args.out)
    print(f"report: {files.page} ({len(files.pngs)} figure(s) beside it)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
