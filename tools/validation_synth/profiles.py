"""Temporal profiles of expressions, their schedule in a video and the truth frames.

A profile rises from 0 to 1, may hold, and decays back to exactly 0:
rise(u) = u^q (1 + q (1 - u)) and decay(u) = (1 - u)^p (1 + p u), both C1 (no velocity
jump at the ends). q, p and the rise / hold / decay split are drawn per unit, so
profiles are asymmetric (usually a quicker rise than decay) and differ between the
units of one event, which also start with small lags.

Truth is read off the rendered motion itself: m(k) = the largest vertex displacement of
the event at frame k; onset = the last frame before the apex with m < 5 % of its peak
(the face is still neutral there), apex = the middle of the frames within 1 % of the
peak, offset = the first frame after the apex with m < 5 % of the peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tools.validation_synth import actions

VISIBLE = 0.05  # fraction of the event's peak displacement where motion counts as visible
ME_SECONDS = (0.25, 0.5)  # motion from first to last moving frame; truth (5 % threshold) is a bit shorter
MAE_SECONDS = (0.5, 4.0)
ME_AMPLITUDE = (0.015, 0.032)  # IOD units: ~0.9-2 px at a 112 px aligned face (62 px IOD)
MAE_AMPLITUDE = (0.05, 0.14)


@dataclass(frozen=True)
class Profile:
    start: float  # seconds
    rise: float
    hold: float
    decay: float
    q: float
    p: float

    @property
    def end(self) -> float:
        return self.start + self.rise + self.hold + self.decay

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        u_rise = np.clip((t - self.start) / self.rise, 0, 1)
        rising = u_rise**self.q * (1 + self.q * (1 - u_rise))
        t_decay = self.start + self.rise + self.hold
        u_dec = np.clip((t - t_decay) / self.decay, 0, 1)
        decaying = (1 - u_dec) ** self.p * (1 + self.p * u_dec)
        out = np.where(t < t_decay, rising, decaying)
        return np.where((t <= self.start) | (t >= self.end), 0.0, out)


def random_profile(rng: np.random.Generator, start: float, total: float) -> Profile:
    rise_frac = rng.uniform(0.18, 0.45)
    hold_frac = rng.uniform(0.0, 0.25)
    return Profile(
        start=start,
        rise=rise_frac * total,
        hold=hold_frac * total,
        decay=(1 - rise_frac - hold_frac) * total,
        q=rng.uniform(1.3, 3.0),
        p=rng.uniform(1.3, 4.0),
    )


@dataclass
class Event:
    kind: str  # "ME" or "MaE"
    units: list[tuple[str, str, float, Profile]]  # (unit, sides, weight, profile)
    amplitude: float  # IOD units, peak vertex displacement of the strongest unit
    fields: list[np.ndarray] = field(default_factory=list)  # (470,2) per unit, face frame

    @property
    def start(self) -> float:
        return min(u[3].start for u in self.units)

    @property
    def end(self) -> float:
        return max(u[3].end for u in self.units)

    def displacement(self, t: float) -> np.ndarray:
        """(470,2) face-frame displacement in IOD units at time t."""
        out = np.zeros((actions.N_VERTICES, 2))
        for (name, _, weight, prof), f in zip(self.units, self.fields):
            level = float(prof(np.array([t]))[0])
            if level:
                peak = min(self.amplitude * weight, actions.CAP.get(name, np.inf))
                out += (peak * level) * f
        return out


def _sides(rng: np.random.Generator, asymmetric_p: float) -> str:
    if rng.random() < asymmetric_p:
        return "L" if rng.random() < 0.5 else "R"
    return "LR"


def random_event(rng: np.random.Generator, kind: str, start: float, fps: float) -> Event:
    """Units, sides, weights, lags and profiles of one expression starting at `start` s."""
    lo, hi = ME_SECONDS if kind == "ME" else MAE_SECONDS
    total = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    if kind == "ME":
        region = rng.choice(["brow", "eye", "mouth", "mouth", "nose"])
        pool = [n for n, (r, _) in actions.UNITS.items() if r == region]
        names = list(rng.choice(pool, size=min(len(pool), rng.integers(1, 3)), replace=False))
        amplitude = rng.uniform(*ME_AMPLITUDE)
        asymmetric_p = 0.35
    else:
        if rng.random() < 0.7:
            names = list(actions.PROTOTYPES[rng.integers(len(actions.PROTOTYPES))])
        else:
            names = list(rng.choice(list(actions.UNITS), size=rng.integers(1, 4), replace=False))
        # The leading unit (full weight) carries the amplitude: it must be one that is
        # not capped below the MaE range (a lone lip press would move like an ME).
        free = [n for n in names if n not in actions.CAP]
        if free:
            names.remove(free[0])
            names.insert(0, free[0])
        else:
            names.insert(0, str(rng.choice([n for n in actions.UNITS if n not in actions.CAP])))
        amplitude = rng.uniform(*MAE_AMPLITUDE)
        asymmetric_p = 0.2
    sides = _sides(rng, asymmetric_p)  # one side for the whole event (e.g. a smirk)
    units = []
    max_lag = min(0.25 * total, 0.3)
    for i, name in enumerate(names):
        lag = 0.0 if i == 0 else rng.uniform(0, max_lag)
        own_total = total - lag if i else total
        weight = 1.0 if i == 0 else rng.uniform(0.5, 1.0)
        units.append((str(name), sides, weight, random_profile(rng, start + lag, own_total)))
    return Event(kind=kind, units=units, amplitude=float(amplitude))


def schedule(rng: np.random.Generator, seconds: float, fps: float, mean_spacing: float, me_fraction: float) -> list[Event]:
    """Non-overlapping events: the first after 1-2 s (less in clips under 10 s), then
    start-to-start spacing 0.5-1.5 x `mean_spacing`, at least 0.7 s of rest between."""
    events: list[Event] = []
    t = rng.uniform(min(1.0, 0.1 * seconds), min(2.0, 0.2 * seconds))
    margin = min(0.5, 0.1 * seconds)
    while True:
        kind = "ME" if rng.random() < me_fraction else "MaE"
        event = random_event(rng, kind, t, fps)
        if event.end > seconds - margin:
            break
        events.append(event)
        spacing = rng.uniform(0.5, 1.5) * mean_spacing
        t = max(t + spacing, event.end + rng.uniform(0.7, 1.5))
    return events


def truth_frames(magnitude: np.ndarray) -> tuple[int, int, int] | None:
    """1-based (onset, apex, offset) from an event's per-frame peak displacement."""
    peak = float(magnitude.max())
    if peak <= 0:
        return None
    top = np.flatnonzero(magnitude >= 0.99 * peak)
    apex = int(top[len(top) // 2])
    before = np.flatnonzero(magnitude[: apex + 1] < VISIBLE * peak)
    after = np.flatnonzero(magnitude[apex:] < VISIBLE * peak)
    onset = int(before[-1]) if len(before) else 0
    offset = apex + int(after[0]) if len(after) else len(magnitude) - 1
    return onset + 1, apex + 1, offset + 1
