"""Motion and appearance changes a spotter must ignore (they carry no truth).

All distractors are precomputed as per-frame parameter arrays (index 0 = frame 1), so a
frame can be rendered on its own from (scene, arrays, frame number): blinks (lid
closure), slow head drift plus fast turns/nods (a similarity transform about the face
centre), illumination ramps (gain, gamma) and the sensor-noise level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.synthesis.actions import ACTIONS
from realtime.synthesis.timeline import Event


@dataclass(frozen=True)
class Distractor:
    """One scheduled distractor, for reports and tests (frames 1-based, inclusive)."""

    kind: str  # "blink", "turn", "nod", "light"; "yaw", "pitch" (head_turns.py)
    start: int
    end: int


@dataclass(frozen=True)
class DistractorTrack:
    """Per-frame parameters, each an (n_frames,) float32 array."""

    closure: np.ndarray  # eyelid closure 0..1 (both eyes)
    tx: np.ndarray  # head translation, px
    ty: np.ndarray
    angle: np.ndarray  # head roll, degrees
    scale: np.ndarray  # head scale factor (nods / distance changes)
    gain: np.ndarray  # illumination gain
    gamma: np.ndarray  # illumination gamma
    noise_sigma: float  # Gaussian sensor noise, grey levels
    items: tuple[Distractor, ...]

    @classmethod
    def still(cls, n_frames: int) -> DistractorTrack:
        zeros = np.zeros(n_frames, np.float32)
        ones = np.ones(n_frames, np.float32)
        return cls(zeros, zeros, zeros, zeros, ones, ones, ones, 0.0, ())


def _bump(n: int, start: float, length: float, rise_frac: float) -> tuple[np.ndarray, int, int]:
    """A 0 -> 1 -> 0 raised-cosine bump over [start, start + length) frame indices
    (0-based), peaking at rise_frac of its length; returns (values, first, last)."""
    first, last = int(np.floor(start)), min(n - 1, int(np.ceil(start + length)))
    t = np.arange(first, last + 1, dtype=np.float64) - start
    peak = rise_frac * length
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip(t / peak, 0, 1))
    down = 0.5 - 0.5 * np.cos(np.pi * np.clip((length - t) / (length - peak), 0, 1))
    return np.where(t <= peak, up, down), first, last


def _busy(events: list[Event], region: str | None, fps: float, n: int) -> np.ndarray:
    """Boolean (n,) mask of frames within 0.3 s of an event (of a region, or any)."""
    mask = np.zeros(n, bool)
    pad = int(round(0.3 * fps))
    for e in events:
        if region is None or any(ACTIONS[a].region == region for a, _ in e.actions):
            mask[max(0, e.onset - 1 - pad) : min(n, e.offset + pad)] = True
    return mask


def _free_start(rng: np.random.Generator, busy: np.ndarray, t: float, length: float, fps: float,
                keep_overlap: float) -> float:
    """First start >= t where [start, start + length] hits no busy frame, stepping by
    0.25 s (postponed, not dropped, so the rate holds). With probability keep_overlap the
    candidate stays where it is: real blinks and head moves do happen during expressions."""
    if rng.random() < keep_overlap:
        return t
    while t < len(busy) and busy[int(t) : int(np.ceil(t + length)) + 1].any():
        t += 0.25 * fps
    return t


def _ramps(rng: np.random.Generator, n: int, fps: float, lo: float, hi: float,
           every_s: tuple[float, float]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Piecewise-constant level with smooth (raised-cosine) ramps between levels."""
    values = np.ones(n, np.float64)
    level = 1.0
    spans: list[tuple[int, int]] = []
    t = float(rng.uniform(*every_s)) * fps
    while t < n:
        length = float(rng.uniform(0.5, 3.0)) * fps
        target = float(rng.uniform(lo, hi))
        first = int(t)
        idx = np.arange(first, n)
        u = np.clip((idx - t) / length, 0, 1)
        values[first:] = level + (target - level) * (0.5 - 0.5 * np.cos(np.pi * u))
        spans.append((first + 1, min(n, int(np.ceil(t + length)))))
        level = target
        t += length + float(rng.uniform(*every_s)) * fps
    return values, spans


