"""Landmark filter: jitter on real FaceMesh tracks and lag on synthetic steps and ramps.

    python -m tools.bench_landmark_filter [--tracks DIR] [--grid]

Jitter: the real landmark tracks of /work/shared/reference/real-motion (`real_s*`: still
faces, `real_d*`: talking and grimacing; displacement in IOD units at 25/30 fps) are
filtered causally at their own frame times; the frame-to-frame step of the alignment
points (mean over ALIGN_POINTS of the 2-D step per frame, % IOD) is reported at p50/p90
per group, raw and filtered, and the distance of filtered from raw landmarks (alignment
points; brows + mouth: what the filter costs a moving face).

Lag: one landmark on a noise-free step (frames until the output covers 50% / 90% of it)
and ramp (raw minus filtered over the speed, in frames, after 10 frames and at steady
state) at 30 fps, speeds in px/frame of a 112 px aligned face (IOD = 112 / 1.8 = 62 px:
1 px/frame is 0.48 IOD/s, a brow raise's speed). Prints tables, asserts nothing.
"""

from __future__ import annotations

import glob
import os

import numpy as np

from realtime.common.errors import OneLineParser
from realtime.common.types import DEFAULT_LANDMARK_FILTER, LandmarkFilter
from realtime.face import ALIGN_POINTS, CROP_SPAN_IOD, LEFT_BROW, MOUTH, RIGHT_BROW
from realtime.landmark_filter import filter_track

TRACKS = "/work/shared/reference/real-motion"
FACE_PX = 112
IOD_PX = FACE_PX / CROP_SPAN_IOD  # 62.2 px: the IOD of the aligned 112 px face
FPS = 30.0
EXPRESSION = np.concatenate([LEFT_BROW, RIGHT_BROW, MOUTH])


def load_tracks(folder: str) -> dict[str, tuple[np.ndarray, float]]:
    out = {}
    for path in sorted(glob.glob(os.path.join(folder, "real_*.npz"))):
        with np.load(path) as z:
            xy = z["displacement"][..., :2].astype(np.float64)
            xy[~z["face_found"]] = np.nan
            out[os.path.basename(path)[:-4]] = (xy, float(z["fps"]))
    return out


def steps(track: np.ndarray) -> np.ndarray:
    """Per frame: mean 2-D step of the alignment points (IOD); NaN across breaks."""
    d = np.linalg.norm(np.diff(track[:, ALIGN_POINTS], axis=0), axis=-1).mean(axis=1)
    return d[np.isfinite(d)]


def shake(track: np.ndarray) -> np.ndarray:
    """Per frame: mean |x[t+1] - 2 x[t] + x[t-1]| of the alignment points (IOD): the
    part of the motion that is not smooth (jitter); a steady drift or turn gives ~0."""
    d = np.linalg.norm(np.diff(track[:, ALIGN_POINTS], n=2, axis=0), axis=-1).mean(axis=1)
    return d[np.isfinite(d)]


def jitter_rows(tracks: dict[str, tuple[np.ndarray, float]], settings: LandmarkFilter) -> list[tuple]:
    rows = []
    for group, prefix in (("still (real_s*)", "real_s"), ("talking (real_d*)", "real_d")):
        raw_s, filt_s, dev_align, dev_expr, raw_j, filt_j = [], [], [], [], [], []
        for name, (xy, fps) in tracks.items():
            if not name.startswith(prefix):
                continue
            times = np.arange(len(xy)) / fps
            out = filter_track(xy, times, settings, iod=1.0).astype(np.float64)
            raw_s.append(steps(xy))
            filt_s.append(steps(out))
            raw_j.append(shake(xy))
            filt_j.append(shake(out))
            dev = np.linalg.norm(out - xy, axis=-1)
            dev_align.append(dev[:, ALIGN_POINTS].ravel())
            dev_expr.append(dev[:, EXPRESSION].ravel())
        r, f = np.concatenate(raw_s) * 100, np.concatenate(filt_s) * 100
        da, de = np.concatenate(dev_align) * 100, np.concatenate(dev_expr) * 100
        rj, fj = np.concatenate(raw_j) * 100, np.concatenate(filt_j) * 100
        rows.append((group, np.percentile(r, 50), np.percentile(r, 90), np.percentile(f, 50), np.percentile(f, 90),
                     np.median(r) / np.median(f), np.percentile(rj, 50), np.percentile(rj, 90),
                     np.percentile(fj, 50), np.percentile(fj, 90), np.median(rj) / np.median(fj),
                     np.nanpercentile(da, 90), np.nanpercentile(de, 90)))
    return rows


def step_lag(settings: LandmarkFilter, size_iod: float, fps: float = FPS) -> tuple[int, int]:
    """Frames after the step until the output covers 50% and 90% of it."""
    n = int(3 * fps)
    x = np.zeros((n, 468, 2))
    x[10:, :, 0] = size_iod
    out = filter_track(x, np.arange(n) / fps, settings, iod=1.0)[:, 0, 0] / size_iod
    return int(np.argmax(out >= 0.5)) - 10, int(np.argmax(out >= 0.9)) - 10


