"""`lgnm-sub`: print the events (and optionally status) of an lgnm-live publisher.

It subscribes to every `lgnm.` topic and filters locally, so that `seq` gaps mean lost
messages (slow subscriber, network, publisher restart) rather than unsubscribed ones;
gaps and seq resets are reported on stderr. A subscriber that joins a stream midway
first sees some seq N > 1; the N - 1 earlier messages were sent before it connected,
which is neither a loss nor nothing, so it says so once per stream on stderr:
`joined cam at seq 20 (19 earlier messages were sent before this subscriber connected)`,
with `--json` as the JSON line `{"joined": {"stream": "cam", "seq": 20, "earlier": 19}}`.
Exit codes: 0 (done, timeout or Ctrl-C), 1 when `--count N` messages did not arrive
before `--timeout`, 2 for user errors.

A publisher that refuses the connection (CurveZMQ keys that do not match, or keys on one
side only) gives no error: ZeroMQ stays silent (and retries some of these forever); the
socket's monitor events tell it (`HandshakeWatch`): a refused key or a mechanism mismatch
ends lgnm-sub with one error line, handshakes that keep failing without a reason (a
wrong server key, or a forwarder whose target is down) are one warning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from zmq.utils.monitor import parse_monitor_message

from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg
from realtime.common.text import one_line
from realtime.events import TOPIC_PREFIX, EventMessage, Message, MessageError, StatusMessage, decode, utc_now_iso
from realtime.publisher import DEFAULT_ENDPOINT, check_endpoint, load_public_key, load_secret_key

COLUMNS = (("time", 12), ("stream", 12), ("type", 5), ("frames", 15), ("seconds", 17),
           ("score", 5), ("latency", 10))
PIPE_WIDTH = 120  # rich would squeeze the columns into 80 when stdout is not a terminal

MAX_TIMEOUT_S = 7 * 24 * 3600.0  # zmq_poll takes milliseconds as a C long
# Handshakes that fail without a reason given (a wrong --curve-server-key, a forwarder
# whose target is down) this many times in a row, none succeeding: one warning.
NO_DETAIL_FAILURES = 3


class HandshakeWatch:
    """Reads a SUB socket's monitor events: raises UserError when the publisher refused
    this client for good, and warns once when handshakes keep failing without a reason.

    Definitive (the run ends, exit 2): its ZAP handler refused this client's key
    (HANDSHAKE_FAILED_AUTH), or one side uses CurveZMQ and the other does not
    (HANDSHAKE_FAILED_PROTOCOL). HANDSHAKE_FAILED_NO_DETAIL is any connection lost
    during the handshake: a wrong server key, the same mechanism mismatch when the peer
    hung up first, but also a port forwarder (ssh -L, docker, kubectl port-forward) whose
    target is not up yet; so NO_DETAIL_FAILURES of them in a row are one warning naming
    the likely causes, and ZeroMQ goes on retrying. Event names: zmq_socket_monitor(3)."""

    def __init__(self, sock: zmq.Socket, endpoint: str, curve: bool,
                 warn: Callable[[str], None] | None = None) -> None:
        self.endpoint = endpoint
        self.curve = curve
        self.warn = warn
        self.failures = 0
        self.warned = False
        self.monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

    def check(self) -> None:
        """Read the events waiting; raises UserError for a refusal that will not pass."""
        while self.monitor.poll(0):
            event = parse_monitor_message(self.monitor.recv_multipart())["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.failures = 0
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                raise UserError(f"{self.endpoint}: the publisher refused this subscriber's key: the public key of "
                                "--curve-secret is not among its --curve-clients keys")
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                raise UserError(f"{self.endpoint}: the publisher does not use CurveZMQ; drop --curve-secret and "
                                "--curve-server-key" if self.curve else
                                f"{self.endpoint}: the publisher requires CurveZMQ keys (--curve-secret and "
                                "--curve-server-key; see lgnm-keygen)")
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self.failures += 1
                if self.failures >= NO_DETAIL_FAILURES and not self.warned and self.warn is not None:
                    self.warned = True
                    causes = ("--curve-server-key is not the publisher's public key, the publisher does not use "
                              "CurveZMQ" if self.curve else "the publisher requires CurveZMQ keys (--curve-secret "
                              "and --curve-server-key)")
                    self.warn(f"warning: {self.endpoint}: the handshake failed {self.failures} times without a "
                              f"reason: {causes}, or a port forwarder whose target is not up; still trying")


@dataclass
class GapTracker:
    """Per-stream seq continuity: what was missed, and when a stream restarted."""

    last: dict[str, int] = field(default_factory=dict)
    missed: int = 0

    def see(self, stream: str, seq: int) -> str | None:
        """A notice when `seq` does not follow the previous seq of `stream`, else None."""
        previous = self.last.get(stream)
        self.last[stream] = seq
        if previous is None or seq == previous + 1:
            return None
        if seq > previous + 1:
            self.missed += seq - previous - 1
            return f"{stream}: missed {seq - previous - 1} messages (seq {previous} -> {seq})"
        return f"{stream}: seq went back from {previous} to {seq} (publisher restarted)"


def joined_notice(stream: str, seq: int, as_json: bool) -> str | None:
    """What to say when `seq` is the first message this subscriber sees of `stream`:
    None from seq 1 (nothing came before), else how many messages it missed by joining
    late (a text line, or a JSON line for --json)."""
    if seq <= 1:
        return None
    if as_json:
        return json.dumps({"joined": {"stream": stream, "seq": seq, "earlier": seq - 1}})
    return (f"joined {stream} at seq {seq} ({seq - 1} earlier messages were sent before "
            "this subscriber connected)")


def _row_table(header: bool) -> Table:
    table = Table(show_header=header, show_edge=False, box=None, pad_edge=False)
    for name, width in COLUMNS:
        table.add_column(name, width=width, no_wrap=True)
    return table


def _event_row(msg: EventMessage) -> list[str]:
    return [msg.emitted_at[11:23], escape(one_line(msg.stream)), msg.type,
            f"{msg.onset_frame}-{msg.offset_frame}",
            f"{msg.onset_s:.2f}-{msg.offset_s:.2f}s", f"{msg.score:.2f}",
            f"{msg.latency_ms:.0f} ms"]


def _status_line(msg: StatusMessage) -> str:
    """A status message as one labelled line under the event table (its fields do not
    fit the event columns: they showed under `seconds`, `score` and `latency`)."""
    return (f"{utc_now_iso()[11:23]}  {one_line(msg.stream)}  status: frame {msg.frame}, {msg.fps:.1f} fps, "
            f"{'face' if msg.face else 'no face'}, source {msg.source}, dropped {msg.dropped} "
            f"(ring) / {msg.pub_dropped} (publisher)")


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="lgnm-sub", description=__doc__.splitlines()[0])
    ap.add_argument("endpoint", nargs="?", default=DEFAULT_ENDPOINT,
                    help=f"publisher endpoint (default {DEFAULT_ENDPOINT})")
    ap.add_argument("--type", choices=("ME", "MaE"), help="only events of this type")
    ap.add_argument("--json", action="store_true", help="raw JSON lines instead of a table")
    ap.add_argument("--status", action="store_true", help="also print status messages")
    ap.add_argument("--curve-secret", type=path_arg, metavar="FILE",
                    help="this client's secret key file (CurveZMQ)")
    ap.add_argument("--curve-server-key", type=path_arg, metavar="FILE",
                    help="the publisher's public key file (CurveZMQ)")
    ap.add_argument("--count", type=int, metavar="N", help="exit after N printed messages")
    ap.add_argument("--timeout", type=float, metavar="S",
                    help="exit when no message arrives for S seconds")
    return ap


def _wanted(msg: Message, args: argparse.Namespace) -> bool:
    if isinstance(msg, StatusMessage):
        return bool(args.status)
    return args.type is None or msg.type == args.type


def _connect(ctx: zmq.Context, args: argparse.Namespace) -> tuple[zmq.Socket, HandshakeWatch]:
    if (args.curve_secret is None) != (args.curve_server_key is None):
        raise UserError("--curve-secret and --curve-server-key go together")
    if args.count is not None and args.count < 1:
        raise UserError(f"--count: must be >= 1, got {args.count}")
    if args.timeout is not None and not 0 < args.timeout <= MAX_TIMEOUT_S:  # also NaN and inf
        raise UserError(f"--timeout: seconds, more than 0 and at most {MAX_TIMEOUT_S:g} (a week), got {args.timeout:g}")
    check_endpoint(args.endpoint)
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if args.curve_secret is not None:
        public, secret = load_secret_key(args.curve_secret, "--curve-secret")
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = load_public_key(args.curve_server_key, "--curve-server-key")
    sock.setsockopt(zmq.SUBSCRIBE, TOPIC_PREFIX)
    watch = HandshakeWatch(sock, args.endpoint, curve=args.curve_secret is not None,
                           warn=lambda line: print(line, file=sys.stderr, flush=True))
    try:
        sock.connect(args.endpoint)
    except zmq.ZMQError as exc:
        sock.close()
        raise UserError(f"{args.endpoint}: cannot connect ({exc})") from None
    return sock, watch


@cli_entry
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)
    err = Console(stderr=True, highlight=False)
    gaps = GapTracker()
    printed = 0
    ctx = zmq.Context()
    try:
        sock, watch = _connect(ctx, args)
        if not args.json:
            out.print(_row_table(header=True))
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(watch.monitor, zmq.POLLIN)
        while args.count is None or printed < args.count:
            # --timeout counts from the last message, not from a monitor event
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                ready = dict(poller.poll(None if left is None else int(left * 1000)))
                watch.check()
                if sock in ready or (deadline is not None and time.monotonic() >= deadline):
                    break
            if sock not in ready:
                if not gaps.last:  # nothing at all arrived: say so, an empty table reads as "no events"
                    sys.stderr.write(f"note: no message from {args.endpoint} in {args.timeout:g} s "
                                     "(is a publisher running there?)\n")  # plain: rich wraps at 80
                return 0 if args.count is None else 1
            frames = sock.recv_multipart()
            try:
                msg = decode(frames)
            except MessageError as exc:
                err.print(one_line(f"warning: skipped a malformed message: {exc}"), markup=False, highlight=False,
                          soft_wrap=True)
                continue
            first = msg.stream not in gaps.last  # joining late is not a gap: said apart
            joined = joined_notice(msg.stream, msg.seq, args.json) if first else None
            if joined is not None:
                sys.stderr.write(one_line(joined) + "\n")  # plain write: rich would wrap or style JSON
                sys.stderr.flush()
            notice = gaps.see(msg.stream, msg.seq)
            if notice:
                err.print(one_line(f"warning: {notice}"), markup=False, highlight=False)
            if not _wanted(msg, args):
                continue
            if args.json:
                sys.stdout.write(frames[1].decode() + "\n")
                sys.stdout.flush()
            else:
                if isinstance(msg, EventMessage):
                    table = _row_table(header=False)
                    table.add_row(*_event_row(msg))
                    out.print(table)
                else:
                    out.print(_status_line(msg), markup=False, soft_wrap=True)
            printed += 1
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    sys.exit(main())
