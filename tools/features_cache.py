"""Per-video network inputs for training and offline scoring, cached on disk.

Two levels, because the expensive parts differ in what they depend on:

1. Aligned faces (FaceMesh + similarity alignment) depend only on the frames and the
   face size, so they are computed once per video and shared by ME and MaE.
2. Pair inputs (`pair_input(face[i], face[i+K])`, computed as `flow_frame` once per
   frame + `pair_input_frames` per pair) depend on the type's K and the flow
   settings; they are stored as float16 `(N,3,112,112)` `.npy` (memory-mapped on load)
   plus a `(N,)` validity mask. Row i (0-based) is the pair (frame i+1, frame i+1+K).

Cache keys include a hash of the flow settings and of the feature code itself
(`realtime/face.py`, `realtime/landmark_filter.py`, `engines/landmarks.py`,
`engines/features.py`), so editing
the feature code never silently reuses stale inputs. A second run with the same key loads
the files and computes nothing.

Landmark filter: `settings.landmark_filter` (the weights' FlowSettings) is applied while
aligning, exactly as `lgnm-live` does (FaceAligner with the frames' stream times, here
(frame - 1) / fps of the video), so training sees the inputs inference computes. The
aligned faces' key includes the filter (and the fps it ran at), the pair inputs' key
includes it through the flow settings.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines import features as features_mod
from engines import head_motion as head_motion_mod
from engines import landmarks as landmarks_mod
from realtime import face as face_mod
from realtime import landmark_filter as landmark_filter_mod
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, ExprType, FlowSettings, LandmarkFilter
from realtime.sources import FolderDepth, read_image

INPUT_SHAPE = (3, 112, 112)
# Bump when the on-disk layout of this module changes.
CACHE_FORMAT = 2  # 2: video files read as lgnm-live reads them (numbers by timestamps)

FrameSource = Sequence[Path] | Sequence[np.ndarray] | Path | str


@dataclass(frozen=True)
class CachedInputs:
    """Network inputs of one video and type.

    x: (N,3,112,112) float16 (a read-only memmap when loaded from disk); zero where invalid.
    valid: (N,) bool; False when either frame of the pair has no face or i+K is past the end.
    """

    video: str
    type: ExprType
    k: int
    x: np.ndarray
    valid: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.valid.shape[0])


def _code_hash() -> str:
    # The features depend on this code as much as on the settings; hashing the source
    # makes a cache built by an older version of the feature code miss instead of lie.
    h = hashlib.sha1()
    for mod in (face_mod, landmark_filter_mod, landmarks_mod, features_mod, head_motion_mod):
        h.update(inspect.getsource(mod).encode())
    h.update(head_motion_mod.face_shape().tobytes())  # the mean face the rigid3d model fits with
    return h.hexdigest()[:10]


def settings_hash(settings: FlowSettings) -> str:
    """Short stable hash of the flow settings + feature code + cache format."""
    payload = json.dumps({"flow": settings.to_dict(), "code": _code_hash(), "fmt": CACHE_FORMAT}, sort_keys=True)
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def _safe(video_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", video_id)


def iter_frames(source: FrameSource) -> Iterator[np.ndarray | None]:
    """BGR uint8 frames from a video file, a list of image paths or a list of arrays.

    A video file is read as lgnm-live reads it (`realtime.sources.VideoFileSource`:
    upright, square pixels, frames numbered by their timestamps), so that frame n here is
    frame n of the truth and of inference; a number the file has no frame for (a pause,
    lost packets) is None: no face there, so no pair spans the hole, and nothing reaches
    the aligner, whose tracker and landmark filter go on as lgnm-live's do."""
    if isinstance(source, (str, Path)):
        from realtime.sources import VideoFileSource

        with VideoFileSource(Path(source)) as video:
            last = 0
            for raw in video:
                for _ in range(last + 1, raw.index):
                    yield None
                last = raw.index
                yield raw.image
        return
    depth = FolderDepth([Path(p) for p in source if not isinstance(p, np.ndarray)])  # as lgnm-live reads them
    for item in source:
        if isinstance(item, np.ndarray):
            yield item
            continue
        img = read_image(Path(item))
        if img is None:
            raise UserError(f"cannot read image {item}")
        yield depth(img)


def _source_fingerprint(source: FrameSource) -> str:
    # Cheap identity of the frames: names + count (+ size/mtime of a video file);
    # arrays are hashed by content since they have no name.
    h = hashlib.sha1()
    if isinstance(source, (str, Path)):
        p = Path(source)
        st = p.stat() if p.exists() else None
        h.update(f"{p.resolve()}|{st.st_size if st else 0}|{st.st_mtime_ns if st else 0}".encode())
    else:
        for item in source:
            if isinstance(item, np.ndarray):
                h.update(item.tobytes())
            else:
                h.update(str(Path(item).resolve()).encode())
    return h.hexdigest()[:12]


DEFAULT_FPS = 30.0  # frame times of a video whose rate is not given


def _make_aligner(size: int, landmark_filter: LandmarkFilter | None = None,
                  fps: float = DEFAULT_FPS):
    return face_mod.FaceAligner(size, landmark_filter=landmark_filter, fps=fps)


def _close(aligner: object) -> None:
    close = getattr(aligner, "close", None)
    if callable(close):
        close()


