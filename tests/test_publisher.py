"""EventPublisher with real SUB sockets on loopback (random ports via tcp://127.0.0.1:*)."""

from __future__ import annotations

import json

import pytest
import zmq

from realtime.common.errors import UserError
from realtime.common.types import SpotEvent
from realtime.events import EventMessage, StatusMessage, decode, decode_payload
from realtime.publisher import EventPublisher, is_loopback, last_journal_seq

ANY_PORT = "tcp://127.0.0.1:*"
STATUS = dict(frame=1, fps=30.0, dropped=0, face=True, backend="cpu", source="up")


def spot(i: int, stream: str = "cam", type: str = "ME") -> SpotEvent:
    return SpotEvent(stream, type, 10 * i + 1, 10 * i + 3, 10 * i + 6, i / 3, i / 3 + 0.2,
                     0.8, 12.5)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def subscriber(ctx: zmq.Context, endpoint: str, **opts: int) -> zmq.Socket:
    sock = ctx.socket(zmq.SUB)
    for opt, value in opts.items():
        sock.setsockopt(getattr(zmq, opt), value)
    sock.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
    sock.connect(endpoint)
    return sock


def test_every_event_in_order_with_gapless_seq(ctx):
    with EventPublisher(ANY_PORT, stream="cam") as pub:
        sub = subscriber(ctx, pub.endpoint)
        assert pub.wait_for_subscriber(timeout=10)
        sent = []
        for i in range(200):
            sent.append(pub.publish_event(spot(i, type="ME" if i % 3 else "MaE")))
            if i % 50 == 0:
                sent.append(pub.publish_status(**STATUS))
        got = [decode(sub.recv_multipart()) for _ in sent]
    assert sent == list(range(1, len(sent) + 1))
    assert [m.seq for m in got] == sent
    events = [m for m in got if isinstance(m, EventMessage)]
    assert [m.event for m in events] == [spot(i, type="ME" if i % 3 else "MaE")
                                         for i in range(200)]
    statuses = [m for m in got if isinstance(m, StatusMessage)]
    assert len(statuses) == 4 and all(s.pub_dropped == 0 for s in statuses)


def test_two_subscribers_both_get_everything(ctx):
    with EventPublisher(ANY_PORT, stream="cam") as pub:
        subs = [subscriber(ctx, pub.endpoint) for _ in range(2)]
        assert pub.wait_for_subscriber(timeout=10, count=2)
        assert pub.subscriptions == 2
        for i in range(20):
            pub.publish_event(spot(i))
        for sub in subs:
            assert [decode(sub.recv_multipart()).seq for _ in range(20)] == list(range(1, 21))


def test_stuck_subscriber_never_blocks_publishing(ctx):
    n = 20_000
    with EventPublisher(ANY_PORT, stream="cam", sndhwm=100) as pub:
        stuck = subscriber(ctx, pub.endpoint, RCVHWM=10, RCVBUF=4096)
        assert pub.wait_for_subscriber(timeout=10)
        pad = "x" * 1000  # optional status field: makes the backlog exceed TCP buffers
        for _ in range(n):  # completes although nobody reads
            pub.publish_status(**STATUS, pad=pad)
        assert pub.seq == n
        seqs = []
        while stuck.poll(500):  # now read what reached the stuck subscriber
            seqs.append(decode(stuck.recv_multipart()).seq)
    assert seqs == sorted(seqs) and 0 < len(seqs) < n
    missed = sum(b - a - 1 for a, b in zip(seqs, seqs[1:])) + (seqs[0] - 1) + (n - seqs[-1])
    assert missed == n - len(seqs) > 0  # drops are visible as seq gaps


def test_journal_has_every_event_and_seq_continues(tmp_path):
    journal = tmp_path / "events.jsonl"
    with EventPublisher(ANY_PORT, stream="cam", journal=journal) as pub:
        for i in range(5):
            pub.publish_event(spot(i))
        pub.publish_status(**STATUS)  # seq 6, not journaled
        pub.publish_event(spot(5))  # seq 7
    lines = journal.read_text().splitlines()
    assert [decode_payload(line).seq for line in lines] == [1, 2, 3, 4, 5, 7]
    assert [decode_payload(line).event for line in lines] == [spot(i) for i in range(6)]
    with EventPublisher(ANY_PORT, stream="cam", journal=journal) as pub:
        assert pub.publish_event(spot(6)) == 8
    assert len(journal.read_text().splitlines()) == 7


