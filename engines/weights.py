"""LGNMNet weights as safetensors with the metadata needed to use them correctly.

Everything that must match between training and inference (type, K, fps, flow settings,
ROI normalisation, post-processing parameters) travels inside the weights file, as one
JSON document under the safetensors metadata key `lgnm`. Loading never unpickles:
safetensors holds plain tensors only, so a weights file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from engines.lgnmnet import LGNMNet
from realtime.common.atomic import atomic_binary
from realtime.common.errors import UserError
from realtime.common.types import ExprType, FlowSettings, check_type

META_KEY = "lgnm"
FORMAT_VERSION = 1  # LGNMNet weights (written without `model`, readable by older programs)
BASELINE_FORMAT_VERSION = 2  # flow-magnitude baselines: older programs refuse them by version
MODEL_LGNMNET = "lgnmnet"
MODEL_FLOW_MAGNITUDE = "flow_magnitude"  # training-free baseline, engines/baseline.py
MODELS = (MODEL_LGNMNET, MODEL_FLOW_MAGNITUDE)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    # Which scorer the file is for: "lgnmnet" (tensors of the network; files without the
    # field; `model_params` {} or {"temperature"}) or "flow_magnitude" (no tensors;
    # `model_params` {"fraction", "e0"}).
    model: str = MODEL_LGNMNET
    model_params: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["flow"] = self.flow.to_dict()
        if self.model == MODEL_LGNMNET and not self.model_params:
            del d["model"], d["model_params"]  # LGNMNet files stay as before
            d["format_version"] = FORMAT_VERSION  # readable by programs older than model_params
        else:
            d["format_version"] = max(self.format_version, BASELINE_FORMAT_VERSION)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> WeightsMeta:
        """Build from a decoded dict; raises ValueError/TypeError/KeyError on bad content."""
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        d = dict(d)
        version = d.get("format_version", FORMAT_VERSION)
        if not _is_int(version):
            raise TypeError(f"format_version must be an integer, got {version!r}")
        if version > BASELINE_FORMAT_VERSION:
            raise ValueError(f"format_version {version} is newer than this program ({BASELINE_FORMAT_VERSION})")
        if not isinstance(d.get("flow"), dict):
            raise TypeError(f"flow must be a JSON object, got {d.get('flow')!r}")
        d["flow"] = _checked_flow(FlowSettings.from_dict(d["flow"]))
        if not isinstance(d.get("type"), str):
            raise TypeError(f"type must be ME or MaE, got {d.get('type')!r}")
        d["type"] = check_type(d["type"])
        meta = cls(**d)
        # Wrong types or values would otherwise surface later as a traceback (or, for a
        # zero norm_std / NaN fps, as silently wrong scores) far from the file's name.
        if not _is_int(meta.k) or meta.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {meta.k!r}")
        for name in ("fps", "k_seconds", "norm_std"):
            value = getattr(meta, name)
            if not _is_real(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not _is_real(meta.norm_mean):
            raise ValueError(f"norm_mean must be a finite number, got {meta.norm_mean!r}")
        if not _is_int(meta.roi_size) or meta.roi_size < 1:
            raise ValueError(f"roi_size must be an integer >= 1, got {meta.roi_size!r}")
        for name in ("score", "trained_on", "created"):
            if not isinstance(getattr(meta, name), str):
                raise TypeError(f"{name} must be a string, got {getattr(meta, name)!r}")
        _check_post(meta.post, meta.k)
        _check_model(meta.model, meta.model_params)
        return meta


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _checked_flow(flow: FlowSettings) -> FlowSettings:
    """Every flow setting has its default's type (ints may stand for floats)."""
    default = FlowSettings()
    for name in FlowSettings.__slots__:
        if name == "landmark_filter":  # None or a LandmarkFilter, checked when built
            continue
        value, like = getattr(flow, name), getattr(default, name)
        ok = (isinstance(value, bool) if isinstance(like, bool) else
              _is_int(value) if isinstance(like, int) else
              _is_real(value) if isinstance(like, float) else isinstance(value, type(like)))
        if not ok:
            raise TypeError(f"flow.{name} must be like {like!r}, got {value!r}")
    if flow.face_size < 32:
        raise ValueError(f"flow.face_size must be >= 32 px, got {flow.face_size}")
    return flow


