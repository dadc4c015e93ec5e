"""Test helpers shared by several test files: short synthetic face videos with exact
truth and seeded untrained weights with their metadata (from tools/sample_media.py),
untrained nets whose score varies with the input, and a real SUB socket collector."""

from __future__ import annotations

import signal
import socket
import threading

import torch
import zmq

from engines.lgnmnet import LGNMNet
from realtime.events import EventMessage, StatusMessage, decode
from tools.sample_media import CLIP_SIZE, write_face_clip, write_random_weights  # noqa: F401 (re-exported)


def sensitive_net(seed: int) -> LGNMNet:
    """An untrained net whose P(expression) varies with the input (otherwise agreement
    tests would compare saturated constants): BN statistics from one batch (momentum 1,
    so ReLU6 does not saturate everywhere) and two nearby class centres (so that the
    scale-64 softmax is not pinned at 0 or 1)."""
    torch.manual_seed(seed)
    net = LGNMNet()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 112, 112) * 0.6)
        net.head.weight[1] = net.head.weight[0] + 0.01 * torch.randn(net.head.weight.shape[1])
    return net.eval()


def default_sigint() -> None:
    """preexec_fn for a child that must see Ctrl-C: a runner started in the background
    (`cmd &` in a script, nohup) ignores SIGINT and a child inherits that, so Python in
    the child would never see it; the test is about the CLI's Ctrl-C, so give the child
    the terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collector(threading.Thread):
    """A real SUB socket on loopback that records every message until told to stop."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
        self.sock.setsockopt(zmq.RECONNECT_IVL, 10)
        self.sock.connect(endpoint)
        self.messages: list = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            if self.sock.poll(50):
                self.messages.append(decode(self.sock.recv_multipart()))
        while self.sock.poll(300):
            self.messages.append(decode(self.sock.recv_multipart()))
        self.sock.close(0)
        self.ctx.term()

    def status(self) -> list[StatusMessage]:
        return [m for m in list(self.messages) if isinstance(m, StatusMessage)]

    def events(self) -> list[EventMessage]:
        return [m for m in list(self.messages) if isinstance(m, EventMessage)]
