"""ZeroMQ publisher of events and status, with seq numbering and an optional journal.

Delivery: an XPUB socket (PUB semantics; the X lets `wait_for_subscriber` see
subscriptions). Sends never block: each subscriber has its own queue of `sndhwm`
messages and ZeroMQ drops messages for a subscriber whose queue is full, silently and
for that subscriber only (a stuck client cannot stall the pipeline or other clients).
Those per-subscriber drops show up as gaps in `seq`, which counts every message of the
stream (events and status) from 1 without gaps. `pub_dropped` counts the messages the
socket refused outright (EAGAIN or another send error); it is reported in status.

Journal (`journal=FILE`): every event (not status) is appended as one JSON line and
flushed to the OS per event; it is fsync'ed every `FSYNC_EVERY` events and on close,
so a machine crash loses at most that many events while a process crash loses none.
On open, a torn last line (crash mid-write) is cut off, and `seq` continues after the
last seq in the journal.

Without a ZeroMQ socket (`endpoint=None`, `lgnm-live --pub none` with `--journal` or
`--lsl`) the publisher still numbers every message and writes the journal. Listeners
(`listeners=[fn]`, e.g. the LSL outlet of realtime/lsl.py) get each event's JSON body as
published, `fn(event, body)`, in seq order: the same bytes as the ZeroMQ frame and the
journal line.

Security: binding anything but loopback (127.0.0.0/8, ::1, localhost, ipc://,
inproc://) requires CurveZMQ keys: the server's secret key file and a directory of the
authorised clients' public keys, enforced by a ZAP ThreadAuthenticator.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from realtime.choices import DEFAULT_ENDPOINT
from realtime.common.errors import UserError
from realtime.common.types import SpotEvent
from realtime.events import EVENT_SCHEMA, encode_status, event_dict, event_topic

FSYNC_EVERY = 16
LINGER_MS = 200  # on close, give queued messages this long to leave, then drop them
JOURNAL_TAIL_BYTES = 1 << 16  # the last complete line is within this many bytes


@dataclass(frozen=True, slots=True)
class CurveServerKeys:
    """The server's secret key file and the directory of authorised client public keys
    (files written by `lgnm-keygen` / zmq.auth.create_certificates)."""

    secret_file: Path
    clients_dir: Path

    def load(self) -> tuple[bytes, bytes]:
        """(public, secret) server keys; UserError if the files are not usable."""
        if not Path(self.secret_file).is_file():
            raise UserError(f"--curve-secret {self.secret_file}: no such file")
        if not Path(self.clients_dir).is_dir():
            raise UserError(f"--curve-clients {self.clients_dir}: no such directory")
        if not any(Path(self.clients_dir).glob("*.key")):
            raise UserError(f"--curve-clients {self.clients_dir}: no client public keys (*.key)")
        return load_secret_key(Path(self.secret_file), "--curve-secret")


MAX_TOLD_KEYS = 100  # refused keys told (and remembered) at most: a scan must not grow memory


class ClientKeys:
    """The authorised client public keys of a `--curve-clients` folder as the ZAP
    handler's credentials provider (`ThreadAuthenticator.configure_curve_callback`): the
    same test as `configure_curve(location=...)`, and a refused key is told once through
    `on_refused` (ZeroMQ refuses it without a word on either side). Keys are read once,
    at start, as `configure_curve` reads them."""

    def __init__(self, folder: Path, option: str, on_refused: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.option = option
        self.on_refused = on_refused
        self.allowed: set[bytes] = set()  # z85 public keys
        for path in sorted(self.folder.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(path)
            except (OSError, ValueError) as exc:  # a TLS key or notes under the same suffix
                raise UserError(f"{option} {path}: not a ZeroMQ public key ({exc})") from None
            self.allowed.add(public)
        self.told: set[bytes] = set()

    def callback(self, domain: str, key: bytes) -> bool:
        """ZAP: True to let the client with this z85 public key in. Never raises: an
        exception here would end pyzmq's authentication thread, and every later
        handshake, the authorised ones too, would stall."""
        if key in self.allowed:
            return True
        if key not in self.told and len(self.told) < MAX_TOLD_KEYS and self.on_refused is not None:
            self.told.add(key)
            try:
                self.on_refused(f"{self.option} {self.folder}: refused a client whose public key "
                                f"({key.decode('ascii', 'replace')[:8]}...) is not among its keys")
            except Exception:  # noqa: BLE001 - a closed stderr must not stop the authentication
                pass
        return False


def load_secret_key(path: Path, option: str) -> tuple[bytes, bytes]:
    """(public, secret) from a `*.key_secret` certificate file."""
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{option} {path}: not a ZeroMQ certificate ({exc})") from None
    if not secret:
        raise UserError(f"{option} {path}: holds no secret key (use the .key_secret file)")
    return public, secret


def load_public_key(path: Path, option: str) -> bytes:
    try:
        public, _ = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{option} {path}: not a ZeroMQ certificate ({exc})") from None
    return public


def check_endpoint(endpoint: str) -> tuple[str, str]:
    """(transport, address) of a ZeroMQ endpoint. Raises UserError when it is not
    TRANSPORT://ADDRESS, or its tcp port is outside 0-65535 (libzmq takes 99999 modulo
    65536 and binds or connects to another port without a word)."""
    transport, sep, address = endpoint.partition("://")
    if not sep:
        raise UserError(f"{endpoint}: endpoint must look like tcp://HOST:PORT")
    if transport == "tcp":
        port = address.rsplit(":", 1)[-1] if ":" in address else ""
        if port != "*" and not (port.isdigit() and int(port) <= 65535):
            raise UserError(f"{endpoint}: the port must be 0-65535 or * (any free port), got {port!r}")
    return transport, address


def is_loopback(endpoint: str) -> bool:
    """True for endpoints that other machines cannot reach. Raises UserError for an
    endpoint that is not TRANSPORT://ADDRESS, or a tcp port outside 0-65535 (libzmq takes
    99999 modulo 65536 and binds another port without a word)."""
    transport, address = check_endpoint(endpoint)
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    host = address.rsplit(":", 1)[0]
    if ";" in host:  # "source;dest" form binds nothing locally; treat as remote
        return False
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: not provably local
        return False


def cut_torn_line(path: Path) -> None:
    """Cut off a torn last line (a crash mid-write) so appends start on a fresh line."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - JOURNAL_TAIL_BYTES)
        f.seek(start)
        tail = f.read()
        complete = tail.rfind(b"\n") + 1  # bytes after the last newline are torn
        if start + complete < size and (start == 0 or complete > 0):
            f.truncate(start + complete)


