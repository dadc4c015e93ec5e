"""Quality table: MEGC F1 of trained weights on HELD-OUT synthetic videos.

Usage (the demo weights; see engines/weights/README.md for the numbers):

    python -m tools.quality --weights engines/weights/demo_ME.safetensors \\
        engines/weights/demo_MaE.safetensors --work /tmp/lgnm-quality

What "held out" means here. Only two face photos are bundled (astronaut, grace_hopper)
and the demo weights were trained on both, so the held-out set differs in two ways:
1. Seeds: videos come from `lgnm-synth` with dataset seed `--seed` (default 1001); the
   per-video seeds SeedSequence([seed, i]) never equal the training ones (seed 1), so
   event schedules, AU mixes, amplitudes, backgrounds, face size/position, blinks, head
   motion, light and noise are all new.
2. Faces: by default new face images derived from the bundled photos: mirrored
   left-right, recoloured (hue rotation + colour cast + gamma) and resampled (down- then
   up-scaled, softer texture). They are the same two people, so this is a held-out
   *appearance* test, not a held-out *identity* test; pass real other faces with
   `--faces img1.jpg img2.jpg ...` for the latter.
Distractors (blinks, head motion, light changes, noise, mp4 compression) are on.

`--compare` scores the training-free flow-magnitude baseline (`engines/baseline.py`) on
the same held-out videos and prints it beside the trained weights in one table: by
default the bundled `baseline_*` files at each frame rate of --weights (a rate without a
bundled baseline pair gets none), or the files given after `--compare`.

Each weights file is scored offline with its own K, flow settings and stored
post-processing parameters (fixed threshold), plus the ME weights' cross-type rule when
they carry it (as the live pipeline does); per type and overall MEGC F1 are printed
per frame rate, with the goals (30 fps overall >= 0.85, 200 fps overall >= 0.75).
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
from rich.console import Console
from rich.table import Table

from calibration.cross_type import apply_cross_type
from calibration.megc import evaluate, render_table
from calibration.postprocess import PostParams, postprocess
from engines.models import load_model
from engines.weights import MODEL_FLOW_MAGNITUDE, WeightsMeta
from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.common.types import Interval
from realtime.intervals_csv import write_intervals
from realtime.native_log import native_stderr_filtered
from realtime.synthesis.faces import BUILTIN_FACES, Appearance, builtin_bgr
from tools.features_cache import cached_inputs
from tools.train import TrainVideo, _load_synth_mp4, score_inputs

GOALS = {30.0: 0.85, 200.0: 0.75}
# The bundled training-free baseline pairs by the frame rate they were calibrated at.
BASELINE_PREFIXES = {30.0: "baseline_", 200.0: "baseline200_"}


# Fixed held-out looks. Training-time jitter (`lgnm-synth --jitter`, Appearance.draw)
# draws from ranges that contain these, but never these exact photos.
HELDOUT_LOOKS = (
    Appearance(mirror=True, hue_shift=12, cast=(1.1, 0.95, 0.85), gamma=0.8, resample=0.6),
    Appearance(mirror=True, hue_shift=-10, cast=(0.85, 1.0, 1.15), gamma=1.25, resample=0.75),
)


def heldout_faces(folder: Path) -> list[Path]:
    """Write the default held-out face variants (two per bundled photo) and return them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in BUILTIN_FACES:
        bgr = builtin_bgr(name)
        for j, look in enumerate(HELDOUT_LOOKS):
            path = folder / f"{name}_variant{j + 1}.png"
            cv2.imwrite(str(path), look.apply(bgr))
            paths.append(path)
    return paths


def heldout_dataset(work: Path, fps: float, n: int, duration: float, seed: int, faces: Sequence[str | Path]) -> Path:
    """Generate (once) the held-out synthetic set for one frame rate."""
    from realtime.synthesis.generate import write_dataset

    # The folder name carries every input, so other faces never reuse a stale set.
    tag = hashlib.sha1("|".join(str(f) for f in faces).encode()).hexdigest()[:8]
    out = work / f"heldout_{fps:g}fps_seed{seed}_n{n}_d{duration:g}_faces{tag}"
    if not (out / "truth.csv").is_file():
        write_dataset(out, n, fps, list(faces), seed=seed, layout="mp4", duration_s=duration, distractors=True)
    return out


