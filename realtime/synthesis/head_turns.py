"""Heads turning and nodding in depth (yaw and pitch), as training negatives.

The generator's other head motion (distractors.py: drift, turns, nods) moves the head in
the image plane, which the similarity alignment removes. A real head also turns in depth:
the nose, which stands ~0.28 IOD in front of the brows and lips, then moves more than
they do, and the authors' nose-tip subtraction leaves brow and mouth motion behind that
the shipped networks call an expression (`python -m tools.real_motion_check --sway`:
18-27 MaE events per minute on a photo swaying +-6 degrees). With `lgnm-synth
--head-turns` the training faces turn in depth too, so that a network can learn that a
turn is not an expression.

Per video: a slow sway on both axes (two sinusoids each, 0-3 degrees, periods 3-10 s)
and about 6 turns per minute (yaw 60%, pitch 40%): go to 3-12 degrees and come back
within 0.5-2 s; a turn that would meet an expression is postponed past it, except a
quarter of them, left where they fall (people turn while they smile): about 8% of the
turns overlap an expression (measured over 40 videos of 40 s).
The face's depth is FaceMesh's mean face (`engines.head_motion.face_shape`) scaled to the
scene; the rotated landmarks are projected orthographically (`real_motion.turned_track`,
which also makes the check's sways) and rendered like a real
track (`realtime.synthesis.real_motion.MotionDriver`: similarity for the head, the
parallax as a warp of the face; no occlusion or shading change). The turns are listed in
distractors.csv as `yaw` and `pitch`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.head_motion import face_shape
from realtime.synthesis.distractors import Distractor, _bump, _busy, _free_start
from realtime.synthesis.faces import Scene
from realtime.synthesis.timeline import Event

TURNS_PER_MINUTE = 6.0
TURN_DEG = (3.0, 12.0)
TURN_S = (0.5, 2.0)
SWAY_DEG = (0.0, 3.0)
SWAY_PERIOD_S = (3.0, 10.0)
DURING_EXPRESSION = 0.25  # share of turns left where they fall, even over an expression (~8% overlap one)


@dataclass(frozen=True)
class HeadTurns:
    """Per-frame head angles (degrees, (n,) float32; yaw > 0 turns the nose to the image
    right, pitch > 0 moves it down) and the turns as distractors (1-based frames)."""

    yaw: np.ndarray
    pitch: np.ndarray
    items: tuple[Distractor, ...]


def draw_head_turns(rng: np.random.Generator, n_frames: int, fps: float, events: list[Event]) -> HeadTurns:
    """The sway and turns of one video (module docstring)."""
    t = np.arange(n_frames, dtype=np.float64) / fps
    angles = {"yaw": np.zeros(n_frames), "pitch": np.zeros(n_frames)}
    for axis in angles:
        for _ in range(2):
            amp, period = rng.uniform(*SWAY_DEG) / 2, rng.uniform(*SWAY_PERIOD_S)
            angles[axis] += amp * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    busy = _busy(events, None, fps, n_frames)
    items: list[Distractor] = []
    start = float(rng.uniform(0.5, 60.0 / TURNS_PER_MINUTE)) * fps
    while start < n_frames - fps:
        length = float(rng.uniform(*TURN_S)) * fps
        start = _free_start(rng, busy, start, length, fps, keep_overlap=DURING_EXPRESSION)
        if start >= n_frames - fps:
            break
        bump, first, last = _bump(n_frames, start, length, rise_frac=float(rng.uniform(0.35, 0.65)))
        axis = "yaw" if rng.random() < 0.6 else "pitch"
        angles[axis][first : last + 1] += rng.choice([-1.0, 1.0]) * rng.uniform(*TURN_DEG) * bump
        items.append(Distractor(axis, first + 1, last + 1))
        start += length + float(rng.exponential(60.0 / TURNS_PER_MINUTE - TURN_S[1])) * fps
    return HeadTurns(angles["yaw"].astype(np.float32), angles["pitch"].astype(np.float32), tuple(items))


def scene_points3d(scene: Scene) -> np.ndarray:
    """(468,3) px: the scene's landmarks with the mean face's depth toward the camera,
    scaled to the scene's face (face_scale px = one aligned-crop side)."""
    return np.column_stack([scene.landmarks.astype(np.float64), face_shape()[:, 2].astype(np.float64) * scene.face_scale])
