"""Scoring backend names (`--backend`), kept free of heavy imports (torch) so that the
command line can list them without loading a model."""

from __future__ import annotations

from typing import Literal

Backend = Literal["auto", "tensorrt", "cuda", "cpu"]
BACKENDS: tuple[str, ...] = ("auto", "tensorrt", "cuda", "cpu")
