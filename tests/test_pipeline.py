"""The streaming pipeline on real synthetic face videos with a real (untrained) model.

The key property: the live path's events equal the offline post-processing of the very
score sequence the pipeline produced (same parameters), segment by segment.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from calibration.cross_type import drop_inside_mae
from calibration.postprocess import postprocess, smooth
from engines.pair_features import CpuPairFeatures
from engines.scorers import make_scorer
from engines.weights import load_weights, save_weights
from realtime.common.types import FlowSettings, FrameScore, StreamStatus
from realtime.pipeline import FrameClock, RunOptions, TypeSetup, run_stream, setup_for_fps
from realtime.sinks import SCORES_COLUMNS, CollectSink, NullSink, ScoresCsvSink
from realtime.sources import VideoFileSource
from realtime.stats import NO_FACE_HINT, RunStats

from media import write_face_clip, write_random_weights

BLANK = (121, 140)  # frames without a face in the middle of the clip


class ScoreLog(NullSink):
    def __init__(self) -> None:
        self.scores: list[FrameScore] = []
        self.status: list[StreamStatus] = []

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        self.scores.extend(scores)

    def on_status(self, status: StreamStatus) -> None:
        self.status.append(status)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("pipeline")
    clip, truth = write_face_clip(folder, "gap_clip", seconds=10.0, blank=BLANK)
    weights = write_random_weights(folder, threshold=0.5)
    return {"clip": clip, "truth": truth, "weights": weights}


@pytest.fixture(scope="module")
def run(media: dict) -> dict:
    scorers = [make_scorer(w, "cpu") for w in media["weights"]]
    source = VideoFileSource(media["clip"])
    setups = [setup_for_fps(s, source.fps) for s in scorers]
    collect, log = CollectSink(), ScoreLog()
    scores_csv = ScoresCsvSink(media["clip"].with_name("scores.csv"))
    stats = run_stream(source, setups, CpuPairFeatures(FlowSettings()), [collect, log, scores_csv],
                       RunOptions(batch=8))
    scores_csv.close()
    return {"setups": setups, "intervals": collect.intervals, "scores": log.scores, "stats": stats,
            "status": log.status, "scores_csv": pd.read_csv(media["clip"].with_name("scores.csv")),
            "scores_bytes": media["clip"].with_name("scores.csv").read_bytes()}


def segments(frames: np.ndarray) -> list[np.ndarray]:
    """Split sorted frame numbers into runs of consecutive frames."""
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    return np.split(frames, cuts)


def test_every_frame_is_read_and_the_blank_breaks_the_chain(run: dict) -> None:
    stats = run["stats"]
    assert stats.frames == 300
    assert stats.faces <= 300 - (BLANK[1] - BLANK[0] + 1)
    assert stats.chain_breaks >= 1
    assert stats.dropped == 0  # replay never drops


def test_summary_notices_the_frames_without_a_face(run: dict) -> None:
    stats = run["stats"]
    share = round(100 * stats.faces / 300)
    expected = f"face found in {stats.faces} of 300 frames ({share}%); frames without a face were not scored"
    assert stats.notices == [expected]  # one face in view: nothing else to say
    assert stats.to_dict()["notices"] == [expected]


def test_a_stream_without_any_face_says_so(media: dict, tmp_path) -> None:
    clip, _ = write_face_clip(tmp_path, "empty", seconds=3.0, blank=(1, 90))
    scorers = [make_scorer(w, "cpu") for w in media["weights"]]
    told: list[str] = []
    stats = run_stream(VideoFileSource(clip), [setup_for_fps(s, 30.0) for s in scorers],
                       CpuPairFeatures(FlowSettings()), [CollectSink()], RunOptions(batch=8), on_notice=told.append)
    assert stats.frames == 90 and stats.faces == 0 and stats.scores == 0
    assert stats.notices == ["no face found in any of its 90 frames: nothing could be spotted (" + NO_FACE_HINT + ")"]
    assert told == []  # the coverage is for the summary, not a live notice



def test_a_stream_stopped_early_is_not_called_too_short_for_its_own_length(media: dict) -> None:
    """Ctrl-C or SIGTERM after a few frames: the too-short notice read as if the video
    were that long; it now says the run was stopped."""
    scorers = [make_scorer(w, "cpu") for w in media["weights"]]
    stats = RunStats()
    stats = run_stream(VideoFileSource(media["clip"]), [setup_for_fps(s, 30.0) for s in scorers],
                       CpuPairFeatures(FlowSettings()), [CollectSink()], RunOptions(batch=1), stats,
                       stop=lambda: stats.frames >= 4)
    assert 4 <= stats.frames < 19 and stats.stopped
    short = [n for n in stats.notices if n.startswith(f"only {stats.frames} frames")]
    assert short and "(the run was stopped before its end), fewer than one frame pair needs" in short[0], stats.notices

def test_no_pair_spans_the_chain_break(run: dict) -> None:
    for setup in run["setups"]:
        frames = np.array(sorted(s.frame for s in run["scores"] if s.type == setup.type))
        # score of frame i uses frames i and i + K: neither may be a blank frame
        uses_blank = (frames + setup.k >= BLANK[0]) & (frames <= BLANK[1])
        assert not uses_blank.any()
        assert len(segments(frames)) == 2  # before and after the blank


def offline_by_segment(scores: Sequence[FrameScore], setup: TypeSetup) -> list:
    """Offline post-processing of one type's logged scores, segment by segment."""
    own = sorted((s.frame, s.score) for s in scores if s.type == setup.type)
    frames = np.array([f for f, _ in own])
    values = np.array([v for _, v in own])
    out = []
    for seg in segments(frames):
        sel = (frames >= seg[0]) & (frames <= seg[-1])
        out += postprocess(values[sel], setup.params, "gap_clip", setup.type, first_frame=int(seg[0]))
    return out


