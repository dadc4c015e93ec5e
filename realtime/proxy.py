"""`lgnm-proxy`: one ZeroMQ endpoint for the events of many `lgnm-live` publishers.

    lgnm-proxy                                   publishers -> tcp://127.0.0.1:5557, subscribers -> :5556
    lgnm-live --camera 0 --connect tcp://127.0.0.1:5557       (any number, any hosts)
    lgnm-sub tcp://127.0.0.1:5556                              sees every stream

An XSUB socket that publishers connect to (`lgnm-live --connect`) and an XPUB socket that
subscribers connect to, joined by libzmq's own proxy (`zmq.proxy_steerable`, stopped
through its control socket): subscriptions flow up to every publisher, messages flow
down unchanged. Messages are not renumbered: each stream keeps its own gapless `seq`,
so stream ids must be unique across the publishers (a video id or camera URL path).

Security: as `lgnm-live --pub`, binding either side beyond loopback requires CurveZMQ
on that side: `--curve-secret` (the proxy's server secret key, both sides) and a folder
of authorised public keys per side (`--curve-publishers` for lgnm-live instances,
`--curve-clients` for subscribers), enforced by one ZAP authenticator with a domain per
side (a subscriber's key does not let it publish, and the other way round).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from realtime.common.errors import OneLineParser, UserError, cli_entry, path_arg
from realtime.publisher import ClientKeys, is_loopback, load_secret_key

PUBLISHERS_ENDPOINT = "tcp://127.0.0.1:5557"
SUBSCRIBERS_ENDPOINT = "tcp://127.0.0.1:5556"  # lgnm-sub's default: it needs no option
LINGER_MS = 200


@dataclass(frozen=True, slots=True)
class ProxySide:
    """One bound side of the proxy: its endpoint and, for CurveZMQ, the folder of the
    public keys (`*.key`) allowed to connect to it (None: plain, loopback only)."""

    endpoint: str
    clients_dir: Path | None
    endpoint_option: str  # the options that set it, for error lines
    keys_option: str


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Both sides and the server secret key (needed when either side uses CurveZMQ)."""

    publishers: ProxySide
    subscribers: ProxySide
    secret_file: Path | None = None

    def check(self) -> tuple[bytes, bytes] | None:
        """The (public, secret) server keys, None without Curve; UserError (naming the
        option) for a side bound beyond loopback without keys or unusable key files."""
        for side in (self.publishers, self.subscribers):
            if not is_loopback(side.endpoint) and side.clients_dir is None:
                raise UserError(f"{side.endpoint_option} {side.endpoint}: binding beyond loopback requires "
                                f"CurveZMQ keys (--curve-secret FILE and {side.keys_option} DIR; see lgnm-keygen)")
            if side.clients_dir is not None:
                if not side.clients_dir.is_dir():
                    raise UserError(f"{side.keys_option} {side.clients_dir}: no such directory")
                if not any(side.clients_dir.glob("*.key")):
                    raise UserError(f"{side.keys_option} {side.clients_dir}: no public keys (*.key)")
        curved = [s for s in (self.publishers, self.subscribers) if s.clients_dir is not None]
        if curved and self.secret_file is None:
            raise UserError(f"{curved[0].keys_option}: needs --curve-secret (the proxy's server secret key)")
        if self.secret_file is None:
            return None
        if not curved:
            raise UserError("--curve-secret: needs --curve-publishers DIR and/or --curve-clients DIR")
        if not self.secret_file.is_file():
            raise UserError(f"--curve-secret {self.secret_file}: no such file")
        return load_secret_key(self.secret_file, "--curve-secret")


