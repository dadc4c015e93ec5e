"""Make the training-free flow-magnitude baseline files (`engines/baseline.py`).

    python -m tools.make_baseline_weights --data VAL [VAL ...] --out engines/weights \\
        [--like engines/weights/demo_ME.safetensors engines/weights/demo_MaE.safetensors] \\
        [--prefix baseline_] [--work /tmp/lgnm-baseline]

No training. Per type, with the K, frame rate and flow settings of the `--like` weights
(default: the 30 fps demo pair, K 6 and 18):
1. the ROI energy of every pair of the labelled validation videos (`lgnm-synth` mp4
   layout, several folders pooled) is computed from the cached network inputs;
2. the measure's two numbers are chosen on those videos: the pooled `fraction` of the
   ROI (1, 0.25 or 0.05: the whole ROI, or only its moving part) and the scale `e0` of
   score = 1 - exp(-e/e0) (the 50th, 80th or 95th percentile of the energies: where the
   threshold grid 0.05..0.95 lands). Each candidate is scored by MEGC F1 after a
   threshold search (0.05..0.95) with the other post-processing fields at their
   defaults (win 11, order 2, tiny 0.3); the best one is kept (the first on a tie);
3. the files are written (metadata only) and then `lgnm-calibrate` fits the whole
   post-processing by the project's grid search on the same videos, cross-type rule
   included, exactly as for trained weights; its output replaces the files in --out.

Use validation videos that are not the held-out ones of `tools.quality` (seed 1001):
`tools/make_baseline_weights.sh` holds the seeded commands of the bundled files.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from calibration.megc import score_type
from calibration.postprocess import RULES, PostParams, postprocess
from calibration.search import INTERVAL_RULE_HELP
from engines.baseline import baseline_meta, energy_to_score, roi_energy
from engines.weights import WeightsMeta, read_meta, save_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.native_log import native_stderr_filtered
from tools.features_cache import cached_inputs
from tools.train import load_sets

FRACTIONS = (1.0, 0.25, 0.05)
E0_PERCENTILES = (50.0, 80.0, 95.0)
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.05, 0.951, 0.05))


def energies(videos: Sequence, meta: WeightsMeta, fraction: float, cache: Path) -> dict[str, np.ndarray]:
    """(N,) ROI energy per video, 0 where the pair is invalid (no face / past the end)."""
    out = {}
    for v in videos:
        inp = cached_inputs(v.source, v.id, meta.type, meta.k, meta.flow, cache, fps=v.fps)
        e = np.zeros(inp.n_frames, np.float32)
        rows = np.flatnonzero(inp.valid)
        for s in range(0, len(rows), 256):
            idx = rows[s:s + 256]
            e[idx] = roi_energy(np.asarray(inp.x[idx], np.float32), fraction, meta.norm_mean, meta.norm_std)
        out[v.id] = e
    return out


def best_threshold_f1(scores: dict[str, np.ndarray], truth: list, meta: WeightsMeta) -> tuple[float, float]:
    """(best MEGC F1, its threshold) over THRESHOLDS, other post-processing at defaults."""
    best = (-1.0, THRESHOLDS[0])
    for t in THRESHOLDS:
        params = PostParams(k=meta.k, threshold=t)
        pred = [iv for vid, s in scores.items() for iv in postprocess(s, params, vid, meta.type)]
        f1 = score_type(truth, pred, meta.type).f1
        if f1 > best[0]:
            best = (f1, t)
    return best


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tools.make_baseline_weights", description=__doc__.split("\n")[0])
    p.add_argument("--data", type=path_arg, nargs="+", required=True, help="labelled validation folders (lgnm-synth mp4)")
    p.add_argument("--out", type=path_arg, required=True, help="folder for <prefix>ME/MaE.safetensors")
    p.add_argument("--like", type=path_arg, nargs=2, help="ME and MaE weights whose K and fps to use "
                                                       "(default: the bundled 30 fps demo pair)")
    p.add_argument("--prefix", default="baseline_")
    p.add_argument("--work", type=path_arg, default=Path("/tmp/lgnm-baseline"), help="caches and the calibration run")
    p.add_argument("--cache", type=path_arg, help="features cache (default <work>/cache)")
    p.add_argument("--interval-rule", default="auto", choices=["auto", *RULES], help=INTERVAL_RULE_HELP)
    return p


@cli_entry
@native_stderr_filtered
def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    output_dir(a.work, "--work")
    output_dir(a.out, "--out")
    console = Console()
    folder = Path(__file__).resolve().parents[1] / "engines" / "weights"
    like = a.like or [folder / "demo_ME.safetensors", folder / "demo_MaE.safetensors"]
    metas = [read_meta(p) for p in like]
    if {m.type for m in metas} != {"ME", "MaE"} or metas[0].fps != metas[1].fps:
        raise UserError("--like: give one ME and one MaE file of one frame rate")
    videos = load_sets("synth", a.data, None)
    if not videos:
        raise UserError(f"--data: no videos in {' '.join(map(str, a.data))}")
    fps = metas[0].fps
    if any(abs(v.fps - fps) > 1e-3 for v in videos):
        raise UserError(f"--data: the videos are not all at {fps:g} fps")
    truth = [iv for v in videos for iv in v.truth]
    cache = a.cache or a.work / "cache"
    table = Table(title=f"baseline measure on {len(videos)} validation videos (threshold search, defaults else)")
    for col in ("type", "K", "fraction", "e0 pct", "e0", "threshold", "MEGC F1", ""):
        table.add_column(col, justify="right")
    stage = a.work / "uncalibrated"
    written = []
    for like_meta in metas:
        best: tuple[float, float, float, float] | None = None  # f1, fraction, e0, threshold
        for fraction in FRACTIONS:
            e = energies(videos, like_meta, fraction, cache)
            pooled = np.concatenate([x[x > 0] for x in e.values()])
            for pct in E0_PERCENTILES:
                e0 = max(float(np.percentile(pooled, pct)), 1e-3)
                f1, t = best_threshold_f1({v: energy_to_score(x, e0) for v, x in e.items()}, truth, like_meta)
                chosen = best is None or f1 > best[0]
                table.add_row(like_meta.type, str(like_meta.k), f"{fraction:g}", f"{pct:g}", f"{e0:.3f}", f"{t:g}",
                              f"{f1:.4f}", "best so far" if chosen else "")
                if chosen:
                    best = (f1, fraction, e0, t)
        assert best is not None
        f1, fraction, e0, t = best
        meta = baseline_meta(like_meta.type, like_meta.k, fps, fraction, round(e0, 4),
                             PostParams(k=like_meta.k, threshold=t).to_dict(),
                             trained_on=f"training-free; fraction and e0 chosen on {len(videos)} synth videos "
                                        f"({', '.join(d.name for d in a.data)})",
                             # the baselines keep unfiltered alignment (calibrated so; README)
                             flow=replace(like_meta.flow, landmark_filter=None))
        from engines.baseline import FlowMagnitudeNet

        written.append(save_weights(FlowMagnitudeNet(meta), meta, stage / f"{a.prefix}{like_meta.type}.safetensors"))
    console.print(table)
    from tools.calibrate import main as calibrate

    calibrated = a.work / "calibrated"
    code = calibrate(["--weights", *map(str, written), "--dataset", "synth", "--data", *map(str, a.data),
                      "--out", str(calibrated), "--cache", str(cache), "--interval-rule", a.interval_rule])
    if code:  # it said why (an error, a Ctrl-C); an earlier run's files in WORK/calibrated are not this run's
        return code
    output_dir(a.out, "--out")
    for path in written:
        shutil.copyfile(calibrated / path.name, a.out / path.name)
        console.print(f"wrote {a.out / path.name}: {read_meta(a.out / path.name).to_dict()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
