"""The pipeline's face aligner gets the landmark filter of the weights and each frame's
stream time (fakes for the aligner and the scorers: no FaceMesh, no network)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from engines.pair_features import CpuPairFeatures
from engines.weights import WeightsMeta
from realtime import pipeline
from realtime.common.errors import UserError
from realtime.common.types import DEFAULT_LANDMARK_FILTER, FlowSettings, LandmarkFilter
from realtime.pipeline import RunOptions, landmark_filter_of, run_stream, setup_for_fps
from realtime.sinks import NullSink
from realtime.sources import FrameSource, RawFrame

TIMES = [0.0, 1 / 30, 2 / 30, 5 / 30, 6 / 30]  # frames 3-4 dropped: uneven steps


@dataclass
class FakeScorer:
    meta: WeightsMeta
    backend: str = "fake"

    @property
    def type(self) -> str:
        return self.meta.type

    def score(self, x: np.ndarray) -> np.ndarray:
        return np.zeros(len(x), np.float32)

    def close(self) -> None:
        pass


def scorer(type_: str, landmark_filter: LandmarkFilter | None) -> FakeScorer:
    k = 6 if type_ == "ME" else 18
    return FakeScorer(WeightsMeta(type=type_, k=k, fps=30.0, k_seconds=k / 30.0,
                                  flow=FlowSettings(landmark_filter=landmark_filter),
                                  post={"k": k, "threshold": 0.5, "win": 9, "order": 2, "tiny": 0.3}))


class TimedSource(FrameSource):
    name, is_live = "timed", False

    @property
    def fps(self) -> float:
        return 30.0

    def __iter__(self) -> Iterator[RawFrame]:
        for i, t in enumerate(TIMES):
            yield RawFrame(i + 1 if i < 3 else i + 3, 0.0, t, np.zeros((48, 64, 3), np.uint8))


class RecordingAligner:
    made: list[RecordingAligner] = []

    def __init__(self, size: int = 224, static_image_mode: bool = False, on_notice=None,
                 landmark_filter: LandmarkFilter | None = None, fps: float = 30.0) -> None:
        self.landmark_filter, self.fps, self.times = landmark_filter, fps, []
        RecordingAligner.made.append(self)

    def align(self, bgr: np.ndarray, t_stream: float | None = None) -> None:
        self.times.append(t_stream)
        return None  # no face: nothing to score

    def close(self) -> None:
        pass


@pytest.fixture()
def recorder(monkeypatch: pytest.MonkeyPatch) -> type[RecordingAligner]:
    RecordingAligner.made = []
    monkeypatch.setattr(pipeline, "FaceAligner", RecordingAligner)
    return RecordingAligner


def run(setups, options: RunOptions) -> RecordingAligner:
    run_stream(TimedSource(), setups, CpuPairFeatures(FlowSettings()), [NullSink()], options)
    return RecordingAligner.made[-1]


@pytest.mark.parametrize("landmark_filter", [DEFAULT_LANDMARK_FILTER, None])
def test_aligner_gets_the_weights_filter_and_stream_times(recorder, landmark_filter) -> None:
    setups = [setup_for_fps(scorer(t, landmark_filter), 30.0) for t in ("ME", "MaE")]
    aligner = run(setups, RunOptions(batch=4))
    assert aligner.landmark_filter == landmark_filter and aligner.fps == 30.0
    assert aligner.times == TIMES


def test_options_override_the_weights(recorder) -> None:
    setups = [setup_for_fps(scorer("ME", DEFAULT_LANDMARK_FILTER), 30.0)]
    assert run(setups, RunOptions(batch=4, landmark_filter=None)).landmark_filter is None


def test_weights_with_different_filters_are_refused() -> None:
    setups = [setup_for_fps(scorer("ME", DEFAULT_LANDMARK_FILTER), 30.0), setup_for_fps(scorer("MaE", None), 30.0)]
    with pytest.raises(UserError, match="landmark filters"):
        landmark_filter_of(setups)
    assert landmark_filter_of(setups[:1]) == DEFAULT_LANDMARK_FILTER
