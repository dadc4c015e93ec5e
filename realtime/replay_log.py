"""A log line per finished video of a replay, for output that is not a terminal.

A progress bar redraws one line in place, which a log file or a CI job cannot show (rich
draws nothing there); a replay of a whole dataset run in the background then says nothing
for hours. Each finished video prints instead, for example::

    replay 3/98 s15_0101: 4231 frames in 35.2 s (120 fps), ok; 95 left, ETA 3:10:05
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class ReplayLog:
    """Counts finished videos and says when the rest should be done.

    `frame_counts`: each video's frame count where known before it is opened (frame
    folders, dataset layouts), else None. The ETA is the frames left at the mean rate so
    far when every count is known, else the videos left at the mean time per video.
    """

    frame_counts: Sequence[int | None]
    done: int = 0
    frames: int = 0
    wall_s: float = 0.0
    _counts_known: bool = field(init=False)

    def __post_init__(self) -> None:
        self._counts_known = all(n is not None for n in self.frame_counts)

    def finish(self, name: str, frames: int, wall_s: float, error: str | None) -> str:
        """Record one finished video (`wall_s`: its seconds) and return its log line."""
        self.done += 1
        self.frames += frames
        self.wall_s += wall_s
        total = len(self.frame_counts)
        rate = f" ({frames / wall_s:.0f} fps)" if wall_s > 0 else ""
        state = "ok" if error is None else "failed"
        line = f"replay {self.done}/{total} {name}: {frames} frames in {wall_s:.1f} s{rate}, {state}"
        left = total - self.done
        if left <= 0:
            return line
        eta = self.eta_s()
        when = "" if eta is None else f", ETA {datetime.timedelta(seconds=round(eta))}"
        return f"{line}; {left} left{when}"

    def eta_s(self) -> float | None:
        """Seconds until the last video is done, None before there is a rate."""
        if self.done == 0 or self.wall_s <= 0:
            return None
        if self._counts_known and self.frames > 0:
            left = sum(n for n in self.frame_counts[self.done:] if n is not None)
            return left * self.wall_s / self.frames
        return (len(self.frame_counts) - self.done) * self.wall_s / self.done
