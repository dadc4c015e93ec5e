"""Live twin of `calibration.cross_type.drop_inside_mae`.

ME intervals are held until the MaE spotter can no longer return an interval that
overlaps them (its `horizon` has passed their offset, or the segment was flushed); then
the ones overlapping a MaE interval are dropped and the rest released in their order.
The result equals the offline rule on the same intervals. While no MaE chunk is open the
MaE horizon runs ahead of the ME spotter's own emission delay, so ME events wait only
behind an open MaE (measured in the README). Only used when the ME weights carry the rule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from calibration.cross_type import overlaps_any, settles
from realtime.common.types import Interval


class InsideMaeGate:
    """Holds ME intervals of one stream, drops those inside MaE intervals (only those
    reaching `min_peak` when given: `calibration.cross_type.settles`)."""

    def __init__(self, min_peak: float | None = None) -> None:
        self.min_peak = min_peak
        self._held: list[Interval] = []
        self._mae: list[Interval] = []  # sorted by onset (spotters return them in order)

    @property
    def held(self) -> int:
        return len(self._held)

    def add_mae(self, intervals: Sequence[Interval]) -> None:
        """Final MaE intervals, as the MaE spotter returns them."""
        self._mae.extend(iv for iv in intervals if settles(iv, self.min_peak))
        self._mae.sort(key=lambda iv: iv.onset)

    def hold(self, intervals: Sequence[Interval]) -> None:
        """Final ME intervals, as the ME spotter returns them."""
        self._held.extend(intervals)

    def release(self, mae_horizon: float, me_horizon: float | None = None) -> list[Interval]:
        """The held ME intervals that end before `mae_horizon` (every MaE interval still
        to come starts at or after it; math.inf once the MaE spotter has flushed), minus
        those overlapping a MaE interval. `me_horizon` (where future ME intervals can
        start) lets MaE intervals that no ME interval can reach be forgotten."""
        if not self._held:
            self._forget(me_horizon)
            return []
        ready = [iv for iv in self._held if iv.offset < mae_horizon]
        if not ready:
            return []
        self._held = [iv for iv in self._held if iv.offset >= mae_horizon]
        onsets = [iv.onset for iv in self._mae]
        out = [iv for iv in ready if not overlaps_any(iv, self._mae, onsets)]
        self._forget(me_horizon)
        return out

    def _forget(self, me_horizon: float | None) -> None:
        """Drop MaE intervals ending before every held and every future ME interval."""
        if me_horizon is None:
            return
        low = min([me_horizon, *(iv.onset for iv in self._held)])
        self._mae = [iv for iv in self._mae if iv.offset >= low]


def settled(horizon: int | None) -> float:
    """A spotter's horizon as a release bound (None: nothing of the segment settled)."""
    return -math.inf if horizon is None else float(horizon)
