"""Where real faces and the synthetic training faces part ways, stage by stage.

    python -m tools.real_motion_check --tracks ../shared/reference/real-motion

Inputs compared (no images of real people exist here, only their landmark tracks):
- the real tracks themselves (landmark jitter only: their motion as FaceMesh saw it);
- a synthetic clip of the training generator (lgnm-synth, distractors on), split into
  frames far from any expression ("synth neutral") and pairs inside MaE / ME truth;
- a bundled face photo driven by each real track (realtime/synthesis/real_motion.py):
  the still clips `real_s*` (a face doing nothing) and the talking clips `real_d*`;
- the same photo driven by the still tracks low-passed (`--low-pass`, 3 Hz): a real
  track carries FaceMesh's frame-to-frame jitter on its clip, which a driven photo turns
  into pixel motion a real still face does not have; the two still rows bound it;
- the same photo turning in depth (`--sway`, yaw and pitch +-6 degrees, 4 s period:
  `realtime.synthesis.real_motion.turn_track` with the photo's own FaceMesh depth),
  a head that moves without expressing anything.
`--per-track` adds a row per driven track under its group's pooled row: the talking group
holds `real_d6`, 33 s of exaggerated grimacing (expressions a user wants spotted), beside
three clips of talking. `--fps` drives the clips at another rate (the 200 fps pair from
77 fps up, as lgnm-live picks it); the 30 fps tracks are resampled linearly, so at 200 fps
their frame-to-frame jitter is spread over the frames in between, not added to each.

Stages, per input (pairs (i, i+K) at the weights' K; px are px of the 112-px face):
- landmark jitter: frame-to-frame step of the alignment points (eye corners, nose), % IOD;
- alignment residual: |mean flow in the nose box| (what the authors' head-motion removal
  subtracts; after the weights' `head_motion` model, `engines.features.pair_flow`);
- ROI flow: 95th percentile of |flow - nose-box mean| over the brow and mouth boxes
  without the eyes (what the value channel shows after head-motion removal);
- stretched: share of pairs whose ROI magnitude span exceeds the value floor (their value
  is min-max stretched to 0..255; below the floor it keeps an absolute scale);
- P >= thr: share of frames whose raw score reaches the type's calibrated threshold;
- events/min: spotted intervals per minute after the weights' post-processing and the
  ME weights' cross-type rule, as lgnm-live publishes them.
Alignment uses the weights' landmark filter when they carry one, as lgnm-live does.
Prints a rich table; nothing is asserted (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from calibration.cross_type import apply_cross_type
from calibration.postprocess import postprocess
from engines import features
from engines.demo_weights import default_weights
from engines.scorers import make_scorer
from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg
from realtime.common.types import AlignedFace, Interval
from realtime.face import ALIGN_POINTS, FaceLandmarker, align_face
from realtime.landmark_filter import OneEuroLandmarks
from realtime.native_log import native_stderr_filtered
from realtime.pipeline import setup_for_fps
from realtime.stream_runner import common_flow
from realtime.synthesis.real_motion import MotionTrack

SWAY_PERIOD_S = 4.0  # a slow sway: +-6 degrees peaks at 9 degrees/s


@dataclass
class StageStats:
    """Per-input accumulators (lists of per-frame or per-pair values)."""

    jitter: list[float] = field(default_factory=list)  # % IOD
    residual: dict[str, list[float]] = field(default_factory=lambda: {"ME": [], "MaE": []})
    roi_p95: dict[str, list[float]] = field(default_factory=lambda: {"ME": [], "MaE": []})
    stretched: dict[str, list[bool]] = field(default_factory=lambda: {"ME": [], "MaE": []})
    above: dict[str, list[bool]] = field(default_factory=lambda: {"ME": [], "MaE": []})
    events: dict[str, int] = field(default_factory=lambda: {"ME": 0, "MaE": 0})
    seconds: float = 0.0


def landmark_jitter(landmarks: Iterable[np.ndarray | None], iod: float | None = None) -> list[float]:
    """Frame-to-frame step of the alignment points, median over the points, % of IOD
    (each frame's own IOD unless `iod` is given: tracks of displacements have none)."""
    out, prev = [], None
    for lm in landmarks:
        if lm is not None and prev is not None:
            scale = iod if iod is not None else float(np.linalg.norm(lm[263] - lm[33]))
            step = np.linalg.norm(lm[ALIGN_POINTS] - prev[ALIGN_POINTS], axis=1)
            out.append(100.0 * float(np.median(step)) / scale)
        prev = lm
    return out


def pair_measures(a: features.FlowFrame, b: features.FlowFrame, floor: float,
                  settings: object) -> tuple[float, float, bool, np.ndarray]:
    """(alignment residual px, ROI p95 px after nose subtraction, stretched?, network input)."""
    flow = features.pair_flow(a, b, settings)  # type: ignore[arg-type]
    x0, y0, x1, y1 = a.geometry.nose_box
    nose = flow[y0:y1, x0:x1].reshape(-1, 2).mean(axis=0)
    region = features.value_region(a.geometry)
    rel = np.linalg.norm(flow - nose, axis=2)[region]
    mag = np.linalg.norm(flow, axis=2)[region]
    x = features.encode_pair(flow, a.geometry, settings)  # type: ignore[arg-type]
    return float(np.linalg.norm(nose)), float(np.percentile(rel, 95)), bool(mag.max() - mag.min() > floor), x


def measure(name: str, frames: Iterator[np.ndarray], fps: float, scorers: list, keep: set[int] | None = None,
            console: Console | None = None) -> StageStats:
    """Run the stages over one frame sequence. `keep`: only pairs whose first frame is in
    it count (e.g. pairs inside MaE truth); None: every pair."""
    setups = {s.type: setup_for_fps(s, fps) for s in scorers}
    settings = scorers[0].meta.flow
    stats = StageStats()
    lms: list[np.ndarray | None] = []
    products: list[features.FlowFrame | None] = []
    # The weights' landmark filter, as lgnm-live applies it (FaceAligner): jitter is
    # measured on FaceMesh's raw landmarks, the alignment uses the filtered ones.
    smooth = OneEuroLandmarks(settings.landmark_filter) if settings.landmark_filter is not None else None
    with FaceLandmarker() as mesh:
        for i, img in enumerate(frames):
            lm = mesh.detect(img)
            lms.append(lm)
            face: AlignedFace | None = None
            if lm is None:
                if smooth is not None:
                    smooth.reset()
            else:
                face = align_face(img, smooth(lm, i / fps) if smooth is not None else lm, settings.face_size)
            products.append(features.flow_frame(face, settings) if face is not None else None)
    stats.jitter = landmark_jitter(lms)
    stats.seconds = len(products) / fps
    spotted: dict[str, list[Interval]] = {}
    for t, setup in setups.items():
        xs, idx = [], []
        for i in range(len(products) - setup.k):
            a, b = products[i], products[i + setup.k]
            if a is None or b is None:
                continue
            res, p95, stretched, x = pair_measures(a, b, settings.value_floor, settings)
            xs.append(x)
            idx.append(i)
            if keep is None or (i + 1) in keep:
                stats.residual[t].append(res)
                stats.roi_p95[t].append(p95)
                stats.stretched[t].append(stretched)
        if not xs:
            continue
        scores = np.concatenate([setup.scorer.score(np.stack(xs[j : j + 64])) for j in range(0, len(xs), 64)])
        thr = setup.params.threshold if setup.params.threshold is not None else 0.5
        stats.above[t] = [bool(s >= thr) for i, s in zip(idx, scores) if keep is None or (i + 1) in keep]
        if keep is None:
            spotted[t] = postprocess(scores, setup.params, name, t)
    # Events as the live pipeline publishes them: after the ME weights' cross-type rule.
    for t, ivs in apply_cross_type(spotted, {t: setup.params for t, setup in setups.items()}).items():
        stats.events[t] = len(ivs)
    if console:
        console.log(f"{name}: {len(products)} frames")
    return stats


def synthetic_inputs(fps: float, seconds: float, seed: int) -> tuple[list[np.ndarray], list[Interval]]:
    from realtime.synthesis.generate import SynthConfig, generate_video

    video = generate_video(SynthConfig(name="synth", fps=fps, duration_s=seconds, size=(640, 480),
                                       face="grace_hopper"), seed)
    return list(video.frames()), list(video.truth)


def scene_for(face: str, rng: np.random.Generator):
    from realtime.synthesis.faces import compose_scene, load_face

    return compose_scene(load_face(face), 640, 480, float(rng.uniform(150, 210)), rng)


def driven_frames(track: Path | Callable[[object], MotionTrack], fps: float, seconds: float, seed: int,
                  face: str = "grace_hopper", noise: float = 2.0) -> Iterator[np.ndarray]:
    """A bundled face photo moved by a real track file (ping-pong to `seconds`), or by the
    track a function makes from the scene, with sensor noise."""
    from realtime.synthesis.real_motion import MotionDriver, load_track

    rng = np.random.default_rng(seed)
    scene = scene_for(face, rng)
    motion = load_track(track).at_fps(fps) if isinstance(track, Path) else track(scene)
    driver = MotionDriver(scene, motion)
    for i in range(1, int(round(seconds * fps)) + 1):
        img = driver.render(i).astype(np.int16) + rng.normal(0, noise, scene.image.shape).round().astype(np.int16)
        yield np.clip(img, 0, 255).astype(np.uint8)


def scene_points3d(scene) -> np.ndarray:
    """(468,3) px: FaceMesh's landmarks of the scene's face with their depth toward the
    camera (-z, which FaceMesh gives at the scale of x), this photo's own depth."""
    import cv2
    import mediapipe as mp

    h, w = scene.image.shape[:2]
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False) as mesh:
        result = mesh.process(cv2.cvtColor(scene.image, cv2.COLOR_BGR2RGB))
    if not result.multi_face_landmarks:
        raise RuntimeError("FaceMesh found no face in the scene")
    return np.array([(q.x * w, q.y * h, -q.z * w) for q in result.multi_face_landmarks[0].landmark[:468]])


