"""`lgnm-live --ray [ADDRESS]`: the option's values and checks, free of Ray and of the
pipeline (realtime/ray_replay.py runs the replay; Ray is imported only there)."""

from __future__ import annotations

import importlib.util
from typing import Any

from realtime.common.errors import UserError

LOCAL = "local"  # `--ray` without an address: a local cluster for this run
RAY_MISSING = "--ray: Ray is not installed (pip install 'lgnm-live[ray]')"


def check_ray_options(config: Any) -> None:
    """--ray only with --replay, without pacing, and with Ray installed; UserError
    naming the option. `config`: a realtime.run_config.RunConfig."""
    address = config.ray
    if address is None:
        return
    if not config.replay:
        raise UserError("--ray: only with --replay (one task per video of a replay)")
    if config.paced:
        raise UserError("--ray: a replay on a cluster runs as fast as it can; drop --realtime")
    if not address.strip():
        raise UserError("--ray: the address is empty (give HOST:PORT, ray://HOST:10001 or auto, or none)")
    if importlib.util.find_spec("ray") is None:  # found without importing it (seconds)
        raise UserError(RAY_MISSING)
