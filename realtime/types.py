"""Typed records shared by the offline replay and the live path.

Frame numbers are 1-based everywhere (the first frame of any video or folder is frame 1),
as in both datasets' annotations. Intervals are inclusive at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

ExprType = Literal["ME", "MaE"]
EXPR_TYPES: tuple[ExprType, ExprType] = ("ME", "MaE")


def check_type(value: str) -> ExprType:
    """Validate an expression type label ("ME" or "MaE")."""
    if value not in EXPR_TYPES:
        raise ValueError(f"expression type must be ME or MaE, got {value!r}")
    return value  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Interval:
    """One spotted or annotated expression interval of one video (frames inclusive)."""

    video: str
    type: ExprType
    onset: int
    offset: int
    score: float | None = None
    apex: int | None = None

    def __post_init__(self) -> None:
        check_type(self.type)
        # 1 <= onset <= apex <= offset: every step that derives an interval must keep it
        # (an event with its apex outside its interval fails the event schema downstream).
        if self.onset < 1:
            raise ValueError(f"interval onset {self.onset} < 1 (frames are 1-based)")
        if self.offset < self.onset:
            raise ValueError(f"interval offset {self.offset} < onset {self.onset}")
        if self.apex is not None and not self.onset <= self.apex <= self.offset:
            raise ValueError(f"interval apex {self.apex} outside [{self.onset}, {self.offset}]")

    @property
    def length(self) -> int:
        return self.offset - self.onset + 1


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """Dense-flow algorithm and parameters; stored in the weights so that training and
    inference always compute the same features."""

    algorithm: str = "farneback"
    face_size: int = 112  # aligned grey face the flow is computed on (px)
    pyr_scale: float = 0.702
    levels: int = 5
    winsize: int = 10
    iterations: int = 2
    poly_n: int = 7
    poly_sigma: float = 1.5
    gaussian_window: bool = True
    clip: float = 15.0  # flow is clipped to +-clip px before encoding
    # Where the HS value (magnitude) is min-max normalised: "pair" over the whole image
    # (the authors' rule) or "roi" over the brow and mouth boxes minus the eyes. Farneback
    # reports several px of spurious flow on flat background and crop borders even for
    # identical frames; with "pair" that sets the max and a small expression gets ~12% of
    # the value range (tools/bench_flow.py), with "roi" it gets all of it.
    value_range: str = "roi"
    # Smallest magnitude span (px) the value is stretched over. Below it the value keeps
    # an absolute scale (255 = value_floor px), so a 1 px micro-expression, a 4 px
    # macro-expression and 0.3 px of flow noise stay distinguishable; plain min-max would
    # stretch each of them to the full 0..255 range. 3 px (at 112 px) sits above most
    # micro-expressions and below most macro-expression apexes; 0.25 (the first demo
    # weights) only kept still-face noise dark.
    value_floor: float = 3.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, d: dict) -> FlowSettings:
        known = set(cls.__slots__)  # type: ignore[attr-defined]
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown flow settings: {sorted(unknown)}")
        return cls(**d)


@dataclass(slots=True)
class AlignedFace:
    """Per-frame products computed once and reused by every pair that uses the frame."""

    grey: np.ndarray  # (S, S) uint8 similarity-aligned face crop
    landmarks: np.ndarray  # (468, 2) float32, in crop pixel coordinates
    matrix: np.ndarray  # (2, 3) float64 affine frame -> crop


@dataclass(slots=True)
class FrameRecord:
    """One captured frame in the ring buffer."""

    index: int  # 1-based frame number in its stream
    t_capture: float  # time.monotonic() when the frame was read
    t_stream: float  # stream time in seconds ((index - 1) / fps for files)
    face: AlignedFace | None  # None: no face found in this frame
    # Per-frame products of the flow backend, computed once in the capture thread and
    # reused by every pair that uses this frame (features.FlowFrame on the CPU path).
    products: Any = None


@dataclass(frozen=True, slots=True)
class FrameScore:
    """P(expression) for the pair (frame, frame + K) of one type."""

    type: ExprType
    frame: int
    score: float
    t_capture: float  # capture time of frame + K, the last frame the score needed


@dataclass(frozen=True, slots=True)
class ScoreSample:
    """What a spotter saw at one frame of one type (scores.csv): the raw P(expression) of
    the pair (frame, frame + K), its final smoothed value and the threshold in force, or
    a frame without a face (face False, no scores). `segment_start` marks the first
    scored frame after a chain break (or of the stream)."""

    type: ExprType
    frame: int
    raw: float | None
    smoothed: float | None
    threshold: float | None
    face: bool = True
    segment_start: bool = False


@dataclass(frozen=True, slots=True)
class SpotEvent:
    """A final spotted interval, as published on the event stream."""

    stream: str
    type: ExprType
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_s: float
    offset_s: float
    score: float
    latency_ms: float
