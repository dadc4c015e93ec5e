"""Grid search of post-processing parameters maximising MEGC F1 (LGNMNet.md step 6).

Grid: TINY 0.1..0.6 step 0.1, P 0.6..1.0 step 0.1, WIN 9/11/13/15, ORDER 0..4 (order <
win). Beside the paper's peak rule (TINY), the "runs" interval rule
(`calibration.postprocess`, not in the paper) is searched with its pairing gap 0..4 K
step 1, pad -0.25/0/0.25 K and minimum 0/0.5/1 K in place of TINY; the best F1 decides the rule,
and "runs" must strictly beat "peaks" to be chosen. The paper's windows are 30 fps
windows (0.3-0.5 s); `grids_for_fps` adds windows of the same order of duration at
higher frame rates (see `window_grid`). Each (win, order) smooths every video once;
thresholds are reused across the interval-rule settings. With
`fixed_threshold=True` a fixed threshold (0.05..0.95 step 0.05) is searched instead of P:
the live spotter needs one calibrated threshold for unknown subjects, since the Moilanen
threshold needs the whole video.

Truth intervals of videos absent from `score_seqs` are ignored (they could only add FN).
Ties keep the first combination in grid order (within a rule; across rules, "peaks").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calibration.cross_type import drop_inside_mae, settling_peak
from calibration.megc import score_type
from calibration.postprocess import (
    RULES,
    PostParams,
    moilanen_threshold,
    odd_at_least,
    postprocess,
    postprocess_smoothed,
    smooth,
)
from realtime.common.types import ExprType, Interval


def _steps(lo: float, hi: float, step: float) -> tuple[float, ...]:
    return tuple(round(v, 10) for v in np.arange(lo, hi + step / 2, step))


PAPER_WINDOWS: tuple[int, ...] = (9, 11, 13, 15)
LONG_WINDOW_SECONDS: tuple[float, ...] = (0.15, 0.3, 0.5)


def window_grid(fps: float) -> tuple[int, ...]:
    """Savitzky-Golay windows to search at `fps`: the paper's 9-15 frames plus odd windows
    of about 0.15, 0.3 and 0.5 s where those are longer than 15 frames.

    The paper's windows were chosen for 30 fps video; at 200 fps they span 0.05-0.075 s
    and leave the frame-to-frame noise of the score curve in place, so a fixed threshold
    meets many spurious peaks. At 30 fps this is exactly the paper's grid; at 200 fps it
    adds 31, 61 and 101 (on the synthetic 200 fps validation sets, cross-fitted MEGC F1
    0.554 -> 0.738 for the same networks)."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    longer = {odd_at_least(s * fps, 1) for s in LONG_WINDOW_SECONDS} - set(PAPER_WINDOWS)
    return PAPER_WINDOWS + tuple(sorted(w for w in longer if w > max(PAPER_WINDOWS)))


@dataclass(frozen=True)
class SearchGrids:
    tiny: tuple[float, ...] = _steps(0.1, 0.6, 0.1)
    p: tuple[float, ...] = _steps(0.6, 1.0, 0.1)
    win: tuple[int, ...] = (9, 11, 13, 15)
    order: tuple[int, ...] = (0, 1, 2, 3, 4)
    threshold: tuple[float, ...] = _steps(0.05, 0.95, 0.05)
    rule: tuple[str, ...] = RULES
    run_pad: tuple[float, ...] = (-0.25, 0.0, 0.25)
    min_run: tuple[float, ...] = (0.0, 0.5, 1.0)
    run_gap: tuple[float, ...] = (0.0, 1.0, 2.0, 3.0, 4.0)
    drop_unpaired: tuple[bool, ...] = (False, True)

    def shapes(self) -> list[dict]:
        """The interval-rule settings to try: TINY x lone peaks kept/dropped for "peaks",
        gap x pad x minimum for "runs". Kept comes first: dropping must strictly win."""
        out: list[dict] = []
        if "peaks" in self.rule:
            out += [{"rule": "peaks", "tiny": t, "drop_unpaired": d, "run_pad": 0.0, "min_run": 0.0, "run_gap": 0.0}
                    for t in self.tiny for d in self.drop_unpaired]
        if "runs" in self.rule:
            out += [{"rule": "runs", "run_gap": g, "run_pad": pad, "min_run": m, "drop_unpaired": False}
                    for g in self.run_gap for pad in self.run_pad for m in self.min_run]
        return out


def grids_for_fps(fps: float, rules: Sequence[str] = RULES) -> SearchGrids:
    """The default grids with `window_grid(fps)` as the window axis, searching the interval
    `rules` given (default both)."""
    unknown = set(rules) - set(RULES)
    if unknown or not rules:
        raise ValueError(f"rules must be among {', '.join(RULES)}, got {', '.join(rules) or 'none'}")
    return SearchGrids(win=window_grid(fps), rule=tuple(rules))


def rules_option(choice: str) -> tuple[str, ...]:
    """The rules an `--interval-rule` choice searches: "auto" both, else the one named."""
    return RULES if choice == "auto" else (choice,)


INTERVAL_RULE_HELP = ("interval rule the grid search may choose: auto tries the paper's peak pairing and the "
                      "above-threshold runs and keeps peaks unless runs strictly wins; peaks or runs searches that "
                      "rule only (stored parameters of either rule stay unless strictly beaten)")


@dataclass
class SearchResult:
    params: PostParams
    f1: float
    table: pd.DataFrame = field(repr=False)  # one row per combination, best first


