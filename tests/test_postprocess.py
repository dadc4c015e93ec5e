"""Post-processing: hand-made sequences with known answers, and chunk independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.ndimage import uniform_filter1d
from score_shapes import two_bump_videos

from calibration.postprocess import (
    ChunkSplitter,
    PostParams,
    find_spot_peaks,
    half_width,
    merge_overlapping,
    moilanen_threshold,
    pair_peaks,
    postprocess,
    process_chunk,
    quiet_gap,
    smooth,
    soft_nms,
    split_chunks,
)
from realtime.common.types import Interval


def bumps(n: int, centres: list[int], width: float, height: float = 0.9) -> np.ndarray:
    x = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for c in centres:
        out += height * np.exp(-0.5 * ((x - c) / width) ** 2)
    return out


def noisy_sequence(seed: int, n: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = smooth(rng.random(n) * 0.3, 7, 1)
    idx = np.arange(n)
    for c in rng.integers(0, n, max(n // (6 * k), 1)):
        w = rng.integers(k, 3 * k + 1)
        x = x + rng.uniform(0.3, 0.9) * np.exp(-0.5 * ((idx - c) / (w / 2)) ** 2)
    return x


def test_params_roundtrip_and_validation() -> None:
    p = PostParams(k=6, tiny=0.4, p=0.7, win=13, order=3, threshold=0.35)
    assert PostParams.from_dict(p.to_dict()) == p
    assert p.frame_shift == 3 and PostParams(k=6, shift=0).frame_shift == 0
    with pytest.raises(ValueError):
        PostParams(k=6, win=10)
    with pytest.raises(ValueError):
        PostParams(k=6, win=9, order=9)
    with pytest.raises(ValueError):
        PostParams.from_dict({"k": 6, "bogus": 1})


def test_half_width_rounds_half_up() -> None:
    assert half_width(6, 0.5) == 3 and half_width(5, 0.5) == 3 and half_width(6, 0.1) == 1
    assert quiet_gap(6, 0.3) == 4 * 6 + 2 * 2 + 2


def test_smooth_short_sequences() -> None:
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    # 7 samples, win 11: window shrinks to 7 (order 2) -> same as savgol with 7.
    from scipy.signal import savgol_filter

    np.testing.assert_allclose(smooth(x, 11, 2), savgol_filter(x, 7, 2, mode="interp"))
    np.testing.assert_array_equal(smooth(x[:2], 11, 2), x[:2])  # no odd window > order fits
    np.testing.assert_allclose(smooth(np.ones(30), 9, 0), np.ones(30))


def test_moilanen_threshold() -> None:
    s = np.array([0.0, 0.0, 0.0, 1.0])
    assert moilanen_threshold(s, 0.6) == pytest.approx(0.25 + 0.6 * 0.75)


def test_two_separate_bumps_give_two_intervals_at_known_frames() -> None:
    k = 6
    params = PostParams(k=k, tiny=0.5, win=9, order=2, threshold=0.5)
    scores = bumps(400, [100, 250], width=3.0)
    out = postprocess(scores, params, "v", "ME", first_frame=1)
    half, shift = half_width(k, 0.5), k // 2
    assert [(iv.apex, iv.onset, iv.offset) for iv in out] == [
        (1 + c + shift, 1 + c + shift - half, 1 + c + shift + half) for c in (100, 250)
    ]
    for iv, c in zip(out, (100, 250)):
        lo = c - half
        assert iv.score == pytest.approx(float(np.mean(smooth(scores, 9, 2)[lo : lo + 2 * half + 1])))
        # peak: the highest smoothed score inside (the cross-type rule's test under adaptive)
        assert iv.peak == pytest.approx(float(np.max(smooth(scores, 9, 2)[lo : lo + 2 * half + 1])))
        assert iv.peak > iv.score


def test_two_peaks_within_4k_pair_into_one_interval() -> None:
    k = 10
    params = PostParams(k=k, tiny=0.3, win=9, order=2, threshold=0.5)
    scores = bumps(300, [100, 125], width=3.0, height=0.9) + bumps(300, [125], width=3.0, height=0.05)
    out = postprocess(scores, params, "v", "MaE")
    half, shift = half_width(k, 0.3), k // 2
    assert len(out) == 1
    assert (out[0].onset, out[0].offset) == (1 + 100 + shift - half, 1 + 125 + shift + half)
    assert out[0].apex == 1 + 125 + shift  # the higher peak of the pair


def test_drop_unpaired_keeps_pairs_and_drops_lone_peaks() -> None:
    k = 10
    params = PostParams(k=k, tiny=0.3, win=9, order=2, threshold=0.5)
    scores = bumps(400, [100, 125, 300], width=3.0, height=0.9)  # a pair (25 < 4K apart) and a lone peak
    kept = postprocess(scores, params, "v", "MaE")
    dropped = postprocess(scores, params.with_(drop_unpaired=True), "v", "MaE")
    assert len(kept) == 2 and dropped == [kept[0]]
    assert kept[1].apex == 1 + 300 + k // 2  # the lone one
    with pytest.raises(ValueError, match="drop_unpaired"):
        PostParams(k=6, rule="runs", drop_unpaired=True)
    assert PostParams.from_dict(params.with_(drop_unpaired=True).to_dict()).drop_unpaired


def test_grid_search_drops_lone_peaks_when_they_are_the_false_alarms() -> None:
    """Expressions that score at onset and offset (two peaks 2K apart) among lone bumps
    that are not expressions: only dropping lone peaks reaches F1 1."""
    k, n = 10, 1600
    half, shift = half_width(k, 0.3), k // 2
    seqs, truth = {}, []
    for v in range(3):
        onsets = list(range(100, n - 200, 300))
        lone = [c + 170 for c in onsets]
        seqs[f"v{v}"] = bumps(n, [c for o in onsets for c in (o, o + 2 * k)] + lone, width=2.5, height=0.8)
        truth += [Interval(f"v{v}", "MaE", 1 + o + shift - half, 1 + o + 2 * k + shift + half) for o in onsets]
    grids = SearchGrids(win=(9,), order=(2,), tiny=(0.3,), rule=("peaks",))
    result = grid_search(seqs, truth, "MaE", k=k, fixed_threshold=True, grids=grids)
    assert result.f1 == 1.0 and result.params.drop_unpaired
    assert result.table[~result.table["drop_unpaired"].astype(bool)]["f1"].max() < 1.0


def test_grid_search_keeps_lone_peaks_when_a_threshold_does_as_well() -> None:
    """Lone bumps lower than the expressions' peaks: a threshold above them reaches F1 1
    with the paper's boxes, so dropping lone peaks (F1 1 at a lower threshold) is a tie
    and no evidence for the deviation, whichever the grid met first."""
    k, n = 10, 1600
    half, shift = half_width(k, 0.3), k // 2
    seqs, truth = {}, []
    for v in range(3):
        onsets = list(range(100, n - 200, 300))
        seqs[f"v{v}"] = (bumps(n, [c for o in onsets for c in (o, o + 2 * k)], width=2.5, height=0.8)
                         + bumps(n, [o + 170 for o in onsets], width=2.5, height=0.45))
        truth += [Interval(f"v{v}", "MaE", 1 + o + shift - half, 1 + o + 2 * k + shift + half) for o in onsets]
    grids = SearchGrids(win=(9,), order=(2,), tiny=(0.3,), rule=("peaks",), threshold=(0.3, 0.6))
    result = grid_search(seqs, truth, "MaE", k=k, fixed_threshold=True, grids=grids)
    table = result.table
    assert table[(table["threshold"] == 0.3) & table["drop_unpaired"].astype(bool)]["f1"].iloc[0] == 1.0
    assert result.f1 == 1.0 and not result.params.drop_unpaired and result.params.threshold == 0.6


def test_pair_peaks_greedy_and_clipped() -> None:
    # K=5, half 1: 10 & 20 span 13 <= 20 -> pair; 40 alone; 44 pairs? no, 40 took nothing:
    # 40 & 55 span 18 <= 20 -> pair; 99 alone, clipped to n-1 = 99.
    got = pair_peaks(np.array([10, 20, 40, 55, 99]), k=5, tiny=0.2, n_frames=100)
    assert got == [(9, 21, 10, 20), (39, 56, 40, 55), (98, 99, 99, 99)]


def test_peaks_respect_height_and_distance() -> None:
    s = bumps(200, [50, 54, 120], width=1.0) + bumps(200, [54], width=1.0, height=0.05)
    assert find_spot_peaks(s, 0.5, k=6).tolist() == [54, 120]
    assert find_spot_peaks(s, 0.5, k=3).tolist() == [50, 54, 120]


def test_soft_nms_gaussian_decay_keep_and_min_score() -> None:
    a = Interval("v", "ME", 1, 20, score=0.9)
    b = Interval("v", "ME", 11, 30, score=0.8)  # IoU with a = 10/30
    c = Interval("v", "ME", 100, 110, score=0.05)  # below min_score
    out = soft_nms([b, c, a], sigma=0.5, keep=10, min_score=0.1)
    assert [iv.onset for iv in out] == [1, 11]
    assert out[1].score == pytest.approx(0.8 * math.exp(-((1 / 3) ** 2) / 0.5))
    assert len(soft_nms([a, b], sigma=0.5, keep=1, min_score=0.1)) == 1
    # a strong overlap decays the weaker one below min_score
    assert soft_nms([a, Interval("v", "ME", 1, 20, score=0.12)], 0.5, 10, 0.1) == [a]


def test_merge_overlapping_midpoints_and_max_score() -> None:
    a = Interval("v", "ME", 10, 20, score=0.5, apex=15)
    b = Interval("v", "ME", 15, 31, score=0.9, apex=25)
    c = Interval("v", "ME", 40, 50, score=0.3, apex=45)
    assert merge_overlapping([c, b, a]) == [Interval("v", "ME", 12, 26, score=0.9, apex=25), c]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_len", [None, 2 * quiet_gap(6, 0.3) + 7])
def test_split_chunks_matches_causal_splitter(seed: int, max_len: int | None) -> None:
    s = noisy_sequence(seed, 3000, 6)
    q, m = quiet_gap(6, 0.3), half_width(6, 0.3) + 1
    splitter = ChunkSplitter(q, m, max_len, lambda i, j: s[i : j + 1])
    online = [c for t, v in enumerate(s) for c in splitter.step(t, bool(v >= 0.5))]
    last = splitter.finish(len(s))
    online += [last] if last is not None else []
    offline = split_chunks(s, 0.5, q, m, max_len)
    assert online == offline and len(offline) > 3
    assert all(b[0] > a[1] for a, b in zip(offline, offline[1:]))  # disjoint, ordered
    if max_len is not None:
        assert max(e - s0 + 1 for s0, e in offline) <= max_len
        assert max(e - s0 + 1 for s0, e in split_chunks(s, 0.5, q, m, None)) > max_len  # cuts happened


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [6, 18])
def test_chunking_equals_whole_sequence_processing(seed: int, k: int) -> None:
    """With no per-chunk cap in play, independent chunks give what one pass over the
    whole sequence gives: the quiet gap Q really isolates chunks."""
    rng = np.random.default_rng(seed)
    tiny = float(rng.choice([0.1, 0.3, 0.6]))
    params = PostParams(k=k, tiny=tiny, win=11, order=2, threshold=0.5, keep=10**6, max_chunk=10**9)
    scores = noisy_sequence(seed, 4000, k)
    chunked = postprocess(scores, params, "v", "ME")
    s = smooth(scores, 11, 2)
    whole = process_chunk(s, 0, 0.5, params, "v", "ME")
    assert len(chunked) > 5
    assert [(i.onset, i.offset, i.apex) for i in chunked] == [(i.onset, i.offset, i.apex) for i in whole]
    np.testing.assert_allclose([i.score for i in chunked], [i.score for i in whole], rtol=0, atol=1e-12)


def test_moilanen_threshold_used_when_no_fixed_threshold() -> None:
    scores = bumps(300, [80, 200], width=3.0, height=0.9) + 0.01
    fixed = postprocess(scores, PostParams(k=6, win=9, order=2, threshold=0.5), "v", "ME")
    adaptive = postprocess(scores, PostParams(k=6, win=9, order=2, p=0.6), "v", "ME")
    assert [i.apex for i in fixed] == [i.apex for i in adaptive] == [1 + 80 + 3, 1 + 200 + 3]
    assert postprocess(np.array([]), PostParams(k=6), "v", "ME") == []


# -- grid search (calibration/search.py) ---------------------------------------------------
from calibration.megc import evaluate  # noqa: E402
from calibration.search import PAPER_WINDOWS, SearchGrids, grid_search, grids_for_fps, window_grid  # noqa: E402


def labelled_videos(k: int, n_videos: int = 3, n: int = 1200) -> tuple[dict[str, np.ndarray], list[Interval]]:
    """Noise below 0.2 plus one clean bump per expression; truth = the interval that
    tiny 0.5 reproduces exactly (11 frames for K=10)."""
    rng = np.random.default_rng(7)
    seqs: dict[str, np.ndarray] = {}
    truth: list[Interval] = []
    half = half_width(k, 0.5)
    for v in range(n_videos):
        centres = list(range(150, n - 150, 200))
        seqs[f"v{v}"] = 0.15 * rng.random(n) + bumps(n, centres, width=2.5, height=0.8)
        truth += [Interval(f"v{v}", "ME", 1 + c + k // 2 - half, 1 + c + k // 2 + half) for c in centres]
    return seqs, truth


def test_grid_search_recovers_perfect_f1() -> None:
    seqs, truth = labelled_videos(k=10)
    result = grid_search(seqs, truth, "ME", k=10, grids=SearchGrids(win=(9, 11), order=(1, 2)))
    assert result.f1 == 1.0
    pred = [iv for v, s in seqs.items() for iv in postprocess(s, result.params, v, "ME")]
    assert evaluate(truth, pred).per_type["ME"].f1 == 1.0
    table = result.table
    # per (win, order, P): 6 TINY values ("peaks") + 5 gaps x 3 pads x 3 minima ("runs")
    # (with lone peaks kept and dropped)
    assert len(table) == 2 * 2 * 5 * (6 * 2 + 5 * 3 * 3) and table["f1"].iloc[0] == 1.0
    assert not result.params.drop_unpaired  # every truth here is a lone peak
    peaks = table[table["rule"] == "peaks"]
    # tiny 0.1 gives 3-frame intervals: IoU 3/11 with the 11-frame truth, no match
    assert peaks[peaks["tiny"] == 0.1]["f1"].max() == 0.0
    assert result.params.rule == "peaks"  # a tie keeps the paper's rule


def test_grid_search_fixed_threshold_lies_between_noise_and_bumps() -> None:
    seqs, truth = labelled_videos(k=10, n_videos=2)
    grids = SearchGrids(win=(9,), order=(2,), tiny=(0.5,))
    result = grid_search(seqs, truth, "ME", k=10, fixed_threshold=True, grids=grids)
    assert result.f1 == 1.0 and result.params.threshold is not None
    assert 0.15 <= result.params.threshold <= 0.8
    low = result.table[result.table["threshold"] == 0.05]["f1"].iloc[0]
    assert low < 1.0  # a threshold inside the noise merges everything into long chunks


def test_grid_search_needs_data() -> None:
    with pytest.raises(ValueError):
        grid_search({}, [], "ME", k=6)


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_window_grid_is_the_papers_at_cas_rates(fps: float) -> None:
    assert window_grid(fps) == PAPER_WINDOWS == SearchGrids().win


def test_window_grid_adds_long_odd_windows_at_high_rates() -> None:
    assert window_grid(200.0) == (9, 11, 13, 15, 31, 61, 101)  # about 0.15, 0.3 and 0.5 s
    for fps in (50.0, 60.0, 90.0, 120.0, 200.0, 240.0, 500.0):
        grid = window_grid(fps)
        assert grid[:4] == PAPER_WINDOWS and list(grid) == sorted(set(grid))
        assert all(w % 2 == 1 for w in grid) and abs(grid[-1] - 0.5 * fps) <= 1
    with pytest.raises(ValueError):
        window_grid(0.0)


def test_long_windows_win_on_a_noisy_high_rate_curve() -> None:
    """A 200 fps-like score curve: broad expression bumps under noise correlated over ~10
    frames. The paper's 9-15 frame windows leave spurious peaks above every threshold; the
    fps-aware grid finds a long window that removes them."""
    k = 40
    rng = np.random.default_rng(3)
    half = half_width(k, 0.5)
    seqs: dict[str, np.ndarray] = {}
    truth: list[Interval] = []
    for v in range(3):
        n = 4000
        centres = list(range(300, n - 300, 500))
        noise = uniform_filter1d(rng.random(n), 11)
        seqs[f"v{v}"] = 1.4 * (noise - 0.5) + 0.3 + bumps(n, centres, width=20, height=0.35)
        truth += [Interval(f"v{v}", "ME", 1 + c + k // 2 - half, 1 + c + k // 2 + half) for c in centres]
    # the peak rule only: this is about the window axis ("runs" copes with short windows here)
    paper = grid_search(seqs, truth, "ME", k, fixed_threshold=True,
                        grids=SearchGrids(tiny=(0.5,), order=(0,), rule=("peaks",)))
    wide = grid_search(seqs, truth, "ME", k, fixed_threshold=True,
                       grids=SearchGrids(tiny=(0.5,), order=(0,), win=grids_for_fps(200.0).win, rule=("peaks",)))
    assert paper.f1 < 0.9 < wide.f1
    assert wide.params.win > max(PAPER_WINDOWS)


# -- the "runs" interval rule -------------------------------------------------------------


def plateau_videos(k: int, lengths: list[int], n: int = 1500) -> tuple[dict[str, np.ndarray], list[Interval]]:
    """What a network that has learnt an expression's whole span gives: a plateau near 1
    over each expression (ramps of K/2 at both ends), noise below 0.3 elsewhere; truth =
    the plateau's frames (index + K//2)."""
    rng = np.random.default_rng(11)
    seqs: dict[str, np.ndarray] = {}
    truth: list[Interval] = []
    for v in range(2):
        x = 0.3 * rng.random(n)
        start = 100
        for length in lengths:
            ramp = np.linspace(0.3, 1.0, k // 2 + 2)[1:-1]
            x[start : start + len(ramp)] = ramp
            x[start + len(ramp) : start + len(ramp) + length] = 0.97 + 0.03 * rng.random(length)
            x[start + len(ramp) + length : start + 2 * len(ramp) + length] = ramp[::-1]
            on = 1 + start + len(ramp) + k // 2
            truth.append(Interval(f"v{v}", "MaE", on, on + length - 1))
            start += length + 2 * len(ramp) + 120
        seqs[f"v{v}"] = x
    return seqs, truth


def test_runs_follow_a_plateau_from_onset_to_offset() -> None:
    k = 18
    seqs, truth = plateau_videos(k, [40, 90, 120])
    runs = PostParams(k=k, win=9, order=2, threshold=0.9, rule="runs")
    pred = postprocess(seqs["v0"], runs, "v0", "MaE")
    mine = [iv for iv in truth if iv.video == "v0"]
    assert len(pred) == len(mine)
    for p, t in zip(pred, mine):
        assert abs(p.onset - t.onset) <= 3 and abs(p.offset - t.offset) <= 3, (p, t)
        assert p.onset <= p.apex <= p.offset and 0.9 <= p.score <= 1.0
    # the paper's peaks box a plateau at one place: the long ones are missed
    peaks = PostParams(k=k, win=9, order=2, threshold=0.9, tiny=0.6)
    f1_peaks = evaluate(truth, [iv for v, s in seqs.items() for iv in postprocess(s, peaks, v, "MaE")])
    f1_runs = evaluate(truth, [iv for v, s in seqs.items() for iv in postprocess(s, runs, v, "MaE")])
    assert f1_runs.per_type["MaE"].f1 == 1.0 > f1_peaks.per_type["MaE"].f1


def test_grid_search_chooses_runs_on_plateaus() -> None:
    k = 18
    seqs, truth = plateau_videos(k, [40, 90, 120])
    result = grid_search(seqs, truth, "MaE", k, fixed_threshold=True,
                         grids=SearchGrids(win=(9,), order=(2,), threshold=(0.5, 0.9)))
    assert result.params.rule == "runs" and result.f1 == 1.0
    assert result.table[result.table["rule"] == "peaks"]["f1"].max() < 1.0


def test_run_pad_min_run_and_trimming() -> None:
    from calibration.postprocess import run_spans

    s = np.zeros(100)
    s[10:30] = 1.0  # a run of 20 samples
    s[50:53] = 1.0  # a run of 3
    s[70:71] = 0.8  # a run of 1
    spans = lambda **kw: [(lo, hi) for lo, hi, *_ in run_spans(s, 0.5, PostParams(k=10, rule="runs", **kw))]  # noqa: E731
    assert spans() == [(10, 29), (50, 52), (70, 70)]
    assert spans(run_pad=0.25) == [(7, 32), (47, 55), (67, 73)]  # floor(2.5 + 0.5) = 3 each side
    assert spans(run_pad=-0.1) == [(11, 28), (51, 51)]  # the 1-sample run is trimmed to nothing
    assert spans(min_run=0.3) == [(10, 29), (50, 52)]  # shorter than 3 samples: dropped
    assert spans(min_run=0.5) == [(10, 29)]
    # pairing: gaps are 20 (29 -> 50) and 17 (52 -> 70) quiet samples; two runs at most
    assert spans(run_gap=1.7) == [(10, 29), (50, 70)]
    assert spans(run_gap=2.0) == [(10, 52), (70, 70)]  # greedy from the left
    assert spans(run_gap=2.0, min_run=2.3) == [(10, 52)]  # 23 active samples in it, 1 in the other
    assert spans(run_gap=2.0, min_run=2.4) == []
    apex = run_spans(s + np.where(np.arange(100) == 21, 0.5, 0.0), 0.5, PostParams(k=10, rule="runs"))[0][2]
    assert apex == 21
    # a padded run stays inside the data
    edge = np.ones(12)
    assert [(lo, hi) for lo, hi, *_ in run_spans(edge, 0.5, PostParams(k=10, rule="runs", run_pad=0.5))] == [(0, 11)]


def test_runs_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="rule"):
        PostParams(k=6, rule="plateau")
    with pytest.raises(ValueError, match="runs"):
        PostParams(k=6, run_pad=0.5)  # a pad means nothing to the peak rule
    with pytest.raises(ValueError):
        PostParams(k=6, rule="runs", min_run=-1.0)
    p = PostParams(k=6, rule="runs", run_pad=-0.5, min_run=1.0)
    assert PostParams.from_dict(p.to_dict()) == p
    assert (p.pad, p.half, p.quiet, p.margin) == (-3, 0, 2, 1)
    assert PostParams(k=6, rule="runs", run_gap=2.0, run_pad=0.5).quiet == 13  # runs 12 apart pair
    with pytest.raises(ValueError):
        PostParams(k=6, run_gap=1.0)
    assert PostParams(k=5, rule="runs", run_pad=-0.5).pad == -2  # -2.5 rounds half up
    assert p.chunk_limit == 2 * (4 * 6 + 2)  # the short Q of runs does not shorten L
    wide = PostParams(k=6, rule="runs", run_gap=5.0)  # Q = 31: L may not fall below 2Q
    assert wide.chunk_limit == 2 * wide.quiet == 62 and wide.with_(max_chunk=62).chunk_limit == 62


def test_grids_search_the_rules_asked_for() -> None:
    from calibration.search import rules_option

    assert grids_for_fps(30.0).rule == ("peaks", "runs") == rules_option("auto")
    assert grids_for_fps(30.0, rules_option("runs")).shapes()[0]["rule"] == "runs"
    assert {s["rule"] for s in grids_for_fps(30.0, ("peaks",)).shapes()} == {"peaks"}
    with pytest.raises(ValueError, match="rules"):
        grids_for_fps(30.0, ("plateau",))


def test_runs_pair_the_motion_into_and_out_of_a_long_expression() -> None:
    """Onset and offset motion 4.5K apart: the paper's pairing (span <= 4K) cannot join
    them; runs paired across the hold can, and the grid search finds that."""
    k = 18
    seqs, truth = two_bump_videos(k, hold=int(3.5 * k))
    grids = SearchGrids(win=(9,), order=(2,), threshold=(0.5, 0.7))
    result = grid_search(seqs, truth, "MaE", k, fixed_threshold=True, grids=grids)
    assert result.params.rule == "runs" and result.params.run_gap >= 3.0 and result.f1 == 1.0
    assert result.table[result.table["rule"] == "peaks"]["f1"].max() < 0.5
