"""OnlineSpotter: sample-by-sample output equals offline postprocess (fixed threshold)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from calibration.postprocess import PostParams, postprocess, smooth
from calibration.search import window_grid
from realtime.common.types import Interval
from realtime.spotter import TRIM_SLACK, OnlineSpotter, RollingMoilanen


def random_scores(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """Smoothed noise plus random bumps of widths K..3K."""
    x = smooth(rng.random(n) * 0.3, 7, 1)
    idx = np.arange(n)
    for c in rng.integers(0, n, max(n // (8 * k), 1)):
        w = rng.integers(k, 3 * k + 1)
        x = x + rng.uniform(0.3, 0.9) * np.exp(-0.5 * ((idx - c) / (w / 2)) ** 2)
    return x


def paired_scores(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """random_scores plus narrow bump pairs 1-2K apart (an onset and an offset peak)."""
    x = random_scores(rng, n, k)
    idx = np.arange(n)
    for c in rng.integers(0, n, max(n // (5 * k), 12)):
        for centre in (c, c + rng.integers(k, 2 * k + 1)):
            x = x + rng.uniform(0.5, 0.9) * np.exp(-0.5 * ((idx - centre) / max(k / 6, 1.0)) ** 2)
    return x


def run_online(spotter: OnlineSpotter, first_frame: int, scores: np.ndarray) -> list[Interval]:
    out: list[Interval] = []
    for i, v in enumerate(scores):
        out.extend(spotter.push(first_frame + i, float(v)))
    return out


def assert_same(online: list[Interval], offline: list[Interval]) -> None:
    assert [(i.video, i.type, i.onset, i.offset, i.apex) for i in online] == [
        (i.video, i.type, i.onset, i.offset, i.apex) for i in offline
    ]
    for a, b in zip(online, offline):
        assert abs(a.score - b.score) <= 1e-9


def random_params(rng: np.random.Generator, k: int, forced_cuts: bool, rule: str = "peaks") -> PostParams:
    params = PostParams(
        k=k,
        tiny=float(rng.choice([0.1, 0.3, 0.6])),
        # long windows (200 fps grid) go with long K, as at 200 fps; at short K they flatten
        # the random curve into too few intervals to prove anything
        win=int(rng.choice(window_grid(200) if k > 30 else window_grid(30))),
        order=int(rng.integers(0, 5)),
        threshold=0.5,
    )
    if rule == "peaks-drop":  # lone peaks give no interval (PostParams.drop_unpaired)
        params = params.with_(drop_unpaired=True)
    if rule == "runs":
        params = params.with_(tiny=0.3, rule="runs", run_pad=float(rng.choice([-0.5, 0.0, 0.5])),
                              min_run=float(rng.choice([0.0, 1.0])), run_gap=float(rng.choice([0.0, 2.0])))
    # forced cuts at about half the default L (2Q + 3 for "peaks"; a chunk of the short Q of
    # "runs" could not hold a run of min_run*K samples)
    return params.with_(max_chunk=max(2 * params.quiet, params.chunk_limit // 2) + 3) if forced_cuts else params


@pytest.mark.parametrize("rule", ["peaks", "peaks-drop", "runs"])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [6, 18, 37])
def test_online_equals_offline(seed: int, k: int, rule: str) -> None:
    rng = np.random.default_rng(1000 * seed + k)
    n = int(rng.integers(2000, 20000))
    scores = paired_scores(rng, n, k) if rule == "peaks-drop" else random_scores(rng, n, k)
    params = random_params(rng, k, forced_cuts=seed % 2 == 1, rule=rule)
    offline = postprocess(scores, params, "cam", "ME", first_frame=7)
    spotter = OnlineSpotter(params, "cam", "ME")
    online = run_online(spotter, 7, scores) + spotter.flush()
    assert len(offline) > 10
    if params.drop_unpaired:  # lone peaks went: fewer intervals than with them kept
        assert len(offline) < len(postprocess(scores, params.with_(drop_unpaired=False), "cam", "ME", first_frame=7))
    assert_same(online, offline)


@pytest.mark.parametrize("win", [w for w in window_grid(200) if w > 15])
@pytest.mark.parametrize("forced_cuts", [False, True])
def test_online_equals_offline_long_windows(win: int, forced_cuts: bool) -> None:
    """The 200 fps grid's long smoothing windows (calibration.search.window_grid)."""
    k = 40
    rng = np.random.default_rng(win)
    scores = random_scores(rng, 12000, k)
    params = random_params(rng, k, forced_cuts).with_(win=win)
    offline = postprocess(scores, params, "cam", "ME", first_frame=3)
    spotter = OnlineSpotter(params, "cam", "ME")
    online = run_online(spotter, 3, scores) + spotter.flush()
    assert len(offline) > 5
    assert_same(online, offline)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("implicit", [False, True])
