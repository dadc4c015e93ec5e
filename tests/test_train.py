"""lgnm-train building blocks on a tiny real set: real face photo, real FaceMesh alignment,
real flow features, the real LGNMNet (MobileNetV2 from scratch) for a few steps."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from rich.console import Console

from engines import features as features_mod
from engines.weights import WeightsMeta, load_weights, save_weights
from realtime.common.types import DEFAULT_LANDMARK_FILTER, FlowSettings, Interval
from realtime.face import FaceAligner, FaceLandmarker
from realtime.labels import irl_labels
from tools import features_cache
from tools.train import Prepared, TrainConfig, TrainVideo, balanced_indices, score_inputs, train_model

K = 3
EXPR = (12, 20)  # 1-based inclusive frames of the one expression in each video


def _face() -> np.ndarray:
    skdata = pytest.importorskip("skimage.data")
    return cv2.resize(cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR), (256, 256))


def _video(face: np.ndarray, mouth: tuple[float, float], n: int, amp: float) -> list[np.ndarray]:
    """n frames of a still face whose mouth region is pulled down and back inside EXPR,
    a smooth local displacement like a lip-corner/jaw action."""
    h, w = face.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bump = np.exp(-((xs - mouth[0]) ** 2 + (ys - mouth[1]) ** 2) / (2 * 14.0**2))
    frames = []
    for i in range(1, n + 1):
        a = amp * np.sin(np.pi * (i - EXPR[0]) / (EXPR[1] - EXPR[0])) if EXPR[0] <= i <= EXPR[1] else 0.0
        frames.append(cv2.remap(face, xs, ys - a * bump, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return frames


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Prepared], Path, list[list[np.ndarray]]]:
    face = _face()
    with FaceLandmarker(static_image_mode=True) as lm:
        marks = lm.detect(face)
    assert marks is not None, "FaceMesh must find the astronaut's face"
    mouth = tuple(marks[[13, 14]].mean(axis=0))  # inner-lip midpoints
    cache = tmp_path_factory.mktemp("cache")
    prepared, videos = [], []
    for vi, amp in enumerate((5.0, 6.0)):
        frames = _video(face, mouth, 32, amp)
        vid = f"v{vi}"
        truth = [Interval(vid, "ME", *EXPR)]
        inp = features_cache.cached_inputs(frames, vid, "ME", K, FlowSettings(), cache)
        labels = irl_labels(inp.n_frames, K, truth) & inp.valid
        prepared.append(Prepared(TrainVideo(vid, "s1", 30.0, frames, truth), inp, labels))
        videos.append(frames)
    return prepared, cache, videos


def test_inputs_and_labels_are_sane(tiny: tuple) -> None:
    prepared, _, _ = tiny
    for p in prepared:
        assert p.inputs.x.shape == (32, 3, 112, 112) and p.inputs.x.dtype == np.float16
        # The last K frames have no partner; every other frame shows the face.
        assert p.inputs.valid[: 32 - K].all() and not p.inputs.valid[32 - K :].any()
        assert p.labels.any() and not p.labels.all()
        # Pairs inside the expression carry motion; still pairs encode (almost) nothing.
        moving = np.abs(p.inputs.x[14].astype(np.float32) + 1).mean()
        still = np.abs(p.inputs.x[2].astype(np.float32) + 1).mean()
        assert moving > still


def test_features_cache_reused_without_recomputing(tiny: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    prepared, cache, videos = tiny
    calls = {"pair": 0, "align": 0}
    real_pair, real_align = features_mod.pair_input_frames, features_cache.align_video

    def counting_pair(*a, **kw):  # type: ignore[no-untyped-def]
        calls["pair"] += 1
        return real_pair(*a, **kw)

    def counting_align(*a, **kw):  # type: ignore[no-untyped-def]
        calls["align"] += 1
        return real_align(*a, **kw)

    monkeypatch.setattr(features_mod, "pair_input_frames", counting_pair)
    monkeypatch.setattr(features_cache, "align_video", counting_align)
    again = features_cache.cached_inputs(videos[0], "v0", "ME", K, FlowSettings(), cache)
    assert calls == {"pair": 0, "align": 0}
    np.testing.assert_array_equal(np.asarray(again.x), np.asarray(prepared[0].inputs.x))
    # Another K reuses the aligned faces but must compute its own pairs.
    other = features_cache.cached_inputs(videos[0], "v0", "ME", K + 1, FlowSettings(), cache)
    assert calls["align"] == 0 and calls["pair"] == int(other.valid.sum()) > 0
    # Other flow settings are another cache entry, never a stale hit.
    assert features_cache.settings_hash(FlowSettings(winsize=12)) != features_cache.settings_hash(FlowSettings())


def test_balancing_repeats_positives() -> None:
    valid = np.ones(100, bool)
    labels = np.zeros(100, bool)
    labels[40:45] = True
    inp = features_cache.CachedInputs("v", "ME", K, np.zeros((100, 3, 112, 112), np.float16), valid)
    p = Prepared(TrainVideo("v", "s", 30.0, [], []), inp, labels)
    idx = balanced_indices([p], TrainConfig(neg_every=5, max_neg=12), np.random.default_rng(0))
    n_pos = sum(lab for _, _, lab in idx)
    n_neg = len(idx) - n_pos
    assert n_neg == 12  # 95 negatives, every 5th = 19, capped at 12
    assert n_pos == 10  # 5 positives repeated round(12 / 5) = 2 times


def test_loss_falls_and_weights_round_trip(tiny: tuple, tmp_path: Path) -> None:
    prepared, _, _ = tiny
    torch.set_num_threads(min(2, torch.get_num_threads()))
    cfg = TrainConfig(epochs=4, batch=8, lr=1e-3, patience=10, val_metric="frame", seed=0, max_steps=3, quiet=True)
    res = train_model(prepared[:1], prepared[1:], "ME", K, cfg, Console(quiet=True))
    assert len(res.losses) == 4 and all(np.isfinite(res.losses))
    assert res.losses[-1] < res.losses[0]
    meta = WeightsMeta(type="ME", k=K, fps=30.0, k_seconds=K / 30.0, flow=FlowSettings(), post={"k": K, "threshold": 0.5})
    path = save_weights(res.model, meta, tmp_path / "w.safetensors")
    model2, meta2 = load_weights(path)
    assert meta2.to_dict() == meta.to_dict()
    a = score_inputs(res.model, prepared[1].inputs)
    b = score_inputs(model2, prepared[1].inputs)
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all() and a[~prepared[1].inputs.valid].max() == 0


def test_cli_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.train import main, make_folds

    assert main(["--dataset", "synth", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path), "--epochs", "0"]) == 2
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path)]) == 2  # no truth.csv
    assert "truth.csv" in capsys.readouterr().err
    assert main(["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path), "--init", "w.safetensors"]) == 2
    assert "--init" in capsys.readouterr().err  # weights are per type: --type both is refused
    assert make_folds(["a", "b", "a", "c"], "loso") == [["a"], ["b"], ["c"]]
    assert make_folds(["a", "b", "c", "d"], "2") == [["a", "c"], ["b", "d"]]
    with pytest.raises(Exception, match="--folds"):
        make_folds(["a", "b"], "5")


def test_loso_run_type_writes_calibrated_weights(tiny: tuple, tmp_path: Path) -> None:
    """Two subjects -> two LOSO folds + a final model, one optimiser step each; the weights
    carry K, fps, flow and post-processing parameters with a fixed threshold."""
    from tools.train import build_parser, run_type

    _, _, videos = tiny
    train_videos = [TrainVideo(f"v{i}", f"s{i}", 30.0, frames, [Interval(f"v{i}", "ME", *EXPR)])
                    for i, frames in enumerate(videos)]  # fmt: skip
    args = build_parser().parse_args(
        ["--dataset", "synth", "--data", str(tmp_path), "--out", str(tmp_path), "--cache", str(tmp_path / "c"),
         "--folds", "loso", "--val-frac", "0", "--batch", "8"]
    )  # fmt: skip
    cfg = TrainConfig(epochs=1, batch=8, max_steps=1, quiet=True)
    path, pooled = run_type(train_videos, "ME", args, cfg, Console(quiet=True))
    assert pooled.n_truth == 2  # each subject's one interval was a test truth once
    _, meta = load_weights(path)
    k = int((EXPR[1] - EXPR[0] + 1) / 2)
    assert (meta.type, meta.k, meta.fps) == ("ME", k, 30.0)
    assert meta.post["k"] == k and meta.post["threshold"] is not None
    # New weights use the landmark filter and say so (lgnm-live applies it from here).
    assert meta.flow == FlowSettings(landmark_filter=DEFAULT_LANDMARK_FILTER)


def test_features_cache_applies_the_landmark_filter(tiny: tuple) -> None:
    """The cache aligns with the weights' landmark filter exactly as the live FaceAligner
    does (stream times (frame - 1) / fps), and filtered and raw faces never share a key."""
    _, cache, videos = tiny
    on = FlowSettings(landmark_filter=DEFAULT_LANDMARK_FILTER)
    assert features_cache.settings_hash(on) != features_cache.settings_hash(FlowSettings())
    frames = videos[0]
    raw_path = features_cache._faces_path(cache, "v0", 112, frames)
    filt_path = features_cache._faces_path(cache, "v0", 112, frames, DEFAULT_LANDMARK_FILTER, 30.0)
    assert raw_path != filt_path
    assert filt_path != features_cache._faces_path(cache, "v0", 112, frames, DEFAULT_LANDMARK_FILTER, 25.0)
    inp = features_cache.cached_inputs(frames, "v0", "ME", K, on, cache, fps=30.0)
    assert filt_path.exists()
    faces = features_cache.cached_faces(frames, "v0", 112, cache, DEFAULT_LANDMARK_FILTER, 30.0)
    with FaceAligner(112, landmark_filter=DEFAULT_LANDMARK_FILTER) as aligner:
        live = [aligner.align(f, i / 30.0) for i, f in enumerate(frames)]
    assert all(a is not None and b is not None for a, b in zip(faces, live))
    for a, b in zip(faces, live):
        np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-9)
    raw = features_cache.cached_faces(frames, "v0", 112, cache)
    assert max(np.abs(a.matrix - b.matrix).max() for a, b in zip(faces, raw)) > 1e-6
    assert int(inp.valid.sum()) == len(frames) - K


def test_init_continues_from_weights_and_refuses_other_features(tiny: tuple, tmp_path: Path) -> None:
    """--init: training starts from the given weights (so a zero-step run returns them
    unchanged) and keeps their K (a new data set's K formula may differ by one); weights
    of another type, frame rate or flow settings (but the landmark filter) are refused."""
    from realtime.common.errors import UserError
    from tools.train import _init_state

    prepared, _, _ = tiny
    start = train_model(prepared[:1], [], "ME", K, TrainConfig(epochs=1, batch=8, max_steps=2, quiet=True), Console(quiet=True))
    meta = WeightsMeta(type="ME", k=K, fps=30.0, k_seconds=K / 30.0, flow=FlowSettings(), post={"k": K, "threshold": 0.5})
    path = save_weights(start.model, meta, tmp_path / "init.safetensors", half=False)
    state, init_k = _init_state(path, "ME", 30.0, FlowSettings())
    assert init_k == K
    frozen = TrainConfig(epochs=1, batch=8, lr=1e-12, max_steps=1, quiet=True)  # one step that moves nothing
    res = train_model(prepared[:1], [], "ME", K, frozen, Console(quiet=True), init=state)
    a, b = score_inputs(start.model, prepared[1].inputs), score_inputs(res.model, prepared[1].inputs)
    # BatchNorm running stats move in train mode even at lr ~0: equal up to that drift.
    np.testing.assert_allclose(a, b, atol=0.05)
    fresh = train_model(prepared[:1], [], "ME", K, frozen, Console(quiet=True))
    assert np.abs(score_inputs(fresh.model, prepared[1].inputs) - a).max() > np.abs(b - a).max()
    with pytest.raises(UserError, match="MaE"):
        _init_state(path, "MaE", 30.0, FlowSettings())
    with pytest.raises(UserError, match="200 fps"):
        _init_state(path, "ME", 200.0, FlowSettings())
    with pytest.raises(UserError, match="flow settings"):
        _init_state(path, "ME", 30.0, FlowSettings(value_floor=0.25))
    # The landmark filter only steadies the alignment: weights trained without it may be
    # fine-tuned with it (the new file records the filter), but not with other flow too.
    filtered = FlowSettings(landmark_filter=DEFAULT_LANDMARK_FILTER)
    assert _init_state(path, "ME", 30.0, filtered)[1] == K
    with pytest.raises(UserError, match="flow settings"):
        _init_state(path, "ME", 30.0, replace(filtered, value_floor=0.25))
    # ... and never the other way: weights trained with the filter keep it.
    meta_f = WeightsMeta(type="ME", k=K, fps=30.0, k_seconds=K / 30.0, flow=filtered, post={"k": K, "threshold": 0.5})
    path_f = save_weights(start.model, meta_f, tmp_path / "init_f.safetensors", half=False)
    with pytest.raises(UserError, match="landmark filter"):
        _init_state(path_f, "ME", 30.0, FlowSettings())
    # The head-motion model: a fine-tune keeps the init weights' model unless told, and may
    # change it (the inputs differ only where a head turns in depth); the cache keys differ.
    from tools.train import init_head_motion

    assert init_head_motion(path) == "nose"
    rigid = FlowSettings(head_motion="rigid3d")
    assert _init_state(path, "ME", 30.0, rigid)[1] == K
    path_r = save_weights(start.model, replace(meta, flow=rigid), tmp_path / "init_r.safetensors", half=False)
    assert init_head_motion(path_r) == "rigid3d"
    assert features_cache.settings_hash(rigid) != features_cache.settings_hash(FlowSettings())


def test_several_data_roots_are_pooled_with_folder_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """lgnm-train --data A B: two lgnm-synth sets (e.g. plain and real-motion) pooled; equal
    video names stay apart as <folder>/<video>, each with its own truth; folders with one
    name are refused (their ids would collide)."""
    from tools.train import load_sets, main

    for name, onset in (("plain", 3), ("real", 5)):
        root = tmp_path / name
        root.mkdir()
        writer = cv2.VideoWriter(str(root / "synth_001.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 48))
        for _ in range(4):
            writer.write(np.zeros((48, 64, 3), np.uint8))
        writer.release()
        (root / "truth.csv").write_text(f"video,type,onset,apex,offset\nsynth_001,ME,{onset},,{onset + 2}\n")
    videos = load_sets("synth", [tmp_path / "plain", tmp_path / "real"], None)
    assert [v.id for v in videos] == ["plain/synth_001", "real/synth_001"]
    assert [(iv.video, iv.onset) for v in videos for iv in v.truth] == [("plain/synth_001", 3), ("real/synth_001", 5)]
    twin = tmp_path / "other" / "plain"
    twin.mkdir(parents=True)
    assert main(["--dataset", "synth", "--data", str(tmp_path / "plain"), str(twin), "--out", str(tmp_path / "o")]) == 2
    assert "share a name" in capsys.readouterr().err
    # Real datasets pooled across roots would split a subject in two for LOSO: refused.
    assert main(["--dataset", "CAS", "--data", str(tmp_path / "plain"), str(tmp_path / "real"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "--folds" in capsys.readouterr().err
