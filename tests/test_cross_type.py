"""The cross-type rule (ME intervals inside MaE intervals are dropped): the pure function,
its live twin (gate + spotter horizon) agreeing with it, and its calibration."""

from __future__ import annotations

import numpy as np
import pytest
from test_spotter import random_params, random_scores

from calibration.cross_type import apply_cross_type, drop_inside_mae
from calibration.postprocess import PostParams, postprocess
from calibration.search import SearchGrids, grid_search_pair
from realtime.common.types import Interval
from realtime.cross_type_gate import InsideMaeGate, settled
from realtime.spotter import OnlineSpotter


def iv(type_: str, onset: int, offset: int, video: str = "v") -> Interval:
    return Interval(video, type_, onset, offset, score=0.5)  # type: ignore[arg-type]


def test_drop_inside_mae_needs_one_shared_frame_of_the_same_video() -> None:
    mae = [iv("MaE", 100, 150), iv("MaE", 300, 320), iv("MaE", 10, 20, video="w")]
    me = [iv("ME", 90, 99), iv("ME", 90, 100), iv("ME", 150, 160), iv("ME", 151, 160),
          iv("ME", 120, 130), iv("ME", 280, 400), iv("ME", 10, 20)]
    kept = drop_inside_mae(me, mae)
    assert [(i.onset, i.offset) for i in kept] == [(90, 99), (151, 160), (10, 20)]
    assert drop_inside_mae(me, []) == me


def test_apply_cross_type_follows_the_me_parameters() -> None:
    pred = {"ME": [iv("ME", 110, 115), iv("ME", 200, 205)], "MaE": [iv("MaE", 100, 150)]}
    on, off = PostParams(k=6, drop_inside_mae=True), PostParams(k=6)
    assert [i.onset for i in apply_cross_type(pred, {"ME": on})["ME"]] == [200]
    assert apply_cross_type(pred, {"ME": off})["ME"] == pred["ME"]
    assert apply_cross_type({"ME": pred["ME"]}, {"ME": on})["ME"] == pred["ME"]  # no MaE model
    assert apply_cross_type(pred, {"ME": on})["MaE"] == pred["MaE"]


def test_a_long_mae_interval_is_found_behind_later_short_ones() -> None:
    mae = [iv("MaE", 1, 1000), iv("MaE", 200, 210), iv("MaE", 400, 410)]
    assert drop_inside_mae([iv("ME", 500, 505)], mae) == []


def test_spotter_horizon_bounds_every_later_interval() -> None:
    rng = np.random.default_rng(5)
    for k in (6, 18):
        params = random_params(rng, k, forced_cuts=False)
        spotter = OnlineSpotter(params, "cam", "MaE")
        scores = random_scores(rng, 4000, k)
        horizons: list[int] = []
        checked = 0
        for i, v in enumerate(scores):
            for out in spotter.push(11 + i, float(v)):
                assert all(out.onset >= h for h in horizons)
                checked += 1
            h = spotter.horizon
            assert h is not None
            horizons.append(h)
        assert checked > 5
        assert horizons == sorted(horizons)  # it never moves back


def simulate_live(me_scores: np.ndarray, mae_scores: np.ndarray, me_params: PostParams, mae_params: PostParams,
                  breaks: list[int], min_peak: float | None = None) -> list[Interval]:
    """What StreamScorer does: frame t brings the ME score of t - K_ME and the MaE score of
    t - K_MaE; a chain break flushes MaE, then ME, then releases everything."""
    me, mae = OnlineSpotter(me_params, "v", "ME"), OnlineSpotter(mae_params, "v", "MaE")
    gate = InsideMaeGate(min_peak)
    out: list[Interval] = []
    seg_start = 1
    n = len(me_scores)

    def release(flushed: bool = False) -> None:
        out.extend(gate.release(np.inf if flushed else settled(mae.horizon), me.horizon))

    for t in range(1, n + 1):
        if t in breaks:
            out.extend(mae_ivs := mae.flush())
            gate.add_mae(mae_ivs)
            gate.hold(me.flush())
            release(flushed=True)
            seg_start = t + 1
            continue
        for spotter, scores, k in ((me, me_scores, me_params.k), (mae, mae_scores, mae_params.k)):
            i = t - k
            if i >= seg_start:
                got = spotter.push(i, float(scores[i - 1]))
                if spotter is mae:
                    gate.add_mae(got)
                    out.extend(got)
                else:
                    gate.hold(got)
                release()
    out.extend(mae_ivs := mae.flush())
    gate.add_mae(mae_ivs)
    gate.hold(me.flush())
    release(flushed=True)
    assert gate.held == 0
    return out