def test_journal_torn_last_line_is_cut(tmp_path):
    journal = tmp_path / "j.jsonl"
    with EventPublisher(ANY_PORT, stream="cam", journal=journal) as pub:
        pub.publish_event(spot(0))
        pub.publish_event(spot(1))
    whole = journal.read_bytes()
    journal.write_bytes(whole + whole.splitlines()[0][:30])  # crash mid-write
    assert last_journal_seq(journal, "cam") == 2
    assert journal.read_bytes() == whole
    with EventPublisher(ANY_PORT, stream="cam", journal=journal) as pub:
        assert pub.publish_event(spot(2)) == 3
    assert [json.loads(line)["seq"] for line in journal.read_text().splitlines()] == [1, 2, 3]


def test_unusable_journal_is_user_error(tmp_path):
    with pytest.raises(UserError, match="--journal .*missing"):
        EventPublisher(ANY_PORT, stream="cam", journal=tmp_path / "missing" / "j.jsonl")
    with pytest.raises(UserError, match="--journal"):
        EventPublisher(ANY_PORT, stream="cam", journal=tmp_path)  # a directory


def test_one_journal_keeps_a_seq_per_stream(tmp_path):
    journal = tmp_path / "j.jsonl"
    with EventPublisher(ANY_PORT, stream="cam", journal=journal) as pub:
        pub.publish_event(spot(0))
        pub.publish_event(spot(1))
        pub.begin_stream("door")
        assert pub.publish_event(spot(0, stream="door")) == 1
        pub.begin_stream("cam")
        assert pub.publish_event(spot(2)) == 3
    assert last_journal_seq(journal, "cam") == 3
    assert last_journal_seq(journal, "door") == 1
    with EventPublisher(ANY_PORT, stream="door", journal=journal) as pub:
        assert pub.publish_event(spot(1, stream="door")) == 2
        pub.begin_stream("cam")
        assert pub.publish_event(spot(3)) == 4


@pytest.mark.parametrize("endpoint, local", [
    ("tcp://127.0.0.1:5556", True), ("tcp://127.3.2.1:1", True), ("tcp://localhost:5556", True),
    ("tcp://[::1]:5556", True), ("ipc:///tmp/x", True), ("inproc://x", True),
    ("tcp://0.0.0.0:5556", False), ("tcp://*:5556", False), ("tcp://eth0:5556", False),
    ("tcp://192.168.1.4:5556", False), ("tcp://[::]:5556", False), ("udp://127.0.0.1:5", False),
])
def test_is_loopback(endpoint, local):
    assert is_loopback(endpoint) is local


def test_bad_endpoint_and_busy_port():
    with pytest.raises(UserError, match="endpoint must look like"):
        EventPublisher("127.0.0.1:5556", stream="cam")
    for endpoint in ("tcp://127.0.0.1:99999", "tcp://127.0.0.1:port", "tcp://127.0.0.1"):
        # 99999 bound port 34463 (libzmq wraps the number) without a word
        with pytest.raises(UserError, match="the port must be 0-65535 or"):
            EventPublisher(endpoint, stream="cam")
    with EventPublisher(ANY_PORT, stream="cam") as pub:
        with pytest.raises(UserError, match="cannot bind"):
            EventPublisher(pub.endpoint, stream="cam")


def test_event_of_other_stream_refused():
    with EventPublisher(ANY_PORT, stream="cam") as pub:
        with pytest.raises(ValueError, match="stream"):
            pub.publish_event(spot(0, stream="other"))
        assert pub.seq == 0


def test_without_a_socket_it_numbers_journals_and_feeds_listeners(tmp_path):
    """`--pub none` with --journal or --lsl: no ZeroMQ socket, the same seq numbering,
    journal lines, and each listener gets the exact body the journal holds, in order."""
    journal = tmp_path / "events.jsonl"
    heard: list[tuple[SpotEvent, bytes]] = []
    with EventPublisher(None, stream="cam", journal=journal,
                        listeners=[lambda event, body: heard.append((event, body))]) as pub:
        assert pub.endpoint == "none"
        assert pub.publish_event(spot(0)) == 1
        assert pub.publish_status(**STATUS) == 2
        assert pub.publish_event(spot(1)) == 3
        assert pub.wait_for_subscriber(0.05) is False
        assert pub.pub_dropped == 0
    lines = journal.read_bytes().splitlines()
    assert [body for _, body in heard] == lines
    assert [event for event, _ in heard] == [spot(0), spot(1)]
    assert [decode_payload(line).seq for line in lines] == [1, 3]
