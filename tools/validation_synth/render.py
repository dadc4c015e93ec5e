"""One video: place a face, schedule expressions and negatives, warp every frame, encode.

Vertices: 468 landmarks + 2 eye centres (moved by expressions, head, lids, gaze), a ring
around the face at 1.4x its hull (hair, ears, neck: moves with the head only) and fixed
points just outside the frame (background). Expressions are applied in the face frame,
then the head affine of that frame, then the result is turned into canvas pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from scipy.spatial import ConvexHull

from realtime.common.types import Interval
from tools.validation_synth import actions, faces, mesh, nuisance, profiles

SIZES = {30: (640, 480), 200: (352, 288)}
IOD_RANGE = {30: (45.0, 110.0), 200: (32.0, 64.0)}  # face size in frame, px between outer eye corners


@dataclass(frozen=True)
class Options:
    fps: int = 30
    seconds: float = 40.0
    mean_spacing: float = 6.5
    me_fraction: float = 0.45
    head_gain: float = 0.5
    talk_gain: float = 0.0
    real_motion: Path | None = None  # None: synthetic head drift
    negatives: bool = True  # head, lids, blinks, gaze, light, noise; False: expressions only
    crf: int = 18


@dataclass
class Rendered:
    truth: list[Interval]
    meta: dict


def _layout(rng: np.random.Generator, face: faces.Face, opts: Options) -> np.ndarray:
    width, height = SIZES[opts.fps]
    iod = rng.uniform(*IOD_RANGE[opts.fps])
    eyes = (width * rng.uniform(0.4, 0.6), height * rng.uniform(0.34, 0.44))
    return faces.placement(face, iod, eyes, rng.uniform(-10, 10))


def _ring(p: np.ndarray) -> np.ndarray:
    hull = p[ConvexHull(p[:468]).vertices]
    centre = p[:468].mean(0)
    return centre + 1.4 * (hull - centre)


def _writer(path: Path, size: tuple[int, int], fps: int, crf: int):
    params = ["-crf", str(crf), "-preset", "fast", "-threads", "1", "-fflags", "+bitexact",
              "-flags:v", "+bitexact", "-map_metadata", "-1"]
    gen = imageio_ffmpeg.write_frames(str(path), size, pix_fmt_in="bgr24", fps=fps, codec="libx264",
                                      quality=None, macro_block_size=16, ffmpeg_log_level="error",
                                      output_params=params)
    gen.send(None)
    return gen


def render_video(path: Path, name: str, face: faces.Face, rng: np.random.Generator, opts: Options) -> Rendered:
    width, height = SIZES[opts.fps]
    frames = int(round(opts.seconds * opts.fps))
    matrix = _layout(rng, face, opts)
    canvas, landmarks = faces.place(face, (width, height), matrix)
    origin, rot, iod = actions.face_frame(landmarks)
    p = actions.vertices_in_face_frame(landmarks)
    ring = _ring(p)
    face_pts = np.vstack([p, ring])
    canvas_pts = origin + face_pts @ rot.T * iod
    border = mesh.border_points(width, height)
    grid = mesh.build_mesh(np.vstack([canvas_pts, border]), (width, height))

    events = profiles.schedule(rng, opts.seconds, opts.fps, opts.mean_spacing, opts.me_fraction)
    for event in events:
        event.fields = [actions.unit_field(n, p, sides) for n, sides, _, _ in event.units]

    if not opts.negatives:
        track = nuisance.still_track(frames)
        extra = np.zeros((frames, actions.N_VERTICES, 2))
        light, noise_sigma, negatives = None, 0.0, {}
    else:
        if opts.real_motion is not None:
            track = nuisance.real_track(rng, opts.real_motion, p, opts.fps, frames, opts.head_gain, opts.talk_gain)
        else:
            track = nuisance.synthetic_track(rng, opts.fps, frames, opts.head_gain)
        lids, blink_times = nuisance.blinks(rng, p, opts.fps, frames)
        eyes, gaze_times = nuisance.gaze(rng, opts.fps, frames)
        extra = lids + eyes
        light = nuisance.lighting(rng, opts.fps, frames)
        noise_sigma = rng.uniform(0.5, 2.5)

        def frames_of(bursts: list) -> list[list[int]]:  # 1-based first and last frame
            return [[int(s * opts.fps) + 1, min(frames, int(np.ceil((s + d) * opts.fps)) + 1)] for s, d in bursts
                    if s * opts.fps < frames]
        negatives = {"head": track.source, "head_gain": opts.head_gain, "blinks": frames_of(blink_times),
                     "gaze_shifts": frames_of(gaze_times), "light_changes": frames_of(light.changes)}
    noise_rng = np.random.default_rng(rng.integers(2**63))
    # Sensor noise: a bank of independent noise frames, each frame takes one at a random
    # circular shift (as good as fresh noise per frame, a fraction of the cost).
    bank = noise_sigma * noise_rng.standard_normal((8, height, width, 3), dtype=np.float32) if noise_sigma else None
    ramp = (np.arange(width, dtype=np.float32) / width - 0.5)[None, :, None]

    times = np.arange(frames) / opts.fps
    magnitude = np.zeros((len(events), frames))
    writer = _writer(path, (width, height), opts.fps, opts.crf)
    try:
        for k, t in enumerate(times):
            nonrigid = track.vertices[k] + extra[k]
            for j, event in enumerate(events):
                if event.start <= t <= event.end:
                    d = event.displacement(t)
                    magnitude[j, k] = np.linalg.norm(d, axis=1).max()
                    nonrigid = nonrigid + d
            moved = np.vstack([p + nonrigid, ring])
            head = track.head[k]
            disp = moved @ head[:, :2].T + head[:, 2] - face_pts
            vertex_disp = np.vstack([disp @ rot.T * iod, np.zeros_like(border)])
            frame = mesh.warp(canvas, grid, vertex_disp)
            if light is not None:
                frame = light.apply(frame, k, ramp)
            if bank is not None:
                shift = (int(noise_rng.integers(height)), int(noise_rng.integers(width)))
                frame = frame + np.roll(bank[noise_rng.integers(len(bank))], shift, axis=(0, 1))
            writer.send(np.ascontiguousarray(np.clip(np.rint(frame), 0, 255).astype(np.uint8)))
    finally:
        writer.close()

    truth, described = [], []
    for j, event in enumerate(events):
        frames_ = profiles.truth_frames(magnitude[j])
        if frames_ is None:
            continue
        onset, apex, offset = frames_
        truth.append(Interval(video=name, type=event.kind, onset=onset, offset=offset, apex=apex))  # type: ignore[arg-type]
        described.append({
            "type": event.kind, "onset": onset, "apex": apex, "offset": offset,
            "units": [f"{n}{'' if s == 'LR' else '-' + s}" for n, s, _, _ in event.units],
            "peak_iod": round(float(magnitude[j].max()), 4),
            "peak_px": round(float(magnitude[j].max() * iod), 2),
        })
    meta = {"video": name, "face": face.name, "fps": opts.fps, "size": [width, height], "frames": frames,
            "iod_px": round(iod, 1), "noise_sigma": round(float(noise_sigma), 2),
            "events": described, "negatives": negatives}
    return Rendered(truth=truth, meta=meta)
