"""Joining or starting the Ray cluster of a `--ray [ADDRESS]` option (lgnm-live replays,
lgnm-train folds). Ray is imported here, on call, never at module import: the command
lines stay fast and work without Ray installed."""

from __future__ import annotations

import socket
from typing import Any

from realtime.common.errors import UserError
from realtime.ray_options import LOCAL, RAY_MISSING


def import_ray() -> Any:
    """The `ray` module; UserError (one line naming --ray) when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UserError(RAY_MISSING) from None
    return ray


PROBE_TIMEOUT_S = 3.0  # a GCS that does not accept a TCP connection in this long is not there


def check_reachable(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """UserError when HOST:PORT (or ray://HOST:PORT) takes no TCP connection: `ray.init`
    itself waits for an absent cluster for minutes, deaf to Ctrl-C. LOCAL and `auto` (a
    local `ray start`, found by Ray's own files) are left to Ray."""
    if address in (LOCAL, "auto"):
        return
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return  # Ray's own message says what is wrong with it
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise UserError(f"--ray {address}: cannot start or join the cluster (nothing accepts a connection "
                        f"at {host}:{port}: {exc.strerror or exc})") from None


def connect(ray: Any, address: str) -> bool:
    """Start a local cluster (`address` LOCAL) or join one (`auto`, HOST:PORT,
    ray://HOST:10001); True when this call started Ray (the caller shuts it down after).
    Already inside `ray.init` (the API, tests): that cluster is used, False. Workers'
    own logs stay in the cluster's session logs (not forwarded here). UserError when
    the cluster cannot be started or reached."""
    if ray.is_initialized():
        return False
    check_reachable(address)
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ValueError ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--ray {address}: cannot start or join the cluster ({first})") from None
    return True
