"""Motion and image changes that are not expressions (no truth rows).

- head: the rigid part (a per-frame 2D affine fitted to the stable landmarks) of real
  landmark tracks of mostly still faces (shared/reference/real-motion/real_s*.npz),
  played ping-pong from a random start, resampled to the video's rate, scaled by a gain;
  without those files, a smooth synthetic drift.
- lids: the non-rigid part of the same tracks on the eye contours (real blinks and lid
  jitter, lightly smoothed against detector noise), plus synthetic blinks.
- talking (off by default): the non-rigid mouth and jaw motion of the talking clips
  real_d10, real_d11, real_d12, scaled down: hard negatives around the mouth.
- gaze: saccades of the eye centres (the iris texture moves, the lids do not).
- light: slow gain drift, occasional gradual changes of gain and side light.
- noise: Gaussian sensor noise per frame (encoding to H.264 adds the compression).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from realtime.face import ALIGN_POINTS, LEFT_EYE, RIGHT_EYE
from tools.validation_synth import actions

STILL_CLIPS = ("real_s18", "real_s20", "real_s29", "real_s32")
TALKING_CLIPS = ("real_d10", "real_d11", "real_d12")
EYE_CONTOURS = np.concatenate([LEFT_EYE, RIGHT_EYE])
MOUTH_AND_JAW = np.concatenate([actions.UPPER_LIP, actions.LOWER_LIP,
                                [61, 291, 152, 148, 176, 149, 377, 400, 378, 175, 199, 200, 18]])


@dataclass(frozen=True)
class Track:
    """Per-frame motion on the video's frame grid, face-frame IOD units."""

    head: np.ndarray  # (T,2,3) affine: face-frame point q -> A q + b
    vertices: np.ndarray  # (T,470,2) non-rigid part (lids, talking)
    source: str = "none"  # where it came from


def load_clip(directory: Path, name: str) -> tuple[np.ndarray, float]:
    with np.load(directory / f"{name}.npz") as data:
        return data["displacement"][..., :2].astype(np.float64), float(data["fps"])


def _resample(values: np.ndarray, clip_fps: float, fps: float, frames: int, start: float) -> np.ndarray:
    """Ping-pong through a clip from `start` (clip frames), linear in time."""
    n = len(values)
    pos = start + np.arange(frames) * clip_fps / fps
    period = 2 * (n - 1)
    pos = np.mod(pos, period)
    pos = np.where(pos > n - 1, period - pos, pos)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = (pos - lo).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[lo] * (1 - frac) + values[hi] * frac


