"""`lgnm-export-eaf`: ELAN .eaf files (one per video) from an existing run folder or a
predictions CSV, for runs made without them or to add truth or a video link.

    lgnm-export-eaf runs/cas                      # runs/cas/predictions.csv (+ truth.csv) -> runs/cas/eaf/
    lgnm-export-eaf --pred P.csv --fps 30 --truth T.csv --media videos/ --out eaf/

Times come from the frame numbers at the stream's frame rate: frame n spans
[(n - 1) / fps, n / fps] (see realtime/eaf.py); the rate is `--fps`, else the run's
metrics.json (`source_fps` of each stream), else the rate predictions.csv's time columns
imply. A video file is linked from `--media` (a file, or a folder searched for VIDEO.mp4
etc.), else from metrics.json (`media`). A run that was killed (no metrics.json) keeps
the .eaf files it wrote for the streams it finished (they have its truth tiers); the
export adds the missing ones.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.common.text import one_line, text_name
from realtime.common.types import Interval
from realtime.eaf import (
    EafDocument,
    TimedInterval,
    span_from_frames,
    span_from_times,
    timed_from_frames,
    unique_eaf_name,
    write_eaf,
)
from realtime.intervals_csv import read_intervals
from realtime.replay import VIDEO_SUFFIXES
from tools.evaluate import suffix_lookalikes


@dataclass(frozen=True, slots=True)
class StreamFacts:
    """What a run's metrics.json says about one stream (None: not recorded)."""

    fps: float | None = None
    media: Path | None = None


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-export-eaf", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", nargs="?", type=path_arg,
                   help="an lgnm-live --out folder (its predictions.csv, truth.csv and metrics.json)")
    p.add_argument("--pred", type=path_arg, help="predictions CSV (video,type,onset,offset[,score][,apex]); "
                                             "default RUN/predictions.csv")
    p.add_argument("--truth", type=path_arg, help="truth CSV for truth tiers; default RUN/truth.csv when the run "
                                              "was scored (metrics.json has a MEGC table)")
    p.add_argument("--fps", type=float, help="frame rate of the videos (default: metrics.json's source_fps)")
    p.add_argument("--media", type=path_arg, help="the video file, or a folder holding VIDEO.<ext> per video, "
                                              "to link (default: metrics.json's media)")
    p.add_argument("--out", type=path_arg, help="folder for VIDEO.eaf (default RUN/eaf)")
    return p


def run_facts(run: Path | None) -> dict[str, StreamFacts]:
    """Per stream, the fps and video file a run's metrics.json records (runs written before
    these fields existed record neither)."""
    path = run / "metrics.json" if run is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        runs = json.loads(path.read_text(encoding="utf-8"))["performance"]["runs"]
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not an lgnm-live metrics.json ({exc})") from None
    facts = {}
    for r in runs:
        fps, media = r.get("source_fps"), r.get("media")
        facts[text_name(str(r.get("stream", "")))] = StreamFacts(float(fps) if fps else None, Path(media) if media else None)
    return facts


def run_was_scored(run: Path) -> bool:
    """True when the run's metrics.json holds a MEGC table: only then is RUN/truth.csv this
    run's truth (a truth.csv left by an earlier run into the same folder is not)."""
    try:
        return json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("megc") is not None
    except (OSError, ValueError, AttributeError):
        return False


def prediction_times(path: Path) -> dict[tuple[str, str, int, int], tuple[float, float]]:
    """(video, type, onset, offset) -> (onset_s, offset_s) from the time columns
    lgnm-live writes into predictions.csv: the frames' real times (a variable-rate file
    keeps them). Rows without usable times are left out (timed by frame numbers)."""
    times = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for row in csv.DictReader(fh):
            try:
                key = (text_name(row["video"].strip()), row["type"].strip(), int(float(row["onset"])), int(float(row["offset"])))
                times[key] = (float(row["onset_s"]), float(row["offset_s"]))
            except (KeyError, TypeError, ValueError):
                continue
    return times


def timed(intervals: list[Interval], fps: float,
          times: dict[tuple[str, str, int, int], tuple[float, float]]) -> list[TimedInterval]:
    """Each interval timed by its recorded frame times where known, else by its frame
    numbers at `fps` (the same spans the live .eaf writer gives)."""
    out = []
    for iv in intervals:
        t = times.get((iv.video, iv.type, iv.onset, iv.offset))
        span = span_from_times(t[0], t[1], fps) if t else span_from_frames(iv.onset, iv.offset, fps)
        out.append(TimedInterval(iv, *span))
    return out


def find_media(media: Path | None, video: str, n_videos: int) -> Path | None:
    """--media for `video`: the file itself (one video), or VIDEO.<video ext> in the folder."""
    if media is None:
        return None
    if media.is_file():
        if n_videos > 1:
            raise UserError(f"--media {media}: one file for {n_videos} videos; give a folder")
        return media
    if not media.is_dir():
        raise UserError(f"--media {media}: no such file or folder")
    found = [p for p in sorted(media.iterdir()) if text_name(p.stem) == video and p.suffix.lower() in VIDEO_SUFFIXES]
    return found[0] if found else None


def rate_from_times(intervals: list[Interval],
                    times: dict[tuple[str, str, int, int], tuple[float, float]]) -> float | None:
    """The frame rate predictions.csv's time columns imply (frames per second between an
    interval's onset and offset, median over intervals longer than one frame); None when
    no interval has both."""
    rates = []
    for iv in intervals:
        t = times.get((iv.video, iv.type, iv.onset, iv.offset))
        if t is not None and iv.offset > iv.onset and t[1] > t[0]:
            rates.append((iv.offset - iv.onset) / (t[1] - t[0]))
    return float(statistics.median(rates)) if rates else None