def test_chain_break_equals_offline_segments(seed: int, implicit: bool) -> None:
    rng = np.random.default_rng(seed)
    k = 18
    scores = random_scores(rng, 6000, k)
    params = random_params(rng, k, forced_cuts=False)
    cut = int(rng.integers(1000, 5000))
    a, b = scores[:cut], scores[cut + 40 :]  # 40 frames without a face in between
    offline = postprocess(a, params, "cam", "MaE", 1) + postprocess(b, params, "cam", "MaE", cut + 41)
    spotter = OnlineSpotter(params, "cam", "MaE")
    online = run_online(spotter, 1, a)
    if not implicit:
        online += spotter.flush()  # what the pipeline does on a chain break
    online += run_online(spotter, cut + 41, b) + spotter.flush()  # a frame gap flushes too
    assert_same(online, offline)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=250),
    k=st.integers(1, 8),
    win=st.sampled_from([1, 3, 9, 11]),
    order=st.integers(0, 4),
    tiny=st.sampled_from([0.0, 0.3, 0.6]),
    threshold=st.floats(0.05, 0.95),
)
def test_online_equals_offline_arbitrary(values, k, win, order, tiny, threshold) -> None:  # type: ignore[no-untyped-def]
    """Short segments, plateaus, edge peaks, windows larger than the data."""
    params = PostParams(k=k, win=win, order=min(order, win - 1), tiny=tiny, threshold=threshold)
    scores = np.array(values)
    offline = postprocess(scores, params, "v", "ME", first_frame=3)
    spotter = OnlineSpotter(params, "v", "ME")
    assert_same(run_online(spotter, 3, scores) + spotter.flush(), offline)


@pytest.mark.parametrize("params", [PostParams(k=6, tiny=0.3, win=11, order=2, threshold=0.5),
                                    PostParams(k=6, win=11, order=2, threshold=0.5, rule="runs", run_pad=0.5)])