def sway(axis: str, degrees: float, seconds: float, fps: float) -> Callable[[object], MotionTrack]:
    """A track maker: the scene's face turning +-degrees about `axis` with a 4 s period."""
    from realtime.synthesis.real_motion import turn_track

    return lambda scene: turn_track(scene_points3d(scene), axis, degrees, SWAY_PERIOD_S, fps, seconds)


def _pct(values: list, q: float | None = None) -> str:
    if not values:
        return "-"
    if q is None:
        return f"{100.0 * float(np.mean(values)):.0f}%"
    return f"{np.percentile(values, q):.2f}"


def render(rows: list[tuple[str, StageStats]], thresholds: dict[str, float]) -> Table:
    table = Table(title="real vs synthetic, stage by stage (px at the 112-px face; ME | MaE)")
    for col in ("input", "landmark jitter %IOD p50/p90", "align residual px p50", "ROI flow p95 px p50",
                "stretched", f"P >= thr ({thresholds['ME']:.2f} | {thresholds['MaE']:.2f})", "events/min"):
        table.add_column(col, justify="left" if col == "input" else "right")
    for name, s in rows:
        per = lambda d, f: " | ".join(f(d[t]) for t in ("ME", "MaE"))  # noqa: E731
        ev = " | ".join(f"{60.0 * s.events[t] / s.seconds:.1f}" if s.seconds and s.above[t] else "-"
                        for t in ("ME", "MaE"))
        table.add_row(name, f"{_pct(s.jitter, 50)} / {_pct(s.jitter, 90)}" if s.jitter else "-",
                      per(s.residual, lambda v: _pct(v, 50)), per(s.roi_p95, lambda v: _pct(v, 50)),
                      per(s.stretched, _pct), per(s.above, _pct), ev)
    return table


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tools.real_motion_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--tracks", type=path_arg, nargs="+", required=True,
                   help="real_*.npz landmark tracks, or folders of them (real_s*: still, real_d*: talking)")
    p.add_argument("--weights", type=path_arg, nargs=2, metavar=("ME", "MaE"),
                   help="weights (default: the demo pair for --fps)")
    p.add_argument("--fps", type=float, default=None,
                   help="frame rate of the driven clips (default: the weights' fps, else 30); the 30 fps "
                        "tracks are resampled linearly, so their frame-to-frame jitter is spread, not added")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each driven clip (tracks play back and forth)")
    p.add_argument("--synth-seconds", type=float, default=40.0, help="length of the synthetic clip")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--low-pass", type=float, default=3.0, metavar="HZ",
                   help="also the still tracks without their landmark jitter: zero-phase low-pass at HZ (0: off)")
    p.add_argument("--per-track", action="store_true",
                   help="also a row per driven track (real_d6 grimaces: expressions, not talking)")
    p.add_argument("--sway", type=float, default=6.0, metavar="DEG",
                   help="also a photo turning in depth, yaw and pitch +-DEG degrees with a 4 s period (0: off)")
    return p


