"""Cross-type rule: drop an ME interval that overlaps a spotted MaE interval.

Why. The ME model sees one K_ME-offset pair (0.2 s at 30 fps). The first and last
K_ME frames of a macro-expression's onset or offset look like a brief, small motion, so
the ME score also peaks there, and under MEGC every such ME interval is a false positive.
The MaE model sees a longer pair and spots the whole macro-expression, which settles the
question. On held-out synthetic videos, 12 of 12 ME false positives at 30 fps and
16 of 18 at 200 fps lay inside a macro-expression.

Why it is fitted, not fixed. Real data disagree between datasets: in the MEGC2020
ground truth, 2 of 57 CAS(ME)^2 MEs overlap a MaE, but 50 of 159 SAMM-LV MEs do. So the
rule is a post-processing parameter of the ME weights (`PostParams.drop_inside_mae`),
chosen on labelled videos by `calibration.search.grid_search_pair` (`lgnm-calibrate`).
It is off for weights that do not say otherwise, which is the authors' per-type
post-processing.

Under an adaptive MaE threshold (`PostParams.adaptive`: the calibrated one lowered where
a stream's scores run low) only a MaE interval whose highest smoothed score reaches the
calibrated threshold drops an ME (`settles`). The rule was decided with calibrated
thresholds; a MaE interval found only below that scale (early in a segment, before the
stream's scores have reached it) would otherwise remove a micro-expression the ME network
found at its own calibrated threshold (twentieth session: 2 of 13 correct ME intervals on
the held-out videos). With fixed thresholds every interval reaches its threshold, so
nothing changes there.

Offline this is `drop_inside_mae` on whole predictions; live, `realtime.cross_type_gate`
holds each ME interval until the MaE spotter can no longer produce an interval that
overlaps it, then applies the same test, so both give the same intervals.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping, Sequence

from calibration.postprocess import PostParams
from realtime.common.types import Interval


def overlaps_any(iv: Interval, others_sorted: Sequence[Interval], onsets: Sequence[int]) -> bool:
    """Whether `iv` shares a frame with one of `others_sorted` (sorted by onset, with
    their onsets in `onsets`). Intervals are inclusive at both ends."""
    # Only intervals starting at or before iv.offset can overlap it; of those, the one
    # reaching furthest right decides, so scan back from the cut (MaE lists are short).
    for other in reversed(others_sorted[: bisect.bisect_right(onsets, iv.offset)]):
        if other.offset >= iv.onset:
            return True
    return False


def settles(iv: Interval, min_peak: float | None) -> bool:
    """Whether a MaE interval may drop the ME intervals it overlaps: always without
    `min_peak`; with it, only when its highest smoothed score (`Interval.peak`, unknown:
    yes) reaches `min_peak`. Under an adaptive MaE threshold `min_peak` is the calibrated
    one: a MaE interval found only below it has not settled anything at the scale the
    rule was decided at, so an ME found at its own calibrated threshold stands."""
    return min_peak is None or iv.peak is None or iv.peak >= min_peak


def settling_peak(params: Mapping[str, PostParams]) -> float | None:
    """`min_peak` for the rule: the MaE threshold when the MaE parameters are adaptive
    (their threshold then lowers under a stream's own scores), else None."""
    mae = params.get("MaE")
    return float(mae.threshold) if mae is not None and mae.adaptive and mae.threshold is not None else None


def drop_inside_mae(me: Sequence[Interval], mae: Sequence[Interval],
                    min_peak: float | None = None) -> list[Interval]:
    """The ME intervals that share no frame with a MaE interval of the same video that
    `settles` (order kept)."""
    by_video: dict[str, list[Interval]] = defaultdict(list)
    for iv in mae:
        if settles(iv, min_peak):
            by_video[iv.video].append(iv)
    index = {v: (sorted(ivs, key=lambda x: x.onset), sorted(x.onset for x in ivs)) for v, ivs in by_video.items()}
    kept = []
    for iv in me:
        ivs, onsets = index.get(iv.video, ((), ()))
        if not overlaps_any(iv, ivs, onsets):
            kept.append(iv)
    return kept


def apply_cross_type(
    pred: Mapping[str, list[Interval]], params: Mapping[str, PostParams]
) -> dict[str, list[Interval]]:
    """Per-type predictions after the ME weights' rule, applied as the live pipeline does:
    only when the ME parameters carry it and MaE predictions exist."""
    out = dict(pred)
    if "ME" in out and "MaE" in out and "ME" in params and params["ME"].drop_inside_mae:
        out["ME"] = drop_inside_mae(out["ME"], out["MaE"], settling_peak(params))
    return out