def fit_head(template: np.ndarray, disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame affine (T,2,3) of the stable points, and the non-rigid rest (T,468,2)."""
    src = template[ALIGN_POINTS]
    design = np.hstack([src, np.ones((len(src), 1))])
    targets = src[None] + disp[:, ALIGN_POINTS]
    sol = np.linalg.lstsq(design, targets.transpose(1, 0, 2).reshape(len(src), -1), rcond=None)[0]
    affine = sol.reshape(3, -1, 2).transpose(1, 2, 0)  # (T,2,3)
    full = np.hstack([template, np.ones((len(template), 1))])
    rigid = np.einsum("tij,nj->tni", affine, full) - template[None]
    return affine, disp - rigid


def real_track(rng: np.random.Generator, directory: Path, template: np.ndarray, fps: float, frames: int,
               head_gain: float, talk_gain: float) -> Track:
    """Head motion and lid motion from a still clip (+ talking mouth if talk_gain > 0)."""
    name = STILL_CLIPS[rng.integers(len(STILL_CLIPS))]
    disp, clip_fps = load_clip(directory, name)
    disp = gaussian_filter1d(disp, 1.0, axis=0)
    affine, rest = fit_head(template[:468], disp)
    start = rng.uniform(0, len(disp) - 1)
    affine = _resample(affine, clip_fps, fps, frames, start)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    head = identity + head_gain * (affine - identity)
    vertices = np.zeros((frames, actions.N_VERTICES, 2))
    vertices[:, EYE_CONTOURS] = _resample(rest, clip_fps, fps, frames, start)[:, EYE_CONTOURS]
    if talk_gain > 0:
        talk_name = TALKING_CLIPS[rng.integers(len(TALKING_CLIPS))]
        talk, talk_fps = load_clip(directory, talk_name)
        _, talk_rest = fit_head(template[:468], gaussian_filter1d(talk, 1.0, axis=0))
        talk_rest = _resample(talk_rest, talk_fps, fps, frames, rng.uniform(0, len(talk) - 1))
        vertices[:, MOUTH_AND_JAW] += talk_gain * talk_rest[:, MOUTH_AND_JAW]
    source = name + (f" + {talk_gain:g} x {talk_name} mouth" if talk_gain > 0 else "")
    return Track(head=head, vertices=vertices, source=source)


def synthetic_track(rng: np.random.Generator, fps: float, frames: int, head_gain: float) -> Track:
    """Smooth drift when no real tracks are at hand: sums of slow sinusoids."""
    t = np.arange(frames) / fps
    def wave(amp: float) -> np.ndarray:
        out = np.zeros(frames)
        for _ in range(3):
            f = rng.uniform(0.03, 0.4)
            out += amp / 3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        return out
    roll, scale = np.deg2rad(wave(4.0)), 1 + wave(0.04)
    c, s = scale * np.cos(roll), scale * np.sin(roll)
    head = np.zeros((frames, 2, 3))
    head[:, 0, 0], head[:, 0, 1], head[:, 1, 0], head[:, 1, 1] = c, -s, s, c
    head[:, 0, 2], head[:, 1, 2] = wave(0.4), wave(0.25)
    identity = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    return Track(head=identity + head_gain * (head - identity), vertices=np.zeros((frames, actions.N_VERTICES, 2)),
                 source="synthetic drift")


def still_track(frames: int) -> Track:
    head = np.broadcast_to(np.array([[1.0, 0, 0], [0, 1.0, 0]]), (frames, 2, 3)).copy()
    return Track(head=head, vertices=np.zeros((frames, actions.N_VERTICES, 2)))


def _bursts(rng: np.random.Generator, seconds: float, mean_gap: float,
            duration: tuple[float, float]) -> list[tuple[float, float]]:
    out, t = [], rng.uniform(0.3, mean_gap)
    while t < seconds:
        d = rng.uniform(*duration)
        out.append((t, d))
        t += d + rng.exponential(mean_gap)
    return out


def blinks(rng: np.random.Generator, p: np.ndarray, fps: float, frames: int) -> tuple[np.ndarray, list]:
    """(T,470,2) upper lids close onto the lower lids (fast close, slower open); (start, s) list."""
    out = np.zeros((frames, actions.N_VERTICES, 2))
    lids = []
    for upper, lower in zip(actions.UPPER_LID, actions.LOWER_LID):
        match = lower[np.argmin(np.abs(p[upper, 0][:, None] - p[lower, 0][None]), axis=1)]
        lids.append((upper, match, p[match] - p[upper]))
    t = np.arange(frames) / fps
    bursts = _bursts(rng, frames / fps, rng.uniform(2.5, 6.0), (0.12, 0.35))
    for start, dur in bursts:
        closing = rng.uniform(0.3, 0.45) * dur
        depth = rng.uniform(0.7, 1.0)
        u = t - start
        level = np.where(u < closing, u / closing, 1 - (u - closing) / (dur - closing))
        level = depth * np.clip(level, 0, 1) ** 1.5
        for upper, lower, opening in lids:
            out[:, upper] += level[:, None, None] * 0.85 * opening[None]
            out[:, lower] -= level[:, None, None] * 0.15 * opening[None]
    return out, bursts


def gaze(rng: np.random.Generator, fps: float, frames: int) -> tuple[np.ndarray, list]:
    """(T,470,2): both eye centres jump together (40 ms saccades), hold, jump again."""
    out = np.zeros((frames, actions.N_VERTICES, 2))
    t = np.arange(frames) / fps
    current = np.zeros(2)
    bursts = _bursts(rng, frames / fps, rng.uniform(1.5, 5.0), (0.04, 0.04))
    for start, _ in bursts:
        target = np.zeros(2) if rng.random() < 0.4 else np.array([rng.uniform(-0.05, 0.05), rng.uniform(-0.015, 0.015)])
        step = np.clip((t - start) / 0.04, 0, 1)[:, None]
        out[:, 468:470] += (step * (target - current))[:, None, :]
        current = target
    return out, bursts


@dataclass(frozen=True)
class Lighting:
    gain: np.ndarray  # (T,)
    side: np.ndarray  # (T,) horizontal gradient: gain varies by +-side across the frame
    changes: list  # (start s, duration s) of the gradual changes

    def apply(self, frame: np.ndarray, k: int, ramp: np.ndarray) -> np.ndarray:
        return frame * (self.gain[k] * (1.0 + self.side[k] * ramp))


def lighting(rng: np.random.Generator, fps: float, frames: int) -> Lighting:
    t = np.arange(frames) / fps
    gain = 1 + 0.03 * np.sin(2 * np.pi * rng.uniform(0.02, 0.1) * t + rng.uniform(0, 6.3))
    side = np.zeros(frames)
    bursts = _bursts(rng, frames / fps, rng.uniform(8, 20), (0.3, 2.0))
    for start, dur in bursts:
        ramp = np.clip((t - start) / dur, 0, 1)
        ramp = ramp * ramp * (3 - 2 * ramp)
        gain = gain * (1 + rng.uniform(-0.12, 0.12) * ramp)
        side = side + rng.uniform(-0.1, 0.1) * ramp
    return Lighting(gain=gain, side=side, changes=bursts)
