"""Score curves of known shape shared by the post-processing and calibration tests."""

from __future__ import annotations

import numpy as np

from realtime.common.types import Interval


def two_bump_videos(k: int, hold: int, n: int = 1500) -> tuple[dict[str, np.ndarray], list[Interval]]:
    """What a K-frame pair sees of a macro-expression held `hold` frames: motion into it
    (a bump), little while it holds, motion out of it (a bump); truth from the start of
    the first motion to the end of the second (index + K//2)."""
    rng = np.random.default_rng(5)
    seqs: dict[str, np.ndarray] = {}
    truth: list[Interval] = []
    for v in range(2):
        x = 0.2 * rng.random(n)
        for start in range(100, n - 2 * k - hold - 100, 2 * k + hold + 150):
            for c in (start + k // 2, start + k + hold + k // 2):
                x += 0.8 * np.exp(-0.5 * ((np.arange(n) - c) / (k / 4)) ** 2)
            truth.append(Interval(f"v{v}", "MaE", 1 + start + k // 2, 1 + start + 2 * k + hold + k // 2))
        seqs[f"v{v}"] = np.clip(x, 0, 1)
    return seqs, truth