def bundled_baselines() -> list[Path]:
    """The bundled flow-magnitude baseline files that exist (any frame rate)."""
    from importlib import resources

    folder = Path(str(resources.files("engines") / "weights"))
    return [folder / f"{prefix}{t}.safetensors" for prefix in BASELINE_PREFIXES.values()
            for t in ("ME", "MaE") if (folder / f"{prefix}{t}.safetensors").is_file()]


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tools.quality", description=__doc__.split("\n")[0])
    p.add_argument("--weights", nargs="+", type=path_arg, required=True, help="weights files (grouped by their fps)")
    p.add_argument("--work", type=path_arg, required=True, help="folder for held-out videos, caches and predictions")
    p.add_argument("--videos", type=int, default=6, help="held-out videos per frame rate (default 6)")
    p.add_argument("--duration", type=float, default=None, help="seconds per video (default 40 at 30 fps, 20 at 200)")
    p.add_argument("--seed", type=int, default=1001, help="dataset seed; must differ from the training seed")
    p.add_argument("--faces", nargs="+", help="face images (default: mirrored/recoloured variants of the bundled ones)")
    p.add_argument("--compare", nargs="*", type=path_arg, default=None, metavar="BASELINE",
                   help="also score the training-free flow-magnitude baseline on the same videos, side by side "
                        "(default files: the bundled baseline_* pair at each frame rate)")
    p.add_argument("--device", default="cpu")
    return p


Model = tuple[Path, object, WeightsMeta]


def score_group(group: Sequence[Model], videos: Sequence[TrainVideo], a: argparse.Namespace,
                console: Console, tag: str):
    """MEGC result of one set of weights (one file per type) on `videos`, offline, as the
    live pipeline would spot them (stored post-processing, cross-type rule)."""
    types = [m.type for _, _, m in group]
    truth = [iv for v in videos for iv in v.truth if iv.type in types]
    pred_by_type: dict[str, list[Interval]] = {}
    params_by_type: dict[str, PostParams] = {}
    fps = group[0][2].fps
    for path, net, meta in group:
        params = params_by_type[meta.type] = PostParams.from_dict(meta.post)
        own = pred_by_type.setdefault(meta.type, [])
        for v in videos:
            inp = cached_inputs(v.source, v.id, meta.type, meta.k, meta.flow, a.work / "cache", fps=v.fps)
            own += postprocess(score_inputs(net, inp, a.device), params, v.id, meta.type)  # type: ignore[arg-type]
        console.print(f"{path.name}: {meta.model} {meta.type} K={meta.k} @ {fps:g} fps, post {params.to_dict()}")
    pred = [iv for ivs in apply_cross_type(pred_by_type, params_by_type).values() for iv in ivs]
    write_intervals(a.work / f"pred_{fps:g}fps{tag}.csv", pred)
    return evaluate(truth, pred), types


def _by_fps(models: Sequence[Model], what: str) -> dict[float, list[Model]]:
    groups: dict[float, list[Model]] = {}
    for m in models:
        groups.setdefault(m[2].fps, []).append(m)
    for fps, group in groups.items():
        if len({m.type for _, _, m in group}) != len(group):
            raise UserError(f"{what}: two files of the same type at {fps:g} fps")
    return groups


@cli_entry
@native_stderr_filtered
def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    output_dir(a.work, "--work")
    console = Console()
    models = [(path, *load_model(path, a.device)) for path in a.weights]
    baselines: list[Model] = []
    if a.compare is not None:
        baselines = [(path, *load_model(path, a.device)) for path in (a.compare or bundled_baselines())]
        for path, _, meta in baselines:
            if meta.model != MODEL_FLOW_MAGNITUDE:
                console.print(f"note: --compare {path} is {meta.model} weights, compared all the same")
    faces = a.faces or heldout_faces(a.work / "faces")
    summary = Table(title="Quality on held-out synthetic videos (MEGC F1, IoU >= 0.5)")
    for col in ("fps", "videos", "scorer", "MaE F1", "ME F1", "overall F1", "goal", "met"):
        summary.add_column(col, justify="right", no_wrap=col == "scorer")
    base_groups = _by_fps(baselines, "--compare")
    for fps, group in sorted(_by_fps(models, "--weights").items()):
        duration = a.duration if a.duration is not None else (40.0 if fps < 100 else 20.0)
        t0 = time.monotonic()
        data = heldout_dataset(a.work, fps, a.videos, duration, a.seed, faces)
        videos = _load_synth_mp4(data)
        rows = [("", group)] + ([("_baseline", base_groups[fps])] if fps in base_groups else [])
        for tag, members in rows:
            result, types = score_group(members, videos, a, console, tag)
            name = " + ".join(p.stem for p, _, _ in members)
            console.print(render_table(result, title=f"{name}: held-out synthetic, {fps:g} fps ({len(videos)} "
                                                     f"videos, {time.monotonic() - t0:.0f} s)"))  # fmt: skip
            goal = GOALS.get(float(fps))
            f1s = {t: (f"{result.per_type[t].f1:.4f}" if t in types else "-") for t in ("MaE", "ME")}
            overall = result.overall.f1
            summary.add_row(f"{fps:g}", str(len(videos)), name, f1s["MaE"], f1s["ME"], f"{overall:.4f}",
                            "-" if goal is None else f">= {goal}",
                            "-" if goal is None else ("yes" if overall >= goal else "no"))  # fmt: skip
        if a.compare is not None and fps not in base_groups:
            console.print(f"note: no baseline at {fps:g} fps to compare with")
    console.print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