def _thresholds(
    smoothed: dict[str, np.ndarray], fixed_threshold: bool, grids: SearchGrids
) -> list[tuple[dict, dict[str, float]]]:
    """(params fields, threshold per video) for every threshold option of the grid."""
    if fixed_threshold:
        return [({"threshold": t}, {v: t for v in smoothed}) for t in grids.threshold]
    return [({"p": p}, {v: moilanen_threshold(s, p) for v, s in smoothed.items()}) for p in grids.p]


def grid_search(
    score_seqs: dict[str, np.ndarray],
    truth: list[Interval],
    type: ExprType,
    k: int,
    fixed_threshold: bool = False,
    grids: SearchGrids = SearchGrids(),
    base: PostParams | None = None,
    first_frame: int = 1,
    mae_pred: Sequence[Interval] | None = None,
    mae_min_peak: float | None = None,
) -> SearchResult:
    """Best PostParams for `type` over labelled videos (scores[i] = pair (i, i+K) from
    `first_frame`). `base` supplies the non-searched fields (nms_sigma, keep, ...).

    With `mae_pred` (ME only), every combination is scored after dropping the ME intervals
    that overlap those MaE intervals (`calibration.cross_type`; only those reaching
    `mae_min_peak` when given: `settling_peak` of the MaE parameters), and the result carries
    `drop_inside_mae=True`: the threshold is then fitted for the rule that will apply."""
    if not score_seqs:
        raise ValueError("grid_search needs at least one score sequence")
    base = base or PostParams(k=k)
    if mae_pred is not None:
        if type != "ME":
            raise ValueError("mae_pred applies to the ME grid search only")
        base = base.with_(drop_inside_mae=True)
    videos = set(score_seqs)
    truth_t = [iv for iv in truth if iv.type == type and iv.video in videos]
    rows: list[dict] = []
    # Per interval variant: "peaks" (the paper's boxes), "peaks-drop" (lone peaks dropped), "runs".
    best: dict[str, tuple[float, PostParams]] = {}
    for win in grids.win:
        for order in grids.order:
            if order >= win:
                continue
            smoothed = {v: smooth(s, win, order) for v, s in score_seqs.items()}
            for fields_, thresholds in _thresholds(smoothed, fixed_threshold, grids):
                for shape in grids.shapes():
                    params = base.with_(k=k, win=win, order=order, **shape,
                                        threshold=fields_.get("threshold"), p=fields_.get("p", base.p))
                    pred = [iv for v, s in smoothed.items()
                            for iv in postprocess_smoothed(s, thresholds[v], params, v, type, first_frame)]
                    if mae_pred is not None:
                        pred = drop_inside_mae(pred, mae_pred, mae_min_peak)
                    score = score_type(truth_t, pred, type)
                    rows.append({"win": win, "order": order, "rule": params.rule,
                                 "tiny": params.tiny if params.rule == "peaks" else float("nan"),
                                 "run_gap": params.run_gap, "run_pad": params.run_pad, "min_run": params.min_run,
                                 "drop_unpaired": params.drop_unpaired,
                                 **fields_, "tp": score.tp,
                                 "n_pred": score.n_pred, "n_truth": score.n_truth, "f1": score.f1})
                    variant = "peaks-drop" if params.drop_unpaired else params.rule
                    if variant not in best or score.f1 > best[variant][0]:
                        best[variant] = (score.f1, params)
    assert best
    # The paper's rule unless a deviation strictly wins (a tie is no evidence); between the
    # two deviations, dropping lone peaks (closer to the paper) on a tie.
    chosen = None
    for variant in ("peaks", "peaks-drop", "runs"):
        if variant in best and (chosen is None or best[variant][0] > chosen[0]):
            chosen = best[variant]
    assert chosen is not None
    table = pd.DataFrame(rows).sort_values("f1", ascending=False, kind="stable").reset_index(drop=True)
    return SearchResult(params=chosen[1], f1=chosen[0], table=table)


@dataclass
class PairResult:
    """Calibration of an ME + MaE pair: MaE first, then ME with and without the
    cross-type rule; `me` is the better of the two (the rule must strictly win)."""

    me: SearchResult
    mae: SearchResult
    me_f1_keep: float  # best ME F1 keeping ME intervals inside MaE ones
    me_f1_drop: float  # best ME F1 dropping them

    @property
    def drop_inside_mae(self) -> bool:
        return self.me.params.drop_inside_mae


def grid_search_pair(
    me_seqs: dict[str, np.ndarray],
    mae_seqs: dict[str, np.ndarray],
    truth: list[Interval],
    k_me: int,
    k_mae: int,
    fixed_threshold: bool = True,
    grids: SearchGrids = SearchGrids(),
    first_frame: int = 1,
    mae: SearchResult | None = None,
) -> PairResult:
    """Fit both types' post-processing and decide the cross-type rule on labelled videos.
    `mae`: an already chosen MaE result (its params decide which ME intervals the rule
    drops) instead of fitting MaE here."""
    if mae is None:
        mae = grid_search(mae_seqs, truth, "MaE", k_mae, fixed_threshold, grids, first_frame=first_frame)
    mae_pred = [iv for v, s in mae_seqs.items() for iv in postprocess(s, mae.params, v, "MaE", first_frame)]
    keep = grid_search(me_seqs, truth, "ME", k_me, fixed_threshold, grids, first_frame=first_frame)
    # The rule as it will apply: under an adaptive MaE threshold only MaE intervals reaching
    # the calibrated one drop an ME (calibration.cross_type.settling_peak).
    drop = grid_search(me_seqs, truth, "ME", k_me, fixed_threshold, grids, first_frame=first_frame, mae_pred=mae_pred,
                       mae_min_peak=settling_peak({"MaE": mae.params}))
    return PairResult(me=drop if drop.f1 > keep.f1 else keep, mae=mae, me_f1_keep=keep.f1, me_f1_drop=drop.f1)
