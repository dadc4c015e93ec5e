"""What `lgnm-report` reads: the files `lgnm-live --out RUN_DIR` wrote, as typed records.

RUN_DIR holds `metrics.json`, `scores.csv`, `predictions.csv` and, when the run had
truth, `truth.csv` (the truth it was scored on). A run had truth exactly when
`metrics.json` has a MEGC table (`megc` not null); a `truth.csv` left over from an
earlier run into the same folder is then not read. Every file is read by column or key
name, so columns added later (e.g. seconds in predictions.csv) do not break the reader.
A missing or garbled file raises `UserError` naming the file (and line, where there is
one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from realtime.common.errors import UserError
from realtime.common.text import text_name
from realtime.common.types import EXPR_TYPES, Interval
from realtime.intervals_csv import read_intervals
from realtime.sinks import SCORES_COLUMNS

RUN_FILES = ("metrics.json", "scores.csv", "predictions.csv")


@dataclass(frozen=True)
class TypeTrace:
    """The rows of one expression type of one video in scores.csv, sorted by frame.

    `frame` (n,) int64 is the score index i: the first frame of the pair (i, i + K).
    `raw`, `smoothed`, `threshold` (n,) float64 are in [0, 1] (smoothing may overshoot
    slightly). `chain_breaks` holds the frames with `chain_break` 1: the first scored
    frame after a break."""

    type: str
    frame: np.ndarray
    raw: np.ndarray
    smoothed: np.ndarray
    threshold: np.ndarray
    chain_breaks: np.ndarray


@dataclass(frozen=True)
class VideoRun:
    """One stream of the run: its entry in metrics.json, its scores and intervals.

    `fps` is the stream's frame rate (metrics.json `source_fps`), None for a run written
    before that field existed; frame n (1-based) is then at (n - 1) / fps seconds.
    `k` maps each type to the K it ran with, `shift` to the frames from a score index to
    the frames of the intervals it produces (metrics.json `models`; K//2 where a run
    written before that field does not say). `no_face` holds the frames (sorted) without
    a face. `truth` is None when the run had no truth, else this video's scored truth."""

    name: str
    status: str
    error: str | None
    frames: int
    last_frame: int
    fps: float | None
    k: dict[str, int]
    shift: dict[str, int]
    notices: list[str]
    traces: dict[str, TypeTrace]
    no_face: np.ndarray
    predictions: list[Interval]
    truth: list[Interval] | None
    # the first frame read (metrics.json `first_frame`; 1 for runs written before it): a
    # clip cut from a longer recording keeps its numbers, and its figure starts there
    first_frame: int = 1

    @property
    def failed(self) -> bool:
        return self.status != "ok"


@dataclass(frozen=True)
class RunFiles:
    """A whole run folder: its streams in run order and the run's summary."""

    folder: Path
    videos: list[VideoRun]
    megc: dict[str, dict[str, Any]] | None  # metrics.json `megc`: {"MaE", "ME", "overall"}
    notes: list[str]
    performance: dict[str, Any]

    @property
    def has_truth(self) -> bool:
        return self.megc is not None


def read_run(folder: Path) -> RunFiles:
    """Read a run folder written by `lgnm-live --out`; UserError on anything missing or
    garbled, naming the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder (give the --out folder of lgnm-live)")
    for name in RUN_FILES:
        if not (folder / name).is_file():
            raise UserError(f"{folder / name}: no such file (lgnm-live --out writes it; is {folder} a run folder?)")
    metrics = read_metrics(folder / "metrics.json")
    runs = metrics["performance"]["runs"]
    for run in runs:  # video ids in NFC, as read_intervals gives them (a run written on macOS before)
        run["stream"] = text_name(str(run["stream"]))
    names = [r["stream"] for r in runs]
    scores = read_scores(folder / "scores.csv")
    scores["video"] = scores["video"].map(lambda v: text_name(str(v)))
    predictions = read_intervals(folder / "predictions.csv", truth=False)
    truth = read_intervals(folder / "truth.csv") if metrics["megc"] is not None else None
    named: tuple[tuple[str, set[str]], ...] = (("scores.csv", set(scores["video"])),
                                               ("predictions.csv", {iv.video for iv in predictions}),
                                               ("truth.csv", {iv.video for iv in truth or []}))
    for path, video_names in named:
        unknown = sorted(video_names - set(names))
        if unknown:
            raise UserError(f"{folder / path}: video {unknown[0]!r} has no run in {folder / 'metrics.json'} "
                            "(files from different runs?)")
    try:
        videos = [_video(run, scores[scores["video"] == run["stream"]], predictions, truth) for run in runs]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UserError(f"{folder / 'metrics.json'}: a run entry is malformed ({type(exc).__name__}: {exc})") from None
    return RunFiles(folder, videos, metrics["megc"], list(metrics.get("notes") or []), metrics["performance"])


def read_metrics(path: Path) -> dict[str, Any]:
    """metrics.json, checked for what the report uses (`megc`, `performance.runs[]` with
    `stream`, `status`); UserError naming the file otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or "megc" not in doc or not isinstance(doc.get("performance"), dict):
        raise UserError(f"{path}: not an lgnm-live metrics.json (needs 'megc' and 'performance')")
    megc = doc["megc"]
    if megc is not None and not (isinstance(megc, dict) and all(isinstance(megc.get(k), dict)
                                                                for k in ("MaE", "ME", "overall"))):
        raise UserError(f"{path}: 'megc' must be null or hold MaE, ME and overall")
    runs = doc["performance"].get("runs")
    if not isinstance(runs, list):
        raise UserError(f"{path}: 'performance.runs' must be a list")
    for i, run in enumerate(runs):
        if not isinstance(run, dict) or not isinstance(run.get("stream"), str) \
                or run.get("status") not in ("ok", "failed"):
            raise UserError(f"{path}: performance.runs[{i}] needs 'stream' and 'status' (ok or failed)")
    return doc