def align_video(source: FrameSource, size: int, landmark_filter: LandmarkFilter | None = None,
                fps: float | None = None) -> list[AlignedFace | None]:
    """Align every frame once with a fresh (tracking) FaceAligner; with a landmark filter,
    frame i (0-based) is at stream time i / fps (DEFAULT_FPS when not given)."""
    fps = fps or DEFAULT_FPS
    aligner = _make_aligner(size, landmark_filter, fps)
    try:
        return [None if frame is None else aligner.align(frame, i / fps)
                for i, frame in enumerate(iter_frames(source))]
    finally:
        _close(aligner)


def _filter_key(landmark_filter: LandmarkFilter | None, fps: float | None) -> str:
    """What the aligned faces depend on besides the frames and the code."""
    if landmark_filter is None:
        return "nofilter"
    return json.dumps({"filter": landmark_filter.to_dict(), "fps": fps or DEFAULT_FPS}, sort_keys=True)


def _faces_path(cache_dir: Path, video_id: str, size: int, source: FrameSource,
                landmark_filter: LandmarkFilter | None = None, fps: float | None = None) -> Path:
    key = hashlib.sha1(f"{_source_fingerprint(source)}|{_code_hash()}|{CACHE_FORMAT}|"
                       f"{_filter_key(landmark_filter, fps)}".encode()).hexdigest()[:12]
    return cache_dir / f"{_safe(video_id)}__faces{size}__{key}.npz"


def _save_faces(path: Path, faces: list[AlignedFace | None], size: int) -> None:
    n = len(faces)
    grey = np.zeros((n, size, size), np.uint8)
    marks = np.zeros((n, face_mod.N_LANDMARKS, 2), np.float32)
    mats = np.zeros((n, 2, 3), np.float64)
    valid = np.zeros(n, bool)
    for i, f in enumerate(faces):
        if f is None:
            continue
        grey[i], marks[i], mats[i], valid[i] = f.grey, f.landmarks, f.matrix, True
    # A per-process temp name: ME and MaE trainers run in parallel on one cache and may
    # write the same video's faces at the same time.
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, grey=grey, landmarks=marks, matrix=mats, valid=valid)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written cache


def _load_faces(path: Path) -> list[AlignedFace | None]:
    with np.load(path) as z:
        grey, marks, mats, valid = z["grey"], z["landmarks"], z["matrix"], z["valid"]
    return [AlignedFace(grey[i], marks[i], mats[i]) if valid[i] else None for i in range(len(valid))]


def cached_faces(source: FrameSource, video_id: str, size: int, cache_dir: Path | None,
                 landmark_filter: LandmarkFilter | None = None, fps: float | None = None) -> list[AlignedFace | None]:
    """Aligned faces of every frame (landmarks filtered when `landmark_filter` is given),
    from the cache when present."""
    if cache_dir is None:
        return align_video(source, size, landmark_filter, fps)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _faces_path(cache_dir, video_id, size, source, landmark_filter, fps)
    if path.exists():
        return _load_faces(path)
    faces = align_video(source, size, landmark_filter, fps)
    _save_faces(path, faces, size)
    return faces


def compute_inputs(
    faces: Sequence[AlignedFace | None],
    k: int,
    settings: FlowSettings,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(N,3,112,112) float16 inputs and (N,) validity for pairs (i, i+K) over all frames."""
    if k < 1:
        raise UserError(f"K must be >= 1, got {k}")
    n = len(faces)
    x = np.zeros((n, *INPUT_SHAPE), np.float16)
    valid = np.zeros(n, bool)
    # Per-frame products (resized grey, landmarks, regions) once per frame, not per pair.
    frames = [None if f is None else features_mod.flow_frame(f, settings) for f in faces]
    for i in range(max(0, n - k)):
        a, b = frames[i], frames[i + k]
        if a is not None and b is not None:
            # Looked up on the module at call time so tests can count the calls; same
            # result as pair_input(face[i], face[i+K]) without recomputing per-frame work.
            x[i] = features_mod.pair_input_frames(a, b, settings)
            valid[i] = True
        if progress is not None:
            progress(1)
    return x, valid


def cached_inputs(
    source: FrameSource,
    video_id: str,
    expr_type: ExprType,
    k: int,
    settings: FlowSettings,
    cache_dir: Path | None,
    progress: Callable[[int], None] | None = None,
    fps: float | None = None,
) -> CachedInputs:
    """Pair inputs of one video and type; computed once, then memory-mapped from disk.

    `fps`: the video's frame rate (the landmark filter's frame times; DEFAULT_FPS when
    None). It only matters when `settings.landmark_filter` is set."""
    if settings.landmark_filter is None:
        fps = None  # no filter: the frame times change nothing, nor the cache key
    if cache_dir is None:
        faces = cached_faces(source, video_id, settings.face_size, None, settings.landmark_filter, fps)
        x, valid = compute_inputs(faces, k, settings, progress)
        return CachedInputs(video_id, expr_type, k, x, valid)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = settings_hash(settings) if fps is None else f"{settings_hash(settings)}_{fps:g}fps"
    stem = f"{_safe(video_id)}__{expr_type}__K{k}__{key}__{_source_fingerprint(source)}"
    x_path, v_path = cache_dir / f"{stem}.x.npy", cache_dir / f"{stem}.valid.npy"
    if x_path.exists() and v_path.exists():
        return CachedInputs(video_id, expr_type, k, np.load(x_path, mmap_mode="r"), np.load(v_path))
    faces = cached_faces(source, video_id, settings.face_size, cache_dir, settings.landmark_filter, fps)
    x, valid = compute_inputs(faces, k, settings, progress)
    # Write to temp names then rename, valid last: its presence marks a complete entry.
    for path, arr in ((x_path, x), (v_path, valid)):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
    return CachedInputs(video_id, expr_type, k, np.load(x_path, mmap_mode="r"), valid)