def test_online_events_equal_offline_postprocessing_of_the_same_scores(run: dict) -> None:
    total = 0
    for setup in run["setups"]:
        offline = sorted(offline_by_segment(run["scores"], setup), key=lambda iv: iv.onset)
        online = sorted((iv for iv in run["intervals"] if iv.type == setup.type), key=lambda iv: iv.onset)
        assert [(iv.onset, iv.offset, iv.apex) for iv in online] == [(iv.onset, iv.offset, iv.apex) for iv in offline]
        assert np.allclose([iv.score for iv in online], [iv.score for iv in offline], atol=1e-9)
        total += len(online)
    assert total > 0, "the test clip should produce some intervals"


def test_cross_type_rule_live_equals_offline(media: dict, run: dict) -> None:
    """ME weights calibrated with drop_inside_mae: the live events equal the offline rule
    on the same scores. Thresholds at the scores' 30th percentile make both types fire
    often, so the rule has something to drop (asserted)."""
    setups = []
    for setup in run["setups"]:
        own = [s.score for s in run["scores"] if s.type == setup.type]
        params = setup.params.with_(threshold=float(np.percentile(own, 30)), drop_inside_mae=setup.type == "ME")
        setups.append(dataclasses.replace(setup, params=params))
    collect, log = CollectSink(), ScoreLog()
    run_stream(VideoFileSource(media["clip"]), setups, CpuPairFeatures(FlowSettings()), [collect, log],
               RunOptions(batch=8))
    me_setup, mae_setup = setups
    me_off, mae_off = offline_by_segment(log.scores, me_setup), offline_by_segment(log.scores, mae_setup)
    kept = drop_inside_mae(me_off, mae_off)
    assert 0 < len(kept) < len(me_off), "the rule should drop some ME intervals and keep others"
    key = lambda iv: (iv.type, iv.onset, iv.offset, iv.apex)  # noqa: E731
    assert sorted(map(key, collect.intervals)) == sorted(map(key, kept + mae_off))


def test_under_an_adaptive_mae_threshold_only_maes_reaching_the_calibrated_one_drop_mes(media: dict, run: dict) -> None:
    """The live gate gets the MaE threshold as min_peak when the MaE parameters are
    adaptive: the ME events of a run with the rule are the rule's function of the same
    run's ME and MaE intervals without it, MaE intervals below the calibrated threshold
    dropping none (asserted to happen)."""
    def live(drop: bool) -> list:
        setups = []
        for setup in run["setups"]:
            own = [s.score for s in run["scores"] if s.type == setup.type]
            fixed = float(np.percentile(own, 30 if setup.type == "ME" else 97))
            setups.append(dataclasses.replace(setup, params=setup.params.with_(
                threshold=fixed, adaptive=setup.type == "MaE", drop_inside_mae=drop and setup.type == "ME")))
        collect = CollectSink()
        run_stream(VideoFileSource(media["clip"]), setups, CpuPairFeatures(FlowSettings()), [collect],
                   RunOptions(batch=8))
        return [setups[1].params.threshold, collect.intervals]

    calibrated, plain = live(drop=False)
    _, ruled = live(drop=True)
    me = [iv for iv in plain if iv.type == "ME"]
    mae = [iv for iv in plain if iv.type == "MaE"]
    assert all(iv.peak is not None for iv in plain)
    expected = drop_inside_mae(me, mae, min_peak=calibrated)
    key = lambda iv: (iv.type, iv.onset, iv.offset, iv.apex)  # noqa: E731
    assert sorted(map(key, ruled)) == sorted(map(key, expected + mae))
    low = [iv for iv in mae if iv.peak < calibrated]
    assert low and len(drop_inside_mae(me, mae)) < len(expected), "a low MaE interval should let an ME stand"


