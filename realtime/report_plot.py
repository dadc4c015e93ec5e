"""The figure of one video of a run (`lgnm-report`): per expression type, the raw and
smoothed scores and the threshold in force against time, the truth and predicted
intervals with their TP / FP / FN marks, chain breaks and frames without a face.

Frames and time: frame n (1-based) is drawn at (n - 1) / fps seconds, fps being the
stream's frame rate (metrics.json `source_fps`), and an inclusive interval [a, b] spans
(a - 1) / fps to b / fps, so a one-frame interval has the width of one frame. Without a
known fps the x axis is in frames. A video file's frames carry their own timestamps:
for a variable-rate file (n - 1) / fps is its nominal time; the frame numbers on the top
axis are exact. Scores: the score of frame i belongs to the pair (i, i + K), whose
motion is centred at i + K/2, and the spotter reports the intervals it finds at the
score index + K//2 (README, Method notes; metrics.json `models` holds this shift). So
each score is drawn at frame i + shift (K//2 of its type's K): a peak of the curve then
sits over the interval it produced and over the expression in the video, which is what
a reader compares. Chain breaks and frames without a face are events of the video
itself and are drawn at their own frames.

Drawn with matplotlib's object API on an Agg canvas (no pyplot: no global backend
state, no display needed).
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from matplotlib import font_manager
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.transforms import blended_transform_factory

from realtime.common.types import Interval
from realtime.report_data import VideoRun
from realtime.report_marks import TypeMarks

TYPE_ORDER = ("MaE", "ME")  # the MEGC table's order
# Fonts tried after matplotlib's own for a video id in another script (a Japanese or
# Chinese file name), where installed; without them those glyphs are drawn as boxes.
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans JP", "WenQuanYi Zen Hei",
                  "Droid Sans Fallback", "Noto Sans", "FreeSans")
COLOURS = {"raw": "#9ecae1", "smoothed": "#08519c", "threshold": "#d62728", "tp": "#2ca02c",
           "fn": "#d62728", "fp": "#ff7f0e", "pred": "#1f77b4", "no_face": "#bdbdbd", "break": "#000000"}
TRUTH_LANE = (-0.28, 0.08)  # (y, height) below the score range 0..1
PRED_LANE = (-0.17, 0.08)


class FrameAxis:
    """Maps 1-based frame numbers to the x axis: seconds when fps is known, else frames."""

    def __init__(self, fps: float | None) -> None:
        self.fps = fps
        self.label = "time (s)" if fps else "frame"

    def x(self, frame: np.ndarray | float) -> np.ndarray:
        """x of the start of frame `frame` (an interval [a, b] ends at x(b + 1))."""
        return (np.asarray(frame, dtype=np.float64) - 1.0) / self.fps if self.fps else np.asarray(frame, np.float64)


def plotted_types(video: VideoRun) -> list[str]:
    """The types the video ran with, scored or with intervals, in TYPE_ORDER."""
    intervals = video.predictions + (video.truth or [])
    return [t for t in TYPE_ORDER if t in video.k or t in video.traces or any(iv.type == t for iv in intervals)]


def video_png(video: VideoRun, marks: dict[str, TypeMarks] | None, dpi: int = 110) -> bytes | None:
    """PNG bytes of `video_figure`, or None when there is nothing to draw."""
    fig = video_figure(video, marks)
    if fig is None:
        return None
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # a glyph no installed font has is drawn as a box: that is said here, not by
        # matplotlib's warning per glyph (the id is in the file name and the page anyway)
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from", category=UserWarning)
        fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def title_fonts() -> list[str]:
    """matplotlib's default sans-serif font, then the FALLBACK_FONTS installed here
    (a family that is not installed would make matplotlib log a warning on each use)."""
    have = {f.name for f in font_manager.fontManager.ttflist}
    return ["DejaVu Sans", *[name for name in FALLBACK_FONTS if name in have]]


ROW_SECONDS = 40.0  # a row of the figure shows at most this much video ...
MAX_ROWS = 12  # ... unless that would make more rows than this (then rows get longer)


def row_spans(last: int, fps: float | None, first: int = 1) -> list[tuple[int, int]]:
    """Inclusive frame ranges of the figure's rows, frames `first`..`last`: a long video
    is drawn as several rows of ROW_SECONDS each (at most MAX_ROWS), so a 0.5 s
    micro-expression stays several pixels wide instead of shrinking to less than one in a
    single row."""
    rate = fps or 30.0
    first = min(max(first, 1), last)
    span = last - first + 1
    per_row = max(ROW_SECONDS * rate, span / MAX_ROWS)
    n = max(1, int(np.ceil(span / per_row)))
    bounds = np.linspace(first - 1, last, n + 1).round().astype(int)
    return [(int(a) + 1, int(b)) for a, b in itertools.pairwise(bounds)]


def _frame_axis(fps: float) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """seconds -> frame number and back, for the frame axis on top."""
    return (lambda s: s * fps + 1.0, lambda f: (f - 1.0) / fps)


def video_figure(video: VideoRun, marks: dict[str, TypeMarks] | None) -> Figure | None:
    """The video's figure, or None when it has nothing to draw (a stream that failed
    before its first frame). One axis per type in `plotted_types` (in that order) for each
    row of `row_spans`, row by row; every axis holds the whole video's data and shows its
    row's frames. `marks` per type, None when the run had no truth."""
    types = plotted_types(video)
    last = max([video.last_frame] + [iv.offset for iv in video.predictions + (video.truth or [])])
    if not types or last < 1:
        return None
    axis = FrameAxis(video.fps)
    shown = [iv.onset for iv in video.predictions + (video.truth or [])]
    rows = row_spans(last, video.fps, min([video.first_frame, *shown]))
    seconds = (rows[0][1] - rows[0][0] + 1) / (video.fps or 30.0)
    fig = Figure(figsize=(float(np.clip(8 + seconds / 5, 10, 28)), 0.9 + 2.6 * len(types) * len(rows)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(types) * len(rows), 1, squeeze=False)[:, 0]
    for r, (first, end) in enumerate(rows):
        for j, t in enumerate(types):
            ax = axes[r * len(types) + j]
            _draw_type(ax, video, t, marks.get(t) if marks is not None else None, axis,
                       part=None if len(rows) == 1 else (r + 1, len(rows)))
            ax.set_xlim(float(axis.x(first)), float(axis.x(end + 1)))
            if j == len(types) - 1:
                ax.set_xlabel(axis.label + ("" if video.fps else "  (stream fps unknown: frames)"))
            if j == 0 and video.fps:
                top = ax.secondary_xaxis("top", functions=_frame_axis(video.fps))
                top.set_xlabel("frame", fontsize=9, labelpad=1)
                ax.set_title(ax.get_title(loc="left"), loc="left", fontsize=10, pad=26)  # above the frame axis
    fig.suptitle(video.name + ("  (stream failed)" if video.failed else ""), fontsize=12, fontfamily=title_fonts())
    fig.legend(handles=_legend(marks is not None), loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def _draw_type(ax: Axes, video: VideoRun, t: str, marks: TypeMarks | None, axis: FrameAxis,
               part: tuple[int, int] | None = None) -> None:
    k = video.k.get(t)
    shift = video.shift.get(t, 0)
    _no_face(ax, video.no_face, axis)
    truth = marks.truth if marks else []
    for iv, tp in zip(truth, marks.truth_tp if marks else [], strict=True):
        ax.axvspan(float(axis.x(iv.onset)), float(axis.x(iv.offset + 1)), color=COLOURS["tp" if tp else "fn"], alpha=0.08, lw=0)
    trace = video.traces.get(t)
    if trace is not None:
        x = axis.x(trace.frame + shift)
        ax.plot(*_gapped(x, trace.frame, trace.raw), color=COLOURS["raw"], lw=0.8, gid="raw")
        ax.plot(*_gapped(x, trace.frame, trace.smoothed), color=COLOURS["smoothed"], lw=1.6, gid="smoothed")
        ax.plot(*_gapped(x, trace.frame, trace.threshold), color=COLOURS["threshold"], lw=1.0, ls="--",
                drawstyle="steps-mid", gid="threshold")
        for frame in trace.chain_breaks:
            ax.axvline(float(axis.x(frame)), color=COLOURS["break"], lw=0.9, ls=":", gid="chain_break")
    preds = marks.pred if marks else [iv for iv in video.predictions if iv.type == t]
    pred_colours = [COLOURS["tp" if hit else "fp"] for hit in marks.pred_hit] if marks else [COLOURS["pred"]] * len(preds)
    _lane(ax, preds, pred_colours, PRED_LANE, axis, "pred")
    if marks:
        _lane(ax, truth, [COLOURS["tp" if tp else "fn"] for tp in marks.truth_tp], TRUTH_LANE, axis, "truth")
    lanes = blended_transform_factory(ax.transAxes, ax.transData)
    for (y, h), label in ((PRED_LANE, "pred"), (TRUTH_LANE, "truth" if marks else "")):
        ax.text(-0.004, y + h / 2, label, transform=lanes, ha="right", va="center", fontsize=8)
    ax.set_ylim(TRUTH_LANE[0] - 0.03, 1.05)
    ax.set_yticks([0.0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel(f"{t} score")
    title = f"{t}" + (f"  (K = {k}; the score of frame i is drawn at i + {shift})" if k else "")
    if part is not None:
        title += f"   row {part[0]} of {part[1]}"
    if marks:
        s = marks.score
        title += f"   TP {s.tp}  FP {s.fp}  FN {s.fn}"
    elif trace is None:
        title += "   no scores"
    ax.set_title(title, loc="left", fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _gapped(x: np.ndarray, frames: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x, y with a NaN inserted wherever frames skip (a break, the unscored last K frames
    before it), so the line is not drawn across frames that have no score."""
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    return np.insert(x, cuts, np.nan), np.insert(y.astype(np.float64), cuts, np.nan)


def _no_face(ax: Axes, frames: np.ndarray, axis: FrameAxis) -> None:
    if not len(frames):
        return
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    for run in np.split(frames, cuts):
        ax.axvspan(float(axis.x(run[0])), float(axis.x(run[-1] + 1)), color=COLOURS["no_face"], alpha=0.35, lw=0,
                   gid="no_face")


def _lane(ax: Axes, intervals: Sequence[Interval], colours: Sequence[str], lane: tuple[float, float],
          axis: FrameAxis, gid: str) -> None:
    if intervals:
        spans = [(float(axis.x(iv.onset)), float(axis.x(iv.offset + 1) - axis.x(iv.onset))) for iv in intervals]
        ax.broken_barh(spans, lane, facecolors=list(colours), edgecolor="black", linewidth=0.4, gid=gid)


def _legend(with_truth: bool) -> list:
    handles: list = [Line2D([], [], color=COLOURS["raw"], lw=0.8, label="raw"),
                     Line2D([], [], color=COLOURS["smoothed"], lw=1.6, label="smoothed"),
                     Line2D([], [], color=COLOURS["threshold"], lw=1.0, ls="--", label="threshold")]
    if with_truth:
        handles += [Patch(color=COLOURS["tp"], label="TP (matched, IoU >= 0.5)"),
                    Patch(color=COLOURS["fn"], label="FN (truth missed)"),
                    Patch(color=COLOURS["fp"], label="FP (prediction matching no truth)")]
    else:
        handles.append(Patch(color=COLOURS["pred"], label="prediction (no truth)"))
    handles += [Patch(color=COLOURS["no_face"], alpha=0.35, label="no face"),
                Line2D([], [], color=COLOURS["break"], lw=0.9, ls=":", label="chain break")]
    return handles
