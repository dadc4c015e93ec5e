"""`lgnm-train`: train LGNMNet per expression type, LOSO evaluation, calibrated weights.

What this implements (LGNMNet.md, "Labels", "Network", "Post-processing"):
- K per type from the annotations with the method's formula (`k_from_intervals`); for
  synthetic data the same formula on the synthetic truth (exact, since it is generated).
- IRL labels; class balancing: negatives taken every `--neg-every`-th frame and capped at
  `--max-neg`, positives repeated until they roughly match the negatives (`--pos-repeat`).
- MobileNetV2 starts from random weights unless `--backbone-weights` gives ImageNet
  weights (torchvision's file, fetched by the user: nothing is downloaded here), as in
  the paper. The demo weights are trained from scratch: no such file is reachable here.
- Adam by default (the authors' README says it beats their SGD), MagFace loss.
- Early stopping (patience `--patience`, default 3) on the validation MEGC F1: score the
  held-out validation videos, grid-search the post-processing on them, F1 of the best
  setting (`--val-metric frame` uses frame-level F1 at p >= 0.5 instead, much cheaper).
- LOSO (`--folds loso`) or N subject-grouped folds: per fold, validation videos are taken
  from the training subjects (`--val-frac`), never from the test subject; the test
  subject is scored with the parameters calibrated on the validation videos. Per-fold and
  pooled MEGC F1 are printed as a table.
- Final model: trained on all subjects (minus the `--val-frac` validation videos used for
  early stopping); post-processing parameters with a FIXED threshold are grid-searched on
  those validation videos' score sequences and stored in `WeightsMeta.post`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from calibration import megc
from calibration.postprocess import RULES, PostParams, postprocess
from calibration.search import INTERVAL_RULE_HELP, grid_search, grids_for_fps, rules_option
from engines.lgnmnet import LGNMNet
from engines.pretrained import load_backbone_state
from engines.weights import WeightsMeta, file_sha256, load_weights, save_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, output_dir, path_arg
from realtime.common.text import one_line, text_name
from realtime.common.types import DEFAULT_LANDMARK_FILTER, EXPR_TYPES, HEAD_MOTION_MODELS, ExprType, FlowSettings, Interval
from realtime.dataset_loaders import LOADERS, load_dataset
from realtime.labels import irl_labels, k_from_intervals
from realtime.native_log import native_stderr_filtered
from realtime.ray_options import RAY_MISSING
from tools.augment import Augment, augment_inputs
from tools.features_cache import CachedInputs, FrameSource, cached_inputs


@dataclass
class TrainVideo:
    """One labelled long video as the trainer sees it."""

    id: str
    subject: str
    fps: float
    source: FrameSource
    truth: list[Interval]  # all types

    def truth_of(self, expr_type: ExprType) -> list[Interval]:
        return [iv for iv in self.truth if iv.type == expr_type]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch: int = 256
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 5e-4
    neg_every: int = 4
    max_neg: int = 25000
    pos_repeat: int = 0  # 0: automatic (positives ~= negatives), else a fixed factor
    patience: int = 3
    val_metric: str = "megc"
    val_stride: int = 1  # frame metric only: score every n-th valid frame (cheaper epochs)
    device: str = "cpu"
    seed: int = 0
    max_steps: int = 0  # per epoch; 0 = the whole epoch (tests use a few steps)
    max_minutes: float = 0.0  # stop after the epoch that would overrun this budget; 0 = none
    quiet: bool = False
    augment: Augment | None = None  # input augmentation of training batches (tools/augment.py)
    rules: tuple[str, ...] = RULES  # interval rules the grid search may choose (calibration.search)


@dataclass
class Prepared:
    """Inputs and IRL labels of one video for one type."""

    video: TrainVideo
    inputs: CachedInputs
    labels: np.ndarray  # (N,) bool, False where invalid


@dataclass
class TrainResult:
    model: LGNMNet
    best_epoch: int
    best_val: float
    losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    val_scores: dict[str, np.ndarray] = field(default_factory=dict)  # best epoch's val scores
    seconds: float = 0.0


# ---------------------------------------------------------------------------- data


def prepare(
    videos: Sequence[TrainVideo], expr_type: ExprType, k: int, flow: FlowSettings, cache: Path | None, console: Console
) -> list[Prepared]:
    """Pair inputs (cached) and IRL labels of every video for one type."""
    out: list[Prepared] = []
    with _progress(console) as bar:
        task = bar.add_task(f"features {expr_type} K={k}", total=len(videos))
        for v in videos:
            inp = cached_inputs(v.source, v.id, expr_type, k, flow, cache, fps=v.fps)
            labels = irl_labels(inp.n_frames, k, v.truth_of(expr_type)) & inp.valid
            out.append(Prepared(v, inp, labels))
            bar.advance(task)
    return out


def balanced_indices(prepared: Sequence[Prepared], cfg: TrainConfig, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """(video index, row, label) of the balanced training set.

    Negatives: every neg_every-th valid negative frame (spread, not clustered), capped at
    max_neg by a random subset. Positives: all of them, repeated so that the classes are
    about even (or `pos_repeat` times when set).
    """
    pos: list[tuple[int, int, int]] = []
    neg: list[tuple[int, int, int]] = []
    for vi, p in enumerate(prepared):
        rows = np.flatnonzero(p.labels)
        pos += [(vi, int(r), 1) for r in rows]
        negs = np.flatnonzero(p.inputs.valid & ~p.labels)[:: max(1, cfg.neg_every)]
        neg += [(vi, int(r), 0) for r in negs]
    if len(neg) > cfg.max_neg:
        keep = rng.choice(len(neg), cfg.max_neg, replace=False)
        neg = [neg[i] for i in sorted(keep)]
    if not pos:
        ids = [p.video.id for p in prepared]
        raise UserError(f"no positive (IRL) frames in the {len(ids)} training video(s) ({', '.join(ids[:5])}"
                        f"{', ...' if len(ids) > 5 else ''}): the labelled videos may all be held out for validation "
                        "or as a fold's test subject (--val-frac 0 keeps every video in training), or the "
                        "annotations and K leave none")
    repeat = cfg.pos_repeat or max(1, int(round(len(neg) / len(pos))))
    return neg + pos * repeat


def gather(prepared: Sequence[Prepared], index: Sequence[tuple[int, int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct rows as one fp16 tensor (M,3,112,112), (len(index), 2) int64 [row, label]).

    Repeated positives share one stored row (the index maps into the tensor), which
    keeps RAM at the size of the distinct rows.
    """
    unique = sorted({(v, r) for v, r, _ in index})
    pos_of = {key: i for i, key in enumerate(unique)}
    x = np.empty((len(unique), 3, 112, 112), np.float16)
    by_video: dict[int, list[int]] = {}
    for i, (v, _) in enumerate(unique):
        by_video.setdefault(v, []).append(i)
    for v, slots in by_video.items():
        rows = [unique[i][1] for i in slots]
        x[slots] = prepared[v].inputs.x[rows]
    order = torch.tensor([pos_of[(v, r)] for v, r, _ in index], dtype=torch.long)
    labels = torch.tensor([lab for _, _, lab in index], dtype=torch.long)
    return torch.from_numpy(x), torch.stack([order, labels], 1)