def make_distractors(
    rng: np.random.Generator, n_frames: int, fps: float, face_scale: float, events: list[Event]
) -> DistractorTrack:
    """Draw all distractors of one video, avoiding events of the same region mostly."""
    n = n_frames
    items: list[Distractor] = []

    # Blinks: 0.1-0.3 s, ~15 per minute; fast closing, slower opening.
    closure = np.zeros(n, np.float64)
    upper_busy = _busy(events, "upper", fps, n)
    t = float(rng.uniform(0.5, 3.0)) * fps
    while t < n - 0.3 * fps:
        length = float(rng.uniform(0.1, 0.3)) * fps
        depth = float(rng.uniform(0.85, 1.0) if rng.random() < 0.8 else rng.uniform(0.4, 0.8))
        t = _free_start(rng, upper_busy, t, length, fps, keep_overlap=0.1)
        if t >= n - 0.3 * fps:
            break
        bump, first, last = _bump(n, t, length, rise_frac=0.4)
        closure[first : last + 1] = np.maximum(closure[first : last + 1], depth * bump)
        items.append(Distractor("blink", first + 1, last + 1))
        t += length + float(1.5 + rng.exponential(2.5)) * fps

    # Slow drift: a few low-frequency sinusoids per degree of freedom.
    frames = np.arange(n, dtype=np.float64) / fps

    def drift(amplitude: float) -> np.ndarray:
        out = np.zeros(n)
        for _ in range(3):
            period = rng.uniform(5.0, 30.0)
            out += amplitude / 3 * np.sin(2 * np.pi * frames / period + rng.uniform(0, 2 * np.pi))
        return out

    tx, ty = drift(0.03 * face_scale), drift(0.02 * face_scale)
    angle, scale = drift(1.0), 1.0 + drift(0.01)

    # Fast head turns (sideways shift + roll) and nods (vertical shift + scale): go and
    # come back within 0.3-1 s, about 4 per minute, mostly away from any event.
    any_busy = _busy(events, None, fps, n)
    t = float(rng.uniform(2.0, 15.0)) * fps
    while t < n - fps:
        length = float(rng.uniform(0.3, 1.0)) * fps
        t = _free_start(rng, any_busy, t, length, fps, keep_overlap=0.1)
        if t >= n - fps:
            break
        bump, first, last = _bump(n, t, length, rise_frac=float(rng.uniform(0.35, 0.6)))
        sign = rng.choice([-1.0, 1.0])
        if rng.random() < 0.5:
            tx[first : last + 1] += sign * rng.uniform(0.04, 0.10) * face_scale * bump
            angle[first : last + 1] += sign * rng.uniform(2.0, 6.0) * bump
            items.append(Distractor("turn", first + 1, last + 1))
        else:
            ty[first : last + 1] += sign * rng.uniform(0.03, 0.08) * face_scale * bump
            scale[first : last + 1] += sign * rng.uniform(0.01, 0.03) * bump
            items.append(Distractor("nod", first + 1, last + 1))
        t += length + float(rng.uniform(8.0, 22.0)) * fps

    # Illumination: gain and gamma wander through smooth ramps every 5-15 s.
    gain, gain_spans = _ramps(rng, n, fps, 0.75, 1.25, (5.0, 15.0))
    gamma, gamma_spans = _ramps(rng, n, fps, 0.85, 1.15, (5.0, 15.0))
    items += [Distractor("light", a, b) for a, b in sorted(gain_spans + gamma_spans)]

    f32 = np.float32
    return DistractorTrack(
        closure.astype(f32), tx.astype(f32), ty.astype(f32), angle.astype(f32), scale.astype(f32),
        gain.astype(f32), gamma.astype(f32), float(rng.uniform(1.0, 4.0)), tuple(sorted(items, key=lambda d: d.start)),
    )  # fmt: skip
