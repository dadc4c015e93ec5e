"""`lgnm-live --replay ... --ray` on a real local Ray cluster (2 CPUs, 2 workers, small
object store): the same files as the single-process run, events published with a
gapless seq, a failing video retried once then reported like a single-process run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from realtime.cli import main as live_main  # noqa: E402
from realtime.events import EventMessage  # noqa: E402
from realtime.intervals_csv import read_intervals  # noqa: E402
from realtime.replay import plan_replay  # noqa: E402

from media import Collector, free_port, write_face_clip, write_random_weights  # noqa: E402

VIDEOS = (("a_one", 11), ("b_two", 12), ("c_three", 13))


@pytest.fixture(scope="module")
def cluster():
    """A small local cluster for this module; lgnm-live --ray uses the one already up."""
    ray.init(num_cpus=2, object_store_memory=200 * 1024 * 1024, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("ray")
    videos = folder / "videos"
    videos.mkdir()
    truth = []
    for name, seed in VIDEOS:
        _, clip_truth = write_face_clip(videos, name, seconds=4.0, seed=seed)
        (videos / f"{name}_truth.csv").rename(folder / f"{name}_truth.csv")
        truth += folder.joinpath(f"{name}_truth.csv").read_text().splitlines()[1 if truth else 0:]
    (folder / "truth.csv").write_text("\n".join(truth) + "\n")
    return {"folder": folder, "videos": videos, "truth": folder / "truth.csv",
            "weights": write_random_weights(folder, threshold=0.5)}


def common(media: dict) -> list[str]:
    return [*[a for w in media["weights"] for a in ("--weights", str(w))], "--truth", str(media["truth"])]


def test_ray_replay_writes_what_the_single_process_run_writes(cluster, media: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    single, on_ray = tmp_path / "single", tmp_path / "ray"
    assert live_main(["--replay", str(media["videos"]), *common(media), "--pub", "none", "--quiet",
                      "--out", str(single)]) == 0
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    try:
        assert live_main(["--replay", str(media["videos"]), *common(media), "--pub", endpoint,
                          "--journal", str(tmp_path / "events.jsonl"), "--out", str(on_ray), "--ray"]) == 0
    finally:
        collector.done.set()
        collector.join(10)
    printed = capsys.readouterr().out
    for name, _ in VIDEOS:  # a progress line per video as it finishes
        assert f" {name}: 120 frames in " in printed
    for file in ("predictions.csv", "scores.csv", "truth.csv"):
        assert (on_ray / file).read_bytes() == (single / file).read_bytes(), file
    predicted = read_intervals(on_ray / "predictions.csv")
    assert {p.video for p in predicted} == {name for name, _ in VIDEOS}  # the comparison means something
    want, got = (json.loads((d / "metrics.json").read_text()) for d in (single, on_ray))
    assert got["megc"] == want["megc"] and got["notes"] == want["notes"]
    keys = ("stream", "status", "error", "frames", "first_frame", "last_frame", "faces", "scores", "events", "chain_breaks",
            "models", "notices", "media", "source_fps")
    assert [{k: r[k] for k in keys} for r in got["performance"]["runs"]] == \
        [{k: r[k] for k in keys} for r in want["performance"]["runs"]]
    assert sorted(p.name for p in (on_ray / "eaf").iterdir()) == sorted(p.name for p in (single / "eaf").iterdir())
    # events: published from the driver, per stream from seq 1 without a gap, one per row
    for name, _ in VIDEOS:
        msgs = [m for m in collector.messages if m.stream == name]
        assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
        events = [(e.type, e.onset_frame, e.offset_frame) for e in msgs if isinstance(e, EventMessage)]
        assert events == [(p.type, p.onset, p.offset) for p in predicted if p.video == name]
    journal = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert len(journal) == len(predicted)


def test_a_failing_video_is_retried_once_then_reported_as_in_one_process(cluster, media: dict, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a_good.avi").write_bytes((media["videos"] / "a_one.avi").read_bytes())
    (folder / "b_bad.avi").write_bytes(b"\x00" * 1000)  # not a video
    weights = [a for w in media["weights"] for a in ("--weights", str(w))]
    outs = {}
    errs = {}
    for mode, extra in (("single", []), ("ray", ["--ray"])):
        outs[mode] = tmp_path / mode
        code = live_main(["--replay", str(folder), *weights, "--pub", "none", "--quiet",
                          "--out", str(outs[mode]), *extra])
        assert code == 2
        errs[mode] = capsys.readouterr().err
    retried = [line for line in errs["ray"].splitlines() if line.startswith("note: stream b_bad: failed on the")]
    assert len(retried) == 1 and "running it once more" in retried[0]
    error = [line for line in errs["single"].splitlines() if line.startswith("error: stream b_bad:")]
    assert len(error) == 1 and error == [line for line in errs["ray"].splitlines()
                                         if line.startswith("error: stream b_bad:")]
    assert not any(line.startswith("error: stream a_good") for line in errs["ray"].splitlines())
    runs = {r["stream"]: r for r in json.loads((outs["ray"] / "metrics.json").read_text())["performance"]["runs"]}
    assert runs["b_bad"]["status"] == "failed" and runs["b_bad"]["error"] in error[0]
    assert runs["a_good"]["status"] == "ok" and runs["a_good"]["frames"] == 120
    assert (outs["ray"] / "predictions.csv").read_bytes() == (outs["single"] / "predictions.csv").read_bytes()


def test_replay_items_travel_to_workers(tmp_path: Path) -> None:
    """Ray sends each ReplayItem (its `open` is a closure) with cloudpickle: a dataset
    item arrives and opens the same frames."""
    from ray import cloudpickle

    from tools.synth import write_dataset

    root = tmp_path / "cas"
    write_dataset(root, 1, 30.0, seed=7, layout="cas", duration_s=3.0)
    plan = plan_replay("CAS", data=root, annotations=next(root.glob("*.xlsx")), truth=None, fps=None)
    item = plan.items[0]
    copy = cloudpickle.loads(cloudpickle.dumps(item))
    assert (copy.name, copy.truth, copy.n_frames) == (item.name, item.truth, item.n_frames)
    with item.open() as a, copy.open() as b:
        assert [f.index for f in a] == [f.index for f in b] != []


@pytest.mark.parametrize("argv, needle", [
    (["--video", "x.mp4", "--ray"], "--ray: only with --replay"),
    (["--replay", "demo", "--realtime", "--ray"], "--ray: a replay on a cluster runs as fast as it can"),
    (["--replay", "demo", "--ray", " "], "--ray: the address is empty"),
])
def test_ray_option_mistakes_are_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert live_main([*argv, "--pub", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err and err.count("\n") == 1


def test_without_ray_installed_it_is_one_line(media: dict, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code = live_main(["--replay", str(media["videos"]), *common(media), "--pub", "none", "--quiet", "--ray"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "error: --ray: Ray is not installed (pip install 'lgnm-live[ray]')"


def test_the_command_line_never_imports_ray() -> None:
    """--help and option parsing stay fast: Ray (seconds to import) loads only for a --ray run."""
    probe = ("import sys, realtime.cli as c; c.build_parser().parse_args(['--replay', 'demo', '--ray']); "
             "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_an_address_where_no_cluster_listens_is_one_line_at_once() -> None:
    """--ray 127.0.0.1:1: ray.init waited minutes for the absent cluster, deaf to Ctrl-C
    (SIGTERM ended it with code 15 and nothing said)."""
    import socket
    import time

    from realtime.common.errors import UserError
    from realtime.ray_cluster import check_reachable

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    t0 = time.monotonic()
    for address in (f"127.0.0.1:{port}", f"ray://127.0.0.1:{port}"):
        with pytest.raises(UserError, match=rf"--ray {address}: cannot start or join the cluster \(nothing accepts"):
            check_reachable(address)
    assert time.monotonic() - t0 < 10
    with socket.socket() as server:  # something listening: left to Ray
        server.bind(("127.0.0.1", 0))
        server.listen()
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
    check_reachable("auto")
