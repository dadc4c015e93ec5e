"""Shared fixtures: synthetic video files and a real RTSP server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtsp_server import RtspServer, server_available


def pattern_frame(i: int, width: int = 320, height: int = 240) -> np.ndarray:
    """Frame i of a moving pattern: a square sliding right and the frame number's
    brightness in the top-left block, so tests can tell frames apart after lossy codecs."""
    image = np.full((height, width, 3), 40, np.uint8)
    x = (i * 4) % (width - 40)
    cv2.rectangle(image, (x, height // 3), (x + 40, height // 3 + 40), (0, 200, 255), -1)
    image[:16, :16] = (i * 8) % 256
    return image


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """make_video(name="clip.avi", frames=60, fps=30.0, size=(320, 240), fourcc="MJPG")
    writes a real video with cv2.VideoWriter and returns its path."""

    def make(name: str = "clip.avi", frames: int = 60, fps: float = 30.0,
             size: tuple[int, int] = (320, 240), fourcc: str = "MJPG") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        assert writer.isOpened(), f"cannot write {path} with {fourcc}"
        for i in range(frames):
            writer.write(pattern_frame(i, *size))
        writer.release()
        return path

    return make


@pytest.fixture(scope="session")
def rtsp_available() -> None:
    reason = server_available()
    if reason is not None:
        pytest.skip(reason)


def _rtsp_servers() -> Iterator[Callable[..., RtspServer]]:
    servers: list[RtspServer] = []

    def start(video: Path, port: int = 0, codec: str = "mjpeg") -> RtspServer:
        server = RtspServer(video, port, codec)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def rtsp_server(rtsp_available: None) -> Iterator[Callable[..., RtspServer]]:
    """rtsp_server(video, port=0) starts tests/rtsp_server.py serving `video` at
    `server.url` and returns it (stop()/start() keep the port); all are killed at teardown.
    Skips when GStreamer's RTSP server is not installed (.ci/run installs it)."""
    yield from _rtsp_servers()


@pytest.fixture(scope="module")
def rtsp_server_module(rtsp_available: None) -> Iterator[Callable[..., RtspServer]]:
    """rtsp_server for module-scoped fixtures (one server run shared by several tests)."""
    yield from _rtsp_servers()
