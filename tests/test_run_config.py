"""The typed run configuration (realtime/run_config.py) and the command line that builds
it: every parameter is set by an option, a mistake names parameters in the library and
options on the command line, and `--flow` with weights trained on a flow the CUDA kernels
do not implement (DIS) runs on the CPU under auto and is one error naming --flow under
cuda, end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, save_weights
from realtime.cli import build_parser, config_from_args, option_name
from realtime.cli import main as live_main
from realtime.common.types import FlowSettings
from realtime.run_config import ConfigError, RunConfig

from media import write_face_clip


def test_every_parameter_is_set_by_an_option() -> None:
    """config_from_args sets every field, each from the option option_name() names."""
    options = {o for action in build_parser()._actions for o in action.option_strings}
    for f in dataclasses.fields(RunConfig):
        assert option_name(f.name) in options, f.name
    config = config_from_args(build_parser().parse_args(["--replay", "demo", "--types", "MaE", "--batch", "3",
                                                         "--realtime", "--engine", "e.engine", "--weights", "w"]))
    assert config.types == ("MaE",) and config.batch == 3 and config.paced
    assert config.engines == (Path("e.engine"),) and config.weights == (Path("w"),)


@pytest.mark.parametrize("kwargs,library,cli", [
    ({"batch": 0}, "batch: must be >= 1, got 0", "--batch: must be >= 1, got 0"),
    ({"fps": 0.0}, "fps: must be a positive frame rate, got 0.0", "--fps: must be a positive frame rate"),
    ({"fps": float("nan")}, "fps: must be a positive frame rate, got nan", "--fps: must be a positive"),
    ({"fps": 1e-9}, "fps: must be at least 1.0 frame per second", "--fps: must be at least 1.0"),
    ({"max_frames": 0}, "max_frames: must be >= 1", "--max-frames: must be >= 1"),
    ({"save_inputs": frozenset({3})}, "save_inputs: needs out (", "--save-inputs: needs --out ("),
    ({"lsl_wait": 1.0}, "lsl_wait: needs lsl", "--lsl-wait: needs --lsl"),
    ({"engines": (Path("x"),)}, "engines: give one engine per weights file", "--engine: give one engine per --weights file"),
    ({"curve_secret": Path("k")}, "curve_secret and curve_clients go together", "--curve-secret and --curve-clients go together"),
    ({"paced": True, "report": True}, "report: needs out DIR", "--report: needs --out DIR"),
    # (these said '--stream: ... must not be empty' for a non-empty name, 'max_retries' after
    # seconds of model loading, or nothing at all for a negative camera width)
    ({"stream": "X"}, "stream: only with camera or rtsp", "--stream: only with --camera or --rtsp"),
    ({"max_retries": -1}, "max_retries: must be >= 0, got -1", "--max-retries: must be >= 0, got -1"),
    ({"width": -5}, "width: must be at least 1 pixel, got -5", "--width: must be at least 1 pixel"),
    ({"height": 0}, "height: must be at least 1 pixel, got 0", "--height: must be at least 1 pixel"),
    ({"replay": None, "rtsp": "http://cam/x"}, "rtsp: not an rtsp:// or rtsps:// URL, got http://cam/x",
     "--rtsp: not an rtsp:// or rtsps:// URL"),  # was refused only after the models had loaded
])
def test_a_mistake_names_parameters_and_the_cli_names_options(kwargs: dict, library: str, cli: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RunConfig(**{"replay": "demo", **kwargs})
    assert str(caught.value).startswith(library)
    assert str(caught.value.with_names({p: option_name(p) for p in caught.value.params})).startswith(cli)


def test_library_values_the_parser_would_refuse_are_refused_too() -> None:
    with pytest.raises(ConfigError, match="^source: give exactly one of camera, rtsp, video, replay$"):
        RunConfig(replay="demo", video="a.mp4")
    with pytest.raises(ConfigError, match="^flow: must be one of auto, cpu, cuda, got 'gpu'$"):
        RunConfig(replay="demo", flow="gpu")
    with pytest.raises(ConfigError, match="^types: expected ME, MaE or both"):
        RunConfig(replay="demo", types=())
    assert RunConfig(camera="0").live and not RunConfig(replay="demo").live


@pytest.fixture(scope="module")
def dis_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A short face clip and MaE weights whose flow is DIS (untrained, seeded)."""
    folder = tmp_path_factory.mktemp("dis")
    clip, _ = write_face_clip(folder, "dis_clip", seconds=4.0)
    torch.manual_seed(0)
    meta = WeightsMeta(type="MaE", k=18, fps=30.0, k_seconds=0.6, flow=FlowSettings(algorithm="dis"),
                       post={"k": 18, "threshold": 0.5, "win": 9, "order": 2, "tiny": 0.3})
    weights = save_weights(LGNMNet().eval(), meta, folder / "dis_MaE.safetensors")
    return {"folder": folder, "args": ["--replay", str(clip), "--weights", str(weights), "--types", "MaE",
                                       "--pub", "none", "--quiet", "--max-frames", "30"]}


def test_flow_auto_runs_dis_weights_on_the_cpu(dis_run: dict, capsys: pytest.CaptureFixture) -> None:
    out = dis_run["folder"] / "auto"
    assert live_main([*dis_run["args"], "--flow", "auto", "--out", str(out)]) == 0, capsys.readouterr().err
    run = json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]
    assert run["status"] == "ok" and run["flow"] == "cpu" and run["frames"] == 30


def test_flow_cuda_with_dis_weights_is_one_error_naming_the_option(dis_run: dict, capsys: pytest.CaptureFixture) -> None:
    assert live_main([*dis_run["args"], "--flow", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: --flow cuda: the CUDA flow implements farneback only, the weights use 'dis' flow; "
                   "use --flow cpu or auto\n")
