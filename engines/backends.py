"""Backend names of the scorer (`--backend`) and of the dense flow (`--flow`), kept free
of heavy imports (torch, CuPy) so that the command line can list them without loading
anything."""

from __future__ import annotations

from typing import Literal

Backend = Literal["auto", "tensorrt", "cuda", "cpu"]
BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "cuda", "cpu")

FlowKind = Literal["auto", "cpu", "cuda"]
FLOW_KINDS: tuple[str, ...] = ("auto", "cpu", "cuda")  # --flow: engines.pair_features
