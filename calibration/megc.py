"""MEGC spotting evaluation (the MEGC2020/2021 protocol, as in LGNMNet.md).

Rule, checked against the MEGC2020 baseline figures (exact on CAS(ME)^2 and SAMM-LV):
a prediction matches a truth interval of the same video and type when their IoU >= 0.5,
frames inclusive (|A∩B| / |A∪B| counted in frames). TP = truth intervals matched by at
least one prediction; one prediction MAY count for several truth intervals (on CAS MaE
104 predictions match 109 truths; a one-to-one matching would not give the published
109). FP = predictions - TP, FN = truth - TP, F1 = 2TP / (2TP + FP + FN) (0 when the
denominator is 0). Per type, and overall with counts summed over types and videos.
Precision = TP / (TP + FP) and recall = TP / (TP + FN), 0 when empty.

Overlapping truths: because one prediction may match several truths, MEGC's
`predictions - TP` goes negative where a video has two overlapping truth intervals of a
type and one prediction matching both (truths [10,20] and [12,22], prediction [11,21]:
TP 2, 1 prediction, FP -1, precision 2.0). The real workbooks hold such pairs (4 in
CAS(ME)^2, 5 in SAMM-LV). So FP is counted per video and type as max(0, predictions -
TP): equal to MEGC's count wherever that is not negative (every group of the MEGC2020
baseline; the published figures are reproduced exactly, tested), and 0 where one
prediction covered several overlapping truths. Every count is then >= 0 and precision,
recall and F1 lie in [0, 1].
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.table import Table

from realtime.common.types import EXPR_TYPES, ExprType, Interval

IOU_MATCH = 0.5


def frame_iou(a: Interval, b: Interval) -> float:
    """IoU of two inclusive frame intervals, counted in frames."""
    inter = min(a.offset, b.offset) - max(a.onset, b.onset) + 1
    if inter <= 0:
        return 0.0
    return inter / (a.length + b.length - inter)


def match_matrix(truth: list[Interval], pred: list[Interval], iou: float = IOU_MATCH) -> np.ndarray:
    """(len(truth), len(pred)) bool array: entry [i, j] is True when prediction j matches
    truth i (IoU >= `iou`, frames inclusive; intervals of one video and type)."""
    if not truth or not pred:
        return np.zeros((len(truth), len(pred)), dtype=bool)
    t_on = np.array([t.onset for t in truth], dtype=np.int64)[:, None]
    t_off = np.array([t.offset for t in truth], dtype=np.int64)[:, None]
    p_on = np.array([p.onset for p in pred], dtype=np.int64)[None, :]
    p_off = np.array([p.offset for p in pred], dtype=np.int64)[None, :]
    inter = np.clip(np.minimum(t_off, p_off) - np.maximum(t_on, p_on) + 1, 0, None)
    union = (t_off - t_on + 1) + (p_off - p_on + 1) - inter
    return inter / union >= iou


def count_matched_truth(truth: list[Interval], pred: list[Interval], iou: float = IOU_MATCH) -> int:
    """Number of truth intervals that some prediction overlaps with IoU >= `iou`
    (all intervals of one video and type)."""
    return int(np.count_nonzero(match_matrix(truth, pred, iou).any(axis=1)))


@dataclass(frozen=True)
class TypeScore:
    """Counts and rates for one expression type (or overall)."""

    tp: int
    n_pred: int
    n_truth: int
    fp: int  # max(0, predictions - TP) per video, summed (module docstring)

    def __post_init__(self) -> None:
        if min(self.tp, self.n_pred, self.n_truth, self.fp) < 0 or self.tp > self.n_truth:
            raise ValueError(f"invalid MEGC counts: {self}")

    @property
    def fn(self) -> int:
        return self.n_truth - self.tp

    @property
    def precision(self) -> float:
        denom = self.tp + self.fp
        return self.tp / denom if denom > 0 else 0.0

    @property
    def recall(self) -> float:
        denom = self.tp + self.fn
        return self.tp / denom if denom > 0 else 0.0

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denom if denom > 0 else 0.0

    def to_json(self) -> dict:
        return {
            "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "n_pred": self.n_pred, "n_truth": self.n_truth,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
        }

    def __add__(self, other: TypeScore) -> TypeScore:
        return TypeScore(self.tp + other.tp, self.n_pred + other.n_pred, self.n_truth + other.n_truth,
                         self.fp + other.fp)


@dataclass(frozen=True)
class MegcResult:
    """Per-type scores (`"MaE"`, `"ME"`) and their sum."""

    per_type: dict[str, TypeScore]

    @property
    def overall(self) -> TypeScore:
        total = TypeScore(0, 0, 0, 0)
        for score in self.per_type.values():
            total = total + score
        return total

    def to_json(self) -> dict:
        out = {t: self.per_type[t].to_json() for t in ("MaE", "ME")}
        out["overall"] = self.overall.to_json()
        return out


def _group(intervals: Iterable[Interval]) -> dict[tuple[str, str], list[Interval]]:
    groups: dict[tuple[str, str], list[Interval]] = defaultdict(list)
    for iv in intervals:
        groups[(iv.video, iv.type)].append(iv)
    return groups


def score_type(truth: list[Interval], pred: list[Interval], type: ExprType) -> TypeScore:
    """MEGC counts of one type over all videos (union of the videos of both lists)."""
    t_groups = _group(iv for iv in truth if iv.type == type)
    p_groups = _group(iv for iv in pred if iv.type == type)
    tp = fp = 0
    for key in set(t_groups) | set(p_groups):
        matched = count_matched_truth(t_groups.get(key, []), p_groups.get(key, []))
        tp += matched
        fp += max(0, len(p_groups.get(key, [])) - matched)
    n_pred = sum(len(v) for v in p_groups.values())
    n_truth = sum(len(v) for v in t_groups.values())
    return TypeScore(tp=tp, n_pred=n_pred, n_truth=n_truth, fp=fp)


def evaluate(truth: list[Interval], pred: list[Interval]) -> MegcResult:
    """MEGC evaluation of predictions against truth, per type and overall."""
    return MegcResult({t: score_type(truth, pred, t) for t in sorted(EXPR_TYPES, reverse=True)})


@dataclass(frozen=True)
class ScoredTruth:
    """The truth a partial run is scored on, and what was left out (and why)."""

    truth: list[Interval]
    not_replayed: list[str]  # truth videos that were not replayed
    beyond: list[Interval]  # truth intervals ending after the last frame read of their video
    # truth intervals starting before the first frame read of their video (a clip cut from
    # a longer recording that kept its frame numbers, a folder numbered from 1001)
    before: list[Interval] = field(default_factory=list)


def scored_truth(truth: Iterable[Interval], last_frames: dict[str, int],
                 first_frames: dict[str, int] | None = None) -> ScoredTruth:
    """Restrict truth to what a run replayed: videos in `last_frames` (video id -> number
    of the last frame read) and intervals that end by that frame and, where `first_frames`
    gives a video's first frame read, start at or after it. A run stopped early
    (--max-frames, Ctrl-C, a truncated file, a failed stream) or given a clip cut from a
    longer recording is then scored on what it saw, and `lgnm-eval` on the kept truth
    gives the same figures."""
    kept: list[Interval] = []
    beyond: list[Interval] = []
    before: list[Interval] = []
    missing: set[str] = set()
    for iv in truth:
        last = last_frames.get(iv.video)
        if last is None:
            missing.add(iv.video)
        elif iv.offset > last:
            beyond.append(iv)
        elif first_frames is not None and iv.onset < first_frames.get(iv.video, 1):
            before.append(iv)
        else:
            kept.append(iv)
    return ScoredTruth(kept, sorted(missing), beyond, before)


def render_table(result: MegcResult, title: str = "MEGC spotting",
                 types: Sequence[str] = ("MaE", "ME")) -> Table:
    """A rich table: one row per type of `types` (the types spotted: a type left out by
    `--types` would show as a row of zeros) and one for overall."""
    table = Table(title=title)
    for col in ("type", "TP", "FP", "FN", "pred", "truth", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col == "type" else "right")
    rows = [(t, result.per_type[t]) for t in ("MaE", "ME") if t in types] + [("overall", result.overall)]
    for name, s in rows:
        table.add_row(name, str(s.tp), str(s.fp), str(s.fn), str(s.n_pred), str(s.n_truth),
                      f"{s.precision:.4f}", f"{s.recall:.4f}", f"{s.f1:.4f}")
    return table
