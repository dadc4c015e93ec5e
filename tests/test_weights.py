"""Weights files: metadata and outputs round-trip; damaged or foreign files -> UserError."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, file_sha256, load_weights, read_meta, save_weights
from realtime.common.errors import UserError
from realtime.common.types import DEFAULT_LANDMARK_FILTER, HEAD_MOTION_MODELS, FlowSettings, LandmarkFilter


def _meta() -> WeightsMeta:
    return WeightsMeta(
        type="ME", k=6, fps=30.0, k_seconds=0.2, flow=FlowSettings(winsize=12),
        post={"tiny": 0.3, "p": 0.8, "win": 11, "order": 2, "threshold": 0.41},
        trained_on="synthetic", created="2026-01-01T00:00:00+00:00",
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[LGNMNet, Path]:
    torch.manual_seed(0)
    net = LGNMNet()
    # Non-trivial BN statistics so that the round trip covers buffers, not just params.
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, 112, 112))
    net.eval()
    path = tmp_path_factory.mktemp("w") / "me.safetensors"
    save_weights(net, _meta(), path)
    return net, path


def test_metadata_and_outputs_round_trip(saved: tuple[LGNMNet, Path]) -> None:
    net, path = saved
    loaded, meta = load_weights(path)
    assert meta == _meta()
    assert read_meta(path) == meta
    assert not loaded.training
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        assert torch.equal(loaded.predict_proba(x), net.predict_proba(x))


def test_half_storage_loads_back_as_fp32(saved: tuple[LGNMNet, Path], tmp_path: Path) -> None:
    net, path = saved
    half = save_weights(net, _meta(), tmp_path / "half.safetensors", half=True)
    assert half.stat().st_size < path.stat().st_size * 0.6
    loaded, _ = load_weights(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        a, b = net(x), loaded(x)
    assert torch.allclose(a, b, atol=5e-2, rtol=1e-2)


def test_sha256_changes_with_content(saved: tuple[LGNMNet, Path], tmp_path: Path) -> None:
    _, path = saved
    other = tmp_path / "x.safetensors"
    other.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert len(file_sha256(path)) == 64
    assert file_sha256(path) != file_sha256(other)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nope.safetensors"):
        load_weights(tmp_path / "nope.safetensors")


def test_not_safetensors(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, bad)  # a pickle: must be refused, never unpickled
    with pytest.raises(UserError, match="model.pt"):
        load_weights(bad)


def test_truncated(saved: tuple[LGNMNet, Path], tmp_path: Path) -> None:
    _, path = saved
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(UserError, match="cut.safetensors"):
        load_weights(cut)


def test_missing_metadata(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(plain))
    with pytest.raises(UserError, match="plain.safetensors.*metadata"):
        load_weights(plain)


def test_invalid_metadata(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    save_file({"a": torch.zeros(2)}, str(bad), metadata={"lgnm": '{"type": "XE"}'})
    with pytest.raises(UserError, match="bad.safetensors.*invalid"):
        load_weights(bad)


@pytest.mark.parametrize("value", [True, False])
def test_cross_type_rule_round_trips(tmp_path: Path, value: bool) -> None:
    meta = _meta()
    meta.post = {**meta.post, "drop_inside_mae": value}
    path = save_weights(LGNMNet(), meta, tmp_path / "me.safetensors")
    assert read_meta(path).post["drop_inside_mae"] is value


@pytest.mark.parametrize("value", [1, "yes", None])
def test_cross_type_rule_must_be_a_boolean(tmp_path: Path, value: object) -> None:
    bad = tmp_path / "bad.safetensors"
    d = _meta().to_dict()
    d["post"] = {**d["post"], "drop_inside_mae": value}
    save_file({"a": torch.zeros(2)}, str(bad), metadata={"lgnm": json.dumps(d)})
    with pytest.raises(UserError, match="bad.safetensors.*drop_inside_mae"):
        read_meta(bad)


def test_adaptive_threshold_round_trips_and_is_checked(tmp_path: Path) -> None:
    meta = _meta()
    meta.post = {**meta.post, "adaptive": True}
    assert read_meta(save_weights(LGNMNet(), meta, tmp_path / "mae.safetensors")).post["adaptive"] is True
    for name, post, why in (("text", {**meta.post, "adaptive": "yes"}, "adaptive must be true or false"),
                            ("null", {**meta.post, "threshold": None}, "adaptive needs a fixed threshold")):
        bad = tmp_path / f"bad_{name}.safetensors"
        d = _meta().to_dict()
        d["post"] = post
        save_file({"a": torch.zeros(2)}, str(bad), metadata={"lgnm": json.dumps(d)})
        with pytest.raises(UserError, match=f"bad_{name}.safetensors.*{why}"):
            read_meta(bad)


def test_runs_rule_round_trips(tmp_path: Path) -> None:
    meta = _meta()
    meta.post = {**meta.post, "rule": "runs", "run_pad": -0.25, "min_run": 0.5}
    path = save_weights(LGNMNet(), meta, tmp_path / "me.safetensors")
    post = read_meta(path).post
    assert (post["rule"], post["run_pad"], post["min_run"]) == ("runs", -0.25, 0.5)


@pytest.mark.parametrize(("field", "value"), [("rule", 1), ("rule", "plateau"), ("run_pad", "0.5"), ("run_gap", -1.0),
                                              ("min_run", -1.0)])
def test_interval_rule_fields_are_checked(tmp_path: Path, field: str, value: object) -> None:
    bad = tmp_path / "bad.safetensors"
    d = _meta().to_dict()
    d["post"] = {**d["post"], "rule": "runs", field: value}
    save_file({"a": torch.zeros(2)}, str(bad), metadata={"lgnm": json.dumps(d)})
    with pytest.raises(UserError, match="bad.safetensors.*(rule|run_pad|min_run|run_gap)"):
        read_meta(bad)


def test_wrong_tensors(tmp_path: Path) -> None:
    other = tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(2)}, str(other), metadata={"lgnm": json.dumps(_meta().to_dict())})
    with pytest.raises(UserError, match="other.safetensors.*architecture"):
        load_weights(other)


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "engines" / "weights").glob("demo*.safetensors"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_demo_weights_match_the_current_feature_defaults(path: Path) -> None:
    """The bundled weights must have been trained on the features the code computes now:
    a change of FlowSettings defaults without retraining would silently feed them inputs
    they never saw."""
    model, meta = load_weights(path)
    # The landmark filter and the head-motion model are whatever the weights were trained
    # with (lgnm-live applies theirs): no filter and the nose box for the weights shipped
    # before them; the rest of the flow must be today's defaults.
    assert meta.flow.landmark_filter in (None, DEFAULT_LANDMARK_FILTER), path.name
    assert meta.flow.head_motion in HEAD_MOTION_MODELS, path.name
    assert replace(meta.flow, landmark_filter=None, head_motion="nose") == FlowSettings(), \
        f"{path.name}: retrain with tools/make_demo_weights.sh"
    assert meta.fps in (30.0, 200.0) and meta.k == meta.post["k"] and meta.post["threshold"] is not None
    assert path.name.startswith("demo200_" if meta.fps == 200 else "demo_") and path.stem.endswith(meta.type)
    with torch.no_grad():
        p = model.predict_proba(torch.zeros(2, 3, 112, 112))
    assert p.shape == (2,) and bool(((p >= 0) & (p <= 1)).all())


def test_demo_weights_are_shipped_for_both_types() -> None:
    assert {p.name for p in SHIPPED} >= {"demo_ME.safetensors", "demo_MaE.safetensors"}


def test_each_demo_pair_shares_one_flow() -> None:
    """A stream aligns each frame once and computes one flow per frame pair
    (stream_runner.common_flow), so within a pair the flow settings, landmark filter
    included, are one; the 30 and 200 fps pairs may differ (one backend each)."""

    metas = {p.name: read_meta(p) for p in SHIPPED}
    for prefix in ("demo_", "demo200_"):
        pair = {m.flow for n, m in metas.items() if n.startswith(prefix) and n[len(prefix):][0] == "M"}
        assert len(pair) == 1, prefix
    assert not FlowSettings().same_flow_as(FlowSettings(value_floor=1.0))
    assert FlowSettings().same_flow_as(FlowSettings(landmark_filter=DEFAULT_LANDMARK_FILTER))


def test_landmark_filter_round_trips(tmp_path: Path) -> None:
    meta = _meta()
    meta.flow = FlowSettings(landmark_filter=LandmarkFilter(min_cutoff=0.5, beta=3.0, d_cutoff=2.0))
    path = save_weights(LGNMNet(), meta, tmp_path / "f.safetensors")
    assert read_meta(path) == meta
    assert read_meta(path).flow.landmark_filter == LandmarkFilter(0.5, 3.0, 2.0)


def test_weights_without_the_field_load_without_a_filter(tmp_path: Path) -> None:
    """Weights written before the landmark filter existed have no `landmark_filter` in
    their flow settings: they load as no filter, i.e. the inputs they were trained on."""
    d = _meta().to_dict()
    del d["flow"]["landmark_filter"]
    old = tmp_path / "old.safetensors"
    save_file(LGNMNet().state_dict(), str(old), metadata={"lgnm": json.dumps(d)})
    _, meta = load_weights(old)
    assert meta.flow.landmark_filter is None and meta.flow == FlowSettings(winsize=12)
    d["flow"]["landmark_filter"] = None  # written as null: the same
    save_file(LGNMNet().state_dict(), str(old), metadata={"lgnm": json.dumps(d)})
    assert read_meta(old).flow.landmark_filter is None


@pytest.mark.parametrize("value", [{"min_cutoff": 1.0}, {"min_cutoff": -1.0, "beta": 1.0},
                                   {"min_cutoff": 1.0, "beta": "x"}, {"min_cutoff": 1.0, "beta": 1.0, "gain": 2},
                                   "on", 1])
def test_bad_landmark_filter_is_a_user_error(tmp_path: Path, value: object) -> None:
    d = _meta().to_dict()
    d["flow"]["landmark_filter"] = value
    bad = tmp_path / "bad.safetensors"
    save_file({"a": torch.zeros(2)}, str(bad), metadata={"lgnm": json.dumps(d)})
    with pytest.raises(UserError, match="bad.safetensors.*invalid"):
        read_meta(bad)


def test_a_pair_with_two_landmark_filters_is_named_as_such() -> None:
    """demo_ME (filtered) with baseline_MaE (unfiltered) in one stream: the error names the
    landmark filter, the part that differs, not the flow settings in general."""
    from types import SimpleNamespace

    from realtime.stream_runner import common_flow

    def scorer(flow: FlowSettings) -> SimpleNamespace:
        return SimpleNamespace(meta=SimpleNamespace(flow=flow))

    filtered = FlowSettings(landmark_filter=DEFAULT_LANDMARK_FILTER)
    with pytest.raises(UserError, match="landmark filters"):
        common_flow([scorer(filtered), scorer(FlowSettings())])  # type: ignore[list-item]
    with pytest.raises(UserError, match="flow settings"):
        common_flow([scorer(filtered), scorer(FlowSettings(value_floor=1.0))])  # type: ignore[list-item]
    assert common_flow([scorer(filtered), scorer(filtered)]) == filtered  # type: ignore[list-item]