def read_scores(path: Path) -> pd.DataFrame:
    """scores.csv as a frame with columns video, type (str), frame, face, chain_break
    (int64) and raw, smoothed, threshold (float64, NaN where empty); UserError naming the
    file and line of the first bad value."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise UserError(f"{path}: not a readable CSV ({str(exc).strip().splitlines()[0]})") from None
    table.columns = [str(c).strip() for c in table.columns]
    missing = [c for c in SCORES_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}:1: missing column(s) {', '.join(missing)}")
    bad_type = ~table["type"].isin(EXPR_TYPES)
    if bad_type.any():
        raise UserError(f"{path}:{_line(bad_type)}: type {table['type'][bad_type].iloc[0]!r} must be ME or MaE")
    out = table[["video", "type"]].copy()
    for column in ("frame", "face", "chain_break"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (values != values.round())
        if column == "frame":
            bad |= values < 1
        if bad.any():
            raise UserError(f"{path}:{_line(bad)}: {column} {table[column][bad].iloc[0]!r} is not "
                            f"{'a frame number' if column == 'frame' else '0 or 1'}")
        out[column] = values.astype(np.int64)
    for column in ("raw", "smoothed", "threshold"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & (table[column].str.strip() != "")
        if bad.any():
            raise UserError(f"{path}:{_line(bad)}: {column} {table[column][bad].iloc[0]!r} is not a number")
        out[column] = values.astype(np.float64)
    return out


def _line(mask: pd.Series) -> int:
    """CSV line of the first True row (line 1 is the header)."""
    return int(np.flatnonzero(mask.to_numpy())[0]) + 2


def _video(run: dict[str, Any], rows: pd.DataFrame, predictions: list[Interval],
           truth: list[Interval] | None) -> VideoRun:
    name = run["stream"]
    models = run.get("models") or {}
    k = {t: int(m["k"]) for t, m in models.items() if isinstance(m, dict) and "k" in m}
    shift = {t: int(models[t].get("shift", k[t] // 2)) for t in k}
    fps = run.get("source_fps")
    traces: dict[str, TypeTrace] = {}
    scored = rows[rows["face"] == 1]
    for t in EXPR_TYPES:
        part = scored[scored["type"] == t].sort_values("frame")
        if len(part):
            traces[t] = TypeTrace(t, part["frame"].to_numpy(), part["raw"].to_numpy(), part["smoothed"].to_numpy(),
                                  part["threshold"].to_numpy(), part["frame"][part["chain_break"] == 1].to_numpy())
    return VideoRun(
        name=name, status=run["status"], error=run.get("error"),
        frames=int(run.get("frames") or 0), last_frame=int(run.get("last_frame") or 0),
        first_frame=int(run.get("first_frame") or 1),
        fps=float(fps) if isinstance(fps, (int, float)) and fps > 0 else None,
        k=k, shift=shift, notices=[str(n) for n in run.get("notices") or []], traces=traces,
        no_face=np.unique(rows["frame"][rows["face"] == 0].to_numpy()),
        predictions=[iv for iv in predictions if iv.video == name],
        truth=None if truth is None else [iv for iv in truth if iv.video == name],
    )
