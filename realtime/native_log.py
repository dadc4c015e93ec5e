"""Keep mediapipe's (and liblsl's) native start-up notices off the user's terminal.

mediapipe's C++ graph (TensorFlow Lite, absl) writes notices such as "INFO: Created
TensorFlow Lite XNNPACK delegate" and "W0000 ... inference_feedback_manager" straight to
file descriptor 2, from its worker threads, whenever a graph starts; no Python logger or
environment variable reaches them, and they read like errors. A CLI wraps its run in
`filtered_native_stderr()`: fd 2 goes through a pipe whose reader thread drops those
lines and passes every other line (ours included) on to the real stderr.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

NOISE = re.compile(
    rb"^(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rb"|[IWE]\d{4} [\d:. ]+\s+\d+ [a-z_]+\.cc:\d+\]"
    # liblsl (--lsl) announces its configuration and build at its first use, as INFO
    # lines (loguru); its warnings and errors still pass.
    rb"|\d{4}-\d\d-\d\d [\d:.]+ \(\s*[\d.]+s\) \[[^\]]*\]\s+\S+\.cpp:\d+\s+INFO\|)"
)


def _pump(read_fd: int, out_fd: int) -> None:
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = [line + b"\n" for line in lines if not NOISE.match(line)]
            if kept:
                os.write(out_fd, b"".join(kept))
        if pending and not NOISE.match(pending):
            os.write(out_fd, pending)


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Filter fd 2 for the block (see the module docstring); a no-op where fd 2 is not
    a real descriptor (e.g. under some test runners)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    pump = threading.Thread(target=_pump, args=(read_fd, saved), name="stderr-filter", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump drains and stops
        pump.join(timeout=2.0)
        os.close(saved)


def native_stderr_filtered(func: F) -> F:
    """Decorator form of `filtered_native_stderr` for a CLI's `main`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with filtered_native_stderr():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
