"""The labelled long-video datasets by the name `--replay NAME` and `lgnm-train --dataset
NAME` give them: each loader reads `(root, annotations, allow_gaps=...)` into
`VideoRecord`s (realtime.datasets, realtime.casme3)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from realtime.casme3 import load_casme3
from realtime.datasets import VideoRecord, load_cas, load_samm

Loader = Callable[..., list[VideoRecord]]  # (root: Path, annotations: Path, *, allow_gaps: bool)
LOADERS: dict[str, Loader] = {"CAS": load_cas, "SAMM": load_samm, "CASME3": load_casme3}


def load_dataset(name: str, root: Path, annotations: Path, *, allow_gaps: bool = False) -> list[VideoRecord]:
    """The videos of dataset `name` (a key of LOADERS) with their truth."""
    return LOADERS[name](root, annotations, allow_gaps=allow_gaps)
