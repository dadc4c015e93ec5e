"""lgnm-sub against real publishers on loopback: in a thread (main(argv)) and, for
Ctrl-C and CurveZMQ, as a real subprocess."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import zmq

from realtime import subscriber
from realtime.common.types import SpotEvent
from realtime.events import decode_payload, encode_event, encode_status
from realtime.publisher import CurveServerKeys, EventPublisher
from realtime.subscriber import GapTracker, joined_notice
from tools import keygen

STATUS = dict(frame=5, fps=30.0, dropped=0, face=False, backend="cpu", source="down")


def spot(i: int, type: str = "ME", stream: str = "cam") -> SpotEvent:
    return SpotEvent(stream, type, 100 + i, 102 + i, 110 + i, 3.3 + i, 3.6 + i, 0.91, 42.0)


class SubThread(threading.Thread):
    def __init__(self, argv: list[str]) -> None:
        super().__init__(daemon=True)
        self.argv, self.code = argv, None

    def run(self) -> None:
        self.code = subscriber.main(self.argv)


def run_sub(argv: list[str], publish, endpoint: str, wait) -> int | None:
    thread = SubThread([endpoint, *argv])
    thread.start()
    assert wait(20), "subscriber never subscribed"
    publish()
    thread.join(30)
    assert not thread.is_alive()
    return thread.code


def test_gap_tracker():
    gaps = GapTracker()
    assert gaps.see("a", 1) is None and gaps.see("a", 2) is None
    assert gaps.see("a", 5) == "a: missed 2 messages (seq 2 -> 5)"
    assert gaps.see("b", 9) is None  # first message of another stream
    assert "publisher restarted" in gaps.see("a", 1)
    assert gaps.missed == 2


def test_joined_notice():
    assert joined_notice("cam", 1, as_json=False) is None  # from the start: nothing missed
    assert joined_notice("cam", 20, as_json=False) == \
        "joined cam at seq 20 (19 earlier messages were sent before this subscriber connected)"
    assert json.loads(joined_notice("cam", 20, as_json=True)) == \
        {"joined": {"stream": "cam", "seq": 20, "earlier": 19}}


def test_json_lines_filtered_by_type(capsys):
    with EventPublisher("tcp://127.0.0.1:*", stream="cam") as pub:
        def publish() -> None:
            for i in range(6):
                pub.publish_event(spot(i, "ME" if i % 2 else "MaE"))
                pub.publish_status(**STATUS)

        code = run_sub(["--json", "--type", "ME", "--count", "3"], publish, pub.endpoint,
                       pub.wait_for_subscriber)
    out, err = capsys.readouterr()
    assert code == 0 and "missed" not in err  # filtered messages are not gaps
    msgs = [decode_payload(line) for line in out.splitlines()]
    assert [m.event for m in msgs] == [spot(1, "ME"), spot(3, "ME"), spot(5, "ME")]
    assert [m.seq for m in msgs] == [3, 7, 11]


def test_table_with_status(capsys):
    with EventPublisher("tcp://127.0.0.1:*", stream="door") as pub:
        def publish() -> None:
            pub.publish_status(**STATUS)
            pub.publish_event(spot(0, "MaE", "door"))

        code = run_sub(["--status", "--count", "2"], publish, pub.endpoint,
                       pub.wait_for_subscriber)
    out, _ = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["time", "stream", "type", "frames"]
    assert "door  status: frame 5, " in lines[1] and ", source down, dropped " in lines[1]
    assert "door" in lines[2] and "MaE" in lines[2] and "100-110" in lines[2]
    assert "3.30-3.60s" in lines[2] and "0.91" in lines[2] and "42 ms" in lines[2]


def test_gaps_and_malformed_messages_reported(capsys):
    ctx = zmq.Context()
    try:
        pub = ctx.socket(zmq.XPUB)
        pub.bind("tcp://127.0.0.1:*")
        endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)

        def publish() -> None:
            pub.send_multipart(encode_event(spot(0), 1))
            pub.send_multipart([b"lgnm.event.ME", b"{not json"])
            pub.send_multipart(encode_event(spot(1), 2))
            pub.send_multipart(encode_status("cam", 5, **STATUS, pub_dropped=0))
            pub.send_multipart(encode_event(spot(2), 6))

        code = run_sub(["--json", "--count", "3"], publish, endpoint,
                       lambda t: bool(pub.poll(int(t * 1000))) and bool(pub.recv()))
    finally:
        ctx.destroy(linger=0)
    out, err = capsys.readouterr()
    assert code == 0
    assert [json.loads(line)["seq"] for line in out.splitlines()] == [1, 2, 6]
    assert "malformed message: message is not UTF-8 JSON" in err
    assert "cam: missed 2 messages (seq 2 -> 5)" in err


def test_timeout_exit_codes(capsys):
    with EventPublisher("tcp://127.0.0.1:*", stream="cam") as pub:
        assert subscriber.main([pub.endpoint, "--timeout", "0.2"]) == 0
        assert subscriber.main([pub.endpoint, "--timeout", "0.2", "--count", "1"]) == 1
    # nothing arrived at all: said on stderr (an empty table read as "no events")
    assert f"note: no message from {pub.endpoint} in 0.2 s (is a publisher running there?)" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--curve-secret", "x.key_secret"], "--curve-secret and --curve-server-key go together"),
    (["--count", "0"], "--count: must be >= 1"),
    (["--timeout", "-1"], "--timeout: seconds, more than 0 and at most 604800"),
    (["--timeout", "nan"], "--timeout: seconds, more than 0 and at most 604800 (a week), got nan"),
    (["--timeout", "inf"], "got inf"),  # a traceback (OverflowError) before
    (["--timeout", "1e12"], "got 1e+12"),
    (["tcp://127.0.0.1:99999", "--timeout", "1"], "the port must be 0-65535"),  # connected elsewhere silently
    (["not-an-endpoint", "--timeout", "1"], "not-an-endpoint: endpoint must look like tcp://HOST:PORT"),
])
def test_user_errors(argv, message, capsys):
    assert subscriber.main(argv) == 2
    assert message in capsys.readouterr().err


def _default_sigint() -> None:
    # A runner started in the background (`cmd &` in a script, nohup) ignores SIGINT, and
    # a child inherits that, so Python would never raise KeyboardInterrupt: the test is
    # about the CLI's Ctrl-C, so give the child the terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "realtime.subscriber", *argv], preexec_fn=_default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ctrl_c_exits_zero():
    with EventPublisher("tcp://127.0.0.1:*", stream="cam") as pub:
        proc = _spawn([pub.endpoint, "--json"])
        try:
            assert pub.wait_for_subscriber(timeout=60)  # it is running its receive loop
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("as_json", [False, True])
def test_late_subscriber_says_where_it_joined(as_json):
    """lgnm-sub connects after a real publisher sent 5 messages of stream cam: it says
    once that it joined cam at seq 6, reports no loss, and says nothing for a stream it
    sees from seq 1."""
    with EventPublisher("tcp://127.0.0.1:*", stream="cam") as pub:
        for i in range(4):  # nobody listens yet: these are sent to no one
            pub.publish_event(spot(i))
        pub.publish_status(**STATUS)
        proc = _spawn([pub.endpoint, "--status", "--count", "4", "--timeout", "60",
                       *(["--json"] if as_json else [])])
        try:
            assert pub.wait_for_subscriber(timeout=60)
            pub.publish_event(spot(4))  # cam seq 6: the first it sees
            pub.publish_status(**STATUS)  # cam seq 7
            pub.begin_stream("door")
            pub.publish_event(spot(5, stream="door"))  # door seq 1
            pub.begin_stream("cam")
            pub.publish_event(spot(6))  # cam seq 8
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    lines = err.splitlines()
    if as_json:
        assert lines == ['{"joined": {"stream": "cam", "seq": 6, "earlier": 5}}']
        assert [json.loads(line)["seq"] for line in out.splitlines()] == [6, 7, 1, 8]
    else:
        assert lines == ["joined cam at seq 6 (5 earlier messages were sent before this "
                         "subscriber connected)"]
        assert len(out.splitlines()) == 1 + 4  # header and the four messages


def test_curve_subscriber_cli(tmp_path):
    for folder, name in (("server", "server"), ("me", "bob")):
        assert keygen.main([str(tmp_path / folder), "--name", name]) == 0
    (tmp_path / "clients").mkdir()
    shutil.copy(tmp_path / "me" / "bob.key", tmp_path / "clients")
    curve = CurveServerKeys(tmp_path / "server" / "server.key_secret", tmp_path / "clients")
    with EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=curve) as pub:
        proc = _spawn([pub.endpoint, "--json", "--count", "2", "--timeout", "60",
                       "--curve-secret", str(tmp_path / "me" / "bob.key_secret"),
                       "--curve-server-key", str(tmp_path / "server" / "server.key")])
        try:
            assert pub.wait_for_subscriber(timeout=60)
            pub.publish_event(spot(0))
            pub.publish_event(spot(1, "MaE"))
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    assert [decode_payload(line).event for line in out.splitlines()] == [spot(0), spot(1, "MaE")]


@pytest.fixture
def curve_keys(tmp_path):
    """A publisher's keys, an authorised client (bob) and one that is not (eve)."""
    for folder, name in (("server", "server"), ("me", "bob"), ("other", "eve"), ("fake", "server")):
        assert keygen.main([str(tmp_path / folder), "--name", name]) == 0
    (tmp_path / "clients").mkdir()
    shutil.copy(tmp_path / "me" / "bob.key", tmp_path / "clients")
    return tmp_path