# ---------------------------------------------------------------------------- scoring


def score_inputs(model: LGNMNet, inputs: CachedInputs, device: str = "cpu", batch: int | None = None) -> np.ndarray:
    """(N,) P(expression) of every frame's pair; 0 where the pair is invalid."""
    return _per_pair(model.predict_proba, model, inputs, device, batch)


def margin_inputs(model: LGNMNet, inputs: CachedInputs, device: str = "cpu", batch: int | None = None) -> np.ndarray:
    """(N,) logit margin at T = 1 (`LGNMNet.margin`) of every frame's pair; 0 where invalid."""
    return _per_pair(model.margin, model, inputs, device, batch)


@torch.inference_mode()
def _per_pair(fn: Callable[[torch.Tensor], torch.Tensor], model: LGNMNet, inputs: CachedInputs, device: str,
              batch: int | None) -> np.ndarray:
    # On CPU, batches of 512 were 2-3x slower than 32-64 here (activations of a big batch
    # leave the caches; half the time went to the kernel allocating them).
    batch = batch or (512 if device.startswith("cuda") else 64)
    model.eval()
    out = np.zeros(inputs.n_frames, np.float32)
    rows = np.flatnonzero(inputs.valid)
    for s in range(0, len(rows), batch):
        idx = rows[s : s + batch]
        x = torch.from_numpy(np.asarray(inputs.x[idx], np.float32)).to(device)
        out[idx] = fn(x).float().cpu().numpy()
    return out


def megc_counts(pred: Sequence[Interval], truth: Sequence[Interval], expr_type: ExprType) -> megc.TypeScore:
    """MEGC counts of one type (calibration.megc: FP >= 0 per video, F1 in [0, 1])."""
    return megc.score_type(list(truth), list(pred), expr_type)


