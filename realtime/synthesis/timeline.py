"""Expression event schedule with exact ground truth.

Every event has a continuous onset-apex-offset profile p(t) in [0, 1] (raised-cosine rise
to the apex, optional hold, raised-cosine fall). The truth is defined on the sampled
profile: onset / offset = first / last frame where p > VISIBLE (5 % of the peak), apex =
first frame at the peak. The continuous profile is built so that these crossings fall
half a frame outside the intended frames, so the sampled truth equals the drawn
durations; `truth_of` still derives it from the samples, which are what is rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from realtime.common.types import ExprType, Interval
from realtime.synthesis.actions import CANONICAL, ActionShape

VISIBLE = 0.05  # fraction of the peak above which motion counts as part of the event
_U0 = float(np.arccos(1 - 2 * VISIBLE) / np.pi)  # raised cosine reaches VISIBLE at u = _U0


@dataclass(frozen=True)
class DurationModel:
    """Truncated log-normal durations (seconds) per type.

    Derived once from the real workbooks (annotations/CAS.xlsx, SAMM.xlsx; end = max(apex,
    offset), onset 0 -> apex) with length = (end - onset + 1) / fps:
      CAS  ME : n=57,  median 0.47 s, log-mean -0.804, log-sd 0.159
      CAS  MaE: n=300, median 1.03 s, log-mean  0.043, log-sd 0.568
      SAMM ME : n=159, median 0.39 s, log-mean -1.029, log-sd 0.295
      SAMM MaE: n=343, median 1.08 s, log-mean  0.235, log-sd 0.705
    and truncated to the project's definitions: ME 0.2-0.5 s, MaE 0.5-4 s (SAMM's long
    MaE tail up to 26 s is cut). Apex position (apex - onset) / (offset - onset): median
    0.40-0.44, inter-quartile 0.29-0.58 in both sets -> Beta(4, 5.5).
    """

    me_log_mean: float
    me_log_sd: float
    mae_log_mean: float
    mae_log_sd: float
    me_range: tuple[float, float] = (0.2, 0.5)
    mae_range: tuple[float, float] = (0.5, 4.0)
    apex_beta: tuple[float, float] = (4.0, 5.5)

    def draw(self, rng: np.random.Generator, kind: ExprType) -> float:
        mean, sd, (lo, hi) = (
            (self.me_log_mean, self.me_log_sd, self.me_range)
            if kind == "ME"
            else (self.mae_log_mean, self.mae_log_sd, self.mae_range)
        )
        for _ in range(1000):  # rejection sampling keeps the shape inside the range
            d = float(np.exp(rng.normal(mean, sd)))
            if lo <= d <= hi:
                return d
        return float(np.clip(np.exp(mean), lo, hi))


CAS_DURATIONS = DurationModel(-0.804, 0.159, 0.043, 0.568)
SAMM_DURATIONS = DurationModel(-1.029, 0.295, 0.235, 0.705)


def durations_for(fps: float) -> DurationModel:
    """CAS(ME)^2 statistics for camera-rate video, SAMM-LV for high-speed video."""
    return CAS_DURATIONS if fps < 100 else SAMM_DURATIONS


@dataclass(frozen=True)
class Event:
    """One expression: its type, actions with amplitudes (px at 112-px face scale), and
    the intended visible frames (1-based, inclusive)."""

    type: ExprType
    actions: tuple[tuple[str, float], ...]
    onset: int
    apex: int
    hold: int  # frames at the peak after the apex
    offset: int
    shapes: tuple[ActionShape, ...] = ()  # one per action (varied actions); () = canonical

    def shape_of(self, k: int) -> ActionShape:
        """The shape of the k-th action."""
        return self.shapes[k] if self.shapes else CANONICAL

    def profile(self, frames: np.ndarray) -> np.ndarray:
        """p(frame) in [0, 1] for an array of 1-based frame numbers."""
        t = frames.astype(np.float64)
        rise = (self.apex - self.onset + 0.5) / (1 - _U0)  # p(onset - 0.5) == VISIBLE
        top_end = self.apex + self.hold
        fall = (self.offset + 0.5 - top_end) / (1 - _U0)  # p(offset + 0.5) == VISIBLE
        start, end = self.apex - rise, top_end + fall
        up = np.clip((t - start) / rise, 0, 1)
        down = np.clip((end - t) / fall, 0, 1)
        p = np.where(t <= self.apex, 0.5 - 0.5 * np.cos(np.pi * up), 1.0)
        p = np.where(t >= top_end, 0.5 - 0.5 * np.cos(np.pi * down), p)
        return p

    def support(self) -> tuple[int, int]:
        """Frames where the profile is non-zero (it is 0 outside), for rendering."""
        rise = (self.apex - self.onset + 0.5) / (1 - _U0)
        fall = (self.offset + 0.5 - self.apex - self.hold) / (1 - _U0)
        return int(np.floor(self.apex - rise)), int(np.ceil(self.apex + self.hold + fall))


def truth_of(event: Event, video: str) -> Interval:
    """The truth interval measured on the sampled profile (see module doc)."""
    lo, hi = event.support()
    frames = np.arange(lo, hi + 1)
    p = event.profile(frames)
    visible = frames[p > VISIBLE * p.max()]
    apex = int(frames[int(np.argmax(p))])
    return Interval(video=video, type=event.type, onset=int(visible[0]), offset=int(visible[-1]), apex=apex)


@dataclass(frozen=True)
class ScheduleSettings:
    """Event rates and spacing. Real rates are lower (CAS 1.5, SAMM 5.8 events/min);
    synthetic videos are denser so that they are informative."""

    mae_per_min: float = 6.0
    me_per_min: float = 4.5
    min_gap_s: float = 1.0  # quiet time between the visible parts of two events
    lead_s: float = 1.0  # quiet time at the start and end of the video
    me_amplitude: tuple[float, float] = (1.0, 2.0)  # px at 112-px face scale
    mae_amplitude: tuple[float, float] = (3.0, 6.0)
    # Varied actions (training data that covers more of what real faces do): units drawn
    # from all of AU_WEIGHTS_VARIED, each occurrence with its own ActionShape (one-sided,
    # asymmetric, turned, wider or narrower). Off: the canonical eight, as older seeds.
    vary_actions: bool = False


# Relative AU frequencies in the real workbooks (CAS+SAMM counts: AU12 261, AU4 202,
# AU7 157, AU1/2 ~72, AU10 ~45, AU17 ~35, AU15 25, AU9 ~15; AU14/6/24 have no
# counterpart here and are left out).
AU_WEIGHTS: Mapping[str, float] = MappingProxyType({
    "AU12": 0.26, "AU4": 0.2, "AU7": 0.15, "AU1+2": 0.12, "AU10": 0.08, "AU17": 0.08, "AU15": 0.06, "AU9": 0.05,
})  # fmt: skip
# With varied actions: every unit of realtime/synthesis/actions.py, weighted by its count
# in the real workbooks (CAS + SAMM Action Units columns: AU12 131, AU7 124, AU4 78, AU14 70,
# AU24 62, AU2 60, AU25/26 77, AU5 40, AU6 40, AU10 38, AU17 32, AU1 31, AU15 18, AU20 16,
# AU23 13, AU9 11; AU1+2 stands for the raises of both, so AU2 totals 60 and AU1 31).
AU_WEIGHTS_VARIED: Mapping[str, float] = MappingProxyType({
    "AU12": 131, "AU7": 124, "AU4": 78, "AU14": 70, "AU24": 62, "AU25+26": 77, "AU1+2": 28, "AU2": 32,
    "AU5": 40, "AU6": 40, "AU10": 38, "AU17": 32, "AU1": 3, "AU15": 18, "AU20": 16, "AU23": 13, "AU9": 11,
})  # fmt: skip
_EXCLUSIVE = (
    frozenset({"AU12", "AU15"}), frozenset({"AU1+2", "AU4"}),  # antagonists never combined
    frozenset({"AU1+2", "AU1"}), frozenset({"AU1+2", "AU2"}),  # parts of one another
    frozenset({"AU24", "AU25+26"}), frozenset({"AU23", "AU25+26"}), frozenset({"AU14", "AU20"}),
    frozenset({"AU17", "AU25+26"}),  # chin up and jaw down on the same anchors cancel
)  # fmt: skip


def _draw_actions(
    rng: np.random.Generator, amp: float, table: Mapping[str, float] = AU_WEIGHTS
) -> tuple[tuple[str, float], ...]:
    names = list(table)
    weights = np.array([table[n] for n in names], dtype=float)
    count = int(rng.choice([1, 2, 3], p=[0.55, 0.33, 0.12]))
    chosen: list[str] = []
    while len(chosen) < count:
        free = [i for i, n in enumerate(names) if n not in chosen
                and not any(n in pair and c in pair for pair in _EXCLUSIVE for c in chosen)]  # fmt: skip
        if not free:
            break
        w = weights[free] / weights[free].sum()
        chosen.append(names[free[int(rng.choice(len(free), p=w))]])
    # The first action carries the full amplitude, companions a bit less.
    return tuple((n, amp * (1.0 if i == 0 else float(rng.uniform(0.6, 1.0)))) for i, n in enumerate(chosen))


def schedule_events(
    rng: np.random.Generator, n_frames: int, fps: float, durations: DurationModel, settings: ScheduleSettings
) -> list[Event]:
    """Non-overlapping events, at least min_gap_s apart. The extra spacing is
    Gamma(3)-distributed (less bursty than Poisson) so that even short videos get close to
    the requested rates."""
    rate = (settings.mae_per_min + settings.me_per_min) / 60.0
    p_mae = settings.mae_per_min / (settings.mae_per_min + settings.me_per_min)
    # Mean event length ~1.3 s MaE / 0.4 s ME; the random gap makes up the rest.
    mean_len = p_mae * 1.3 + (1 - p_mae) * 0.4
    extra = max(0.1, 1.0 / rate - mean_len - settings.min_gap_s)
    events: list[Event] = []
    t = settings.lead_s + float(rng.uniform(0, extra))
    last = n_frames - int(round(settings.lead_s * fps))
    while True:
        kind: ExprType = "MaE" if rng.random() < p_mae else "ME"
        length = max(3, int(round(durations.draw(rng, kind) * fps)))
        if kind == "ME":  # keep ME within 0.5 s after rounding to frames
            length = min(length, int(np.floor(durations.me_range[1] * fps)))
        onset = int(round(t * fps)) + 1
        offset = onset + length - 1
        if offset > last:
            break
        frac = float(rng.beta(*durations.apex_beta))
        hold = 0
        if kind == "MaE" and rng.random() < 0.4:  # some macro-expressions hold their apex
            hold = int(rng.uniform(0.1, 0.35) * (length - 1))
        apex = onset + int(round(frac * (length - 1 - hold)))
        apex = min(max(apex, onset + 1), offset - hold - 1) if length - hold >= 3 else onset
        lo, hi = settings.me_amplitude if kind == "ME" else settings.mae_amplitude
        if settings.vary_actions:
            actions = _draw_actions(rng, float(rng.uniform(lo, hi)), AU_WEIGHTS_VARIED)
            shapes = tuple(ActionShape.draw(rng) for _ in actions)
        else:
            actions, shapes = _draw_actions(rng, float(rng.uniform(lo, hi))), ()
        events.append(Event(kind, actions, onset, apex, hold, offset, shapes))
        t = offset / fps + settings.min_gap_s + float(rng.gamma(3.0, extra / 3.0))
    return events
