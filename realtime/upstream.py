"""`lgnm-live --connect ENDPOINT`: publish into an `lgnm-proxy` (realtime/proxy.py)
instead of binding a socket of our own.

The publisher is the same EventPublisher (seq per stream, journal, listeners, drops
counted, never blocking); only its socket connects, to the proxy's XSUB side, as a
CurveZMQ client when keys are given (`--curve-secret` this publisher's own
`.key_secret`, `--curve-server-key` the proxy's `.key`). Connecting beyond loopback
without keys is refused, as binding beyond loopback is.

Slow joiner: a PUB-type socket drops what it sends before a subscription has reached it,
and over a proxy a subscription arrives only once the connection is up (the proxy's
XSUB passes on the subscriptions of its subscribers to each publisher that connects).
So before the first frame `wait_for_proxy` waits up to `CONNECT_WAIT_S` for one; with no
subscriber behind the proxy there is no one to lose messages for, and it says so.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zmq

from realtime.common.errors import UserError
from realtime.publisher import EventListener, EventPublisher, is_loopback, load_public_key, load_secret_key
from realtime.run_config import RunConfig

CONNECT_WAIT_S = 5.0
LINGER_MS = 200


@dataclass(frozen=True, slots=True)
class CurveClientKeys:
    """This publisher's key pair (`.key_secret` file) and the proxy's public key file."""

    secret_file: Path
    server_key_file: Path

    def load(self) -> tuple[bytes, bytes, bytes]:
        """(public, secret, server public); UserError naming the option for bad files."""
        for path, option in ((self.secret_file, "--curve-secret"), (self.server_key_file, "--curve-server-key")):
            if not Path(path).is_file():
                raise UserError(f"{option} {path}: no such file")
        public, secret = load_secret_key(Path(self.secret_file), "--curve-secret")
        return public, secret, load_public_key(Path(self.server_key_file), "--curve-server-key")


class ProxyPublisher(EventPublisher):
    """An EventPublisher whose XPUB socket connects to `endpoint` (an lgnm-proxy's
    publishers side). Raises UserError for a remote endpoint without keys, bad key
    files or an endpoint ZeroMQ refuses."""

    def __init__(self, endpoint: str, *, stream: str, journal: Path | None = None,
                 curve: CurveClientKeys | None = None, sndhwm: int = 1000,
                 listeners: Sequence[EventListener] = ()) -> None:
        if not is_loopback(endpoint) and curve is None:
            raise UserError(f"--connect {endpoint}: beyond loopback the proxy requires CurveZMQ keys "
                            "(--curve-secret THIS.key_secret and --curve-server-key PROXY.key; see lgnm-keygen)")
        keys = curve.load() if curve is not None else None
        # No socket of its own: numbering, journal and listeners as for --pub none ...
        super().__init__(None, stream=stream, journal=journal, listeners=listeners)
        # ... then the socket, connected rather than bound; close() closes both.
        self._ctx = zmq.Context()
        self._socket = self._ctx.socket(zmq.XPUB)
        try:
            self._socket.setsockopt(zmq.LINGER, LINGER_MS)
            self._socket.setsockopt(zmq.SNDHWM, sndhwm)
            self._socket.setsockopt(zmq.XPUB_VERBOSE, 1)
            if keys is not None:
                self._socket.curve_publickey, self._socket.curve_secretkey, self._socket.curve_serverkey = keys
            self._socket.connect(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise UserError(f"--connect {endpoint}: cannot connect ({exc})") from None
        self.endpoint = endpoint


def wait_for_proxy(publisher: EventPublisher, stop: threading.Event, timeout: float = CONNECT_WAIT_S) -> bool:
    """Wait (in short slices, so Ctrl-C is prompt) until a subscription has come through
    the proxy; False after `timeout` s, with a `note:` line on stderr."""
    waited = 0.0
    while waited < timeout and not stop.is_set():
        if publisher.wait_for_subscriber(0.1):
            return True
        waited += 0.1
    if not stop.is_set():
        print(f"note: --connect {publisher.endpoint}: no subscriber behind the proxy after {timeout:g} s; "
              "messages sent before one subscribes are not delivered to it", file=sys.stderr, flush=True)
    return False


def open_upstream(config: RunConfig, stream: str, listeners: Sequence[EventListener]) -> ProxyPublisher | None:
    """The publisher of `lgnm-live --connect` from its options (`connect`, `journal`,
    `curve_secret`, `curve_server_key`, `curve_clients`); None without --connect."""
    if not config.connect:
        if config.curve_server_key is not None:
            raise UserError("--curve-server-key: only with --connect (the proxy's public key)")
        return None
    if config.curve_clients is not None:
        raise UserError("--curve-clients: with --connect the proxy decides who may subscribe "
                        "(lgnm-proxy --curve-clients); give this publisher --curve-secret and --curve-server-key")
    secret, server = config.curve_secret, config.curve_server_key
    if secret is None or server is None:
        if secret is not None or server is not None:
            raise UserError("--curve-secret and --curve-server-key go together with --connect")
        curve = None
    else:
        curve = CurveClientKeys(secret, server)
    return ProxyPublisher(config.connect, stream=stream, journal=config.journal, curve=curve, listeners=listeners)
