"""K (the frame offset of a type) and intersection-rate labels (IRL).

K is half the mean annotated expression length of a type (LGNMNet.md, "K: the frame
offset"); a frame i is then scored on the pair (i, i + K).

IRL counting convention (frames inclusive everywhere):
- the window of frame i is [i, i + K], i.e. the K + 1 frames the pair (i, i + K) spans;
- |[i, i + K] ∩ G| counts the frames both contain (0 when they are disjoint);
- |G| = offset - onset + 1;
- the denominator is min(K, |G|) exactly as the method states, so a window that covers
  all of a long G scores (K + 1) / K > 1; only the comparison "> 0.5" matters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from realtime.common.errors import UserError
from realtime.common.types import Interval


def _single_type(intervals: Sequence[Interval]) -> None:
    """K and IRL are defined per expression type; mixing types is a caller bug."""
    types = {iv.type for iv in intervals}
    if len(types) > 1:
        raise ValueError(f"intervals mix expression types {sorted(types)}; pass one type")


def k_from_intervals(intervals: Sequence[Interval]) -> int:
    """K = int((mean(offset - onset) + 1) / 2) over one type's annotated intervals."""
    if not intervals:
        raise ValueError("cannot derive K from no intervals")
    _single_type(intervals)
    spans = np.array([iv.offset - iv.onset for iv in intervals], dtype=np.float64)
    return int((spans.mean() + 1.0) / 2.0)


def k_from_seconds(seconds: float, fps: float) -> int:
    """K for a camera or file with no annotations: the expected half-length in seconds
    times the frame rate, rounded, at least 1 (0.2 s at 30 fps gives CAS's ME K of 6)."""
    if not seconds > 0:
        raise UserError(f"K seconds: must be > 0, got {seconds}")
    if not fps > 0:
        raise UserError(f"fps: must be > 0, got {fps}")
    return max(1, int(round(seconds * fps)))


def irl_labels(n_frames: int, k: int, truth: Sequence[Interval], first_frame: int = 1) -> np.ndarray:
    """Boolean IRL label of each frame first_frame .. first_frame + n_frames - 1.

    `truth` holds one type's intervals of one video. Every frame gets a label, including
    the last K frames that have no partner i + K inside the video; callers that only
    score frames with a pair slice `[: n_frames - k]`.
    """
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    if k < 1:
        raise ValueError(f"K must be >= 1, got {k}")
    _single_type(truth)
    videos = {iv.video for iv in truth}
    if len(videos) > 1:
        raise ValueError(f"truth mixes videos {sorted(videos)}; pass one video")
    if not truth:
        return np.zeros(n_frames, dtype=bool)
    starts = np.arange(first_frame, first_frame + n_frames, dtype=np.int64)[:, None]
    onsets = np.array([iv.onset for iv in truth], dtype=np.int64)[None, :]
    offsets = np.array([iv.offset for iv in truth], dtype=np.int64)[None, :]
    # (frames, intervals) matrix of inclusive overlap counts between [i, i+K] and G.
    overlap = np.minimum(starts + k, offsets) - np.maximum(starts, onsets) + 1
    overlap = np.clip(overlap, 0, None)
    denominator = np.minimum(k, offsets - onsets + 1)
    return np.any(overlap / denominator > 0.5, axis=1)