def offline_twin(me_scores: np.ndarray, mae_scores: np.ndarray, me_params: PostParams, mae_params: PostParams,
                 breaks: list[int], min_peak: float | None = None) -> list[Interval]:
    bounds = [0, *breaks, len(me_scores) + 1]
    me_all: list[Interval] = []
    mae_all: list[Interval] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        first = lo + 1  # frames first..hi-1 have a face
        for params, scores, acc, typ in ((me_params, me_scores, me_all, "ME"), (mae_params, mae_scores, mae_all, "MaE")):
            last_index = hi - 1 - params.k  # the pair (i, i + K) must end before the break
            if last_index >= first:
                acc += postprocess(scores[first - 1 : last_index], params, "v", typ, first_frame=first)  # type: ignore[arg-type]
    return drop_inside_mae(me_all, mae_all, min_peak) + mae_all


@pytest.mark.parametrize("seed", range(4))
def test_gate_equals_the_offline_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 6000
    me_params = random_params(rng, 6, forced_cuts=seed == 3).with_(drop_inside_mae=True)
    mae_params = random_params(rng, 18, forced_cuts=False)
    me_scores = random_scores(rng, n, 6)
    mae_scores = random_scores(rng, n, 18)
    breaks = sorted(int(b) for b in rng.choice(np.arange(500, n - 500), 2, replace=False)) if seed % 2 else []
    live = simulate_live(me_scores, mae_scores, me_params, mae_params, breaks)
    offline = offline_twin(me_scores, mae_scores, me_params, mae_params, breaks)
    key = lambda i: (i.type, i.onset, i.offset, i.apex)  # noqa: E731
    assert sorted(map(key, live)) == sorted(map(key, offline))
    # Not vacuous: the rule dropped some ME intervals and kept others.
    me_plain = [i for i in offline_twin(me_scores, mae_scores, me_params, mae_params.with_(threshold=2.0), breaks)]
    n_me = sum(i.type == "ME" for i in offline)
    assert 0 < n_me < len(me_plain)