def _check_model(model: object, params: object) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if not isinstance(params, dict):
        raise TypeError(f"model_params must be a JSON object, got {params!r}")
    allowed = {"fraction", "e0"} if model == MODEL_FLOW_MAGNITUDE else {"temperature"}
    unknown = set(params) - allowed
    if unknown:
        raise ValueError(f"model_params of {model}: unknown {', '.join(sorted(unknown))}")
    for name, value in params.items():
        if not _is_real(value) or value <= 0 or (name == "fraction" and value > 1):
            upper = " and <= 1" if name == "fraction" else ""
            raise ValueError(f"model_params.{name} must be a finite number > 0{upper}, got {value!r}")


def _check_post(post: object, k: int) -> None:
    """The post-processing parameters build a valid PostParams (types included)."""
    from calibration.postprocess import PostParams  # engines must not need calibration at import

    if not isinstance(post, dict):
        raise TypeError(f"post must be a JSON object, got {post!r}")
    ints = {"k", "win", "order", "keep", "shift", "max_chunk"}
    bools = {"drop_inside_mae", "drop_unpaired", "adaptive"}
    strings = {"rule"}
    optional = {"threshold", "shift", "max_chunk"}
    for name, value in post.items():
        if value is None and name in optional:
            continue
        if name in strings:
            if not isinstance(value, str):
                raise TypeError(f"post.{name} must be a string, got {value!r}")
            continue
        if name in bools:
            if not isinstance(value, bool):
                raise TypeError(f"post.{name} must be true or false, got {value!r}")
            continue
        if not (_is_int(value) if name in ints else _is_real(value)):
            raise TypeError(f"post.{name} must be {'an integer' if name in ints else 'a finite number'}, "
                            f"got {value!r}")
    threshold = post.get("threshold")
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"post.threshold must be in [0, 1], got {threshold!r}")
    PostParams.from_dict({**post, "k": k})  # unknown names, odd window, order < win, ...


def save_weights(model: torch.nn.Module, meta: WeightsMeta, path: str | Path, half: bool = False) -> Path:
    """Write `model`'s state and `meta` to a safetensors file (fp16 storage if `half`).
    A flow-magnitude baseline (`engines.baseline.FlowMagnitudeNet`) has no state: the
    file holds the metadata only (about 1 kB)."""
    path = Path(path)
    tensors = {}
    for name, t in model.state_dict().items():
        t = t.detach().to("cpu").contiguous()
        # Halve only floating tensors; BN's num_batches_tracked stays an integer.
        tensors[name] = t.half() if half and t.is_floating_point() else t
    # Bytes through our own writer: safetensors' save_file creates the file 0o600, which a
    # lab sharing trained weights cannot read; this one follows the umask and is atomic.
    with atomic_binary(path) as fh:
        fh.write(save(tensors, metadata={META_KEY: json.dumps(meta.to_dict(), sort_keys=True)}))
    return path


def read_meta(path: str | Path) -> WeightsMeta:
    """Only the metadata of a weights file (cheap: reads the header)."""
    path = Path(path)
    with _open(path) as f:
        return _meta_of(path, f.metadata())


def load_weights(path: str | Path, device: str = "cpu") -> tuple[LGNMNet, WeightsMeta]:
    """(LGNMNet in eval mode, fp32, on `device`; its metadata). Bad files -> UserError,
    and so is a flow-magnitude baseline: it has no network (see `engines.models.load_model`)."""
    path = Path(path)
    with _open(path) as f:
        meta = _meta_of(path, f.metadata())
        if meta.model != MODEL_LGNMNET:
            raise UserError(f"{path}: a training-free {meta.model} baseline, not LGNMNet weights "
                            "(it has no network to load, export or train)")
        try:
            state = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, RuntimeError, OSError) as exc:
            raise UserError(f"{path}: damaged safetensors data ({exc})") from exc
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model = LGNMNet(temperature=meta.model_params.get("temperature", 1.0))
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


def _open(path: Path) -> Any:  # a safetensors safe_open handle
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
