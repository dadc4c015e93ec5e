"""Expressions inside real landmark tracks, as truth of the videos those tracks drive.

A real track (real_motion.py) carries talking, blinks and head motion, and also real
expressions. Without labels a training video driven by it teaches all of that as
non-expression; with labels (a truth CSV whose `video` column names the track, e.g.
`tools/real_motion_labels/truth.csv`) the labelled expressions become truth intervals of
the video: video frame i shows track frame pingpong(i - 1 + start, n) (RealMotion), so an
interval is each run of video frames whose track time lies inside a labelled interval,
its apex the frame nearest the label's apex in time. A track played backwards through
an expression still shows one expression (onset, apex, return), so a run spanning a turn
of the ping-pong stays one interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.common.types import ExprType, Interval
from realtime.intervals_csv import read_intervals
from realtime.synthesis.real_motion import RealMotion, pingpong

LABELS_FPS = 30.0  # the frame rate of the labels' frame numbers (each track played once)


@dataclass(frozen=True)
class TimedLabel:
    """One labelled expression of a track, in seconds from its first frame."""

    type: ExprType
    onset_s: float
    apex_s: float
    offset_s: float


def load_track_labels(path: str | Path, fps: float = LABELS_FPS) -> dict[str, list[TimedLabel]]:
    """Track name -> its labelled expressions, from a truth CSV whose frames (1-based) are
    frames of the track played once at `fps`: frame f is at (f - 1) / fps s. Raises
    UserError naming the file when it cannot be read."""
    out: dict[str, list[TimedLabel]] = {}
    for iv in read_intervals(path):
        apex = iv.apex if iv.apex is not None else (iv.onset + iv.offset) // 2
        out.setdefault(iv.video, []).append(
            TimedLabel(iv.type, (iv.onset - 1) / fps, (apex - 1) / fps, (iv.offset - 1) / fps))
    return out


def expression_truth(motion: RealMotion, labels: Mapping[str, list[TimedLabel]], fps: float, n_frames: int,
                     video: str) -> list[Interval]:
    """Truth intervals (frames 1..n_frames of `video` at `fps`) of the labelled
    expressions that `motion` shows; [] when its track has no labels. The track is taken
    at the video's rate (`motion.track.fps == fps`, as `generate_video` loads it)."""
    found = labels.get(motion.track.name, [])
    if not found:
        return []
    n = motion.track.n_frames
    t = np.array([pingpong(i + motion.start, n) for i in range(n_frames)]) / fps  # track time of each frame
    out: list[Interval] = []
    for label in found:
        inside = (t >= label.onset_s - 0.5 / fps) & (t <= label.offset_s + 0.5 / fps)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(np.int8), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):  # runs [start, stop) of frames
            if stop - start < 2:
                continue  # a frame at a clip's edge is no expression to spot
            apex = start + int(np.argmin(np.abs(t[start:stop] - label.apex_s)))
            out.append(Interval(video, label.type, int(start) + 1, int(stop), apex=apex + 1))
    return sorted(out, key=lambda iv: (iv.onset, iv.type))