def export(pred: list[Interval], truth: list[Interval] | None, out: Path, *, fps: float | None,
           facts: dict[str, StreamFacts], media: Path | None,
           times: dict[tuple[str, str, int, int], tuple[float, float]] | None = None,
           keep_existing: bool = False, no_metrics: bool = False) -> list[tuple[Path, int, int]]:
    """Write one .eaf per video of `pred` and `truth` and per stream of the run with a
    known frame rate (given, recorded in metrics.json, or implied by predictions.csv's
    time columns); returns (path, predictions, truth) per file. `keep_existing`: a file
    already there is kept (the run wrote it, with truth this export may lack). UserError
    when a video with intervals has no known frame rate (a stream that failed before its
    first frame, with no intervals and no rate, gets no file); `no_metrics` says why."""
    with_intervals = {iv.video for iv in pred} | {iv.video for iv in truth or []}
    videos = sorted(with_intervals | {v for v, f in facts.items() if v and (fps or f.fps)})
    written = []
    owners: dict[str, str] = {}  # one .eaf per video even where eaf_name would give two the same name
    for video in videos:
        p = [iv for iv in pred if iv.video == video]
        rate = fps or facts.get(video, StreamFacts()).fps or rate_from_times(p, times or {})
        if not rate or rate <= 0:
            why = "the run folder has no metrics.json (the run did not finish)" if no_metrics else \
                "metrics.json records none"
            raise UserError(f"{video}: frame rate unknown ({why}); give --fps")
        path = out / unique_eaf_name(video, owners)
        if keep_existing and path.exists():
            continue
        link = find_media(media, video, len(videos)) if media is not None else facts.get(video, StreamFacts()).media
        t = None if truth is None else [iv for iv in truth if iv.video == video]
        doc = EafDocument(video, timed(p, rate, times or {}), None if t is None else timed_from_frames(t, rate), link)
        written.append((write_eaf(path, doc), len(p), len(t or [])))
    return written


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.run is None and args.pred is None:
        raise UserError("give a run folder or --pred FILE")
    if args.run is not None and not args.run.is_dir():
        raise UserError(f"{args.run}: no such run folder")
    if args.fps is not None and not args.fps > 0:
        raise UserError(f"--fps: must be > 0, got {args.fps}")
    pred_path = args.pred or args.run / "predictions.csv"
    truth_path = args.truth
    if truth_path is None and args.run is not None and (args.run / "truth.csv").is_file() \
            and run_was_scored(args.run):
        truth_path = args.run / "truth.csv"
    out = args.out or (args.run / "eaf" if args.run is not None else None)
    if out is None:
        raise UserError("--out: needed with --pred (where to write the .eaf files)")
    pred = read_intervals(pred_path, truth=False)
    truth = read_intervals(truth_path) if truth_path is not None else None
    output_dir(out, "--out")  # a file in the way is one error line, not a traceback
    # A killed run (no metrics.json) wrote .eaf files for the streams it finished, with
    # their truth (its truth.csv is written only at the end): those are kept.
    unfinished = args.run is not None and not (args.run / "metrics.json").is_file()
    times = prediction_times(pred_path)
    for warning in check_inputs(pred, truth, args.fps, pred_path, times):
        print(one_line(f"warning: {warning}"), file=sys.stderr)
    written = export(pred, truth, out, fps=args.fps, facts=run_facts(args.run), media=args.media,
                     times=times, keep_existing=unfinished and args.out is None, no_metrics=unfinished)
    for path, n_pred, n_truth in written:
        extra = f", {n_truth} truth" if truth is not None else ""
        print(one_line(f"wrote {path} ({n_pred} predictions{extra})"))
    if not written and not pred and not truth:  # (a killed run's own files, all kept, are no "nothing")
        print(f"note: nothing to export: {pred_path} holds no predictions"
              f"{', the truth no interval' if truth is not None else ''} and no stream of the run has a known "
              "frame rate", file=sys.stderr)
    return 0


def check_inputs(pred: list[Interval], truth: list[Interval] | None, fps: float | None, pred_path: Path,
                 times: dict[tuple[str, str, int, int], tuple[float, float]]) -> list[str]:
    """Warnings about inputs that would export without error and yet wrongly: truth and
    predictions that name no video alike (each .eaf would hold one of them), and an --fps
    that the predictions' own time columns contradict (onsets timed by the times, lengths
    by --fps)."""
    warnings = []
    t_ids, p_ids = {iv.video for iv in truth or []}, {iv.video for iv in pred}
    if t_ids and p_ids and not t_ids & p_ids:
        warnings.append(f"--truth and {pred_path} share no video id ({', '.join(sorted(p_ids)[:3])} against "
                        f"{', '.join(sorted(t_ids)[:3])}): no .eaf holds both")
    alike = suffix_lookalikes(t_ids, p_ids) if t_ids and p_ids else []
    if alike:
        warnings.append(f"video ids that differ only by a file suffix get separate .eaf files: {', '.join(alike[:3])}")
    implied = rate_from_times(pred, times)
    if fps is not None and implied is not None and abs(implied - fps) > 0.01 * fps:
        warnings.append(f"--fps {fps:g}: {pred_path}'s time columns imply {implied:.3g} fps (onsets are timed by "
                        "them, frame lengths by --fps); give the videos' own rate")
    return warnings


if __name__ == "__main__":
    sys.exit(main())