class EventProxy:
    """The running proxy (a thread inside libzmq's proxy loop); use as a context manager.

    `publishers_endpoint` / `subscribers_endpoint`: the bound endpoints (a `:*` or `:0`
    port resolved). Raises UserError when a side cannot bind or its keys are unusable."""

    def __init__(self, config: ProxyConfig) -> None:
        keys = config.check()
        self._ctx = zmq.Context()
        self._auth: ThreadAuthenticator | None = None
        self._thread: threading.Thread | None = None
        control = f"inproc://lgnm-proxy-control-{uuid.uuid4().hex}"
        self._frontend = self._ctx.socket(zmq.XSUB)
        self._backend = self._ctx.socket(zmq.XPUB)
        self._control_in = self._ctx.socket(zmq.PAIR)
        self._control_out = self._ctx.socket(zmq.PAIR)
        try:
            self._control_in.bind(control)
            self._control_out.connect(control)
            if keys is not None:
                self._auth = ThreadAuthenticator(self._ctx)
                self._auth.start()
            # ZAP domains keep the two key lists apart: a key authorised to subscribe
            # is refused on the publishers' side and the other way round.
            self.publishers_endpoint = self._bind(self._frontend, config.publishers, keys, "publishers")
            self.subscribers_endpoint = self._bind(self._backend, config.subscribers, keys, "subscribers")
        except BaseException:
            self.close()
            raise

    def _bind(self, sock: zmq.Socket, side: ProxySide, keys: tuple[bytes, bytes] | None, domain: str) -> str:
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        if side.clients_dir is not None and keys is not None and self._auth is not None:
            # a refused key is told on stderr (ZeroMQ refuses it silently, the client retries)
            self._auth.configure_curve_callback(domain=domain, credentials_provider=ClientKeys(
                side.clients_dir, side.keys_option,
                lambda message: print(f"warning: lgnm-proxy: {message}", file=sys.stderr, flush=True)))
            sock.zap_domain = domain.encode()
            sock.curve_publickey, sock.curve_secretkey = keys
            sock.curve_server = True
        try:
            sock.bind(side.endpoint)
        except zmq.ZMQError as exc:
            raise UserError(f"{side.endpoint_option} {side.endpoint}: cannot bind ({exc})") from None
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def start(self) -> EventProxy:
        """Start forwarding (returns at once)."""
        self._thread = threading.Thread(target=self._run, name="lgnm-proxy", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            zmq.proxy_steerable(self._frontend, self._backend, None, self._control_in)
        except zmq.ContextTerminated:
            pass

    def close(self) -> None:
        """Stop the proxy loop (TERMINATE on its control socket), then close everything."""
        if self._thread is not None and self._thread.is_alive():
            self._control_out.send(b"TERMINATE")
            self._thread.join(5.0)
        self._thread = None
        for sock in (self._frontend, self._backend, self._control_in, self._control_out):
            sock.close(LINGER_MS)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        self._ctx.term()

    def __enter__(self) -> EventProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="lgnm-proxy", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--publishers", default=PUBLISHERS_ENDPOINT, metavar="ENDPOINT",
                    help=f"bind here for lgnm-live --connect (XSUB; default {PUBLISHERS_ENDPOINT})")
    ap.add_argument("--subscribers", default=SUBSCRIBERS_ENDPOINT, metavar="ENDPOINT",
                    help=f"bind here for subscribers such as lgnm-sub (XPUB; default {SUBSCRIBERS_ENDPOINT})")
    ap.add_argument("--curve-secret", type=path_arg, metavar="FILE",
                    help="the proxy's server secret key (CurveZMQ, lgnm-keygen), used on both sides")
    ap.add_argument("--curve-publishers", type=path_arg, metavar="DIR",
                    help="folder of the public keys of publishers allowed to connect")
    ap.add_argument("--curve-clients", type=path_arg, metavar="DIR",
                    help="folder of the public keys of subscribers allowed to connect")
    return ap


def config_from_args(args: argparse.Namespace) -> ProxyConfig:
    return ProxyConfig(ProxySide(args.publishers, args.curve_publishers, "--publishers", "--curve-publishers"),
                       ProxySide(args.subscribers, args.curve_clients, "--subscribers", "--curve-clients"),
                       args.curve_secret)


@cli_entry
def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT or SIGTERM; exit 0, or 2 with one `error:` line for bad options."""
    args = build_parser().parse_args(argv)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with EventProxy(config_from_args(args)) as proxy:
            # The test suite and scripts wait for this line: both sides are bound by now.
            print(f"lgnm-proxy: publishers connect to {proxy.publishers_endpoint}, "
                  f"subscribers to {proxy.subscribers_endpoint}", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
