"""Per-frame rendering: expression remap in the face box, head similarity transform,
illumination LUT and sensor noise. Everything per frame is a pure function of the
precomputed video description and the frame number (random access, deterministic)."""

from __future__ import annotations

import cv2
import numpy as np

from realtime.synthesis.actions import (
    ACTIONS,
    L_LOWER_LID,
    L_UPPER_LID,
    R_LOWER_LID,
    R_UPPER_LID,
    basis_field,
    blink_dy,
    eye_geometry,
    face_roi,
    shaped,
)  # fmt: skip
from realtime.synthesis.distractors import DistractorTrack
from realtime.synthesis.faces import Scene
from realtime.synthesis.real_motion import MotionDriver, MotionTrack, RealMotion
from realtime.synthesis.timeline import Event

_NOISE_BANK = 3  # noise planes per video; a random crop of one per frame
_NOISE_PAD = 32


class Renderer:
    """Renders frames of one video. Holds the precomputed basis fields and scratch
    buffers (reused across frames, so one Renderer must not be shared by threads)."""

    def __init__(
        self, scene: Scene, events: list[Event], track: DistractorTrack, n_frames: int, rng: np.random.Generator,
        motion: RealMotion | None = None, turns: MotionTrack | None = None,
    ) -> None:
        self.scene = scene
        self.track = track
        self.n_frames = n_frames
        h, w = scene.image.shape[:2]
        # One basis field per distinct (action, shape) of the events, in ACTIONS order (the
        # order the fields are summed in, so canonical videos render as they always did).
        order = list(ACTIONS)
        keys = sorted({(name, e.shape_of(k)) for e in events for k, (name, _) in enumerate(e.actions)},
                      key=lambda key: (order.index(key[0]), repr(key[1])))  # fmt: skip
        shapes = [shaped(ACTIONS[name], shape, scene.landmarks, scene.face_scale) for name, shape in keys]
        self.roi = face_roi(scene.landmarks, scene.face_scale, w, h, max((a.width for a in shapes), default=0.0))
        self.keys = keys
        self.bases = [basis_field(a, scene.landmarks, scene.face_scale, self.roi) for a in shapes]
        # Per-field amplitude (px at 112 scale) for every frame: sum over events.
        self.amps = np.zeros((len(keys), n_frames), np.float32)
        for e in events:
            lo, hi = e.support()
            lo, hi = max(lo, 1), min(hi, n_frames)
            frames = np.arange(lo, hi + 1)
            p = e.profile(frames).astype(np.float32)
            for k, (name, amp) in enumerate(e.actions):
                self.amps[keys.index((name, e.shape_of(k))), lo - 1 : hi] += amp * p
        self.eyes = [eye_geometry(scene.landmarks, R_UPPER_LID, R_LOWER_LID),
                     eye_geometry(scene.landmarks, L_UPPER_LID, L_LOWER_LID)]  # fmt: skip
        ys, xs = np.mgrid[self.roi.y0 : self.roi.y1, self.roi.x0 : self.roi.x1].astype(np.float32)
        self.grid_x, self.grid_y = xs, ys
        self.field = np.zeros(xs.shape + (2,), np.float32)
        if track.noise_sigma > 0:
            bank = rng.normal(0, track.noise_sigma, size=(_NOISE_BANK, h + _NOISE_PAD, w + _NOISE_PAD, 3))
            self.noise = bank.round().astype(np.int16)
            self.noise_pick = rng.integers(0, [_NOISE_BANK, _NOISE_PAD, _NOISE_PAD], size=(n_frames, 3))
        self.centre = scene.centre
        # Head motion moves the head, not the room: only the box the head can reach
        # (mask support + the largest turn/drift) is re-blended over the static background.
        ys_, xs_ = np.nonzero(scene.mask > 0.01)
        reach = int(np.ceil(0.3 * scene.face_scale))
        self.head_box = (max(0, xs_.min() - reach), max(0, ys_.min() - reach),
                         min(w, xs_.max() + 1 + reach), min(h, ys_.max() + 1 + reach))  # fmt: skip
        self.ramp = np.arange(256, dtype=np.float32) / 255.0
        # Real motion (talking, blinks, gaze, head turns, jitter of a real face) on top.
        self.motion = motion
        self.driver = None if motion is None else MotionDriver(scene, motion.track, motion.scale)
        # Heads turning in depth (realtime.synthesis.head_turns), rendered the same way.
        self.turns = None if turns is None else MotionDriver(scene, turns)
        self.warper = self.driver or self.turns  # whose face mesh warps the non-rigid part

    def _expression(self, i: int, residual: np.ndarray | None = None) -> np.ndarray:
        """Scene with the expression and blink fields of frame i (1-based) applied, plus
        the non-rigid part of the real motion (`residual`, landmark displacements px)."""
        active = np.nonzero(self.amps[:, i - 1])[0]
        closure = float(self.track.closure[i - 1])
        if len(active) == 0 and closure <= 0 and residual is None:
            return self.scene.image
        field = self.field
        field.fill(0)
        if residual is not None:
            assert self.warper is not None
            self._add_residual(field, self.warper.residual_field(residual))
        for k in active:
            field += self.amps[k, i - 1] * self.bases[k]
        if closure > 0:
            for eye in self.eyes:
                dy = blink_dy(eye, closure)
                y0, x0 = eye.y0 - self.roi.y0, eye.x0 - self.roi.x0
                hh, ww = dy.shape
                field[y0 : y0 + hh, x0 : x0 + ww, 1] += dy
        out = self.scene.image.copy()
        out[self.roi.slices] = cv2.remap(
            self.scene.image, self.grid_x - field[..., 0], self.grid_y - field[..., 1],
            cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT,
        )  # fmt: skip
        return out

    def _add_residual(self, field: np.ndarray, residual_field: np.ndarray) -> None:
        """Add the real motion's field (over the driver's face box) into the ROI field."""
        assert self.warper is not None
        bx0, by0, bx1, by1 = self.warper.box
        x0, y0 = max(bx0, self.roi.x0), max(by0, self.roi.y0)
        x1, y1 = min(bx1, self.roi.x1), min(by1, self.roi.y1)
        if x1 > x0 and y1 > y0:
            field[y0 - self.roi.y0 : y1 - self.roi.y0, x0 - self.roi.x0 : x1 - self.roi.x0] += \
                residual_field[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0]

    def _move_head(self, img: np.ndarray, tx: float, ty: float, angle: float, scale: float,
                   pre: np.ndarray | None = None) -> np.ndarray:
        """Similarity-transform the head (about the face centre) over the static background;
        `pre` (2x3, frame px) moves it first (the real motion's rigid part)."""
        x0, y0, x1, y1 = self.head_box
        if pre is not None:
            # The moved head can leave the box the distractors alone can reach.
            h, w = img.shape[:2]
            x0, y0, x1, y1 = 0, 0, w, h
        m: np.ndarray = cv2.getRotationMatrix2D((float(self.centre[0]), float(self.centre[1])), angle, scale)
        if pre is not None:
            m = (np.vstack([m, [0, 0, 1]]) @ np.vstack([pre, [0, 0, 1]]))[:2]
        m[:, 2] += (tx - x0, ty - y0)  # the box's own coordinates: output (0,0) is (x0,y0)
        size = (x1 - x0, y1 - y0)
        head = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(self.scene.mask, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        out = self.scene.background.copy()
        out[y0:y1, x0:x1] = cv2.blendLinear(head, self.scene.background[y0:y1, x0:x1], alpha, 1.0 - alpha)
        return out

    def render(self, i: int) -> np.ndarray:
        """Frame i (1-based) as (H, W, 3) uint8 BGR."""
        if not 1 <= i <= self.n_frames:
            raise IndexError(f"frame {i} outside 1..{self.n_frames}")
        t = self.track
        pre, residual = ((None, None) if self.driver is None or self.motion is None
                         else self.driver.motion(i + self.motion.start))
        if self.turns is not None:
            turn, parallax = self.turns.motion(i)
            # Both moves are small: the rigid parts compose, the non-rigid parts add.
            pre = turn if pre is None else (np.vstack([turn, [0, 0, 1]]) @ np.vstack([pre, [0, 0, 1]]))[:2]
            residual = parallax if residual is None else residual + parallax
        img = self._expression(i, residual)
        k = i - 1
        if pre is not None or t.tx[k] or t.ty[k] or t.angle[k] or t.scale[k] != 1:
            img = self._move_head(img, float(t.tx[k]), float(t.ty[k]), float(t.angle[k]), float(t.scale[k]), pre)
        if t.gain[k] != 1 or t.gamma[k] != 1:
            lut = np.clip(255.0 * np.power(self.ramp, t.gamma[k]) * t.gain[k], 0, 255).astype(np.uint8)
            img = cv2.LUT(img, lut)
        if t.noise_sigma > 0:
            b, dy, dx = self.noise_pick[k]
            h, w = img.shape[:2]
            img = cv2.add(img, self.noise[b, dy : dy + h, dx : dx + w], dtype=cv2.CV_8U)
        return img