def journal_seqs(path: Path) -> dict[str, int]:
    """The last seq of every stream in a journal (damaged lines are skipped)."""
    seqs: dict[str, int] = {}
    with open(path, "rb") as f:
        for line in f:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("seq"), int) and isinstance(doc.get("stream"), str):
                seqs[doc["stream"]] = doc["seq"]
    return seqs


def last_journal_seq(path: Path, stream: str) -> int:
    """The seq of the stream's last complete event line in the journal (0: none), after
    cutting off a torn last line. One journal may hold several streams (a replay of
    many videos): each continues its own seq."""
    cut_torn_line(path)
    return journal_seqs(path).get(stream, 0)


EventListener = Callable[[SpotEvent, bytes], None]


class EventPublisher:
    """Publishes events and status of one stream at a time over one socket (none when
    `endpoint` is None); a replay of many videos moves on with `begin_stream` (each
    stream has its own seq); use as a context manager. With `curve`, a subscriber whose
    key is refused is told once per key through `on_refused` (called from the ZAP thread)."""

    def __init__(self, endpoint: str | None = DEFAULT_ENDPOINT, *, stream: str,
                 journal: Path | None = None, curve: CurveServerKeys | None = None,
                 sndhwm: int = 1000, listeners: Sequence[EventListener] = (),
                 on_refused: Callable[[str], None] | None = None,
                 on_journal_error: Callable[[str], None] | None = None) -> None:
        if not stream:
            raise ValueError("EventPublisher stream: the stream id must not be empty")
        if endpoint is not None and not is_loopback(endpoint) and curve is None:
            raise UserError(f"{endpoint}: binding beyond loopback requires CurveZMQ keys "
                            "(--curve-secret FILE and --curve-clients DIR; see lgnm-keygen)")
        self.stream = stream
        self.pub_dropped = 0
        self._lock = threading.Lock()  # sockets are not thread-safe; seq must not race
        self._journal: IO[bytes] | None = None
        self._journal_path: Path | None = None
        self.journal_error: str | None = None  # why the journal stopped (a full disk), if it did
        self._on_journal_error = on_journal_error
        self._unsynced = 0
        self._seq = 0
        self._seqs: dict[str, int] = {}  # last seq of the streams published before this one
        self._subscriptions = 0
        self._listeners = list(listeners)
        self._ctx: zmq.Context | None = None
        self._auth: ThreadAuthenticator | None = None
        self._socket: zmq.Socket | None = None
        keys = curve.load() if curve is not None else None  # before anything needs closing
        if journal is not None:
            journal = Path(journal)
            if journal.exists() and not journal.is_file():  # /dev/full, a FIFO: no file to append to
                raise UserError(f"--journal {journal}: not a regular file")
            try:
                if journal.exists():
                    self._seq = last_journal_seq(journal, stream)
                self._journal = open(journal, "ab")
                self._journal_path = journal
            except OSError as exc:
                raise UserError(f"--journal {journal}: {exc.strerror}") from None
        if endpoint is None:
            self.endpoint: str = "none"  # the bound address, or "none": no socket
            return
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.XPUB)
        try:
            self._socket.setsockopt(zmq.LINGER, LINGER_MS)
            self._socket.setsockopt(zmq.SNDHWM, sndhwm)
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscriber's subscription
            if keys is not None and curve is not None:
                self._auth = ThreadAuthenticator(self._ctx)
                self._auth.start()
                self._auth.configure_curve_callback(
                    domain="*", credentials_provider=ClientKeys(curve.clients_dir, "--curve-clients", on_refused))
                self._socket.curve_publickey, self._socket.curve_secretkey = keys
                self._socket.curve_server = True
            try:
                self._socket.bind(endpoint)
            except zmq.ZMQError as exc:
                raise UserError(f"{endpoint}: cannot bind ({exc})") from None
        except BaseException:
            self.close()
            raise
        self.endpoint = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def begin_stream(self, stream: str) -> None:
        """Publish the following messages as `stream`; its seq continues from the journal
        (or from where this publisher left it), so it stays gapless per stream."""
        if not stream:
            raise ValueError("EventPublisher stream: the stream id must not be empty")
        with self._lock:
            if stream == self.stream:
                return
            self._seqs[self.stream] = self._seq
            if stream in self._seqs:
                self._seq = self._seqs[stream]
            elif self._journal is not None and self._journal_ok(self._journal.flush):
                self._seq = journal_seqs(self._journal_path).get(stream, 0)  # type: ignore[arg-type]
            else:
                self._seq = 0
            self.stream = stream

    @property
    def seq(self) -> int:
        """The seq of the last message published (0: none yet)."""
        return self._seq

    @property
    def subscriptions(self) -> int:
        """Subscriptions received so far (one per topic prefix per subscriber)."""
        with self._lock:
            self._drain_subscriptions(0)
            return self._subscriptions

    def wait_for_subscriber(self, timeout: float, count: int = 1) -> bool:
        """Block until `count` subscriptions have arrived since the publisher started
        (True) or `timeout` s pass (False). Messages sent before a subscriber's
        subscription arrives never reach it (ZeroMQ's "slow joiner")."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                remaining = deadline - time.monotonic()
                self._drain_subscriptions(max(0, int(remaining * 1000)))
                if self._subscriptions >= count:
                    return True
                if remaining <= 0:
                    return False

    def _drain_subscriptions(self, wait_ms: int) -> None:
        """Read the subscription notices XPUB queues (unbounded if never read)."""
        if self._socket is None:
            return
        while self._socket.poll(wait_ms, zmq.POLLIN):
            # b"\x01<topic>" per subscription (XPUB_VERBOSE: also repeated topics),
            # b"\x00<topic>" per unsubscription.
            if self._socket.recv(zmq.NOBLOCK)[:1] == b"\x01":
                self._subscriptions += 1
            wait_ms = 0  # then take what is already queued, without waiting

    def publish_event(self, event: SpotEvent) -> int:
        """Send (and journal) an event; returns its seq."""
        if event.stream != self.stream:
            raise ValueError(f"event of stream {event.stream!r} on publisher of {self.stream!r}")
        with self._lock:
            seq = self._seq + 1
            doc = event_dict(event, seq)
            payload = json.dumps(doc, allow_nan=False, separators=(",", ":")).encode()
            self._seq = seq  # numbered (and journaled) even if the socket drops it
            self._write_journal(payload)
            self._send([event_topic(event.type), payload])
            for listener in self._listeners:
                listener(event, payload)
            return seq

    def publish_status(self, *, frame: int, fps: float, dropped: int, face: bool, backend: str,
                       source: Literal["up", "down"], **extra: Any) -> int:
        """Send a status message (pub_dropped is added here); returns its seq."""
        with self._lock:
            seq = self._seq + 1
            frames = encode_status(self.stream, seq, frame=frame, fps=fps, dropped=dropped,
                                   face=face, backend=backend, source=source,
                                   pub_dropped=self.pub_dropped, **extra)
            self._seq = seq
            self._send(frames)
            return seq

    def _send(self, frames: list[bytes]) -> None:
        if self._socket is None:
            return
        self._drain_subscriptions(0)
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.ZMQError:  # EAGAIN (full) or a closing context: count, never block
            self.pub_dropped += 1

    def _write_journal(self, payload: bytes) -> None:
        journal = self._journal
        if journal is None:
            return

        start = journal.tell()

        def write() -> None:
            journal.write(payload + b"\n")
            journal.flush()
            self._unsynced += 1
            if self._unsynced >= FSYNC_EVERY:
                os.fsync(journal.fileno())
                self._unsynced = 0

        self._journal_ok(write, start)

    def _journal_ok(self, action: Callable[[], object], start: int | None = None) -> bool:
        """Run a journal write; on an OSError (a full disk, a network drive gone) the
        journal stops, once: `journal_error` says why and up to which seq it holds, and
        `on_journal_error` is told; a line written in part is cut off (`start`: where it
        began). The events themselves go on being published: a
        journal is an output, and losing it must not stop the spotting."""
        try:
            action()
            return True
        except OSError as exc:
            journal, self._journal = self._journal, None
            with contextlib.suppress(OSError):
                if journal is not None:
                    journal.close()
            if start is not None and self._journal_path is not None:  # the line written in part goes
                with contextlib.suppress(OSError):
                    os.truncate(self._journal_path, start)
            self.journal_error = (f"--journal {self._journal_path}: cannot write ({exc.strerror or exc}); the events "
                                  f"from seq {self._seq} of stream {self.stream} on are not in it (they go on being "
                                  "published)")
            if self._on_journal_error is not None:
                self._on_journal_error(self.journal_error)
            return False

    def close(self) -> None:
        """Flush and fsync the journal, close the socket (short linger), stop auth."""
        with self._lock:
            journal = self._journal

            def sync() -> None:
                assert journal is not None
                journal.flush()
                os.fsync(journal.fileno())

            if journal is not None and self._journal_ok(sync):
                with contextlib.suppress(OSError):
                    journal.close()
                self._journal = None
            if self._socket is not None:
                self._socket.close(LINGER_MS)
                self._socket = None
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            if self._ctx is not None:
                self._ctx.term()
                self._ctx = None

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["CurveServerKeys", "EventPublisher", "check_endpoint", "is_loopback", "last_journal_seq",
           "DEFAULT_ENDPOINT", "EVENT_SCHEMA"]
