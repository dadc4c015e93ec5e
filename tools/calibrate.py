"""`lgnm-calibrate`: fit the post-processing of existing weights on labelled videos.

No training: the weights score every video once (pair inputs cached like `lgnm-train`),
then the grid search of LGNMNet.md step 6 (fixed threshold, as the live spotter needs)
runs per type. Given an ME and a MaE file, it also decides the cross-type rule
(`calibration.cross_type`: drop ME intervals inside spotted MaE ones) and keeps it only
when it strictly raises ME F1 on these videos. The weights are written again to --out
with the new parameters in their metadata; the tensors are unchanged.

The training-free flow-magnitude baseline (`engines/baseline.py`, weights holding only
metadata) is calibrated the same way: its scores come from its formula, and its
metadata-only file is written again with the new parameters.

`--temperature fit` first fits a temperature per LGNMNet file (`calibration.temperature`:
P(expression) = sigmoid(margin / T), T minimising the NLL of the validation frames' IRL
labels) and stores it in the file's `model_params`; the grid search then runs on the
tempered scores. `keep` (the default) leaves the stored temperature (1 when none).

Use it to re-fit thresholds on more (or other) labelled videos than the training run's
validation split, e.g. your own recordings, without retraining. Several labelled sets
(`--data A B ...`, all of one --dataset kind) are pooled; their videos are then named
`<folder>/<video>` so equal names in different sets stay apart. Calibrating on the videos
you then report F1 on inflates the figure: keep a separate test set.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.special import expit

from calibration.cross_type import apply_cross_type
from calibration.megc import score_type
from calibration.postprocess import RULES, PostParams
from calibration.search import (
    INTERVAL_RULE_HELP,
    SearchResult,
    grid_search,
    grid_search_pair,
    grids_for_fps,
    rules_option,
)
from calibration.temperature import TemperatureFit, binary_nll, fit_temperature
from engines.lgnmnet import LGNMNet
from engines.models import load_model
from engines.weights import save_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.common.types import Interval
from realtime.labels import irl_labels
from realtime.native_log import native_stderr_filtered
from tools.features_cache import cached_inputs
from tools.train import DATASETS, _progress, load_sets, margin_inputs, score_inputs, spot


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-calibrate", description=__doc__.split("\n")[0].split(": ", 1)[1])
    p.add_argument("--weights", nargs="+", type=path_arg, required=True, help="one ME and/or one MaE weights file")
    p.add_argument("--dataset", choices=(*DATASETS, "synth"), required=True)
    p.add_argument("--data", type=path_arg, nargs="+", required=True,
                   help="dataset root(s) of labelled videos; several are pooled")
    p.add_argument("--annotations", type=path_arg,
                   help="annotation workbook (CAS.xlsx / SAMM.xlsx; CASME3: a workbook or a folder of them); with one "
                        "--data only (else <root>/<dataset>.xlsx)")
    p.add_argument("--out", type=path_arg, required=True, help="folder for the re-calibrated weights (same names)")
    p.add_argument("--cache", type=path_arg, help="features cache folder (default <out>/cache)")
    p.add_argument("--cross-type", choices=("auto", "off"), default="auto",
                   help="auto: fit the ME-inside-MaE rule when both types are given (default); off: never")
    p.add_argument("--interval-rule", default="auto", choices=["auto", *RULES], help=INTERVAL_RULE_HELP)
    p.add_argument("--temperature", choices=("keep", "fit"), default="keep",
                   help="fit: temperature-scale each LGNMNet file's P(expression) on these videos first "
                        "(stored in its metadata); keep: leave it (default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="store fp16 weights")
    return p


def _fit(seqs: dict[str, dict[str, np.ndarray]], truth: list[Interval], models: dict, before: dict[str, PostParams],
         cross_type: bool, console: Console, rules: tuple[str, ...] = RULES,
         keep_stored: bool = True) -> dict[str, PostParams]:
    """New parameters per type; the stored ones stay unless the fit is strictly better
    (a tie is no evidence, and the grid holds many equal-F1 combinations). Without
    `keep_stored` (a new temperature: the stored parameters were fitted to other scores)
    the fit is taken."""

    def f1(expr_type: str, pred: list[Interval]) -> float:
        return score_type(truth, pred, expr_type).f1  # type: ignore[arg-type]

    chosen: dict[str, PostParams] = {}
    fits: dict[str, SearchResult] = {}
    grids = grids_for_fps(next(iter(models.values()))[2].fps, rules)  # main() refuses pairs of two rates
    for expr_type, (_, _, meta) in models.items():
        if not (expr_type == "ME" and cross_type and "MaE" in models):
            fits[expr_type] = grid_search(seqs[expr_type], truth, expr_type, meta.k, fixed_threshold=True, grids=grids)
    if "MaE" in fits:
        mae_before = f1("MaE", spot(seqs["MaE"], before["MaE"], "MaE")) if keep_stored else -1.0
        fit = fits["MaE"]
        chosen["MaE"] = fit.params if fit.f1 > mae_before else before["MaE"]
        fits["MaE"] = fit if fit.f1 > mae_before else SearchResult(before["MaE"], mae_before, fit.table)
    if "ME" in models and "ME" not in fits:  # cross-type: ME fitted against the chosen MaE
        pair = grid_search_pair(seqs["ME"], seqs["MaE"], truth, models["ME"][2].k, models["MaE"][2].k,
                                grids=grids, mae=fits["MaE"])
        fits["ME"] = pair.me
        console.print(f"cross-type rule (drop ME inside MaE): ME F1 {pair.me_f1_keep:.4f} keeping, "
                      f"{pair.me_f1_drop:.4f} dropping -> {'on' if pair.drop_inside_mae else 'off'}")
    if "ME" in fits:
        stored_me = {**chosen, "ME": before["ME"]}  # the stored ME params against the chosen MaE
        pred = apply_cross_type({t: spot(seqs[t], p, t) for t, p in stored_me.items()}, stored_me)
        me_before = f1("ME", pred["ME"]) if keep_stored else -1.0
        chosen["ME"] = fits["ME"].params if fits["ME"].f1 > me_before else before["ME"]
    for expr_type in models:
        if chosen[expr_type] is before[expr_type]:
            console.print(f"{expr_type}: no parameters beat the stored ones on these videos; kept")
    if not cross_type and "ME" in chosen:
        chosen["ME"] = chosen["ME"].with_(drop_inside_mae=False)
    return chosen


@cli_entry
@native_stderr_filtered
def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    output_dir(a.out, "--out")
    if a.cache is not None:
        output_dir(a.cache, "--cache")
    console = Console()
    models = {}
    for path in a.weights:
        net, meta = load_model(path, a.device)  # LGNMNet or the flow-magnitude baseline
        if meta.type in models:
            raise UserError(f"--weights: two {meta.type} files ({models[meta.type][0]} and {path})")
        models[meta.type] = (path, net, meta)
    if len(models) == 2 and models["ME"][2].fps != models["MaE"][2].fps:
        raise UserError("--weights: the ME and MaE files were trained at different frame rates")
    if a.out.resolve() in {p.parent.resolve() for p, _, _ in models.values()}:
        raise UserError(f"--out: {a.out} holds the input weights; write the calibrated ones elsewhere")
    videos = load_sets(a.dataset, a.data, a.annotations)
    if not videos:
        raise UserError(f"--data: no videos found in {' '.join(map(str, a.data))}")
    fps = next(iter(models.values()))[2].fps
    off = sorted({v.fps for v in videos if abs(v.fps - fps) > 1e-3})
    if off:
        raise UserError(f"--data: videos at {off} fps, but the weights were trained at {fps:g} fps")
    truth = [iv for v in videos for iv in v.truth]
    cache = a.cache or a.out / "cache"

    fit = a.temperature == "fit"
    if fit:
        for path, net, _ in models.values():
            if not isinstance(net, LGNMNet):
                raise UserError(f"--temperature fit: {path} is a training-free baseline; its score is not a "
                                "network's softmax (use --temperature keep)")
    seqs: dict[str, dict[str, np.ndarray]] = {}
    stored_seqs: dict[str, dict[str, np.ndarray]] = {}  # --temperature fit: scores at the stored T
    notes: list[str] = []
    with _progress(console) as bar:
        for expr_type, (_, net, meta) in models.items():
            task = bar.add_task(f"scores {expr_type} K={meta.k}", total=len(videos))
            seqs[expr_type] = {}
            margins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
            for v in videos:
                inp = cached_inputs(v.source, v.id, meta.type, meta.k, meta.flow, cache, fps=v.fps)
                if fit:
                    labels = irl_labels(inp.n_frames, meta.k, [iv for iv in v.truth if iv.type == expr_type])
                    margins[v.id] = (margin_inputs(net, inp, a.device), labels, np.asarray(inp.valid, bool))
                else:
                    seqs[expr_type][v.id] = score_inputs(net, inp, a.device)
                bar.advance(task)
            if fit:
                t_stored = net.temperature
                stored_seqs[expr_type] = {}
                t = _fit_temperature(net, margins, expr_type)
                notes.append(f"{expr_type}: temperature {t_stored:.3g} -> {t.temperature:.3g} (validation NLL "
                             f"{t.nll_before:.3f} -> {t.nll_after:.3f} nats per frame, {t.frames} frames, "
                             f"{t.positives} positive)")
                if t.at_bound:
                    notes.append(f"warning: {expr_type}: the temperature lies at the search's bound: these videos' "
                                 "labels say little about the network's confidence")
                for vid, (m, _, valid) in margins.items():
                    seqs[expr_type][vid] = np.where(valid, expit(m / t.temperature), 0.0).astype(np.float32)
                    # the file as it was (its stored temperature), for the "F1 before" column
                    stored_seqs[expr_type][vid] = np.where(valid, expit(m / t_stored), 0.0).astype(np.float32)
    for note in notes:
        console.print(note)

    before = {t: PostParams.from_dict(m.post) for t, (_, _, m) in models.items()}
    fitted = _fit(seqs, truth, models, before, a.cross_type == "auto", console, rules_option(a.interval_rule),
                  keep_stored=not fit)
    for expr_type, params in fitted.items():
        if before[expr_type].adaptive and not params.adaptive:
            # The grid search scores fixed thresholds: what it fitted is one, not a ceiling.
            console.print(f"note: {expr_type}: the new threshold is fixed; the input file's was adaptive "
                          "(README, Method notes, Thresholds)")

    table = Table(title=f"lgnm-calibrate on {len(videos)} {a.dataset} videos (MEGC F1 on these videos)")
    for col in ("type", "F1 before", "F1 after", "threshold", "interval rule", "win", "order", "drop ME in MaE"):
        table.add_column(col, justify="right")
    pred_before = apply_cross_type({t: spot((stored_seqs if fit else seqs)[t], before[t], t) for t in models}, before)
    pred_after = apply_cross_type({t: spot(seqs[t], fitted[t], t) for t in models}, fitted)
    for expr_type, (path, net, meta) in models.items():
        f1_before = score_type(truth, pred_before[expr_type], expr_type).f1
        f1_after = score_type(truth, pred_after[expr_type], expr_type).f1
        p = fitted[expr_type]
        rule = (f"peaks, tiny {p.tiny:g}{', lone peaks dropped' if p.drop_unpaired else ''}" if p.rule == "peaks"
                else f"runs, gap {p.run_gap:g}K, pad {p.run_pad:g}K, min {p.min_run:g}K")
        if f1_after < f1_before:
            console.print(f"warning: {expr_type}: F1 on these videos falls {f1_before:.4f} -> {f1_after:.4f} "
                          "with the new temperature; the file in --out has it, the input file does not")
        table.add_row(expr_type, f"{f1_before:.4f}", f"{f1_after:.4f}", f"{p.threshold:g}", rule,
                      str(p.win), str(p.order), ("yes" if p.drop_inside_mae else "no") if expr_type == "ME" else "-")
        params = {**meta.model_params, "temperature": net.temperature} if fit else meta.model_params
        new_meta = dataclasses.replace(
            meta, post={**p.to_dict(), "k": meta.k}, model_params=params,
            trained_on=f"{meta.trained_on}; post-processing re-calibrated by lgnm-calibrate on {len(videos)} "
                       f"{a.dataset} videos ({', '.join(d.name for d in a.data)})")  # fmt: skip
        out = save_weights(net, new_meta, a.out / path.name, half=a.half)
        console.print(f"wrote {out}")
    console.print(table)
    return 0


def _fit_temperature(net: LGNMNet, margins: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                     expr_type: str) -> TemperatureFit:
    """Fit and set `net.temperature` from {video: (margins, IRL labels, valid)}; returns
    the `calibration.temperature.TemperatureFit`. UserError when the labelled frames
    hold one class only."""
    m = np.concatenate([mm[valid] for mm, _, valid in margins.values()])
    y = np.concatenate([labels[: len(valid)][valid] for _, labels, valid in margins.values()])
    try:
        result = fit_temperature(m, y)
    except ValueError as exc:
        raise UserError(f"--temperature fit: {expr_type}: {exc}") from exc
    stored = dataclasses.replace(result, nll_before=binary_nll(m, y, net.temperature))  # NLL as the file was
    net.temperature = result.temperature
    return stored


if __name__ == "__main__":
    raise SystemExit(main())
