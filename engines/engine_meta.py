"""The JSON sidecar written next to a TensorRT engine, and the compatibility check.

A serialised TensorRT engine only runs on the TensorRT version that built it and is tuned
for (and by default only valid on) the GPU it was built on; it also bakes in one set of
weights. The sidecar records all three so that a mismatch is refused with a clear
message instead of a crash or, worse, silently scoring with other weights. Pure Python:
no TensorRT needed, so the checks are unit-tested everywhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from realtime.common.errors import UserError

Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16", "int8")
SIDECAR_VERSION = 1


@dataclass(frozen=True, slots=True)
class EngineSidecar:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str  # "8.6", "9.0", ...
    precision: Precision
    input_name: str
    input_shape: tuple[int, int, int]  # per-sample (C, H, W)
    max_batch: int
    weights_sha256: str
    weights_meta: dict  # WeightsMeta.to_dict() of the weights the engine was built from
    weights_file: str = ""
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    format_version: int = SIDECAR_VERSION

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["input_shape"] = list(self.input_shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EngineSidecar:
        if not isinstance(d, dict):
            raise TypeError(f"expected a JSON object, got {type(d).__name__}")
        d = dict(d)
        # Types are checked here: a wrong one would otherwise pass the compatibility check
        # and crash the TensorRT runtime later (max_batch "16", a 2-D input_shape, ...).
        version = d.get("format_version", SIDECAR_VERSION)
        if not _is_int(version) or version > SIDECAR_VERSION:
            raise ValueError(f"format_version {version!r} is not supported (this program: {SIDECAR_VERSION})")
        shape = d.get("input_shape")
        if not isinstance(shape, list) or len(shape) != 3 or not all(_is_int(v) and v > 0 for v in shape):
            raise ValueError(f"input_shape must be [C, H, W] positive integers, got {shape!r}")
        d["input_shape"] = tuple(shape)
        if d.get("precision") not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {d.get('precision')!r}")
        if not _is_int(d.get("max_batch")) or d["max_batch"] < 1:
            raise ValueError(f"max_batch must be an integer >= 1, got {d.get('max_batch')!r}")
        for name in ("tensorrt_version", "gpu_name", "compute_capability", "input_name",
                     "weights_sha256", "weights_file", "created"):
            if name in d and not isinstance(d[name], str):
                raise TypeError(f"{name} must be a string, got {d[name]!r}")
        if not isinstance(d.get("weights_meta"), dict):
            raise TypeError(f"weights_meta must be a JSON object, got {d.get('weights_meta')!r}")
        return cls(**d)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def sidecar_path(engine_path: str | Path) -> Path:
    """`model.engine` -> `model.engine.json`."""
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_sidecar(engine_path: str | Path, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    path.write_text(json.dumps(sidecar.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(engine_path: str | Path) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise UserError(f"{path}: engine sidecar not found (rebuild the engine with lgnm-build-engine)")
    try:
        return EngineSidecar.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError) as exc:  # JSONDecodeError is a ValueError
        raise UserError(f"{path}: invalid engine sidecar ({exc})") from exc


def check_engine_compat(
    sidecar: EngineSidecar,
    engine_path: str | Path,
    *,
    weights_sha256: str,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability: str,
) -> None:
    """Raise UserError (naming the engine) unless it was built for these weights, this
    TensorRT version and this GPU. Pure: the caller supplies the live facts."""
    where = str(engine_path)
    if sidecar.weights_sha256 != weights_sha256:
        raise UserError(
            f"{where}: engine was built from other weights ({sidecar.weights_file or 'sha256 ' + sidecar.weights_sha256[:12]}); "
            "rebuild it with lgnm-build-engine --weights <these weights>"
        )
    if sidecar.tensorrt_version != tensorrt_version:
        raise UserError(
            f"{where}: engine was built with TensorRT {sidecar.tensorrt_version}, this is TensorRT {tensorrt_version}; rebuild it"
        )
    if sidecar.compute_capability != compute_capability or sidecar.gpu_name != gpu_name:
        raise UserError(
            f"{where}: engine was built for {sidecar.gpu_name} (sm {sidecar.compute_capability}), "
            f"this GPU is {gpu_name} (sm {compute_capability}); rebuild it on this machine"
        )