def test_status_reports_frames_backend_and_source(run: dict) -> None:
    last = run["status"][-1]
    assert last.frame == 300 and last.source == "up"
    assert last.backend.startswith("onnxruntime") and last.flow == "cpu"


def test_k_scales_with_the_source_fps(media: dict) -> None:
    scorer = make_scorer(media["weights"][1], "cpu")  # MaE: 18 frames at 30 fps = 0.6 s
    assert setup_for_fps(scorer, 30.0).k == 18
    at200 = setup_for_fps(scorer, 200.0)
    assert at200.k == 120 and at200.params.k == 120
    assert at200.params.win > scorer.meta.post["win"] and at200.params.win % 2 == 1


def test_threshold_modes_keep_or_replace_the_weights_rule(media: dict, tmp_path) -> None:
    scorer = make_scorer(media["weights"][0], "cpu")
    assert setup_for_fps(scorer, 30.0).params.threshold == 0.5
    assert setup_for_fps(scorer, 30.0, threshold="rolling").params.threshold is None
    net, meta = load_weights(media["weights"][0])
    adaptive = save_weights(net, dataclasses.replace(meta, post={**meta.post, "adaptive": True}),
                            tmp_path / "adaptive.safetensors")
    scorer = make_scorer(adaptive, "cpu")
    assert setup_for_fps(scorer, 30.0).params.adaptive  # the weights' rule, as stored
    fixed = setup_for_fps(scorer, 30.0, threshold="fixed").params
    assert fixed.threshold == 0.5 and not fixed.adaptive
    rolling = setup_for_fps(scorer, 30.0, threshold="rolling").params
    assert rolling.threshold is None and not rolling.adaptive
    plain = make_scorer(media["weights"][0], "cpu")
    assert setup_for_fps(plain, 30.0, threshold="adaptive").params.adaptive
    with pytest.raises(ValueError, match="calibrated, fixed, adaptive or rolling"):
        setup_for_fps(scorer, 30.0, threshold="auto")


def test_frame_clock_uses_recorded_times_and_extrapolates() -> None:
    clock = FrameClock(fps=10.0, keep=3)
    for i, t in ((5, 1.0), (6, 1.2), (7, 1.3)):
        clock.add(i, t, 100.0 + t)
    assert clock.at(6) == 1.2 and clock.captured(6) == pytest.approx(101.2)
    assert clock.at(9) == pytest.approx(1.5)
    assert clock.at(4) == pytest.approx(0.9)
    assert clock.captured(4) is None
    clock.add(9, 1.5, 101.5)  # a hole at 8: the frame is still found by its number
    assert clock.at(9) == 1.5 and clock.captured(9) == pytest.approx(101.5)


def test_scores_csv_holds_what_the_spotters_saw(run: dict) -> None:
    """scores.csv: per frame and type the raw score (as scored), the smoothed score (the
    offline smoothing of each segment), the threshold in force, frames without a face,
    and the chain break after the blank."""
    table = run["scores_csv"]
    assert tuple(table.columns) == SCORES_COLUMNS
    assert b"\r" not in run["scores_bytes"]  # LF lines as the other CSVs (CRLF broke awk '$8=="0"')
    for setup in run["setups"]:
        own = table[table.type == setup.type]
        faceless = own[own.face == 0]
        assert set(faceless.frame) == set(range(BLANK[0], BLANK[1] + 1))
        assert faceless.raw.isna().all() and faceless.smoothed.isna().all()
        scored = own[own.face == 1].sort_values("frame")
        logged = sorted((s.frame, s.score) for s in run["scores"] if s.type == setup.type)
        assert list(scored.frame) == [f for f, _ in logged]  # one row per scored frame
        np.testing.assert_allclose(scored.raw, [v for _, v in logged], rtol=1e-5, atol=1e-6)
        assert (scored.threshold == setup.params.threshold).all()
        frames = scored.frame.to_numpy()
        for seg in segments(frames):
            sel = scored[(scored.frame >= seg[0]) & (scored.frame <= seg[-1])]
            np.testing.assert_allclose(sel.smoothed, smooth(sel.raw.to_numpy(), setup.params.win,
                                                            setup.params.order), atol=1e-4)
        breaks = scored[scored.chain_break == 1].frame.tolist()
        assert breaks == [segments(frames)[1][0]]  # the first scored frame after the blank