def ramp_lag(settings: LandmarkFilter, px_per_frame: float, fps: float = FPS) -> tuple[float, float]:
    """Lag in frames (raw - filtered, over the speed) 10 frames into a ramp and after 2 s."""
    n = int(2 * fps) + 10
    v = px_per_frame / IOD_PX  # IOD per frame
    x = np.zeros((n, 468, 2))
    x[10:, :, 0] = v * np.arange(1, n - 9)[:, None]
    out = filter_track(x, np.arange(n) / fps, settings, iod=1.0)[:, 0, 0]
    lag = (x[:, 0, 0] - out) / v
    return float(lag[19]), float(lag[-1])


def report(tracks: dict, settings: LandmarkFilter) -> None:
    print(f"\nOne Euro filter: min_cutoff {settings.min_cutoff} Hz, beta {settings.beta} Hz per IOD/s, "
          f"d_cutoff {settings.d_cutoff} Hz")
    print("\nReal FaceMesh tracks, alignment points, % IOD. step: frame-to-frame step; shake: second"
          "\ndifference |x[t+1] - 2x[t] + x[t-1]| (jitter; ~0 for a steady drift); |f-raw|: distance"
          "\nof filtered from raw landmarks (p90; the cost), alignment points and brows+mouth")
    print(f"{'group':18s} {'step raw p50/p90':>17s} {'filt p50/p90':>13s} {'x':>4s} "
          f"{'shake raw p50/p90':>18s} {'filt p50/p90':>13s} {'x':>4s} {'|f-raw| align':>14s} {'brow+mouth':>10s}")
    for g, r50, r90, f50, f90, red, j50, j90, k50, k90, jred, da, de in jitter_rows(tracks, settings):
        print(f"{g:18s} {r50:8.2f} {r90:8.2f} {f50:6.2f} {f90:6.2f} {red:4.1f} "
              f"{j50:9.2f} {j90:8.2f} {k50:6.2f} {k90:6.2f} {jred:4.1f} {da:14.2f} {de:10.2f}")
    print(f"\nLag at {FPS:g} fps (frames; 112 px face, IOD {IOD_PX:.0f} px)")
    print(f"{'step':>10s} {'to 50%':>7s} {'to 90%':>7s}")
    for px in (1.0, 3.0, 10.0, 30.0):
        a, b = step_lag(settings, px / IOD_PX)
        print(f"{px:7.0f} px {a:7d} {b:7d}")
    print(f"{'ramp':>10s} {'@10 fr':>7s} {'steady':>7s}")
    for px in (0.25, 0.5, 1.0, 2.0, 4.0):
        a, b = ramp_lag(settings, px)
        print(f"{px:5.2f} px/fr {a:7.2f} {b:7.2f}")


def grid(tracks: dict) -> None:
    print("\nGrid: still step / shake p50 filtered (% IOD), talking |f-raw| p90 brows+mouth, steady ramp lag"
          " (frames at 0.5/1/2 px/frame), frames to 90% of a 3 px step")
    print(f"{'min_cut':>7s} {'beta':>5s} {'still p50':>9s} {'shake':>6s} {'talk dev':>9s} {'lag 0.5':>8s} "
          f"{'lag 1':>6s} {'lag 2':>6s} {'step3px 90%':>11s}")
    for mc in (0.3, 0.5, 1.0, 2.0, 4.0):
        for beta in (0.0, 0.3, 1.0, 3.0, 10.0):
            s = LandmarkFilter(mc, beta, 1.0)
            still, talk = jitter_rows(tracks, s)
            lags = [ramp_lag(s, v)[1] for v in (0.5, 1.0, 2.0)]
            print(f"{mc:7.2f} {beta:5.1f} {still[3]:9.2f} {still[8]:6.2f} {talk[12]:9.2f} "
                  f"{lags[0]:8.2f} {lags[1]:6.2f} {lags[2]:6.2f} {step_lag(s, 3 / IOD_PX)[1]:11d}")


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", default=TRACKS)
    ap.add_argument("--grid", action="store_true", help="also a grid of parameters")
    ap.add_argument("--min-cutoff", type=float, default=DEFAULT_LANDMARK_FILTER.min_cutoff)
    ap.add_argument("--beta", type=float, default=DEFAULT_LANDMARK_FILTER.beta)
    ap.add_argument("--d-cutoff", type=float, default=DEFAULT_LANDMARK_FILTER.d_cutoff)
    a = ap.parse_args(argv)
    tracks = load_tracks(a.tracks)
    if not tracks:
        raise SystemExit(f"no real_*.npz under {a.tracks}")
    if a.grid:
        grid(tracks)
    report(tracks, LandmarkFilter(a.min_cutoff, a.beta, a.d_cutoff))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
