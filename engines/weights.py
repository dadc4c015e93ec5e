"""LGNMNet weights as safetensors with the metadata needed to use them correctly.

Everything that must match between training and inference (type, K, fps, flow settings,
ROI normalisation, post-processing parameters) travels inside the weights file, as one
JSON document under the safetensors metadata key `lgnm`. Loading never unpickles:
safetensors holds plain tensors only, so a weights file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from engines.lgnmnet import LGNMNet
from realtime.errors import UserError
from realtime.types import ExprType, FlowSettings, check_type

META_KEY = "lgnm"
FORMAT_VERSION = 1


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(slots=True)
class WeightsMeta:
    """What a scorer and the post-processing need to know about one set of weights."""

    type: ExprType
    k: int  # frame offset of the pair (i, i + k) at `fps`
    fps: float  # frame rate the weights were trained at
    k_seconds: float  # k / fps: lets a stream at another fps pick its own K
    flow: FlowSettings
    roi_size: int = 112
    norm_mean: float = 127.5
    norm_std: float = 128.0
    post: dict = field(default_factory=dict)  # post-processing params (incl. threshold)
    score: str = "p_expression"
    trained_on: str = ""
    created: str = field(default_factory=_utc_now)
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["flow"] = self.flow.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> WeightsMeta:
        """Build from a decoded dict; raises ValueError/TypeError/KeyError on bad content."""
        d = dict(d)
        version = int(d.get("format_version", FORMAT_VERSION))
        if version > FORMAT_VERSION:
            raise ValueError(f"format_version {version} is newer than this program ({FORMAT_VERSION})")
        d["flow"] = FlowSettings.from_dict(d["flow"])
        d["type"] = check_type(d["type"])
        meta = cls(**d)
        if meta.k < 1 or meta.fps <= 0:
            raise ValueError(f"k must be >= 1 and fps > 0, got k={meta.k} fps={meta.fps}")
        return meta


def save_weights(model: LGNMNet, meta: WeightsMeta, path: str | Path, half: bool = False) -> Path:
    """Write `model`'s state and `meta` to a safetensors file (fp16 storage if `half`)."""
    path = Path(path)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        # Halve only floating tensors; BN's num_batches_tracked stays an integer.
        tensors[name] = t.half() if half and t.is_floating_point() else t
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta.to_dict(), sort_keys=True)})
    return path


def read_meta(path: str | Path) -> WeightsMeta:
    """Only the metadata of a weights file (cheap: reads the header)."""
    path = Path(path)
    with _open(path) as f:
        return _meta_of(path, f.metadata())


def load_weights(path: str | Path, device: str = "cpu") -> tuple[LGNMNet, WeightsMeta]:
    """(LGNMNet in eval mode, fp32, on `device`; its metadata). Bad files -> UserError."""
    path = Path(path)
    with _open(path) as f:
        meta = _meta_of(path, f.metadata())
        try:
            state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise UserError(f"{path}: damaged safetensors data ({exc})") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = LGNMNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"{path}: tensors do not match the LGNMNet architecture ({first})") from exc
    return model.to(device).eval(), meta


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes: ties a TensorRT engine to the exact weights it came from."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _open(path: Path):  # type: ignore[no-untyped-def]
    if not path.is_file():
        raise UserError(f"{path}: weights file not found")
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable safetensors weights file ({exc})") from exc


def _meta_of(path: Path, raw: dict[str, str] | None) -> WeightsMeta:
    if not raw or META_KEY not in raw:
        raise UserError(f"{path}: safetensors file has no '{META_KEY}' metadata (not LGNMNet weights?)")
    try:
        return WeightsMeta.from_dict(json.loads(raw[META_KEY]))
    except (ValueError, TypeError, KeyError) as exc:
        raise UserError(f"{path}: invalid '{META_KEY}' metadata ({exc})") from exc