@pytest.mark.parametrize("client, server_key, curve_publisher, said", [
    ("other/eve.key_secret", "server/server.key", True,
     "the publisher refused this subscriber's key: the public key of --curve-secret is not among its "
     "--curve-clients keys"),
    # a mechanism mismatch is a PROTOCOL failure (an error), or NO_DETAIL when the peer
    # hangs up first (a warning naming it among the causes)
    (None, None, True, "the publisher requires CurveZMQ keys (--curve-secret and --curve-server-key"),
    ("me/bob.key_secret", "server/server.key", False, "the publisher does not use CurveZMQ"),
])
def test_a_publisher_that_refuses_the_subscriber_is_told(curve_keys, client, server_key, curve_publisher,
                                                         said, capsys):
    """ZeroMQ gives a refused CurveZMQ handshake no error: lgnm-sub waited out --timeout (or
    forever) and exited 0 as if nothing had been published. A refused key or a mechanism
    mismatch is now one error line and exit 2 (from the socket's monitor events)."""
    curve = (CurveServerKeys(curve_keys / "server" / "server.key_secret", curve_keys / "clients")
             if curve_publisher else None)
    keys = [] if client is None else ["--curve-secret", str(curve_keys / client),
                                      "--curve-server-key", str(curve_keys / server_key)]
    with EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=curve) as pub:
        code = subscriber.main([pub.endpoint, "--json", "--timeout", "3", *keys])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    if code == 2:  # (after the NO_DETAIL warning if those came first)
        assert lines[-1].startswith(f"error: {pub.endpoint}: ") and said in lines[-1], err
        assert all(line.startswith(f"warning: {pub.endpoint}: the handshake failed") for line in lines[:-1]), err
    else:  # NO_DETAIL only: the warning, and --timeout ends it
        assert code == 0 and f"warning: {pub.endpoint}: the handshake failed 3 times without a reason: " in err, err
        assert said in err, err


def test_a_wrong_server_key_or_a_forwarder_to_nothing_is_a_warning_not_an_error(curve_keys, capsys):
    """Handshakes lost without a reason: a wrong --curve-server-key, but also a port
    forwarder (ssh -L, docker-proxy) whose target is not up yet, which accepts and closes
    the connection. lgnm-sub warns once and keeps trying until --timeout."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    done = threading.Event()

    def accept_and_close() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    endpoint = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    try:
        code = subscriber.main([endpoint, "--json", "--timeout", "2"])
    finally:
        done.set()
        thread.join(5)
        server.close()
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("warning: ") == 1 and "or a port forwarder whose target is not up; still trying" in err, err
    with EventPublisher("tcp://127.0.0.1:*", stream="cam", curve=CurveServerKeys(
            curve_keys / "server" / "server.key_secret", curve_keys / "clients")) as pub:
        code = subscriber.main([pub.endpoint, "--json", "--timeout", "2", "--curve-secret",
                                str(curve_keys / "me" / "bob.key_secret"), "--curve-server-key",
                                str(curve_keys / "fake" / "server.key")])
    err = capsys.readouterr().err
    assert code == 0 and "--curve-server-key is not the publisher's public key" in err, err