def f1_of(tp: int, n_pred: int, n_truth: int) -> float:
    fp, fn = n_pred - tp, n_truth - tp
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def frame_f1(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> float:
    pred = (scores >= 0.5) & valid
    tp = int(np.sum(pred & labels))
    return f1_of(tp, int(pred.sum()), int(labels.sum()))


def validation_f1(
    model: LGNMNet, val: Sequence[Prepared], expr_type: ExprType, k: int, cfg: TrainConfig
) -> tuple[float, dict[str, np.ndarray]]:
    """Validation F1 (MEGC after a grid search, or frame-level) and the score sequences."""
    if cfg.val_metric == "frame":
        # Every val_stride-th frame only: the full sequences are scored once, at the end,
        # for calibration (empty dict here tells the caller to do so).
        s, lab, ok = [], [], []
        for p in val:
            keep = np.zeros(p.inputs.n_frames, bool)
            keep[:: max(1, cfg.val_stride)] = True
            sub = CachedInputs(p.video.id, expr_type, k, p.inputs.x, p.inputs.valid & keep)
            s.append(score_inputs(model, sub, cfg.device)[keep])
            lab.append(p.labels[keep])
            ok.append(sub.valid[keep])
        return frame_f1(np.concatenate(s), np.concatenate(lab), np.concatenate(ok)), {}
    seqs = {p.video.id: score_inputs(model, p.inputs, cfg.device) for p in val}
    truth = [iv for p in val for iv in p.video.truth_of(expr_type)]
    # Per epoch only one rule and the paper's boxes: with both rules and lone peaks kept and
    # dropped, the search costs ~5x (57 rule settings instead of 6) every epoch; "auto"
    # validates with the paper's rule and lets the final calibration (`calibrate`) choose.
    rules = cfg.rules if len(cfg.rules) == 1 else ("peaks",)
    grids = dataclasses.replace(grids_for_fps(val[0].video.fps, rules), drop_unpaired=(False,))
    result = grid_search(seqs, truth, expr_type, k, fixed_threshold=False, grids=grids)
    return float(result.f1), seqs


# ---------------------------------------------------------------------------- training


def make_optimizer(model: LGNMNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    raise UserError(f"--optimizer: must be adam or sgd, got {cfg.optimizer!r}")


def train_model(
    train: Sequence[Prepared],
    val: Sequence[Prepared],
    expr_type: ExprType,
    k: int,
    cfg: TrainConfig,
    console: Console,
    init: dict[str, torch.Tensor] | None = None,
    backbone: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Train one LGNMNet; keep the epoch with the best validation F1 (early stopping).
    `init`: a state dict to start from (fine-tuning or continuing) instead of random;
    `backbone`: MobileNetV2 feature weights (ImageNet) for the backbone only."""
    t0 = time.monotonic()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    index = balanced_indices(train, cfg, rng)
    x, order_labels = gather(train, index)
    n_pos = int(order_labels[:, 1].sum())
    if not cfg.quiet:
        console.print(f"[bold]{expr_type}[/]: {len(index)} samples ({n_pos} positive incl. repeats), {x.shape[0]} distinct rows")
    model = LGNMNet()
    if init is not None:
        model.load_state_dict(init)
    if backbone is not None:
        model.backbone.load_state_dict(backbone)
    model = model.to(cfg.device)
    opt = make_optimizer(model, cfg)
    best_state, best_val, best_epoch, best_seqs = copy.deepcopy(model.state_dict()), -1.0, 0, {}
    losses: list[float] = []
    stale = 0
    gen = torch.Generator().manual_seed(cfg.seed)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)  # its own stream: --augment leaves the batch order as is
    steps_per_epoch = (len(index) + cfg.batch - 1) // cfg.batch
    if cfg.max_steps:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps)
    with _progress(console, disable=cfg.quiet) as bar:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            perm = torch.randperm(len(index), generator=gen)
            task = bar.add_task(f"{expr_type} epoch {epoch}", total=steps_per_epoch)
            total = 0.0
            for step in range(steps_per_epoch):
                sel = perm[step * cfg.batch : (step + 1) * cfg.batch]
                rows, yb = order_labels[sel, 0], order_labels[sel, 1].to(cfg.device)
                xb = x[rows].to(cfg.device, torch.float32)
                if cfg.augment is not None:
                    xb = augment_inputs(xb, cfg.augment, aug_gen)
                loss, _ = model.magface_loss(model(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
                bar.update(task, advance=1, description=f"{expr_type} epoch {epoch} loss {total / (step + 1):.3f}")
            losses.append(total / max(1, steps_per_epoch))
            if not val:
                best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
                continue
            f1, seqs = validation_f1(model, val, expr_type, k, cfg)
            if not cfg.quiet:
                console.print(f"  {expr_type} epoch {epoch}: loss {losses[-1]:.4f}  val {cfg.val_metric} F1 {f1:.4f}")
            # A tie goes to the later epoch (more training is the better guess), and epochs
            # still at F1 0 (nothing above p = 0.5 yet, common early when training from
            # scratch) do not use up the patience.
            if f1 >= best_val:
                gained = f1 > best_val or f1 == 0
                best_val, best_epoch, best_seqs = f1, epoch, seqs
                best_state = copy.deepcopy(model.state_dict())
                stale = 0 if gained else stale + 1
            else:
                stale += 1
            if stale >= cfg.patience:
                if not cfg.quiet:
                    console.print(f"  early stop: no gain for {cfg.patience} epochs (best epoch {best_epoch})")
                break
            elapsed = time.monotonic() - t0
            if cfg.max_minutes and elapsed * (epoch + 1) / epoch > cfg.max_minutes * 60:
                if not cfg.quiet:
                    console.print(f"  time budget: another epoch would pass {cfg.max_minutes:g} min (best epoch {best_epoch})")
                break
    model.load_state_dict(best_state)
    model.eval()
    if val and not best_seqs:
        best_seqs = {p.video.id: score_inputs(model, p.inputs, cfg.device) for p in val}
    return TrainResult(model, best_epoch, best_val, losses, best_seqs, time.monotonic() - t0)


def calibrate(
    seqs: dict[str, np.ndarray], truth: Sequence[Interval], expr_type: ExprType, k: int, fps: float,
    rules: Sequence[str] = RULES,
) -> tuple[PostParams, float]:
    """Post-processing parameters with a fixed (absolute) threshold, and their F1; the
    smoothing windows searched depend on the frame rate (`calibration.search.window_grid`),
    the interval rules on `rules`."""
    result = grid_search(seqs, list(truth), expr_type, k, fixed_threshold=True, grids=grids_for_fps(fps, rules))
    return result.params, float(result.f1)


def spot(seqs: dict[str, np.ndarray], params: PostParams, expr_type: ExprType) -> list[Interval]:
    return [iv for vid, s in seqs.items() for iv in postprocess(s, params, vid, expr_type)]


# ---------------------------------------------------------------------------- folds


def split_validation(videos: Sequence[Prepared], frac: float, seed: int) -> tuple[list[Prepared], list[Prepared]]:
    """(train, val): a seeded `frac` of the videos (at least one, when frac > 0 and >= 2
    videos) held out for early stopping and calibration; videos with positives preferred
    so the validation F1 is defined."""
    if frac <= 0 or len(videos) < 2:
        return list(videos), []
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(videos)))
    order.sort(key=lambda i: not bool(videos[i].labels.any()))  # stable: positives first
    n_val = min(len(videos) - 1, max(1, int(round(frac * len(videos)))))
    val_set = set(order[:n_val])
    return [v for i, v in enumerate(videos) if i not in val_set], [v for i, v in enumerate(videos) if i in val_set]


def make_folds(subjects: Sequence[str], folds: str) -> list[list[str]]:
    """Test-subject groups: 'loso' one per subject, 'N' N groups, 'none' no folds."""
    uniq = sorted(set(subjects))
    if folds == "none":
        return []
    if folds == "loso":
        return [[s] for s in uniq]
    try:
        n = int(folds)
    except ValueError as exc:
        raise UserError(f"--folds: must be loso, none or a number, got {folds!r}") from exc
    if not 2 <= n <= len(uniq):
        raise UserError(f"--folds: {n} folds need 2..{len(uniq)} (the number of subjects)")
    return [uniq[i::n] for i in range(n)]


# ---------------------------------------------------------------------------- datasets


DATASETS = tuple(LOADERS)  # the real layouts: CAS, SAMM, CASME3


def load_videos(dataset: str, data: Path, annotations: Path | None) -> list[TrainVideo]:
    """Videos of CAS(ME)^2, SAMM-LV, CAS(ME)^3 Part A (real layouts; CASME3's annotations
    may be a folder of workbooks, realtime.casme3) or a synthetic set (`lgnm-synth`).

    Synthetic sets in the CAS/SAMM layouts are read by the real readers; the mp4 layout
    (synth_NNN.mp4 + truth.csv) has no subjects, so each video is its own subject there.
    """
    if not data.exists():
        raise UserError(f"--data: {data} does not exist")
    if dataset == "synth":
        for name, layout in (("CAS.xlsx", "CAS"), ("SAMM.xlsx", "SAMM"), ("annotation", "CASME3")):
            if (data / name).exists():
                return load_videos(layout, data, annotations or data / name)
        if annotations is not None:  # (it was ignored without a word)
            raise UserError(f"--annotations: not read with --dataset synth, whose truth is {data / 'truth.csv'} "
                            "(video,type,onset,apex,offset); a dataset's workbook goes with --dataset CAS|SAMM|CASME3")
        return _load_synth_mp4(data)
    if dataset in DATASETS:
        if annotations is None:
            annotations = data / f"{dataset}.xlsx"
            if not annotations.is_file():
                raise UserError(f"--annotations: give the {dataset} workbook ({annotations} not found)")
        return [
            TrainVideo(r.id, str(r.subject), float(r.fps), list(r.frames), list(r.truth))
            for r in load_dataset(dataset, data, annotations)
        ]
    raise UserError(f"--dataset: must be {', '.join(DATASETS)} or synth, got {dataset!r}")


def load_sets(dataset: str, roots: Sequence[Path], annotations: Path | None) -> list[TrainVideo]:
    """The videos of one or more labelled sets; with several, ids become `<folder>/<id>`."""
    if len(roots) == 1:
        return load_videos(dataset, roots[0], annotations)
    if annotations is not None:
        raise UserError("--annotations: give it with one --data only; with several, each root holds its "
                        f"{dataset}.xlsx")
    names = [r.name for r in roots]
    if len(set(names)) != len(names):
        raise UserError(f"--data: two folders share a name ({', '.join(names)}); their video ids would collide")
    videos = []
    for root in roots:
        for v in load_videos(dataset, root, None):
            vid = f"{root.name}/{v.id}"
            videos.append(replace(v, id=vid, subject=f"{root.name}/{v.subject}",
                                              truth=[replace(iv, video=vid) for iv in v.truth]))
    return videos


def _load_synth_mp4(data: Path) -> list[TrainVideo]:
    """The videos of a folder (any suffix lgnm-live replays, any case) and DATA/truth.csv,
    each video read as lgnm-live reads it (realtime.sources.VideoFileSource: its frame
    rate, its frame numbers). Truth rows that name no video, or lie past a video's last
    frame, are said in `note:` lines: they would silently change K and leave expressions
    labelled as negatives; none matching at all is an error."""
    from realtime.intervals_csv import read_intervals
    from realtime.replay import VIDEO_SUFFIXES, suffix_twins
    from realtime.sources import VideoFileSource

    truth_csv = data / "truth.csv"
    if not truth_csv.is_file():
        raise UserError(f"--data: {truth_csv} not found (expected lgnm-synth output)")
    truth = read_intervals(truth_csv)
    files = sorted(p for p in data.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in VIDEO_SUFFIXES)
    out = []
    for path in files:
        source = VideoFileSource(path)  # UserError naming the file when it cannot be read
        if source.fps is None or not source.fps > 0:
            raise UserError(f"{path}: cannot read the frame rate")
        vid = text_name(path.stem)  # NFC, as read_intervals gives the truth's ids
        last = source.last_number  # as lgnm-live numbers the frames (a pause leaves numbers out)
        rows = [iv for iv in truth if iv.video == vid]
        beyond = [iv for iv in rows if last and iv.offset > last]
        if beyond:
            _note(f"{truth_csv}: {len(beyond)} interval(s) of {vid} end after its last frame ({last}): "
                  + ", ".join(f"{iv.type} {iv.onset}-{iv.offset}" for iv in beyond[:3]))
        out.append(TrainVideo(vid, vid, round(source.fps, 3), path, rows))
    ids = {v.id for v in out}
    if len(ids) < len(out):  # clip.mp4 and clip.MOV: one id, one truth, two videos
        dup = sorted({v.id for v in out if sum(w.id == v.id for w in out) > 1})
        raise UserError(f"--data {data}: several videos share the id {dup[0]!r} (the file stem); rename one")
    unknown = sorted({iv.video for iv in truth} - ids)
    if unknown and out:
        twins = suffix_twins(unknown, ids)
        hint = f"; video ids are file stems without a suffix ({twins[0][0]!r} is {twins[0][1]!r})" if twins else ""
        missing = sum(iv.video in unknown for iv in truth)
        if len(unknown) == len({iv.video for iv in truth}):
            raise UserError(f"{truth_csv}: none of its videos ({', '.join(unknown[:3])}) is in {data}{hint}")
        _note(f"{truth_csv}: {missing} interval(s) of {len(unknown)} video(s) not in {data}, not used: "
              f"{', '.join(unknown[:5])}{hint}")
    return out


def _note(message: str) -> None:
    """One `note:` line on stderr (names as written, whatever they hold)."""
    print(one_line(f"note: {message}"), file=sys.stderr)


# ---------------------------------------------------------------------------- CLI


def _progress(console: Console, disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable,
        transient=False,
    )


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="lgnm-train", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", required=True, choices=[*DATASETS, "synth"],
                   help="CAS(ME)^2, SAMM-LV or CAS(ME)^3 Part A (CASME3) in their real layouts (with "
                        "--annotations), or lgnm-synth output")
    p.add_argument("--data", required=True, type=path_arg, nargs="+",
                   help="dataset root; several roots of one --dataset kind are pooled, their videos named "
                        "<folder>/<video> (e.g. plain and real-motion lgnm-synth sets)")
    p.add_argument("--annotations", type=path_arg,
                   help="annotation workbook (CAS.xlsx / SAMM.xlsx; CASME3: a workbook or the folder of Part A's "
                        "ME and MaE workbooks)")
    p.add_argument("--type", default="both", choices=["ME", "MaE", "both"], help="expression type(s) to train")
    p.add_argument("--out", required=True, type=path_arg, help="output folder for <prefix><type>.safetensors")
    p.add_argument("--prefix", default="lgnm_", help="weights file name prefix")
    p.add_argument("--epochs", type=int, default=10, help="most epochs per model")
    p.add_argument("--batch", type=int, default=256, help="training batch size")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"],
                   help="adam (the authors' README) or sgd (their script: momentum 0.9, wd 5e-4, StepLR)")
    p.add_argument("--folds", default="loso", help="loso | N | none")
    p.add_argument("--val-frac", type=float, default=0.2,
                   help="share of training videos held out for early stopping + calibration")
    p.add_argument("--interval-rule", default="auto", choices=["auto", *RULES], help=INTERVAL_RULE_HELP)
    p.add_argument("--val-metric", default="megc", choices=["megc", "frame"],
                   help="early-stopping metric: MEGC F1 after a post-processing grid search (default) or frame F1")
    p.add_argument("--val-stride", type=int, default=1, help="frame metric: score every n-th validation frame")
    p.add_argument("--patience", type=int, default=3, help="early stop after this many epochs without gain")
    p.add_argument("--cache", type=path_arg, help="features cache folder (default <out>/cache)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of folds, sampling and initialisation")
    p.add_argument("--neg-every", type=int, default=4, help="keep every n-th negative frame (IRL label 0)")
    p.add_argument("--max-neg", type=int, default=25000, help="at most this many negatives per model")
    p.add_argument("--pos-repeat", type=int, default=0, help="0 = balance automatically")
    p.add_argument("--max-minutes", type=float, default=0.0,
                   help="per model: stop after the epoch that would overrun this budget (0 = no limit)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="LOSO/N folds side by side on a Ray cluster (no ADDRESS: a local one; 'auto', HOST:PORT, "
                        "ray://HOST:10001); the final model is trained here. Same table as without it for the "
                        "same --seed and --threads")
    p.add_argument("--augment", action="store_true",
                   help="augment training inputs: per-sample sensor-like noise and cutout of part of the ROI image "
                        "(tools/augment.py; amplitude and mirroring are left alone)")
    p.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="store fp16 weights")
    p.add_argument("--no-landmark-filter", action="store_true",
                   help="align on the raw FaceMesh landmarks (as weights before the filter did); by default new "
                        "weights use the One Euro landmark filter (min_cutoff 1 Hz, beta 2, d_cutoff 1 Hz) and "
                        "record it in their metadata")
    p.add_argument("--head-motion", choices=HEAD_MOTION_MODELS,
                   help="head-motion model of the inputs (README, Method notes): nose (the authors' rule), rigid3d "
                        "(also the rigid motion of a head turning in depth, fitted to landmarks) or dominant (the "
                        "motion the whole face makes, fitted robustly to the flow); default: the --init weights' model, "
                        "else nose. Fine-tuning may change it; the new file records it")
    p.add_argument("--init", type=path_arg,
                   help="start from these weights instead of random (same type, fps and flow settings, except that weights "
                        "without the landmark filter may be fine-tuned with it; their K is kept): "
                        "continue a run or fine-tune; with --folds the init weights must not have seen the test subjects")
    p.add_argument("--backbone-weights", type=path_arg, metavar="FILE",
                   help="ImageNet MobileNetV2 weights for the backbone, as in the paper: torchvision's mobilenet_v2 "
                        "state dict (.pth, read weights-only, or .safetensors), fetched by you; the neck and head "
                        "start from random")
    return p


def _check_args(a: argparse.Namespace) -> None:
    if a.epochs < 1:
        raise UserError(f"--epochs: must be >= 1, got {a.epochs}")
    if a.batch < 2:
        raise UserError(f"--batch: must be >= 2 (BatchNorm), got {a.batch}")
    if not a.lr > 0:
        raise UserError(f"--lr: must be > 0, got {a.lr}")
    if not 0 <= a.val_frac < 1:
        raise UserError(f"--val-frac: must be in [0, 1), got {a.val_frac}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {a.device}: CUDA is not available on this machine")
    if not (a.device == "cpu" or a.device.startswith("cuda")):
        raise UserError(f"--device: must be cpu or cuda[:N], got {a.device!r}")
    folder_ok = a.dataset == "CASME3"  # Part A: the folder of its ME and MaE workbooks (realtime.casme3)
    if a.annotations is not None and not (a.annotations.is_file() or (folder_ok and a.annotations.is_dir())):
        raise UserError(f"--annotations: {a.annotations} is not a file")
    if len(a.data) > 1 and a.dataset != "synth" and a.folds != "none":
        # Pooled roots name subjects <folder>/<subject>: one person in two roots would be two
        # subjects, and a LOSO fold would train on the test subject's other videos.
        raise UserError("--data: several roots with --folds would split a subject present in both; pool them "
                        "into one root, or use --folds none")
    if a.init is not None and a.type == "both":
        raise UserError("--init: weights are per type; give --type ME or --type MaE with it")
    if a.init is not None and a.backbone_weights is not None:
        raise UserError("--backbone-weights: --init already gives the whole network; use one of the two")
    if a.ray is not None and importlib.util.find_spec("ray") is None:  # before hours of features
        raise UserError(RAY_MISSING)
    if a.backbone_weights is not None and not a.backbone_weights.is_file():
        raise UserError(f"--backbone-weights: {a.backbone_weights} is not a file")


def _roots(a: argparse.Namespace) -> str:
    return " ".join(str(d) for d in a.data)


def _fold_table(expr_type: str, rows: list[tuple[str, megc.TypeScore]]) -> Table:
    t = Table(title=f"{expr_type}: MEGC F1 per fold (test subject scored with params calibrated on validation videos)")
    for col in ("fold (test subjects)", "TP", "pred", "GT", "F1"):
        t.add_column(col, justify="right" if col != "fold (test subjects)" else "left")
    pooled = megc.TypeScore(0, 0, 0, 0)
    for name, s in rows:
        t.add_row(name, str(s.tp), str(s.n_pred), str(s.n_truth), f"{s.f1:.4f}")
        pooled = pooled + s
    t.add_row("[bold]pooled", str(pooled.tp), str(pooled.n_pred), str(pooled.n_truth), f"[bold]{pooled.f1:.4f}")
    return t


def _init_state(path: Path, expr_type: ExprType, fps: float, flow: FlowSettings) -> tuple[dict[str, torch.Tensor], int]:
    """State dict and K of --init weights, refused unless their features are this run's.

    A continued network keeps its K (the pair offset it learned): a new data set's K
    formula gives K +- 1 by sampling alone (18 vs 19 for two synthetic sets), and changing
    the pair would change what the network sees."""
    net, meta = load_weights(path)
    if meta.type != expr_type:
        raise UserError(f"--init: {path} holds {meta.type} weights, this run trains {expr_type}")
    if abs(meta.fps - fps) > 1e-6:
        raise UserError(f"--init: {path} was trained at {meta.fps:g} fps, these videos are {fps:g} fps "
                        "(re-time it first: python -m tools.weights_ops retime)")
    # The landmark filter only steadies the alignment (the same flow, ROI and encoding), so
    # weights trained without it may be fine-tuned with it: the new file records the filter.
    if not replace(meta.flow, head_motion=flow.head_motion).same_flow_as(flow):
        raise UserError(f"--init: {path} was trained on other flow settings ({meta.flow.to_dict()})")
    if meta.flow.landmark_filter not in (None, flow.landmark_filter):
        raise UserError(f"--init: {path} was trained with another landmark filter ({meta.flow.landmark_filter}); "
                        "fine-tuning may add the filter to weights without one, not change or drop it")
    return net.state_dict(), meta.k


def init_head_motion(path: Path) -> str:
    """The head-motion model of --init weights (what a fine-tune keeps unless told)."""
    return load_weights(path)[1].flow.head_motion


def _start_note(a: argparse.Namespace) -> str:
    """Where training started, for `trained_on`: continued weights or an ImageNet backbone
    (named with the first 12 hex digits of its sha256, the way torchvision names its files)."""
    aug = ", input augmentation" if getattr(a, "augment", False) else ""
    if a.init is not None:
        return f", from {a.init.name}{aug}"
    if a.backbone_weights is not None:
        return f", backbone {a.backbone_weights.name} sha256 {file_sha256(a.backbone_weights)[:12]}{aug}"
    return aug


def run_fold(
    fi: int, test_subjects: list[str], prepared: Sequence[Prepared], expr_type: ExprType, k: int, fps: float,
    a: argparse.Namespace, cfg: TrainConfig, console: Console,
    init: dict[str, torch.Tensor] | None, backbone: dict[str, torch.Tensor] | None,
) -> tuple[list[str], megc.TypeScore, int]:
    """Fold `fi`: train on the other subjects, calibrate on their validation videos, score
    the test subjects; returns (test subjects, MEGC counts, best epoch)."""
    test = [p for p in prepared if p.video.subject in test_subjects]
    rest = [p for p in prepared if p.video.subject not in test_subjects]
    train, val = split_validation(rest, a.val_frac, a.seed + fi)
    res = train_model(train, val, expr_type, k, cfg, console, init, backbone)
    seqs = res.val_scores or {p.video.id: score_inputs(res.model, p.inputs, cfg.device) for p in train}
    cal_truth = [iv for p in (val or train) for iv in p.video.truth_of(expr_type)]
    params, _ = calibrate(seqs, cal_truth, expr_type, k, fps, cfg.rules)
    test_seqs = {p.video.id: score_inputs(res.model, p.inputs, cfg.device) for p in test}
    test_truth = [iv for p in test for iv in p.video.truth_of(expr_type)]
    counts = megc_counts(spot(test_seqs, params, expr_type), test_truth, expr_type)
    return test_subjects, counts, res.best_epoch


def run_type(
    videos: Sequence[TrainVideo], expr_type: ExprType, a: argparse.Namespace, cfg: TrainConfig, console: Console
) -> tuple[Path, megc.TypeScore]:
    """Folds + final model for one type; returns (weights path, pooled LOSO counts)."""
    truth = [iv for v in videos for iv in v.truth_of(expr_type)]
    if not truth:
        raise UserError(f"no {expr_type} intervals in the annotations of {_roots(a)}")
    fps_set = {v.fps for v in videos}
    if len(fps_set) != 1:
        by_rate = {r: [v.id for v in videos if v.fps == r] for r in sorted(fps_set)}
        which = "; ".join(f"{r:g} fps: {', '.join(ids[:3])}{', ...' if len(ids) > 3 else ''}" for r, ids in by_rate.items())
        raise UserError(f"videos of {_roots(a)} mix frame rates ({which}); train one rate at a time")
    fps = fps_set.pop()
    k = k_from_intervals(truth)
    # New weights record the landmark filter their inputs were computed with (on unless
    # --no-landmark-filter); lgnm-live applies the same one from their metadata.
    flow = FlowSettings(landmark_filter=None if a.no_landmark_filter else DEFAULT_LANDMARK_FILTER,
                        head_motion=a.head_motion or (init_head_motion(a.init) if a.init is not None else "nose"))
    cache = a.cache if a.cache is not None else a.out / "cache"
    init = None
    if a.init is not None:
        init, init_k = _init_state(a.init, expr_type, fps, flow)
        if init_k != k:
            console.print(f"{expr_type}: K = {init_k} from --init (these data alone would give {k})")
        k = init_k
    console.print(f"[bold]{expr_type}[/]: {len(videos)} videos, {len(truth)} intervals, fps {fps:g}, K = {k}")
    backbone = load_backbone_state(a.backbone_weights) if a.backbone_weights is not None else None
    prepared = prepare(videos, expr_type, k, flow, cache, console)

    rows: list[tuple[str, megc.TypeScore]] = []
    folds = make_folds([v.subject for v in videos], a.folds)
    if getattr(a, "ray", None) is not None:  # folds side by side on a Ray cluster (tools/ray_folds.py)
        from tools.ray_folds import FoldJob, run_folds_on_ray

        job = FoldJob(videos, expr_type, k, fps, flow, cache, a, cfg, init, backbone, prepare, run_fold)
        results = run_folds_on_ray(job, folds)
    else:
        results = (run_fold(fi, ts, prepared, expr_type, k, fps, a, cfg, console, init, backbone)
                   for fi, ts in enumerate(folds))
    for fi, (test_subjects, counts, best_epoch) in enumerate(results):
        rows.append((",".join(test_subjects), counts))
        console.print(f"  fold {fi + 1}: test {test_subjects} F1 {counts.f1:.4f} (best epoch {best_epoch})")
    pooled = sum((s for _, s in rows), megc.TypeScore(0, 0, 0, 0))
    if rows:
        console.print(_fold_table(expr_type, rows))

    # Final model: all subjects; validation videos only steer early stopping + calibration.
    train, val = split_validation(prepared, a.val_frac, a.seed)
    res = train_model(train, val, expr_type, k, cfg, console, init, backbone)
    seqs = res.val_scores or {p.video.id: score_inputs(res.model, p.inputs, cfg.device) for p in train}
    cal_truth = [iv for p in (val or train) for iv in p.video.truth_of(expr_type)]
    params, cal_f1 = calibrate(seqs, cal_truth, expr_type, k, fps, cfg.rules)
    console.print(
        f"[bold]{expr_type}[/] final: best epoch {res.best_epoch}, {res.seconds:.0f} s; calibrated on "
        f"{'validation' if val else 'training'} videos, F1 {cal_f1:.4f}, params {params.to_dict()}"
    )
    meta = WeightsMeta(
        type=expr_type,
        k=k,
        fps=fps,
        k_seconds=k / fps,
        flow=flow,
        post=params.to_dict(),
        trained_on=f"{a.dataset}:{'+'.join(d.name for d in a.data)} ({len(videos)} videos, seed {a.seed}, "
        f"best epoch {res.best_epoch}" + _start_note(a) + ")",
    )
    path = save_weights(res.model, meta, a.out / f"{a.prefix}{expr_type}.safetensors", half=a.half)
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path, pooled


@cli_entry
@native_stderr_filtered
def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    _check_args(a)
    output_dir(a.out, "--out")
    if a.cache is not None:
        output_dir(a.cache, "--cache")
    if a.threads:
        torch.set_num_threads(a.threads)
    console = Console(stderr=True)
    cfg = TrainConfig(
        epochs=a.epochs, batch=a.batch, lr=a.lr, optimizer=a.optimizer, neg_every=a.neg_every, max_neg=a.max_neg,
        pos_repeat=a.pos_repeat, patience=a.patience, val_metric=a.val_metric, val_stride=a.val_stride,
        device=a.device, seed=a.seed, max_minutes=a.max_minutes, augment=Augment() if a.augment else None,
        rules=rules_option(a.interval_rule),
    )  # fmt: skip
    videos = load_sets(a.dataset, a.data, a.annotations)
    if not videos:
        raise UserError(f"--data: no videos found under {_roots(a)}"
                        + (" (a folder's own video files are read, not its subfolders')" if a.dataset == "synth" else ""))
    types: tuple[ExprType, ...] = EXPR_TYPES if a.type == "both" else (a.type,)
    for t in types:  # before any training: a type without truth would end the run after the other was written
        if not any(v.truth_of(t) for v in videos):
            other = [o for o in EXPR_TYPES if o != t and any(v.truth_of(o) for v in videos)]
            raise UserError(f"no {t} intervals in the annotations of {_roots(a)}"
                            + (f"; train --type {other[0]} alone" if other and a.type == "both" else ""))
    t0 = time.monotonic()
    try:
        for t in types:
            run_type(videos, t, a, cfg, console)
    except KeyboardInterrupt:
        done = [t for t in types if (a.out / f"{a.prefix}{t}.safetensors").is_file()]
        print(f"error: interrupted; weights in {a.out} may mix this run's and older files "
              f"({', '.join(done) or 'none'} present): check their trained_on before use", file=sys.stderr)
        return 130
    console.print(f"total training time {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
