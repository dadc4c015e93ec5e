"""`python -m tools.validation_synth`: write validation videos and their truth CSV."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.face import FaceLandmarker
from realtime.intervals_csv import write_intervals
from tools.validation_synth import faces, render

REPO = Path(__file__).resolve().parents[2]
DEFAULT_REAL_MOTION = REPO.parent / "shared" / "reference" / "real-motion"

EPILOG = f"""\
what is rendered:
  Real face photos animated by a piecewise-affine warp over a Delaunay mesh of their
  468 FaceMesh landmarks (+ eye centres, a ring around the head, the frame border).
  Expressions are FACS-like action units: AU1 inner brow raise, AU2 outer brow raise,
  AU4 brow lower, AU5 upper lid raise, AU6 cheek raise, AU7 lid tighten, AU9 nose
  wrinkle, AU10 upper lip raise, AU12 lip corner pull, AU15 lip corner depress, AU17
  chin raise, AU20 lip stretch, AU24 lip press, AU26 jaw drop; alone, in prototypes
  (smile, surprise, anger, disgust, sadness, fear, frown, pressed lips) or random
  combinations, sometimes one-sided, with lagged asymmetric rise / hold / decay
  profiles. ME: 0.25-0.5 s of motion, one or two units of one region (brow, eye, nose
  or mouth), peak 1.5-3.2 % of the inter-ocular distance (IOD); MaE: 0.5-4 s of
  motion, peak 5-14 % IOD (lip press, lid and upper-lip units capped lower).
  Events do not overlap; start-to-start spacing is 0.5-1.5 x --mean-spacing.
  Frame sizes: 640x480 at 30 fps, 352x288 at 200 fps; IOD 45-110 px (30 fps) or
  32-64 px (200 fps), roll up to 10 degrees, random position; faces may be mirrored.

not expressions (no truth): head motion (rigid part of real still-face landmark tracks,
  {', '.join(render.nuisance.STILL_CLIPS)}, or a synthetic drift), real lid motion of the
  same tracks, synthetic blinks, gaze saccades, slow light drift and gradual light
  changes, sensor noise, H.264 encoding (libx264, CRF --crf). --talking adds the scaled
  mouth/jaw motion of the talking clips {', '.join(render.nuisance.TALKING_CLIPS)}.

faces (default): two public-domain White House portraits bundled in
  tools/validation_synth/faces/ (see its README.md), plus mahotas' demo photo
  luispedro.jpg when the `validation` extra is installed. --faces replaces them.

output: DIR/valsynth_s<seed>_<index>.mp4, DIR/truth.csv (video,type,onset,apex,offset;
  1-based inclusive frames; onset/offset = last/first frame below 5 % of the event's
  peak displacement around the apex) and DIR/manifest.json (face, size, units, peak px per event;
  head-motion source and the frames of blinks, gaze shifts and light changes).
  The same arguments and seed give the same frames and files.