def test_a_face_that_keeps_moving_gets_its_events_within_the_bound() -> None:
    """A talking face (a bundled photo whose lips and jaw move at 4 Hz, driven by
    realtime.synthesis.real_motion) keeps the shipped ME model above threshold: every event
    must still arrive within win//2 + (L - 1) + K - K//2 frames of its offset frame, long
    before the stream ends (the chunk used to stay open until the end)."""
    from engines.demo_weights import default_weights
    from realtime.sources import FrameSource, RawFrame
    from realtime.synthesis.faces import compose_scene, load_face
    from realtime.synthesis.real_motion import MotionDriver, MotionTrack

    n, fps = 450, 30.0
    t = np.arange(n) / fps
    disp = np.zeros((n, 468, 2), np.float32)
    lips = [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267,
            269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415, 152, 148, 176]
    disp[:, lips, 1] += (0.06 * (0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t)))[:, None]
    driver = MotionDriver(compose_scene(load_face("grace_hopper"), 320, 240, 100.0, np.random.default_rng(2)),
                          MotionTrack("talk", fps, disp))

    class Talking(FrameSource):
        is_live = False
        name = "talk"

        @property
        def fps(self) -> float:
            return fps

        def __iter__(self):
            for i in range(1, n + 1):
                yield RawFrame(i, time.monotonic(), (i - 1) / fps, driver.render(i))

    class Arrivals(NullSink):
        def __init__(self) -> None:
            self.newest = 0  # newest frame captured when an event arrives
            self.events: list[tuple[str, int, int]] = []

        def on_scores(self, scores: Sequence[FrameScore]) -> None:
            k = {s.type: s.k for s in setups}
            self.newest = max([self.newest, *(s.frame + k[s.type] for s in scores)])

        def on_event(self, event, interval) -> None:
            self.events.append((event.type, event.offset_frame, self.newest))

    scorers = [make_scorer(w, "cpu") for w in default_weights(fps)]
    setups = [setup_for_fps(s, fps) for s in scorers]
    arrivals = Arrivals()
    # batch 1: an event is seen with the score that released it (a batch would add up to
    # batch - 1 frames of its own to the measured delay)
    run_stream(Talking(), setups, CpuPairFeatures(scorers[0].meta.flow), [arrivals], RunOptions(batch=1))
    bound = {s.type: s.params.win // 2 + s.params.chunk_limit - 1 + s.k - s.k // 2 for s in setups}
    early = [(ty, off, at) for ty, off, at in arrivals.events if at < n]  # not at the final flush
    assert len(early) >= 5 and early[0][2] < n // 3
    assert all(at - off <= bound[ty] for ty, off, at in early), (early, bound)


def test_the_performance_table_says_unpaced_only_for_unpaced_replays() -> None:
    """The read -> scores row said '(unpaced replay: the reader runs ahead)' also for a
    --video run paced at its source rate, where frames do not queue up."""
    from rich.console import Console

    from realtime.dashboard import performance_table
    from realtime.stats import RunStats

    stats = RunStats(stream="s", frames=10)
    for ms in (5.0, 7.0, 9.0):
        stats.times.add("latency", ms)

    def text(unpaced: bool) -> str:
        console = Console(width=200, record=True)
        console.print(performance_table([stats], 1.0, unpaced=unpaced))
        return console.export_text()

    assert "read -> scores, incl. queueing (unpaced replay" in text(True)
    assert "read -> scores, incl. queueing " in text(False) and "unpaced" not in text(False)


def test_dashboard_says_how_each_type_is_thresholded() -> None:
    from calibration.postprocess import PostParams
    from realtime.dashboard import threshold_label

    assert threshold_label(PostParams(k=6, threshold=0.65)) == "threshold 0.65"
    assert "adaptive" in threshold_label(PostParams(k=6, threshold=0.65, adaptive=True))
    assert threshold_label(PostParams(k=6, min_score=0.1)) == "threshold rolling (>= 0.10)"
