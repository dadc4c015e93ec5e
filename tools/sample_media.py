"""Sample inputs for benchmarks and tests: a short synthetic face clip with exact truth
(realtime.synthesis on a real face photo) and seeded untrained weights with their
metadata. tools/soak.py and tools/bench_pipeline.py use them; tests/media.py re-exports
them for the tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, save_weights
from realtime.common.types import FlowSettings, Interval
from realtime.intervals_csv import write_intervals
from realtime.synthesis.generate import SynthConfig, generate_video

CLIP_SIZE = (320, 240)


def write_face_clip(folder: Path, name: str = "clip", seconds: float = 10.0, seed: int = 3,
                    blank: tuple[int, int] | None = None, fps: float = 30.0) -> tuple[Path, list[Interval]]:
    """An MJPG .avi of a synthetic face with expressions; frames blank[0]..blank[1]
    (1-based, inclusive) replaced by a flat grey image (no face). Returns (path, truth)."""
    video = generate_video(SynthConfig(name=name, fps=fps, duration_s=seconds, size=CLIP_SIZE), seed)
    path = folder / f"{name}.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, CLIP_SIZE)
    for i, frame in enumerate(video.frames(), start=1):
        if blank is not None and blank[0] <= i <= blank[1]:
            frame = np.full_like(frame, 128)
        writer.write(frame)
    writer.release()
    write_intervals(folder / f"{name}_truth.csv", video.truth, truth=True)
    return path, video.truth


def write_random_weights(folder: Path, threshold: float = 0.55, seed: int = 0) -> list[Path]:
    """Untrained (seeded) ME and MaE weights with a calibrated threshold in their metadata."""
    paths = []
    for type_, k in (("ME", 6), ("MaE", 18)):
        torch.manual_seed(seed + k)
        net = LGNMNet().eval()
        meta = WeightsMeta(type=type_, k=k, fps=30.0, k_seconds=k / 30.0, flow=FlowSettings(),
                           post={"k": k, "threshold": threshold, "win": 9, "order": 2, "tiny": 0.3},
                           trained_on="untrained (tests)")
        path = folder / f"random_{type_}.safetensors"
        save_weights(net, meta, path)
        paths.append(path)
    return paths
