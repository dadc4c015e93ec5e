"""Typed records shared by the offline replay and the live path.

Frame numbers are 1-based everywhere (the first frame of any video or folder is frame 1),
as in both datasets' annotations. Intervals are inclusive at both ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

ExprType = Literal["ME", "MaE"]
EXPR_TYPES: tuple[ExprType, ExprType] = ("ME", "MaE")
# A stream's frame rate below this is refused, whoever gives it (--fps, a file's header,
# frames held in memory): K, a fraction of a second, would round to one frame and every
# time of a micro-expression (under 0.5 s) would be off.
MIN_FPS = 1.0


def check_type(value: str) -> ExprType:
    """Validate an expression type label ("ME" or "MaE")."""
    if value not in EXPR_TYPES:
        raise ValueError(f"expression type must be ME or MaE, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Interval:
    """One spotted or annotated expression interval of one video (frames inclusive)."""

    video: str
    type: ExprType
    onset: int
    offset: int
    score: float | None = None
    apex: int | None = None
    # The highest smoothed score inside a spotted interval (None for truth and for
    # intervals read back from files). Carried only for the cross-type rule under an
    # adaptive threshold (calibration.cross_type); not part of equality, never written.
    peak: float | None = field(default=None, compare=False)

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
class LandmarkFilter:
    """One Euro filter parameters of the landmarks (realtime/landmark_filter.py).

    cutoff(t) = min_cutoff + beta x |smoothed landmark speed|, speed in inter-ocular
    distances (IOD) per second, so the same values fit a face of any size in pixels.
    """

    min_cutoff: float  # Hz: cutoff of a still landmark (lower: steadier, more lag)
    beta: float  # Hz per IOD/s: how fast the cutoff opens with speed (higher: less lag)
    d_cutoff: float = 1.0  # Hz: cutoff of the low-pass on the speed itself

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise TypeError(f"landmark_filter.{name} must be a finite number, got {value!r}")
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ValueError(f"landmark_filter needs min_cutoff > 0, d_cutoff > 0, beta >= 0, got {self.to_dict()}")

    def to_dict(self) -> dict:
        return {"min_cutoff": self.min_cutoff, "beta": self.beta, "d_cutoff": self.d_cutoff}

    @classmethod
    def from_dict(cls, d: object) -> LandmarkFilter:
        if not isinstance(d, dict):
            raise TypeError(f"landmark_filter must be a JSON object or null, got {d!r}")
        unknown = set(d) - {"min_cutoff", "beta", "d_cutoff"}
        if unknown:
            raise ValueError(f"unknown landmark_filter settings: {sorted(unknown)}")
        return cls(**d)


# What new training uses (lgnm-train): chosen and measured in tools/bench_landmark_filter.py
# and README (Method notes, Landmarks). Weights without the field ran no filter.
DEFAULT_LANDMARK_FILTER = LandmarkFilter(min_cutoff=1.0, beta=2.0, d_cutoff=1.0)
HEAD_MOTION_MODELS = ("nose", "rigid3d", "dominant")  # FlowSettings.head_motion


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
    # Temporal filter of the landmarks before alignment (One Euro), or None: no filter.
    # Weights written before this field existed load as None (what they were trained on).
    landmark_filter: LandmarkFilter | None = None
    # Head motion removed from the flow before encoding: "nose" the authors' rule only
    # (the flow at the nose tip, subtracted from the HS image); "rigid3d" first subtracts
    # the rigid motion of a head turning or nodding in depth (engines.head_motion), which
    # the nose alone reads as brow and mouth motion; "dominant" first subtracts the motion
    # the whole face makes together, fitted robustly to the flow itself (the same field
    # model, engines.head_motion). Weights written before this field existed load as "nose".
    head_motion: str = "nose"

    def __post_init__(self) -> None:
        if self.head_motion not in HEAD_MOTION_MODELS:
            raise ValueError(f"flow head_motion must be one of {', '.join(HEAD_MOTION_MODELS)}, got {self.head_motion!r}")

    def same_flow_as(self, other: FlowSettings) -> bool:
        """Equal but for the landmark filter: the same flow, ROI and encoding, so one flow
        backend serves both (the filter only steadies the alignment before the flow)."""
        return replace(self, landmark_filter=None) == replace(other, landmark_filter=None)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__slots__}
        d["landmark_filter"] = None if self.landmark_filter is None else self.landmark_filter.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FlowSettings:
        known = set(cls.__slots__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown flow settings: {sorted(unknown)}")
        d = dict(d)
        if d.get("landmark_filter") is not None:
            d["landmark_filter"] = LandmarkFilter.from_dict(d["landmark_filter"])
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
    """A final spotted interval, as published on the event stream.

    `onset_captured` / `offset_captured`: time.monotonic() (s) at which lgnm-live read
    the onset / offset frame, None when unknown (an event decoded from a message, a frame
    no longer held). They are not part of the message; the LSL outlet stamps markers
    with them (realtime/lsl.py) and they take no part in comparisons."""

    stream: str
    type: ExprType
    onset_frame: int
    apex_frame: int
    offset_frame: int
    onset_s: float
    offset_s: float
    score: float
    latency_ms: float
    onset_captured: float | None = field(default=None, compare=False, repr=False)
    offset_captured: float | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StreamStatus:
    """What the pipeline reports about one stream once a second, and when its source goes
    down or comes back. The publisher sends it as an `lgnm.status/1` message
    (realtime/events.py), adding the message's `seq` and `pub_dropped`."""

    stream: str
    frame: int  # the last frame scored (0 before the first)
    fps: float  # frames processed per second of wall time since the stream started
    dropped: int  # frames the ring dropped because scoring fell behind (live sources)
    face: bool  # the last frame scored had a face
    backend: str  # scorer backend, e.g. "onnxruntime-cpu"
    flow: str  # flow backend, "cpu" or "cuda"
    source: Literal["up", "down"]
    extra: Mapping[str, Any] = field(default_factory=dict)  # further message fields (latency_ms)

    def message_fields(self) -> dict[str, Any]:
        """The message's fields other than `stream`, in the order they are sent."""
        return {"frame": self.frame, "fps": self.fps, "dropped": self.dropped, "face": self.face,
                "backend": self.backend, "flow": self.flow, "source": self.source, **self.extra}
