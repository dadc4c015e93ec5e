"""ImageNet MobileNetV2 weights as LGNMNet's starting backbone (the paper starts from them).

Nothing is downloaded: the user passes a file fetched on purpose, in torchvision's layout
(the state dict of `torchvision.models.mobilenet_v2`, width 1.0: `features.*` plus
`classifier.*`; torchvision publishes it as `mobilenet_v2-b0353104.pth` and
`mobilenet_v2-7ebf99e0.pth`). `mobilenetv2.py` mirrors that layout, so the tensors load by
name. Accepted containers:
- `.pth` / `.pt`: read with `torch.load(weights_only=True)`, so no pickled code runs;
- `.safetensors`: plain tensors.
A checkpoint wrapped as {"state_dict": ...} or {"model": ...}, or saved from
DataParallel (`module.` prefix), is unwrapped. Only `features.*` is used: the ImageNet
classifier has nothing to do with expression spotting.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from engines.mobilenetv2 import mobilenet_v2_features
from realtime.common.errors import UserError

FEATURES_PREFIX = "features."


def load_backbone_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The file's MobileNetV2 feature tensors, keyed like `LGNMNet.backbone` and checked
    against it (every tensor present, same shapes). Any problem -> UserError naming the file."""
    path = Path(path)
    raw = _read(path)
    state = _features_of(raw)
    if not state:
        raise UserError(f"{path}: no MobileNetV2 '{FEATURES_PREFIX}*' tensors (expected torchvision's mobilenet_v2 state dict)")
    expected = mobilenet_v2_features().state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        what = f"{len(missing)} missing (first {FEATURES_PREFIX}{missing[0]})" if missing else ""
        what += ("; " if what else "") + (f"{len(extra)} unexpected (first {FEATURES_PREFIX}{extra[0]})" if extra else "")
        raise UserError(f"{path}: not a width-1.0 MobileNetV2 backbone: {what}")
    for key, ref in expected.items():
        if state[key].shape != ref.shape:
            raise UserError(
                f"{path}: {FEATURES_PREFIX}{key} has shape {tuple(state[key].shape)}, "
                f"MobileNetV2 (width 1.0) needs {tuple(ref.shape)}"
            )
    return {k: v.to(expected[k].dtype) for k, v in state.items()}  # fp16 files train in fp32


def _read(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: backbone weights file not found")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise UserError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a plain tensor checkpoint (refused by a weights-only load: {first})") from exc
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return obj


def _features_of(raw: dict) -> dict[str, torch.Tensor]:
    for wrapper in ("state_dict", "model"):
        if isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
            break
    out: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            continue
        key = key.removeprefix("module.")
        if key.startswith(FEATURES_PREFIX):
            out[key[len(FEATURES_PREFIX) :]] = value
    return out
