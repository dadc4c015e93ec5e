"""lgnm-proxy: many lgnm-live publishers (`--connect`), one subscriber endpoint; a real
proxy process and real lgnm-live processes on loopback, CurveZMQ on both sides."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from realtime.cli import main as live_main
from realtime.common.types import SpotEvent
from realtime.events import EventMessage, decode
from realtime.proxy import EventProxy, ProxyConfig, ProxySide
from realtime.proxy import main as proxy_main
from realtime.upstream import CurveClientKeys, ProxyPublisher
from tools import keygen

from media import Collector, free_port, write_face_clip, write_random_weights

STREAMS = ("cam_a", "cam_b", "cam_c")


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("proxy")
    clip, _ = write_face_clip(folder, "face_clip", seconds=8.0, seed=11)
    clips = []
    for name in STREAMS:  # one stream id per publisher: the file stem
        shutil.copy(clip, folder / f"{name}.avi")
        clips.append(folder / f"{name}.avi")
    return {"folder": folder, "clips": clips, "weights": write_random_weights(folder, threshold=0.5)}


def weight_args(media: dict) -> list[str]:
    return [a for w in media["weights"] for a in ("--weights", str(w))]


def start_proxy(publishers: str, subscribers: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "realtime.proxy", "--publishers", publishers,
                             "--subscribers", subscribers], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()  # printed once both sides are bound
    assert line.startswith("lgnm-proxy: publishers connect to"), line
    return proc


def test_three_publishers_one_subscriber_every_message_with_gapless_seq(media: dict) -> None:
    publishers, subscribers = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    proxy = start_proxy(publishers, subscribers)
    collector = Collector(subscribers)  # connected first; the publishers wait for its subscription
    collector.start()
    procs = []
    try:
        for clip in media["clips"]:
            cmd = [sys.executable, "-m", "realtime.cli", "--replay", str(clip), *weight_args(media),
                   "--connect", publishers, "--journal", str(clip.with_suffix(".jsonl")), "--quiet"]
            procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        collector.done.set()
        collector.join(10)
        proxy.terminate()
        proxy.wait(10)
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "no subscriber behind the proxy" not in err  # the wait saw the subscription
    assert proxy.returncode == 0  # SIGTERM: a clean stop
    by_stream: dict[str, list] = {}
    for m in collector.messages:
        by_stream.setdefault(m.stream, []).append(m)
    assert set(by_stream) == set(STREAMS)
    for clip in media["clips"]:
        msgs = by_stream[clip.stem]
        # every message of the stream, from the first: seq 1..N without a gap
        assert [m.seq for m in msgs] == list(range(1, len(msgs) + 1))
        journal = [json.loads(line) for line in clip.with_suffix(".jsonl").read_text().splitlines()]
        events = [m for m in msgs if isinstance(m, EventMessage)]
        assert journal and [e.to_dict() for e in events] == journal  # every event, as published


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """The proxy's pair; alice may publish, bob may subscribe (and only that)."""
    for folder, name in (("server", "proxy"), ("alice", "alice"), ("bob", "bob")):
        assert keygen.main([str(tmp_path / folder), "--name", name]) == 0
    for side, who in (("pubkeys", "alice"), ("subkeys", "bob")):
        (tmp_path / side).mkdir()
        shutil.copy(tmp_path / who / f"{who}.key", tmp_path / side)
    return tmp_path


def spot(i: int, stream: str) -> SpotEvent:
    return SpotEvent(stream, "ME", i + 1, i + 3, i + 6, i / 30, (i + 5) / 30, 0.7, 10.0)


