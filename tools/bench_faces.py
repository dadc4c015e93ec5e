"""Time face alignment per frame: the previous path (FaceMesh on the whole frame, one
face) against `FaceAligner` (whole frame, then detector search + crop tracking for small
faces), on an ordinary 640x480 face clip and on 4K / 1080p frames with a small face or
none. Prints a table of ms per frame (median, worst) and faces found; never asserted.

    python -m tools.bench_faces [--frames 30]
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from realtime import face as fl
from realtime.common.errors import OneLineParser
from realtime.face_search import box_of_landmarks
from realtime.native_log import filtered_native_stderr
from realtime.synthesis.faces import load_face
from realtime.synthesis.generate import SynthConfig, generate_video

Frames = Callable[[], Iterator[np.ndarray]]


def ordinary_clip(n: int) -> Frames:
    video = generate_video(SynthConfig(name="bench", fps=30.0, duration_s=max(3.0, n / 30.0), size=(640, 480)), 5)
    frames = list(itertools.islice(video.frames(), n))
    return lambda: iter(frames)


def small_face(n: int, size: tuple[int, int], width_px: float, drift: int = 4) -> Frames:
    """The Hopper photo scaled to a `width_px` wide face, drifting `drift` px a frame."""
    photo = load_face("grace_hopper")
    box = box_of_landmarks(photo.landmarks)
    zoom = width_px / box.w
    side = int(2.6 * width_px)
    m = np.array([[zoom, 0, side / 2 - zoom * box.cx], [0, zoom, side / 2 - zoom * box.cy]])
    patch = cv2.warpAffine(photo.image, m, (side, side), borderMode=cv2.BORDER_REPLICATE)

    def frames() -> Iterator[np.ndarray]:
        for i in range(n):
            frame = np.full((size[1], size[0], 3), 96, np.uint8)
            x0, y0 = size[0] // 2 + drift * i, size[1] // 3 + drift * i // 2
            frame[y0:y0 + side, x0:x0 + side] = patch
            yield frame
    return frames


def no_face(n: int, size: tuple[int, int]) -> Frames:
    return lambda: (np.full((size[1], size[0], 3), 96, np.uint8) for _ in range(n))


def run_before(frames: Frames, face_size: int) -> tuple[list[float], int]:
    """The path before small-face support: FaceMesh (one face) on the whole frame."""
    ms, found = [], 0
    with fl.FaceLandmarker(static_image_mode=False) as mesh:
        for frame in frames():
            t0 = time.perf_counter()
            landmarks = mesh.detect(frame)
            face = fl.align_face(frame, landmarks, face_size) if landmarks is not None else None
            ms.append((time.perf_counter() - t0) * 1000.0)
            found += face is not None
    return ms, found


def run_after(frames: Frames, face_size: int) -> tuple[list[float], int]:
    ms, found = [], 0
    with fl.FaceAligner(size=face_size) as aligner:
        for frame in frames():
            t0 = time.perf_counter()
            face = aligner.align(frame)
            ms.append((time.perf_counter() - t0) * 1000.0)
            found += face is not None
    return ms, found


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3, help="before/after runs, interleaved (a busy CPU drifts)")
    args = parser.parse_args(argv)
    n = args.frames
    cases = {
        "640x480, ordinary face": ordinary_clip(n),
        "640x480, no face": no_face(n, (640, 480)),
        "3840x2160, 232 px face": small_face(n, (3840, 2160), 232),
        "3840x2160, 160 px face": small_face(n, (3840, 2160), 160),
        "3840x2160, no face": no_face(n, (3840, 2160)),
        "1920x1080, 120 px face": small_face(n, (1920, 1080), 120),
    }
    table = Table(title=f"align ms per frame: {n} frames x {args.reps} runs; p50/mean without each run's "
                        "first frame (graph start, search)")
    for col in ("case", "before p50", "before mean", "before faces", "after p50", "after mean", "after first",
                "after faces"):
        table.add_column(col, justify="left" if col == "case" else "right")
    with filtered_native_stderr():
        for name, frames in cases.items():
            runs: dict[str, list[tuple[list[float], int]]] = {"before": [], "after": []}
            for _ in range(args.reps):
                runs["before"].append(run_before(frames, 112))
                runs["after"].append(run_after(frames, 112))
            row = [name]
            for key in ("before", "after"):
                rest = np.concatenate([ms[1:] for ms, _ in runs[key]])
                row += [f"{np.median(rest):.1f}", f"{rest.mean():.1f}"]
                if key == "after":
                    row.append(f"{np.median([ms[0] for ms, _ in runs[key]]):.0f}")
                row.append(f"{min(found for _, found in runs[key])}/{n}")
            table.add_row(*row)
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