def test_emission_delay_is_half_window_plus_quiet_gap(params: PostParams) -> None:
    """Q = 4K + 2*half + 2 for "peaks" (30 here), 2*half + 2 for "runs" (8 here)."""
    assert params.quiet == (30 if params.rule == "peaks" else 8)
    x = np.arange(600, dtype=np.float64)
    scores = 0.9 * np.exp(-0.5 * ((x - 200) / 4.0) ** 2)
    last_active = int(np.flatnonzero(smooth(scores, 11, 2) >= 0.5)[-1])
    spotter = OnlineSpotter(params, "v", "ME")
    emitted_at = [i for i, v in enumerate(scores) if spotter.push(1 + i, float(v))]
    assert emitted_at == [last_active + params.quiet + params.win // 2]


def test_rolling_threshold_finds_bumps_without_calibration() -> None:
    rng = np.random.default_rng(3)
    k = 6
    scores = 0.05 + 0.02 * rng.random(3000)
    centres = [800, 1500, 2300]
    x = np.arange(3000)
    for c in centres:
        scores += 0.8 * np.exp(-0.5 * ((x - c) / 3.0) ** 2)
    spotter = OnlineSpotter(PostParams(k=k, p=0.5, win=9, order=2), "v", "ME", rolling_window=600)
    out = run_online(spotter, 1, scores) + spotter.flush()
    assert [iv.apex for iv in out] == [1 + c + k // 2 for c in centres]


def test_rolling_moilanen_matches_numpy_window() -> None:
    rng = np.random.default_rng(0)
    values = rng.random(500)
    roll = RollingMoilanen(37, 0.7)
    for i, v in enumerate(values):
        roll.add(float(v))
        w = values[max(0, i - 36) : i + 1]
        assert roll.value == pytest.approx(w.mean() + 0.7 * (w.max() - w.mean()))


def test_memory_stays_bounded_on_a_long_active_stream() -> None:
    params = PostParams(k=6, win=9, order=2, threshold=0.5)
    spotter = OnlineSpotter(params, "v", "ME")
    rng = np.random.default_rng(1)
    emitted = 0
    for i in range(20000):  # always above threshold: only forced cuts can bound memory
        emitted += len(spotter.push(1 + i, 0.8 + 0.1 * float(rng.random())))
        assert len(spotter._sm) <= params.chunk_limit + params.margin + TRIM_SLACK + 1
    assert emitted > 0


def test_pushing_an_old_frame_is_an_error() -> None:
    spotter = OnlineSpotter(PostParams(k=6, threshold=0.5), "v", "ME")
    spotter.push(10, 0.1)
    with pytest.raises(ValueError):
        spotter.push(10, 0.1)
    assert spotter.flush() == [] and spotter.flush() == []


def test_rolling_threshold_ignores_a_flat_quiet_stream() -> None:
    spotter = OnlineSpotter(PostParams(k=6, p=0.5, win=9, order=2, min_score=0.1), "v", "ME", rolling_window=300)
    out = run_online(spotter, 1, np.full(2000, 0.02))
    assert spotter.pending_frames == 0  # no chunk open on silence
    assert out + spotter.flush() == []


def test_adaptive_threshold_is_the_fixed_one_lowered_by_the_rolling_one() -> None:
    """adaptive: min(fixed, max(rolling Moilanen, min_score)) on every sample, the fixed one
    alone before `win` smoothed samples exist; never above the fixed one."""
    rng = np.random.default_rng(5)
    k, win, p, size = 6, 9, 0.5, 120
    scores = random_scores(rng, 1500, k) * 0.6  # peaks well below the fixed 0.8 at times
    params = PostParams(k=k, p=p, win=win, order=2, threshold=0.8, min_score=0.1, adaptive=True)
    spotter = OnlineSpotter(params, "v", "MaE", rolling_window=size)
    seen: list[tuple[float, float | None]] = []
    spotter.on_sample = lambda s: seen.append((s.smoothed, s.threshold))
    run_online(spotter, 1, scores)
    roll = RollingMoilanen(size, p)
    lowered = frozen = 0
    previous = None
    for i, (value, threshold) in enumerate(seen):
        roll.add(value)
        if i + 1 < win:
            assert threshold == 0.8
        else:
            want = min(0.8, max(roll.value, 0.1))
            # the value in force now, or the one an open chunk froze (module docstring)
            assert threshold == pytest.approx(want) or threshold == previous
            frozen += threshold != pytest.approx(want)
            lowered += threshold is not None and threshold < 0.8
        previous = threshold
    assert lowered > len(seen) // 2 and frozen > 0  # the stream's own scale lowered it; chunks froze it
    # Where the rolling threshold never drops below the ceiling, adaptive is the fixed rule
    # exactly, and so equals offline postprocess with that threshold.
    loud = random_scores(np.random.default_rng(6), 1500, k) * 0.2 + 0.85
    fixed = params.with_(adaptive=False, threshold=0.8)
    got = run_online(OnlineSpotter(params, "v", "MaE", rolling_window=size), 1, loud)
    want_fixed = run_online(OnlineSpotter(fixed, "v", "MaE", rolling_window=size), 1, loud)
    assert got == want_fixed and got


def test_adaptive_offline_threshold_and_its_validation() -> None:
    from calibration.postprocess import resolve_threshold

    low = np.r_[np.zeros(50), np.full(10, 0.4)]
    params = PostParams(k=6, p=0.5, threshold=0.8, adaptive=True)
    assert resolve_threshold(low, params) == pytest.approx(max(0.4 * 10 / 60 + 0.5 * (0.4 - 0.4 / 6), 0.1))
    assert resolve_threshold(np.full(60, 0.95), params) == 0.8  # the ceiling
    assert resolve_threshold(np.zeros(60), params) == 0.1  # floored at min_score
    assert resolve_threshold(low, params.with_(adaptive=False)) == 0.8
    with pytest.raises(ValueError, match="adaptive needs a fixed threshold"):
        PostParams(k=6, adaptive=True)
