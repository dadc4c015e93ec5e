"""Bounded ring between the capture thread and the scoring loop, and the capture thread.

Live mode keeps the newest frames: when the consumer falls behind, `put` drops the
OLDEST item and counts it in `dropped` (latency stays bounded; the pipeline sees the
gap in frame indices and breaks its frame chain). Replay mode never drops: `put`
blocks until there is room, so an offline replay scores every frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Generic, Literal, TypeVar

from realtime.sources import FrameSource, RawFrame

T = TypeVar("T")
RingMode = Literal["live", "replay"]


class RingClosed(Exception):
    """The ring was closed and holds no more items (the producer ended)."""


class FrameRing(Generic[T]):
    """Thread-safe bounded FIFO with drop-oldest (live) or blocking (replay) `put`."""

    def __init__(self, capacity: int, mode: RingMode = "live") -> None:
        if capacity < 1:
            raise ValueError(f"ring capacity must be >= 1, got {capacity}")
        if mode not in ("live", "replay"):
            raise ValueError(f"ring mode must be live or replay, got {mode!r}")
        self.capacity = capacity
        self.mode = mode
        self.dropped = 0  # items discarded by live-mode put (read under no lock: an int)
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Add an item; False (item discarded) when the ring is closed."""
        with self._cond:
            if self.mode == "replay":
                while len(self._items) >= self.capacity and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T:
        """The oldest item. Raises TimeoutError after `timeout` s with nothing to get;
        once closed and drained, raises the producer's error if any, else RingClosed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    if self._error is not None:
                        raise self._error
                    raise RingClosed("ring closed")
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"no item within {timeout} s")
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __iter__(self) -> Iterator[T]:
        """Items until the ring is closed and drained (then the producer's error, if any)."""
        while True:
            try:
                yield self.get()
            except RingClosed:
                return

    def close(self, error: BaseException | None = None) -> None:
        """No more puts; consumers drain what is left, then get `error` or RingClosed.
        The first close wins (a later error does not replace an earlier clean end)."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._error = error
            self._cond.notify_all()


class CaptureThread(threading.Thread, Generic[T]):
    """Reads a source, applies `process` to each frame (per-frame work such as face
    alignment runs here, in parallel with scoring) and puts the results in the ring.

    The ring is closed when the source ends; an exception from the source or from
    `process` closes it with that error, so the consumer's `get` raises it.
    """

    def __init__(self, source: FrameSource, ring: FrameRing[T],
                 process: Callable[[RawFrame], T]) -> None:
        super().__init__(name=f"capture-{source.name}", daemon=True)
        self.source = source
        self.ring = ring
        self.process = process

    def run(self) -> None:
        frames = iter(self.source)
        try:
            for raw in frames:
                if not self.ring.put(self.process(raw)):
                    break  # the consumer closed the ring: stop reading
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            self.ring.close(exc)
        else:
            self.ring.close()
        finally:
            close = getattr(frames, "close", None)  # a generator: release its capture now
            if close is not None:
                close()
            self.source.close()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the source and ring to stop and wait for the thread (a blocked live read
        returns within the source's read timeout)."""
        self.source.close()
        self.ring.close()
        if self.is_alive():
            self.join(timeout)
