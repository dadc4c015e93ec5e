"""A log line per finished video of a replay, for output that is not a terminal, and for
a replay on a Ray cluster (videos finish side by side, in any order).

A progress bar redraws one line in place, which a log file or a CI job cannot show (rich
draws nothing there); a replay of a whole dataset run in the background then says nothing
for hours. Each finished video prints instead, for example::

    replay 3/98 s15_0101: 4231 frames in 35.2 s (120 fps), ok; 95 left, ETA 3:10:05
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from realtime.common.text import one_line


@dataclass
class ReplayLog:
    """Counts finished videos and says when the rest should be done.

    `frame_counts`: each video's frame count by name where known before it is opened
    (frame folders, dataset layouts), else None. The ETA is from the run's own elapsed
    time (`clock`, seconds; since the log was made), so videos running side by side are
    not counted twice: the frames of the videos left at the mean rate so far when every
    count is known, else the videos left at the mean time per finished video.
    """

    frame_counts: Mapping[str, int | None]
    clock: Callable[[], float] = time.monotonic
    frames: int = 0
    finished: set[str] = field(default_factory=set)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finish(self, name: str, frames: int, wall_s: float, error: str | None, stopped: bool = False) -> str:
        """Record one finished video (`wall_s`: its own seconds) and return its log line;
        `stopped`: the run was stopped (Ctrl-C) during it, so nothing is left to come."""
        self.finished.add(name)
        self.frames += frames
        total = len(self.frame_counts)
        rate = f" ({frames / wall_s:.0f} fps)" if wall_s > 0 and frames else ""
        state = "failed" if error is not None else "stopped" if stopped else "ok"
        line = f"replay {len(self.finished)}/{total} {one_line(name)}: {frames} frames in {wall_s:.1f} s{rate}, {state}"
        left = total - len(self.finished)
        if stopped:
            return f"{line}; {left} not replayed" if left > 0 else line
        if left <= 0:
            return line
        eta = self.eta_s() if self.frames > 0 else None  # no frame yet: no rate to go by
        when = "" if eta is None else f", ETA {datetime.timedelta(seconds=round(eta))}"
        return f"{line}; {left} left{when}"

    def eta_s(self) -> float | None:
        """Seconds until the last video is done, None before there is a rate."""
        elapsed = self.clock() - self.started
        if not self.finished or elapsed <= 0:
            return None
        waiting = [n for name, n in self.frame_counts.items() if name not in self.finished]
        if self.frames > 0 and all(n is not None for n in self.frame_counts.values()):
            return sum(n for n in waiting if n is not None) * elapsed / self.frames
        return len(waiting) * elapsed / len(self.finished)
