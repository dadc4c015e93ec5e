"""Benchmark the CPU dense-flow choices on real aligned faces with known synthetic motion.

For each algorithm (farneback with the authors' parameters, DIS medium, TV-L1) and each
flow size (112, 224) it prints: ms per pair, end-point error (EPE, px) inside the face
for a 1.5 px translation and for a smooth sinusoidal field of ~1 px amplitude, and the
largest |flow| reported for two identical frames (inside the face and anywhere), which
matters because the HS value channel is min-max normalised over the whole pair; and the
largest HS value (0..255) in the mouth box when only the mouth moves by 0.5 px (how much
of the value range a small expression gets).
Also timed: FaceMesh landmarks (video mode), alignment, and the chain after the flow.

    python -m tools.bench_flow [--reps 20] [--tvl1-reps 3]
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import cv2
import matplotlib.cbook
import numpy as np
import skimage.data
from rich.console import Console
from rich.table import Table

from engines import features as ft
from realtime import face as fl
from realtime.common.errors import OneLineParser
from realtime.common.types import FlowSettings

ALGORITHMS = ("farneback", "dis", "tvl1")
SIZES = (112, 224)


def sample_faces() -> dict[str, np.ndarray]:
    """The two real face photos available offline, as BGR frames."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return {
        "astronaut": cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR),
        "grace_hopper": cv2.imread(str(path)),
    }


