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

_NOISE = (
    rb"(INFO: Created TensorFlow Lite|WARNING: All log messages before absl::InitializeLog"
    rb"|[IWE]\d{4} [\d:. ]+\s+\d+ [a-z_]+\.cc:\d+\]"
    # liblsl (--lsl) announces its configuration and build at its first use, as INFO
    # lines (loguru); its warnings and errors still pass.
    rb"|\d{4}-\d\d-\d\d [\d:.]+ \(\s*[\d.]+s\) \[[^\]]*\]\s+\S+\.cpp:\d+\s+INFO\|)"
)
NOISE = re.compile(rb"^" + _NOISE)
# A native notice written while a Python line was half out (its text, then its newline in
# a second write) lands inside that line: "warning: ... as players show themW0000 ...".
_NOISE_INSIDE = re.compile(_NOISE)


def _without_noise(line: bytes) -> bytes:
    """`line` (no newline) as it should pass: b"" for a notice, the text before a notice
    that landed inside it (its own newline follows later, as an empty line), else the line
    and its newline."""
    found = _NOISE_INSIDE.search(line)
    if found is None:
        return line + b"\n"
    return line[:found.start()]


def _pump(read_fd: int, out_fd: int) -> None:
    """Copy the pipe to `out_fd` without the NOISE lines; closes both descriptors when
    the pipe's last write end is gone (its own `out_fd`: never one closed under it)."""
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        pending = b""
        while chunk := pipe.read(65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            kept = b"".join(_without_noise(line) for line in lines)
            if kept:
                os.write(out_fd, kept)
        if pending:  # a last line without its newline: the text before any notice in it
            found = _NOISE_INSIDE.search(pending)
            rest = pending if found is None else pending[:found.start()]
            if rest:
                os.write(out_fd, rest)
    os.close(out_fd)


class _Fd2Filter:
    """The one filter of the process's fd 2, shared by every user (reference counted):
    fd 2 is process-wide, so two users that each saved and restored it (two spot() runs
    ended out of order, two threads) would put back each other's dead pipes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._saved: int | None = None
        self._pump: threading.Thread | None = None

    def enter(self) -> None:
        with self._lock:
            self._users += 1
            if self._users > 1 or self._saved is not None:
                return
            try:
                if sys.stderr is not None:
                    sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):
                return  # fd 2 is no real descriptor (some test runners, pythonw): nothing to filter
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, 2)
            os.close(write_fd)
            self._saved = saved
            self._pump = threading.Thread(target=_pump, args=(read_fd, os.dup(saved)), name="stderr-filter",
                                          daemon=True)
            self._pump.start()

    def exit(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._saved is None:
                return
            if sys.stderr is not None:
                sys.stderr.flush()
            os.dup2(self._saved, 2)  # closes the pipe's write end: the pump drains and stops
            os.close(self._saved)
            self._saved = None
            pump, self._pump = self._pump, None
        if pump is not None:
            # A child process started meanwhile may hold the pipe open: do not wait for
            # it for long (the pump owns its descriptors and ends with the child).
            pump.join(timeout=2.0)


# Process-wide on purpose: it stands for fd 2, which the process has one of.
_FD2 = _Fd2Filter()


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Filter fd 2 for the block (see the module docstring); a no-op where fd 2 is not
    a real descriptor (e.g. under some test runners). Blocks may nest and overlap, in
    any thread and in any order: fd 2 is filtered while at least one is open."""
    _FD2.enter()
    try:
        yield
    finally:
        _FD2.exit()


def native_stderr_filtered(func: F) -> F:
    """Decorator form of `filtered_native_stderr` for a CLI's `main`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with filtered_native_stderr():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
