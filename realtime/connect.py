"""Bring a live source up where the user can see it, and let Ctrl-C stop it at once.

A live source connects with retries and backoff (realtime/sources.py, `LiveSource`).
In the main thread that loop is invisible and deaf: `lgnm-live`'s SIGINT handler only
sets the run's stop flag, which nothing reads while an OpenCV open blocks (up to its
open timeout) or a backoff sleeps (up to 8 s), retried forever by default. So the first
connection runs in a daemon thread, its progress goes to stderr line by line, and a stop
request closes the source and returns at once: a blocked open is abandoned, not waited
for (its thread dies with the process, and the source releases a capture that opens
after `close()`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

from realtime.sources import FrameSource, LiveSource

POLL_S = 0.05  # how often the stop flag is read while connecting: Ctrl-C's reaction time


def to_stderr(line: str) -> None:
    """Write one line to stderr now. `sys.stderr` is looked up per call: while rich's
    dashboard is up it is rich's proxy, which prints the line above the live view."""
    print(line, file=sys.stderr, flush=True)


def connect_first(source: FrameSource, stop: Callable[[], bool],
                  report: Callable[[str], None] = to_stderr, poll_s: float = POLL_S) -> bool:
    """Connect a live source before its run, telling the user how it goes.

    Sets the source's `on_connection` to `report` for the whole run (waiting, retry and
    receiving lines, also on reconnects later), then opens the first connection in a
    daemon thread. Returns True once the source delivered a frame (its fps is then
    known), False when `stop()` turned true first: the source is closed and the thread
    left behind; `stop()` is read every `poll_s` seconds. Non-live sources: True at once.
    Raises what the connection raised: `SourceUnavailable` after `max_retries` failed
    retries, `UserError` for an impossible reported frame rate.
    """
    if not isinstance(source, LiveSource):
        return True
    source.on_connection = report
    failure: list[BaseException] = []

    def work() -> None:
        try:
            source.connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=work, name=f"connect-{source.name}", daemon=True)
    thread.start()
    while thread.is_alive():
        if stop():
            source.close()  # interrupts a backoff; a late open is released, not used
            report(f"stopped while waiting for {source.describe()}")
            return False
        thread.join(poll_s)
    if failure:
        raise failure[0]
    return True
