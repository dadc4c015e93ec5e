"""Derive weights from weights without training: average checkpoints, re-time to another
fps, or choose the head-motion model.

    python -m tools.weights_ops average A.safetensors B.safetensors --out C.safetensors
    python -m tools.weights_ops retime A.safetensors --fps 200 --out B.safetensors
    python -m tools.weights_ops head-motion A.safetensors --model rigid3d --out B.safetensors

`average`: the element-wise mean of the tensors (BatchNorm running statistics included) of
networks of one type, K and flow settings, e.g. a run and its `--init` continuation (a
"model soup": averaging checkpoints of one training lineage keeps them in one basin and
usually scores better than either). The metadata are the first file's; the post-processing
must be fitted again (`lgnm-calibrate`), since an average scores less confidently.

`retime`: the same tensors for video at another frame rate. The network saw flow over
K / fps seconds, so K becomes round(k_seconds * fps) and the smoothing window keeps its
duration, exactly as a live stream at that rate would use the weights; fit the
post-processing again with `lgnm-calibrate` on labelled videos at the new rate.

`head-motion`: the same network with another `FlowSettings.head_motion` ("nose": the
authors' nose-tip subtraction only; "rigid3d": also the rigid motion of a head turning
in depth fitted to landmarks; "dominant": also the motion the whole face makes, fitted
robustly to the flow; `engines.head_motion`); a pair of one stream must share it (one flow).

All refuse what would silently score wrong (mixed types, K or flow settings) with a
one-line error; `--out` must not be an input.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import torch

from calibration.postprocess import odd_at_least
from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, load_weights, save_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg
from realtime.common.types import HEAD_MOTION_MODELS
from realtime.labels import k_from_seconds


def average(nets: Sequence[LGNMNet], metas: Sequence[WeightsMeta]) -> tuple[LGNMNet, WeightsMeta]:
    """Element-wise mean of the networks' state (integer counters from the first one)."""
    if len(nets) < 2:
        raise UserError("average: give at least two weights files")
    first = metas[0]
    for m in metas[1:]:
        if (m.type, m.k, m.fps, m.flow) != (first.type, first.k, first.fps, first.flow):
            raise UserError(f"average: {first.type} K={first.k} at {first.fps:g} fps and {m.type} K={m.k} at "
                            f"{m.fps:g} fps (or other flow settings) cannot be averaged")
    states = [n.state_dict() for n in nets]
    mean = {name: torch.stack([s[name] for s in states]).mean(0) if t.is_floating_point() else t
            for name, t in states[0].items()}
    out = LGNMNet()
    out.load_state_dict(mean)
    out.eval()
    note = f"mean of {len(nets)} checkpoints: " + " + ".join(f"[{m.trained_on}]" for m in metas)
    # A stored temperature was fitted to one network's margins, not to the mean network's.
    params = {k: v for k, v in first.model_params.items() if k != "temperature"}
    return out, dataclasses.replace(first, trained_on=note, model_params=params)


def retime(meta: WeightsMeta, fps: float) -> WeightsMeta:
    """The metadata for video at `fps`, as a live stream at that rate would set it up
    (`realtime.pipeline.setup_for_fps`): K kept in seconds, the window in time."""
    if not fps > 0:
        raise UserError(f"--fps: must be > 0, got {fps}")
    k = k_from_seconds(meta.k_seconds, fps)
    post = {**meta.post, "k": k}
    if "win" in post:
        post["win"] = odd_at_least(post["win"] * fps / meta.fps, int(post.get("order", 2)) + 1)
    return dataclasses.replace(
        meta, k=k, fps=float(fps), k_seconds=k / fps, post=post,
        trained_on=f"{meta.trained_on} | re-timed from {meta.fps:g} fps (K {meta.k}) to {fps:g} fps (K {k})",
    )


def with_head_motion(meta: WeightsMeta, model: str) -> WeightsMeta:
    """The metadata with `flow.head_motion` = model (the network unchanged)."""
    try:
        flow = dataclasses.replace(meta.flow, head_motion=model)
    except ValueError as exc:
        raise UserError(f"--model: {exc}") from None
    return dataclasses.replace(meta, flow=flow,
                               trained_on=f"{meta.trained_on} | head motion {meta.flow.head_motion} -> {model}")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m tools.weights_ops", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="op", required=True)
    a = sub.add_parser("average", help="element-wise mean of checkpoints of one type, K and flow")
    a.add_argument("weights", nargs="+", type=path_arg)
    a.add_argument("--out", type=path_arg, required=True)
    r = sub.add_parser("retime", help="the same network for video at another frame rate")
    r.add_argument("weights", type=path_arg)
    r.add_argument("--fps", type=float, required=True)
    r.add_argument("--out", type=path_arg, required=True)
    h = sub.add_parser("head-motion", help="the same network with another head-motion model")
    h.add_argument("weights", type=path_arg)
    h.add_argument("--model", required=True, choices=HEAD_MOTION_MODELS)
    h.add_argument("--out", type=path_arg, required=True)
    for s in (a, r, h):
        s.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="store fp16 weights")
    return p


@cli_entry
def main(argv: Sequence[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    inputs = a.weights if a.op == "average" else [a.weights]
    if a.out.resolve() in {p.resolve() for p in inputs}:
        raise UserError(f"--out: {a.out} is one of the inputs; write elsewhere")
    loaded = [load_weights(p) for p in inputs]
    if a.op == "average":
        net, meta = average([n for n, _ in loaded], [m for _, m in loaded])
    elif a.op == "retime":
        net, meta = loaded[0][0], retime(loaded[0][1], a.fps)
    else:
        net, meta = loaded[0][0], with_head_motion(loaded[0][1], a.model)
    save_weights(net, meta, a.out, half=a.half)
    print(f"wrote {a.out}: {meta.type}, K {meta.k} at {meta.fps:g} fps")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