errors: one line `error: ...` on stderr, exit status 2.
default real-motion folder: {DEFAULT_REAL_MOTION}
  (when it is absent, the head drift is synthetic; manifest.json says which was used)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m tools.validation_synth",
        description="Independent validation set: synthetic face videos with exact ME / MaE truth.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, type=path_arg, help="output folder (created if missing)")
    parser.add_argument("--videos", type=int, default=1, help="number of videos (default 1)")
    parser.add_argument("--fps", type=int, choices=(30, 200), default=30, help="30 (640x480) or 200 (352x288); default 30")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of each video in seconds (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same output (default 0)")
    parser.add_argument("--faces", nargs="+", type=path_arg, metavar="PHOTO",
                        help="face photos to use instead of the default ones (cycled over the videos)")
    parser.add_argument("--mean-spacing", type=float, default=6.5,
                        help="mean seconds from one expression's start to the next (default 6.5)")
    parser.add_argument("--me-fraction", type=float, default=0.45, help="share of expressions that are ME (default 0.45)")
    parser.add_argument("--head-motion", type=float, default=0.5,
                        help="gain on the real head motion (0 = still head; default 0.5)")
    parser.add_argument("--real-motion", default=str(DEFAULT_REAL_MOTION),
                        help="folder with real_*.npz landmark tracks, or 'none' for a synthetic head drift")
    parser.add_argument("--talking", type=float, default=0.0,
                        help="gain on real talking mouth motion as negatives (default 0 = off; try 0.3)")
    parser.add_argument("--no-negatives", action="store_true",
                        help="expressions only: no head motion, lids, blinks, gaze, light, noise")
    parser.add_argument("--crf", type=int, default=18, help="libx264 CRF, 0-51 (default 18)")
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    return parser


def _check(args: argparse.Namespace) -> Path | None:
    if args.videos < 1:
        raise UserError(f"--videos must be at least 1, got {args.videos}")
    if not 1.0 <= args.seconds <= 3600:
        raise UserError(f"--seconds must be between 1 and 3600, got {args.seconds}")
    if args.mean_spacing < 1.0:
        raise UserError(f"--mean-spacing must be at least 1 s, got {args.mean_spacing}")
    if not 0.0 <= args.me_fraction <= 1.0:
        raise UserError(f"--me-fraction must be between 0 and 1, got {args.me_fraction}")
    if args.head_motion < 0 or args.talking < 0:
        raise UserError("--head-motion and --talking must not be negative")
    if not 0 <= args.crf <= 51:
        raise UserError(f"--crf must be between 0 and 51, got {args.crf}")
    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out}: exists and is not a folder")
    if args.faces:
        faces.check_face_files(args.faces)
    if args.real_motion.lower() == "none":
        return None
    folder = Path(args.real_motion)
    missing = [n for n in render.nuisance.STILL_CLIPS if not (folder / f"{n}.npz").is_file()]
    if args.talking > 0:
        missing += [n for n in render.nuisance.TALKING_CLIPS if not (folder / f"{n}.npz").is_file()]
    if missing:
        if args.real_motion != str(DEFAULT_REAL_MOTION):
            raise UserError(f"{folder}: missing real-motion track(s) {', '.join(missing)}.npz (or pass --real-motion none)")
        if args.talking > 0:
            raise UserError(f"{folder}: no real-motion tracks here, which --talking needs")
        return None  # default folder absent: synthetic drift
    return folder


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    real_motion = _check(args)
    paths = args.faces or faces.default_face_paths()
    opts = render.Options(fps=args.fps, seconds=args.seconds, mean_spacing=args.mean_spacing,
                          me_fraction=args.me_fraction, head_gain=args.head_motion, talk_gain=args.talking,
                          real_motion=real_motion, negatives=not args.no_negatives, crf=args.crf)
    output_dir(args.out, "--out")
    truth, manifest = [], []
    cache: dict[tuple[int, bool], faces.Face] = {}
    with FaceLandmarker(static_image_mode=True) as landmarker:
        for i in range(args.videos):
            rng = np.random.default_rng([args.seed, i])
            key = (int((args.seed + i) % len(paths)), bool(rng.random() < 0.5))
            if key not in cache:
                cache[key] = faces.load_face(paths[key[0]], landmarker, mirror=key[1])
            name = f"valsynth_s{args.seed}_{i:03d}"
            started = time.perf_counter()
            result = render.render_video(args.out / f"{name}.mp4", name, cache[key], rng, opts)
            truth.extend(result.truth)
            manifest.append(result.meta)
            if not args.quiet:
                n_me = sum(1 for r in result.truth if r.type == "ME")
                print(f"{name}.mp4: face {result.meta['face']}, IOD {result.meta['iod_px']} px, "
                      f"{n_me} ME + {len(result.truth) - n_me} MaE, {time.perf_counter() - started:.1f} s", flush=True)
    write_intervals(args.out / "truth.csv", truth, truth=True)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(args.out / "truth.csv", 0o666 & ~umask)  # the temp file it was renamed from was 0600
    (args.out / "manifest.json").write_text(json.dumps({"seed": args.seed, "videos": manifest}, indent=1) + "\n")
    if not args.quiet:
        print(f"wrote {args.videos} video(s) and {len(truth)} truth rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