def sinusoid_field(size: int, amplitude: float) -> np.ndarray:
    """Smooth (S,S,2) displacement: one period of sine/cosine across the crop."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) * (2 * np.pi / size)
    return amplitude * np.stack([np.sin(yy + 0.3), np.cos(xx + 0.7)], axis=2).astype(np.float32)


def warp_by_flow(grey: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frame b such that a(x) = b(x + flow(x)) (the field is on a's grid).

    b(y) = a(y - v(y)) with v(y) = flow(x), y = x + flow(x); v is found by the fixed-point
    iteration v <- flow(y - v), accurate for smooth fields of a few px.
    """
    s = grey.shape[0]
    grid = np.stack(np.meshgrid(np.arange(s), np.arange(s)), axis=2).astype(np.float32)
    v = flow.copy()
    for _ in range(10):
        src = grid - v
        v = cv2.remap(flow, src[..., 0], src[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    src = grid - v
    return cv2.remap(grey, src[..., 0], src[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def face_mask(landmarks: np.ndarray, size: int, erode_px: int) -> np.ndarray:
    """bool (S,S): convex hull of the landmarks, eroded away from the face outline."""
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1)
    if erode_px > 0:
        mask = cv2.erode(mask, np.ones((2 * erode_px + 1,) * 2, np.uint8))
    return mask.astype(bool)


def epe(flow: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return float(np.linalg.norm(flow - truth, axis=2)[mask].mean())


def mouth_bump(geometry: ft.FaceGeometry, amplitude: float) -> np.ndarray:
    """(S,S,2) field: the mouth region moves up by `amplitude` px (a small expression)."""
    size = geometry.size
    x0, y0, x1, y1 = geometry.mouth_box
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bump = np.exp(-(((xx - (x0 + x1) / 2) / (0.09 * size)) ** 2 + ((yy - (y0 + y1) / 2) / (0.055 * size)) ** 2))
    field = np.zeros((size, size, 2), np.float32)
    field[..., 1] = -amplitude * bump
    return field


def mouth_value(frame: ft.FlowFrame, settings: FlowSettings, amplitude: float) -> float:
    """Largest HS value (0..255) in the mouth box for a small mouth motion: low when a
    spurious flow elsewhere sets the pair's min-max range."""
    moved = warp_by_flow(frame.grey, mouth_bump(frame.geometry, amplitude))
    hs = ft.encode_hs(ft.compute_flow(frame.grey, moved, settings), settings.clip)
    x0, y0, x1, y1 = frame.geometry.mouth_box
    return float(cv2.cvtColor(hs, cv2.COLOR_BGR2HSV)[y0:y1, x0:x1, 2].max())


def time_ms(func: Callable[[], object], reps: int) -> float:
    """Median wall time of func in ms (one warm-up call first)."""
    func()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        func()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def flow_rows(faces: dict[str, fl.AlignedFace], reps: int, tvl1_reps: int) -> list[list[str]]:
    """One row per (algorithm, size): time and accuracy, averaged over the faces."""
    rows = []
    for size in SIZES:
        for algorithm in ALGORITHMS:
            settings = FlowSettings(algorithm=algorithm, face_size=size)
            stats: dict[str, list[float]] = {
                "ms": [], "trans": [], "sine": [], "zero_face": [], "zero_all": [], "mouth_v": []
            }
            for face in faces.values():
                frame = ft.flow_frame(face, settings)
                mask = face_mask(frame.landmarks, size, erode_px=size // 28)
                translation = np.zeros((size, size, 2), np.float32) + np.float32([1.5, 0.0])
                sine = sinusoid_field(size, 1.0)
                for key, truth in (("trans", translation), ("sine", sine)):
                    moved = warp_by_flow(frame.grey, truth)
                    stats[key].append(epe(ft.compute_flow(frame.grey, moved, settings), truth, mask))
                still = np.linalg.norm(ft.compute_flow(frame.grey, frame.grey.copy(), settings), axis=2)
                stats["zero_face"].append(float(still[mask].max()))
                stats["zero_all"].append(float(still.max()))
                stats["mouth_v"].append(mouth_value(frame, settings, 0.5))
                moved = warp_by_flow(frame.grey, sine)
                n = tvl1_reps if algorithm == "tvl1" else reps
                stats["ms"].append(time_ms(functools.partial(ft.compute_flow, frame.grey, moved, settings), n))
            rows.append(
                [algorithm, str(size)]
                + [f"{np.mean(v):.1f}" if k in ("ms", "mouth_v") else f"{np.mean(v):.3f}" for k, v in stats.items()]
            )
    return rows


def stage_rows(photos: dict[str, np.ndarray], reps: int) -> list[list[str]]:
    """Per-frame and per-pair stages other than the flow."""
    photo = photos["grace_hopper"]
    rows = []
    with fl.FaceLandmarker(static_image_mode=False) as mesh:
        rows.append(["FaceMesh landmarks, video mode (512x600 frame)", f"{time_ms(lambda: mesh.detect(photo), reps):.1f}"])
        landmarks = mesh.detect(photo)
    for size in SIZES:
        ms = time_ms(functools.partial(fl.align_face, photo, landmarks, size), reps)
        rows.append([f"align_face to {size} px", f"{ms:.2f}"])
    face = fl.align_face(photo, landmarks, 224)
    settings = FlowSettings()
    rows.append(["flow_frame 224 -> 112 (resize + geometry)", f"{time_ms(lambda: ft.flow_frame(face, settings), reps):.2f}"])
    frame = ft.flow_frame(face, settings)
    flow = ft.compute_flow(frame.grey, warp_by_flow(frame.grey, sinusoid_field(112, 1.0)), settings)
    ms = time_ms(lambda: ft.encode_pair(flow, frame.geometry, settings), reps)
    rows.append(["encode_pair at 112 (HS..normalise)", f"{ms:.2f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20, help="timed repetitions (farneback, dis, stages)")
    parser.add_argument("--tvl1-reps", type=int, default=3, help="timed repetitions for TV-L1 (slow)")
    args = parser.parse_args(argv)
    console = Console(width=140)  # wide enough that no column is truncated
    photos = sample_faces()
    with fl.FaceLandmarker(static_image_mode=True) as mesh:
        faces = {name: fl.align_face(img, mesh.detect(img), 224) for name, img in photos.items()}
    console.print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; faces: {', '.join(faces)}")

    table = Table(title="Dense flow on aligned faces (mean over faces; EPE inside the face, px)")
    for col in ("algorithm", "size", "ms/pair", "EPE 1.5px shift", "EPE sine 1px", "still max|f| face", "still max|f| all",
                "V in mouth, 0.5px"):
        table.add_column(col, justify="right")
    for row in flow_rows(faces, args.reps, args.tvl1_reps):
        table.add_row(*row)
    console.print(table)

    stages = Table(title="Other stages (ms, median)")
    stages.add_column("stage")
    stages.add_column("ms", justify="right")
    for row in stage_rows(photos, args.reps):
        stages.add_row(*row)
    console.print(stages)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
