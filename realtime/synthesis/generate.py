"""Synthetic long face videos with exact ground truth: the generator behind `lgnm-synth`
(tools/synth.py) and the built-in demo (`lgnm-live --replay demo`, realtime/replay.py).

A real face photo is animated with landmark-anchored dense deformations that imitate
facial action units (realtime/synthesis/actions.py). Expressions follow an onset-apex-
offset profile whose visible frames are the truth (realtime/synthesis/timeline.py);
blinks, head drift / turns / nods, illumination ramps, sensor noise and video
compression are added as distractors that carry no truth. Same seed -> same frames and
truth. Output: mp4 files + truth CSV (`video,type,onset,apex,offset`), or the
CAS(ME)^2 / SAMM-LV / CAS(ME)^3 Part A folder layouts with their workbooks
(realtime/synthesis/layouts.py).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from calibration.cross_type import overlaps_any
from realtime.common.errors import UserError, output_dir
from realtime.common.types import Interval
from realtime.intervals_csv import write_intervals
from realtime.synthesis import layouts as dl
from realtime.synthesis.distractors import Distractor, DistractorTrack, make_distractors
from realtime.synthesis.faces import BUILTIN_FACES, Appearance, FacePhoto, Scene, compose_scene, load_face, restyle
from realtime.synthesis.head_turns import draw_head_turns, scene_points3d
from realtime.synthesis.real_expressions import expression_truth, load_track_labels
from realtime.synthesis.real_motion import MotionTrack, RealMotion, load_track, track_files, turned_track
from realtime.synthesis.render import Renderer
from realtime.synthesis.timeline import DurationModel, Event, ScheduleSettings, durations_for, schedule_events, truth_of

LAYOUTS = ("mp4", "cas", "samm", "casme3")


def default_size(fps: float) -> tuple[int, int]:
    """640x480 for camera-rate (CAS-like) video; 352x288 at high speed (SAMM-like), whose
    frame count is ~7x larger, to keep generation and feature extraction tractable."""
    return (640, 480) if fps < 100 else (352, 288)


@dataclass(frozen=True)
class SynthConfig:
    """What one synthetic video looks like; the seed decides everything random."""

    name: str = "synth_001"
    fps: float = 30.0
    duration_s: float = 60.0
    size: tuple[int, int] | None = None  # (width, height); None -> default_size(fps)
    face: str | Path = "astronaut"  # built-in name or image path
    face_scale_frac: tuple[float, float] = (0.32, 0.45)  # face scale (1.8 IOD) / frame height
    distractors: bool = True  # blinks, head motion, light changes, sensor noise
    jitter: bool = False  # a random appearance per video (mirror, colour, gamma, texture)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    durations: DurationModel | None = None  # None -> durations_for(fps)
    # Real landmark tracks (real_*.npz) driving the face on top of everything else: one
    # per video, from a random frame, its non-rigid part scaled by a factor drawn from
    # real_motion_scale. They carry no truth: talking, blinks, gaze, head turns, jitter.
    real_motion: tuple[str, ...] = ()
    real_motion_scale: tuple[float, float] = (0.4, 1.0)
    # Labels of the expressions inside those tracks (a truth CSV naming the tracks, frames
    # at 30 fps: realtime.synthesis.real_expressions): they become truth of the video, and
    # a scheduled expression overlapping one is left out. None: the tracks carry no truth.
    real_motion_labels: str | None = None
    # Heads turning and nodding in depth (realtime.synthesis.head_turns): no truth either.
    head_turns: bool = False

    @property
    def frame_size(self) -> tuple[int, int]:
        return self.size if self.size is not None else default_size(self.fps)

    @property
    def n_frames(self) -> int:
        return int(round(self.duration_s * self.fps))


@dataclass
class SynthVideo:
    """A generated video. Frames are rendered on demand (random access or iteration) by
    a renderer built on first use; `release()` frees its buffers (a few MB), which
    matters when many videos are described at once."""

    name: str
    fps: float
    n_frames: int
    truth: list[Interval]
    events: list[Event]
    distractors: tuple[Distractor, ...]
    scene: Scene  # the still first frame before expressions, head motion, light, noise
    track: DistractorTrack
    noise_seed: np.random.SeedSequence
    motion: RealMotion | None = None
    turns: MotionTrack | None = None  # landmark motion of the head turning in depth
    _renderer: Renderer | None = field(default=None, repr=False)

    @property
    def landmarks(self) -> np.ndarray:
        """(468,2) landmarks of the still face (frame px), before head motion."""
        return self.scene.landmarks

    @property
    def face_scale(self) -> float:
        return self.scene.face_scale

    @property
    def renderer(self) -> Renderer:
        if self._renderer is None:
            rng = np.random.default_rng(self.noise_seed)
            self._renderer = Renderer(self.scene, self.events, self.track, self.n_frames, rng, self.motion,
                                      self.turns)
        return self._renderer

    def release(self) -> None:
        self._renderer = None

    def __len__(self) -> int:
        return self.n_frames

    def frame(self, i: int) -> np.ndarray:
        """Frame i (1-based), (H, W, 3) uint8 BGR."""
        return self.renderer.render(i)

    def frames(self) -> Iterator[np.ndarray]:
        for i in range(1, self.n_frames + 1):
            yield self.renderer.render(i)


def _check_config(config: SynthConfig) -> None:
    if config.fps <= 0:
        raise UserError(f"--fps: must be positive, got {config.fps}")
    need = 2 * config.schedule.lead_s + 1.0
    if config.duration_s < need:
        raise UserError(f"--duration: {config.duration_s} s is too short, need at least {need:.0f} s")
    w, h = config.frame_size
    if w < 96 or h < 96:
        raise UserError(f"size: {w}x{h} is too small, need at least 96x96")


def _check_seed(seed: int) -> None:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"--seed: must be a non-negative integer, got {seed!r}")


def generate_video(config: SynthConfig, seed: int, photo: FacePhoto | None = None) -> SynthVideo:
    """Describe one video (scene, schedule, distractors, truth); frames render lazily.
    `photo` lets callers reuse an already loaded face (landmark detection is slow-ish)."""
    _check_config(config)
    _check_seed(seed)
    photo = photo if photo is not None else load_face(config.face)
    # spawn(n)[:m] == spawn(m): streams were added without changing older videos.
    scene_ss, event_ss, distractor_ss, noise_ss, look_ss, motion_ss, turn_ss = np.random.SeedSequence(seed).spawn(7)
    if config.jitter:
        photo = restyle(photo, Appearance.draw(np.random.default_rng(look_ss)))
    scene_rng = np.random.default_rng(scene_ss)
    w, h = config.frame_size
    scene = compose_scene(photo, w, h, float(scene_rng.uniform(*config.face_scale_frac)) * h, scene_rng)
    n = config.n_frames
    durations = config.durations or durations_for(config.fps)
    events = schedule_events(np.random.default_rng(event_ss), n, config.fps, durations, config.schedule)
    motion, real_truth = None, []
    if config.real_motion:
        tracks = [load_track(p).at_fps(config.fps) for p in config.real_motion]
        motion = RealMotion.draw(np.random.default_rng(motion_ss), tracks, config.real_motion_scale)
        if config.real_motion_labels is not None:
            labels = load_track_labels(config.real_motion_labels)
            real_truth = expression_truth(motion, labels, config.fps, n, config.name)
            # one expression at a time: a scheduled one over a real one would share its frames
            onsets = [r.onset for r in real_truth]  # (sorted by onset)
            events = [e for e in events if not overlaps_any(truth_of(e, config.name), real_truth, onsets)]
    if config.distractors:
        track = make_distractors(np.random.default_rng(distractor_ss), n, config.fps, scene.face_scale, events)
    else:
        track = DistractorTrack.still(n)
    truth = sorted([truth_of(e, config.name) for e in events] + real_truth, key=lambda iv: (iv.onset, iv.type))
    items, turns = track.items, None
    if config.head_turns:
        drawn = draw_head_turns(np.random.default_rng(turn_ss), n, config.fps, events)
        turns = turned_track(scene_points3d(scene), drawn.yaw, drawn.pitch, config.fps)
        items = tuple(sorted(items + drawn.items, key=lambda d: d.start))
    return SynthVideo(config.name, config.fps, n, truth, events, items, scene, track, noise_ss, motion, turns)


def write_mp4(path: Path, frames: Iterator[np.ndarray], fps: float, size: tuple[int, int]) -> int:
    """MPEG-4 part 2 via OpenCV (lossy, like real camera files); returns frames written."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise UserError(f"{path}: OpenCV cannot open an mp4 writer here")
    count = 0
    try:
        for frame in frames:
            writer.write(frame)
            count += 1
    finally:
        writer.release()
    return count


