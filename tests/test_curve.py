"""CurveZMQ: keys from lgnm-keygen, ZAP-enforced client list, loopback-only without keys."""

from __future__ import annotations

import shutil
import stat

import pytest
import zmq
import zmq.utils.monitor

from realtime.common.errors import UserError
from realtime.common.types import SpotEvent
from realtime.events import decode
from realtime.publisher import CurveServerKeys, EventPublisher
from tools import keygen


def spot(i: int) -> SpotEvent:
    return SpotEvent("cam", "MaE", i + 1, i + 2, i + 9, i / 30, (i + 8) / 30, 0.7, 20.0)


@pytest.fixture
def keys(tmp_path):
    """server pair, an authorised client (its public key in clients/) and a stranger."""
    assert keygen.main([str(tmp_path / "server"), "--name", "server"]) == 0
    assert keygen.main([str(tmp_path / "private"), "--name", "alice"]) == 0
    assert keygen.main([str(tmp_path / "stranger"), "--name", "mallory"]) == 0
    (tmp_path / "clients").mkdir()  # the publisher's list: only alice's public key
    shutil.copy(tmp_path / "private" / "alice.key", tmp_path / "clients")
    return tmp_path


def curve_sub(ctx: zmq.Context, endpoint: str, client_secret, server_public) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    sock.curve_publickey, sock.curve_secretkey = zmq.auth.load_certificate(client_secret)
    sock.curve_serverkey, _ = zmq.auth.load_certificate(server_public)
    sock.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
    sock.connect(endpoint)
    return sock


def wait_auth_failure(sock: zmq.Socket) -> None:
    """Block until the server's ZAP handler has refused this socket's handshake."""
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    try:
        assert monitor.poll(20_000), "handshake was never refused"
        event = zmq.utils.monitor.recv_monitor_message(monitor)
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
    finally:
        sock.disable_monitor()
        monitor.close(0)


def test_keygen_files(keys):
    secret = keys / "server" / "server.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    public, secret_key = zmq.auth.load_certificate(secret)
    assert len(public) == 40 and secret_key is not None
    assert keygen.main([str(keys / "server"), "--name", "server"]) == 2  # never overwrites
    assert keygen.main([str(keys / "server"), "--name", "../x"]) == 2
    # a folder that cannot be created (under a file, in /proc): one line, not a traceback
    assert keygen.main([str(keys / "server" / "server.key" / "sub")]) == 2
    assert keygen.main(["/proc/lgnm-keys"]) == 2


def test_authorised_receives_everything_stranger_nothing(keys):
    curve = CurveServerKeys(keys / "server" / "server.key_secret", keys / "clients")
    ctx = zmq.Context()
    refused: list[str] = []
    try:
        with EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=curve, on_refused=refused.append) as pub:
            stranger = curve_sub(ctx, pub.endpoint, keys / "stranger" / "mallory.key_secret",
                                 keys / "server" / "server.key")
            wait_auth_failure(stranger)
            again = curve_sub(ctx, pub.endpoint, keys / "stranger" / "mallory.key_secret",
                              keys / "server" / "server.key")
            wait_auth_failure(again)  # the same key again: told once
            mallory = zmq.auth.load_certificate(keys / "stranger" / "mallory.key")[0].decode()
            assert refused == [f"--curve-clients {keys / 'clients'}: refused a client whose public key "
                               f"({mallory[:8]}...) is not among its keys"]
            alice = curve_sub(ctx, pub.endpoint, keys / "private" / "alice.key_secret",
                              keys / "server" / "server.key")
            assert pub.wait_for_subscriber(timeout=20)
            for i in range(50):
                pub.publish_event(spot(i))
            got = [decode(alice.recv_multipart()) for _ in range(50)]
            assert [m.seq for m in got] == list(range(1, 51))
            assert [m.event for m in got] == [spot(i) for i in range(50)]
            assert not stranger.poll(300)  # its connection was refused: nothing queued
    finally:
        ctx.destroy(linger=0)


def test_plain_subscriber_gets_nothing_from_curve_publisher(keys):
    curve = CurveServerKeys(keys / "server" / "server.key_secret", keys / "clients")
    ctx = zmq.Context()
    try:
        with EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=curve) as pub:
            plain = ctx.socket(zmq.SUB)
            plain.setsockopt(zmq.SUBSCRIBE, b"")
            plain.connect(pub.endpoint)
            assert not pub.wait_for_subscriber(timeout=0.5)  # never got past the handshake
            pub.publish_event(spot(0))
            assert not plain.poll(300)
    finally:
        ctx.destroy(linger=0)


def test_non_loopback_needs_keys(keys):
    with pytest.raises(UserError, match="tcp://0.0.0.0:0: binding beyond loopback requires"):
        EventPublisher("tcp://0.0.0.0:0", stream="cam")
    with pytest.raises(UserError, match=r"tcp://\*:0: binding beyond loopback"):
        EventPublisher("tcp://*:0", stream="cam")


def test_bad_key_files(keys):
    server_public = keys / "server" / "server.key"
    with pytest.raises(UserError, match="holds no secret key"):
        EventPublisher("tcp://127.0.0.1:*", stream="cam",
                       curve=CurveServerKeys(server_public, keys / "clients"))
    (keys / "nobody").mkdir()
    with pytest.raises(UserError, match="--curve-clients .*no client public keys"):
        EventPublisher("tcp://127.0.0.1:*", stream="cam",
                       curve=CurveServerKeys(keys / "server" / "server.key_secret", keys / "nobody"))
    with pytest.raises(UserError, match="--curve-secret .*no such file"):
        EventPublisher("tcp://127.0.0.1:*", stream="cam",
                       curve=CurveServerKeys(keys / "nope", keys / "clients"))


def test_a_stray_key_file_among_the_clients_is_one_error_line(keys):
    """A TLS `server.key` or notes saved as `*.key` in --curve-clients: pyzmq's ValueError
    came out as a traceback (exit 1) once the keys were loaded by ClientKeys (review)."""
    (keys / "clients" / "notes.key").write_text("hello\n")
    curve = CurveServerKeys(keys / "server" / "server.key_secret", keys / "clients")
    with pytest.raises(UserError, match=r"--curve-clients .*notes\.key: not a ZeroMQ public key"):
        EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=curve)


def test_the_refusal_callback_never_raises(keys):
    """An exception in the ZAP callback (a closed stderr) would end pyzmq's
    authentication thread and stall every later handshake."""
    from realtime.publisher import MAX_TOLD_KEYS, ClientKeys

    def broken(message: str) -> None:
        raise BrokenPipeError

    ring = ClientKeys(keys / "clients", "--curve-clients", broken)
    assert ring.callback("*", b"x" * 40) is False
    alice = zmq.auth.load_certificate(keys / "private" / "alice.key")[0]
    assert ring.callback("*", alice) is True
    for i in range(MAX_TOLD_KEYS + 50):
        ring.callback("*", f"{i:040d}".encode())
    assert len(ring.told) == MAX_TOLD_KEYS
