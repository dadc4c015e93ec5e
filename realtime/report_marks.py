"""TP / FP / FN marks of one video's intervals, by the project's MEGC rule
(`calibration.megc`: a truth interval is a TP when a prediction of the same video and
type has IoU >= 0.5; FP = max(0, predictions - TP) per video and type)."""

from __future__ import annotations

from dataclasses import dataclass

from calibration.megc import TypeScore, match_matrix, score_type
from realtime.common.types import Interval


@dataclass(frozen=True)
class TypeMarks:
    """One type of one video. `truth_tp[i]`: truth i is matched (TP, else FN).
    `pred_hit[j]`: prediction j matches some truth (else it is a false alarm).
    `score`: the MEGC counts of this video and type, as in metrics.json summed over
    videos. `unmatched` (predictions matching no truth) equals `score.fp` except where
    several predictions match one truth (MEGC counts the extra ones as FP) or one
    prediction matches several truths (MEGC's FP floor at 0)."""

    truth: list[Interval]
    pred: list[Interval]
    truth_tp: list[bool]
    pred_hit: list[bool]
    score: TypeScore

    @property
    def unmatched(self) -> int:
        return sum(not h for h in self.pred_hit)


def mark_type(truth: list[Interval], pred: list[Interval], type: str) -> TypeMarks:
    """Marks of the intervals of `type` in `truth` and `pred` (one video's intervals)."""
    t = [iv for iv in truth if iv.type == type]
    p = [iv for iv in pred if iv.type == type]
    matches = match_matrix(t, p)
    return TypeMarks(t, p, [bool(x) for x in matches.any(axis=1)], [bool(x) for x in matches.any(axis=0)],
                     score_type(t, p, type))  # type: ignore[arg-type]