def expand_tracks(paths: Sequence[str | Path]) -> tuple[str, ...]:
    """Track files from files and folders (a folder gives its real_*.npz), checked."""
    out: list[str] = []
    for p in map(Path, paths):
        found = track_files(p) if p.is_dir() else [p]
        if not found:
            raise UserError(f"--real-motion: {p} holds no real_*.npz track")
        for f in found:
            load_track(f)  # a bad file fails here, naming it
        out += [str(f) for f in found]
    return tuple(out)


def _write_distractors_csv(path: Path, rows: list[tuple[str, Distractor]]) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["video", "kind", "start", "end"])
        for video, d in rows:
            out.writerow([video, d.kind, d.start, d.end])


def _write_actions_csv(path: Path, rows: list[tuple[str, Interval, Event]]) -> None:
    """One row per action of an event: which unit, how strong and how shaped."""
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(["video", "type", "onset", "offset", "action", "amplitude_px112", "side", "weaker",
                      "rotation_deg", "width_scale"])  # fmt: skip
        for video, iv, e in rows:
            for k, (name, amp) in enumerate(e.actions):
                sh = e.shape_of(k)
                out.writerow([video, iv.type, iv.onset, iv.offset, name, f"{amp:.3f}", sh.side, f"{sh.weaker:.3f}",
                              f"{sh.rotation_deg:.1f}", f"{sh.width_scale:.3f}"])  # fmt: skip