@cli_entry
@native_stderr_filtered
def main(argv: list[str] | None = None) -> int:
    from realtime.synthesis.real_motion import load_track, track_files

    a = build_parser().parse_args(argv)
    if a.fps is not None and not 1.0 <= a.fps <= 1000.0:
        raise UserError(f"--fps must lie in [1, 1000], got {a.fps:g}")
    weights = a.weights or default_weights(a.fps or 30.0)  # the pair lgnm-live would take
    scorers = [make_scorer(w, "cpu") for w in weights]
    fps = float(a.fps or scorers[0].meta.fps)
    if not 0.0 <= a.low_pass < fps / 2:
        raise UserError(f"--low-pass must lie in [0, {fps / 2:g}) Hz, got {a.low_pass:g}")
    common_flow(scorers)  # one alignment per frame: the pair must share its flow and landmark filter
    console = Console(stderr=True)
    rows: list[tuple[str, StageStats]] = []
    tracks = [f for p in a.tracks for f in (track_files(p) if p.is_dir() else [p])]
    for group, prefix in (("still", "real_s"), ("talking", "real_d")):
        real = StageStats()
        for path in [p for p in tracks if p.stem.startswith(prefix)]:
            real.jitter += landmark_jitter(list(load_track(path).displacement), iod=1.0)  # IOD units
        rows.append((f"real {group} tracks (landmarks only)", real))
    frames, truth = synthetic_inputs(fps, a.synth_seconds, a.seed)
    near = set()
    margin, lead = round(36 * fps / 30.0), round(6 * fps / 30.0)  # 1.2 s and 0.2 s: K and the MaE window
    for iv in truth:
        near.update(range(iv.onset - margin, iv.offset + margin))
    neutral = set(range(1, len(frames) + 1)) - near
    rows.append(("synth neutral (training generator)", measure("synth", iter(frames), fps, scorers, neutral, console)))
    for kind in ("MaE", "ME"):
        inside = {f for iv in truth if iv.type == kind for f in range(iv.onset - lead, iv.offset + 1)}
        rows.append((f"synth inside {kind} truth", measure("synth", iter(frames), fps, scorers, inside, console)))
    groups = [("still", "real_s", 0.0), ("talking", "real_d", 0.0)] + ([("still", "real_s", a.low_pass)] if a.low_pass else [])
    for group, prefix, hz in groups:
        pooled = StageStats()
        for path in [p for p in tracks if p.stem.startswith(prefix)]:
            track = path if not hz else (lambda _scene, p=path, hz=hz: load_track(p).at_fps(fps).low_passed(hz))
            s = measure(path.stem, driven_frames(track, fps, a.seconds, a.seed), fps, scorers, None, console)
            if a.per_track:
                rows.append((f"  {path.stem}" + (f", low-passed {hz:g} Hz" if hz else ""), s))
            pooled.jitter += s.jitter
            pooled.seconds += s.seconds
            for t in ("ME", "MaE"):
                pooled.residual[t] += s.residual[t]
                pooled.roi_p95[t] += s.roi_p95[t]
                pooled.stretched[t] += s.stretched[t]
                pooled.above[t] += s.above[t]
                pooled.events[t] += s.events[t]
        rows.append((f"face driven by real {group} tracks" + (f", low-passed {hz:g} Hz" if hz else ""), pooled))
    if a.sway > 0:
        for axis in ("yaw", "pitch"):
            s = measure(f"{axis} +-{a.sway:g}", driven_frames(sway(axis, a.sway, a.seconds, fps), fps, a.seconds, a.seed),
                        fps, scorers, None, console)
            rows.append((f"face turning in depth, {axis} +-{a.sway:g} deg", s))
    thresholds = {s.type: s.meta.post.get("threshold") or 0.5 for s in scorers}
    # A log file gets the whole table (rich would fold it to 80 columns off a terminal).
    Console(width=None if sys.stdout.isatty() else 200).print(render(rows, thresholds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