def test_curve_on_both_sides_keeps_publishers_and_subscribers_apart(keys: Path, capsys: pytest.CaptureFixture) -> None:
    config = ProxyConfig(ProxySide("tcp://127.0.0.1:*", keys / "pubkeys", "--publishers", "--curve-publishers"),
                         ProxySide("tcp://127.0.0.1:*", keys / "subkeys", "--subscribers", "--curve-clients"),
                         keys / "server" / "proxy.key_secret")
    ctx = zmq.Context()
    try:
        with EventProxy(config) as proxy:
            sub = ctx.socket(zmq.SUB)
            sub.curve_publickey, sub.curve_secretkey = zmq.auth.load_certificate(keys / "bob" / "bob.key_secret")
            sub.curve_serverkey, _ = zmq.auth.load_certificate(keys / "server" / "proxy.key")
            sub.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
            sub.connect(proxy.subscribers_endpoint)
            server_key = keys / "server" / "proxy.key"
            with ProxyPublisher(proxy.publishers_endpoint, stream="alice_cam",
                                curve=CurveClientKeys(keys / "alice" / "alice.key_secret", server_key)) as alice, \
                 ProxyPublisher(proxy.publishers_endpoint, stream="bob_cam",
                                curve=CurveClientKeys(keys / "bob" / "bob.key_secret", server_key)) as bob:
                assert alice.wait_for_subscriber(timeout=20)  # bob's subscription, through the proxy
                assert not bob.wait_for_subscriber(timeout=1)  # a subscriber's key cannot publish
                for i in range(30):
                    alice.publish_event(spot(i, "alice_cam"))
                    bob.publish_event(spot(i, "bob_cam"))
                got = [decode(sub.recv_multipart()) for _ in range(30)]
                assert [(m.stream, m.seq) for m in got] == [("alice_cam", i) for i in range(1, 31)]
                assert not sub.poll(300)  # nothing of bob's arrived
            # the proxy says so (ZeroMQ refused bob's publisher without a word)
            bob_key = zmq.auth.load_certificate(keys / "bob" / "bob.key")[0].decode()
            assert (f"warning: lgnm-proxy: --curve-publishers {keys / 'pubkeys'}: refused a client whose public key "
                    f"({bob_key[:8]}...) is not among its keys") in capsys.readouterr().err.splitlines()
            plain = ctx.socket(zmq.SUB)  # no keys: never gets past the handshake
            plain.setsockopt(zmq.SUBSCRIBE, b"")
            plain.connect(proxy.subscribers_endpoint)
            with ProxyPublisher(proxy.publishers_endpoint, stream="alice_cam",
                                curve=CurveClientKeys(keys / "alice" / "alice.key_secret", server_key)) as again:
                assert again.wait_for_subscriber(timeout=20)
                time.sleep(0.3)
                again.publish_event(spot(0, "alice_cam"))
                assert decode(sub.recv_multipart()).stream == "alice_cam"
                assert not plain.poll(300)
    finally:
        ctx.destroy(linger=0)


@pytest.mark.parametrize("argv, needle", [
    (["--publishers", "tcp://0.0.0.0:0"], "--publishers tcp://0.0.0.0:0: binding beyond loopback requires"),
    (["--subscribers", "tcp://*:0"], "--subscribers tcp://*:0: binding beyond loopback requires"),
    (["--curve-clients", "nowhere"], "--curve-clients nowhere: no such directory"),
    (["--curve-clients", "."], "--curve-clients .: no public keys"),
    (["--publishers", "127.0.0.1:5"], "endpoint must look like"),
])
def test_proxy_option_mistakes_are_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert proxy_main(["--publishers", "tcp://127.0.0.1:0", "--subscribers", "tcp://127.0.0.1:0", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and needle in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, needle", [
    (["--connect", "tcp://10.1.2.3:5557"], "--connect tcp://10.1.2.3:5557: beyond loopback the proxy requires"),
    (["--connect", "tcp://127.0.0.1:5557", "--curve-clients", "x"], "--curve-clients: with --connect"),
    (["--connect", "tcp://127.0.0.1:5557", "--curve-secret", "x"], "--curve-secret and --curve-server-key go"),
    (["--curve-server-key", "x"], "--curve-server-key: only with --connect"),
])
def test_connect_mistakes_are_one_line(media: dict, argv: list[str], needle: str,
                                       capsys: pytest.CaptureFixture) -> None:
    code = live_main(["--replay", str(media["clips"][0]), *weight_args(media), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and needle in err and err.count("\n") == 1


def test_connect_and_pub_exclude_each_other(media: dict, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        live_main(["--replay", str(media["clips"][0]), "--connect", "tcp://127.0.0.1:1", "--pub", "none"])
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_stream_names_a_live_source(tmp_path: Path) -> None:
    """--stream: the id a camera or RTSP stream publishes under (cameraN / the URL path
    would be the same on every host feeding one proxy)."""
    from realtime.cli import build_parser
    from realtime.runner import live_item

    args = build_parser().parse_args(["--rtsp", "rtsp://127.0.0.1:1/cam", "--stream", "door_2", "--max-retries", "0"])
    item = live_item(args)
    source = item.open()
    try:
        assert item.name == source.name == "door_2"
    finally:
        source.close()
    plain = live_item(build_parser().parse_args(["--rtsp", "rtsp://127.0.0.1:1/cam", "--max-retries", "0"]))
    assert plain.name == "rtsp://127.0.0.1:1/cam"


@pytest.mark.parametrize("argv", [["--replay", "demo", "--stream", "x"], ["--camera", "0", "--stream", ""]])
def test_stream_mistakes_are_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert live_main([*argv, "--pub", "none"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --stream:") and err.count("\n") == 1