def _layout_ids(layout: str, i: int) -> tuple[int, int]:
    """(subject, index) of the i-th video (0-based) in the stand-in layouts: CAS subjects
    have up to 9 videos (the real codes), SAMM ones up to 7, CAS(ME)^3 ones 13 (a..m)."""
    per = {"cas": 9, "casme3": 13}.get(layout, 7)
    return {"cas": 15, "casme3": 1}.get(layout, 6) + i // per, i % per + 1


@dataclass(frozen=True)
class DatasetSummary:
    videos: list[str]
    truth: list[Interval]
    frames: int
    seconds: float  # wall time spent rendering and writing
    duration_min: float  # total video length

    def per_minute(self, kind: str) -> float:
        return sum(iv.type == kind for iv in self.truth) / self.duration_min


def write_dataset(
    out_dir: str | Path,
    n_videos: int,
    fps: float,
    face_images: Sequence[str | Path] = BUILTIN_FACES,
    seed: int = 0,
    layout: str = "mp4",
    duration_s: float | None = None,
    distractors: bool = True,
    jitter: bool = False,
    on_frame: Callable[[str, int, int], None] | None = None,
    real_motion: Sequence[str | Path] = (),
    vary_actions: bool = False,
    head_turns: bool = False,
    real_motion_labels: str | Path | None = None,
) -> DatasetSummary:
    """Write n_videos synthetic videos (faces used in turn) and their truth.

    mp4: out_dir/synth_NNN.mp4 + truth.csv; cas/samm/casme3: the real folder layout + workbook(s)
    (+ truth.csv with the layout's video ids). distractors.csv lists blinks / head moves /
    light ramps for analysis. on_frame(video, frame, n_frames) reports progress.
    `real_motion`: real landmark tracks (files, or folders of real_*.npz) driving the
    faces (SynthConfig.real_motion); real_motion.csv says which track each video shows.
    `real_motion_labels`: a truth CSV of the tracks' own expressions (SynthConfig.
    real_motion_labels): they become truth intervals of the videos that show them.
    `vary_actions`: ScheduleSettings.vary_actions (more units, each occurrence shaped anew);
    actions.csv then lists each event's units and shapes.
    `head_turns`: SynthConfig.head_turns (heads turning in depth; distractors.csv lists
    the turns as yaw and pitch).
    """
    if layout not in LAYOUTS:
        raise UserError(f"--layout: must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if n_videos < 1:
        raise UserError(f"--videos: must be at least 1, got {n_videos}")
    _check_seed(seed)
    if not face_images:
        raise UserError("--faces: give at least one face image")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    duration = duration_s if duration_s is not None else (60.0 if fps < 100 else 30.0)
    photos = [load_face(f) for f in face_images]  # fail early on a bad face path
    tracks = expand_tracks(real_motion)
    if real_motion_labels is not None:
        if not tracks:
            raise UserError("--real-motion-labels: needs --real-motion (the tracks it labels)")
        labelled = load_track_labels(real_motion_labels)  # a bad file fails here, naming it
        if not labelled.keys() & {Path(t).stem for t in tracks}:
            raise UserError(f"--real-motion-labels {real_motion_labels}: labels none of the tracks "
                            f"({', '.join(sorted(Path(t).stem for t in tracks))})")
    output_dir(out, "--out")
    motions: list[tuple[str, RealMotion]] = []

    names: list[str] = []
    truth: list[Interval] = []
    noted: list[tuple[str, Distractor]] = []
    shaped_rows: list[tuple[str, Interval, Event]] = []
    standins: list[dl.StandInVideo] = []
    t0 = time.perf_counter()
    total = 0
    for i in range(n_videos):
        subject, index = _layout_ids(layout, i)
        probe = dl.StandInVideo(subject, index, [])
        name = {"mp4": f"synth_{i + 1:03d}", "cas": dl.cas_video_id(probe), "samm": dl.samm_video_id(probe),
                "casme3": dl.casme3_video_id(probe)}[layout]
        config = SynthConfig(name=name, fps=fps, duration_s=duration, distractors=distractors, jitter=jitter,
                             real_motion=tracks, schedule=ScheduleSettings(vary_actions=vary_actions),
                             head_turns=head_turns,
                             real_motion_labels=None if real_motion_labels is None else str(real_motion_labels))
        video = generate_video(config, int(np.random.SeedSequence([seed, i]).generate_state(1)[0]), photos[i % len(photos)])
        names.append(name)
        if video.motion is not None:
            motions.append((name, video.motion))
        truth += video.truth
        noted += [(name, d) for d in video.distractors]
        if vary_actions:
            shaped_rows += [(name, truth_of(e, name), e) for e in video.events]

        def frames(v: SynthVideo = video) -> Iterator[np.ndarray]:
            for k, frame in enumerate(v.frames(), start=1):
                if on_frame is not None:
                    on_frame(v.name, k, v.n_frames)
                yield frame
            v.release()  # layouts hold every video's iterator: keep only the current renderer

        if layout == "mp4":
            total += write_mp4(out / f"{name}.mp4", frames(), fps, config.frame_size)
        else:
            standins.append(dl.StandInVideo(subject, index, frames(), video.truth))
            total += video.n_frames
    if layout == "cas":
        dl.write_cas_layout(out, standins)
    elif layout == "samm":
        dl.write_samm_layout(out, standins)
    elif layout == "casme3":
        dl.write_casme3_layout(out, standins)
    write_intervals(out / "truth.csv", truth, truth=True)
    _write_distractors_csv(out / "distractors.csv", noted)
    if shaped_rows:
        _write_actions_csv(out / "actions.csv", shaped_rows)
    if motions:
        with open(out / "real_motion.csv", "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(["video", "track", "start_frame", "scale"])
            w.writerows([(v, m.track.name, m.start + 1, f"{m.scale:.3f}") for v, m in motions])
    return DatasetSummary(names, truth, total, time.perf_counter() - t0, n_videos * duration / 60)
