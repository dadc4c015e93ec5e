"""K and IRL labels: hand cases with known answers plus a brute-force cross-check."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.labels import irl_labels, k_from_intervals, k_from_seconds


def _iv(onset: int, offset: int, kind: str = "ME") -> Interval:
    return Interval(video="v", type=kind, onset=onset, offset=offset)  # type: ignore[arg-type]


def _positive_frames(labels: np.ndarray, first_frame: int = 1) -> list[int]:
    return [int(i) + first_frame for i in np.flatnonzero(labels)]


def test_k_is_half_the_mean_span_rounded_down() -> None:
    # spans 10 and 20 -> mean 15 -> (15 + 1) / 2 = 8
    assert k_from_intervals([_iv(1, 11), _iv(100, 120)]) == 8
    # span 4 -> (4 + 1) / 2 = 2.5 -> 2
    assert k_from_intervals([_iv(5, 9)]) == 2


def test_k_rejects_mixed_types_and_empty() -> None:
    with pytest.raises(ValueError, match="mix"):
        k_from_intervals([_iv(1, 5, "ME"), _iv(1, 5, "MaE")])
    with pytest.raises(ValueError):
        k_from_intervals([])


def test_k_from_seconds() -> None:
    assert k_from_seconds(0.2, 30.0) == 6
    assert k_from_seconds(0.87, 200.0) == 174
    assert k_from_seconds(0.001, 30.0) == 1  # never 0: the pair (i, i + K) needs K >= 1
    with pytest.raises(UserError, match="seconds"):
        k_from_seconds(0.0, 30.0)
    with pytest.raises(UserError, match="fps"):
        k_from_seconds(0.2, -1.0)


def test_irl_long_interval() -> None:
    # K = 4, G = [10, 13] (4 frames), min(K, |G|) = 4: need > 2 frames of [i, i+4] in G.
    # i=7: [7,11] has 2 (no); i=8: 3 (yes) ... i=11: [11,15] has 3 (yes); i=12: 2 (no).
    labels = irl_labels(20, 4, [_iv(10, 13)])
    assert labels.shape == (20,) and labels.dtype == bool
    assert _positive_frames(labels) == [8, 9, 10, 11]


def test_irl_short_interval_uses_its_own_length() -> None:
    # K = 10, G = [20, 21]: min(K, |G|) = 2, so the window must hold both frames.
    assert _positive_frames(irl_labels(40, 10, [_iv(20, 21)])) == list(range(11, 21))


def test_irl_first_frame_offsets_the_numbering() -> None:
    full = irl_labels(30, 4, [_iv(10, 13)])
    part = irl_labels(5, 4, [_iv(10, 13)], first_frame=8)
    np.testing.assert_array_equal(part, full[7:12])


def test_irl_no_truth_and_bad_arguments() -> None:
    assert not irl_labels(10, 3, []).any()
    with pytest.raises(ValueError):
        irl_labels(10, 0, [_iv(2, 4)])
    with pytest.raises(ValueError, match="videos"):
        irl_labels(10, 2, [_iv(2, 4), Interval("w", "ME", 5, 6)])


def _brute_irl(n: int, k: int, truth: list[Interval], first: int) -> list[bool]:
    """Set-based restatement of the IRL definition, frame by frame."""
    out = []
    for i in range(first, first + n):
        window = set(range(i, i + k + 1))
        out.append(any(
            len(window & set(range(g.onset, g.offset + 1))) / min(k, g.length) > 0.5 for g in truth
        ))  # fmt: skip
    return out


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 60),
    k=st.integers(1, 12),
    first=st.integers(1, 5),
    spans=st.lists(st.tuples(st.integers(1, 70), st.integers(0, 25)), max_size=4),
)
def test_irl_matches_brute_force(n: int, k: int, first: int, spans: list[tuple[int, int]]) -> None:
    truth = [_iv(onset, onset + extra) for onset, extra in spans]
    assert irl_labels(n, k, truth, first_frame=first).tolist() == _brute_irl(n, k, truth, first)