@pytest.mark.parametrize("seed", range(2))
def test_gate_equals_the_offline_rule_when_only_high_maes_settle(seed: int) -> None:
    """With min_peak (an adaptive MaE threshold's calibrated value) the live gate and the
    offline rule still agree, and the MaE intervals below it drop no ME."""
    rng = np.random.default_rng(10 + seed)
    n = 6000
    me_params = random_params(rng, 6, forced_cuts=False).with_(drop_inside_mae=True)
    mae_params = random_params(rng, 18, forced_cuts=False)
    me_scores, mae_scores = random_scores(rng, n, 6), random_scores(rng, n, 18)
    breaks = [2500] if seed else []
    every = offline_twin(me_scores, mae_scores, me_params, mae_params, breaks)
    peaks = sorted(i.peak for i in every if i.type == "MaE" and i.peak is not None)
    assert len(peaks) >= 4
    min_peak = peaks[len(peaks) // 2]  # half of the MaE intervals settle
    live = simulate_live(me_scores, mae_scores, me_params, mae_params, breaks, min_peak)
    offline = offline_twin(me_scores, mae_scores, me_params, mae_params, breaks, min_peak)
    key = lambda i: (i.type, i.onset, i.offset, i.apex)  # noqa: E731
    assert sorted(map(key, live)) == sorted(map(key, offline))
    # The low MaE intervals let some ME stand that every MaE would have dropped, and the
    # high ones still drop some.
    n_all, n_high = (sum(i.type == "ME" for i in x) for x in (every, offline))
    n_none = sum(i.type == "ME" for i in offline_twin(me_scores, mae_scores, me_params,
                                                      mae_params.with_(threshold=2.0), breaks))
    assert n_all < n_high < n_none


def test_under_an_adaptive_mae_threshold_only_a_mae_reaching_the_calibrated_one_drops_an_me() -> None:
    low = Interval("v", "MaE", 100, 150, score=0.3, peak=0.4)
    high = Interval("v", "MaE", 300, 350, score=0.6, peak=0.8)
    unknown = Interval("v", "MaE", 500, 550, score=0.3)  # read back from a file: no peak
    me = [iv("ME", 110, 115), iv("ME", 310, 315), iv("ME", 510, 515)]
    pred = {"ME": me, "MaE": [low, high, unknown]}
    on = PostParams(k=6, drop_inside_mae=True)
    fixed, adaptive = PostParams(k=18, threshold=0.65), PostParams(k=18, threshold=0.65, adaptive=True)
    assert apply_cross_type(pred, {"ME": on, "MaE": fixed})["ME"] == []
    assert apply_cross_type(pred, {"ME": on, "MaE": adaptive})["ME"] == [me[0]]
    assert apply_cross_type(pred, {"ME": on, "MaE": PostParams(k=18, threshold=None)})["ME"] == []  # rolling
    assert drop_inside_mae(me, [low, high], min_peak=0.8) == [me[0], me[2]]  # reaching it is enough
    assert low == Interval("v", "MaE", 100, 150, score=0.3)  # peak is no part of equality


def bump(n: int, centre: int, width: float, height: float) -> np.ndarray:
    return height * np.exp(-0.5 * ((np.arange(n) - centre) / width) ** 2)


def labelled_pair(me_inside_mae: bool) -> tuple[dict, dict, list[Interval]]:
    """Score sequences (K_ME 6, K_MaE 18, shift K//2) for videos where the ME model also
    fires inside each MaE; the truth either has MEs there or not."""
    me_seqs, mae_seqs, truth = {}, {}, []
    for v in range(4):
        vid, n = f"v{v}", 1200
        me, mae = np.full(n, 0.05), np.full(n, 0.05)
        for c in (150, 550, 950):  # MaE at frames ~[c, c + 60]
            mae += bump(n, c + 30 - 9, 12, 0.9)
            truth.append(Interval(vid, "MaE", c, c + 60))
            me += bump(n, c + 28 - 3, 2.5, 0.8)  # the ME model fires inside the MaE
            if me_inside_mae:
                truth.append(Interval(vid, "ME", c + 23, c + 33))
        for c in (350, 750):  # genuine MEs alone
            me += bump(n, c + 5 - 3, 2.5, 0.8)
            truth.append(Interval(vid, "ME", c, c + 10))
        me_seqs[vid], mae_seqs[vid] = me, mae
    return me_seqs, mae_seqs, truth


SMALL_GRID = SearchGrids(tiny=(0.3, 0.6, 0.9), win=(5, 9), order=(0, 2), threshold=(0.3, 0.5))


def test_calibration_turns_the_rule_on_when_mes_do_not_sit_inside_maes() -> None:
    me, mae, truth = labelled_pair(me_inside_mae=False)
    result = grid_search_pair(me, mae, truth, 6, 18, grids=SMALL_GRID)
    assert result.mae.f1 > 0.9
    assert result.drop_inside_mae and result.me_f1_drop > result.me_f1_keep
    assert result.me.f1 == result.me_f1_drop


def test_calibration_keeps_mes_when_the_truth_puts_them_inside_maes() -> None:
    me, mae, truth = labelled_pair(me_inside_mae=True)
    result = grid_search_pair(me, mae, truth, 6, 18, grids=SMALL_GRID)
    assert not result.drop_inside_mae and result.me_f1_keep > result.me_f1_drop
    assert not result.me.params.drop_inside_mae


def test_calibration_scores_the_rule_as_it_applies_under_an_adaptive_mae_threshold() -> None:
    """The pair search scores the ME grid with the rule it ships: a MaE interval below the
    calibrated MaE threshold of adaptive MaE parameters drops no ME there either (it did,
    so the search saw F1 0 for a rule that costs nothing as applied)."""
    import pandas as pd

    from calibration.megc import score_type
    from calibration.search import SearchResult

    x = np.arange(400)
    mae = 0.05 + 0.35 * np.exp(-(((x - 190) / 25.0) ** 2))  # a MaE bump reaching only 0.40
    me = 0.02 + 0.9 * (np.exp(-(((x - 186) / 2.0) ** 2)) + np.exp(-(((x - 192) / 2.0) ** 2)))
    mae_params = PostParams(k=12, threshold=0.6, adaptive=True)
    grids = SearchGrids(win=(9,), order=(2,), threshold=(0.5,), rule=("peaks",), tiny=(0.3,), drop_unpaired=(False,))
    truth = postprocess(me, PostParams(k=4, win=9, order=2, threshold=0.5, tiny=0.3), "v", "ME")
    mae_pred = postprocess(mae, mae_params, "v", "MaE")
    assert truth and mae_pred and all(iv.peak is not None and iv.peak < 0.6 for iv in mae_pred)
    assert drop_inside_mae(truth, mae_pred) == []  # the rule without the peak test would drop it
    pair = grid_search_pair({"v": me}, {"v": mae}, truth, 4, 12, grids=grids,
                            mae=SearchResult(mae_params, 0.0, pd.DataFrame()))
    assert pair.me_f1_drop == pair.me_f1_keep == 1.0
    drop = pair.me.params.with_(drop_inside_mae=True)
    shipped = apply_cross_type({"ME": postprocess(me, drop, "v", "ME"), "MaE": mae_pred}, {"ME": drop, "MaE": mae_params})
    assert score_type(truth, shipped["ME"], "ME").f1 == 1.0
