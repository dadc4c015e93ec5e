"""Replay sources on real files and folders; CameraSource with a stand-in capture
(no camera device exists on CI machines, so cv2.VideoCapture(index) is replaced by a
capture over a real video file that can be made to fail); connect_first (the CLI's first
connection, visible and interruptible) on the same stand-ins."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime import sources
from realtime.connect import connect_first
from realtime.errors import UserError
from realtime.sources import (CameraSource, FrameFolderSource, SourceUnavailable,
                              VideoFileSource, natural_key, open_source)


def test_video_file_frames_fps_and_times(make_video):
    path = make_video("clip7.avi", frames=45, fps=25.0)
    with VideoFileSource(path) as src:
        assert (src.name, src.fps, src.is_live) == ("clip7", 25.0, False)
        frames = list(src)
    assert [f.index for f in frames] == list(range(1, 46))
    assert frames[10].t_stream == pytest.approx(10 / 25.0)
    assert frames[0].image.shape == (240, 320, 3) and frames[0].image.dtype == np.uint8
    assert all(a.t_capture <= b.t_capture for a, b in zip(frames, frames[1:]))


def test_video_file_fps_override_and_close_stops(make_video):
    src = VideoFileSource(make_video(frames=30), fps=10.0)
    got = []
    for frame in src:
        got.append(frame.index)
        if frame.index == 5:
            src.close()
    assert got == [1, 2, 3, 4, 5]
    assert src.fps == 10.0


def test_truncated_avi_ends_cleanly(make_video, tmp_path):
    data = make_video(frames=60).read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    frames = list(VideoFileSource(cut))
    assert 0 < len(frames) < 60
    assert [f.index for f in frames] == list(range(1, len(frames) + 1))


def test_truncated_mp4_and_junk_are_user_errors(make_video, tmp_path):
    data = make_video("a.mp4", frames=30, fourcc="mp4v").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])  # moov atom is at the end: not openable
    with pytest.raises(UserError, match="cut.mp4: cannot open video"):
        VideoFileSource(cut)
    junk = tmp_path / "junk.avi"
    junk.write_bytes(os.urandom(4000))
    with pytest.raises(UserError, match="junk.avi"):
        VideoFileSource(junk)
    with pytest.raises(UserError, match="missing.avi: no such video file"):
        VideoFileSource(tmp_path / "missing.avi")


def test_zero_frame_video_is_user_error(make_video):
    empty = make_video("empty.avi", frames=0)
    with pytest.raises(UserError, match="empty.avi: video has no decodable frame"):
        list(VideoFileSource(empty))


def test_natural_key_orders_numbers():
    names = ["img10.jpg", "img2.jpg", "img1.jpg", "006_1_0010.jpg", "006_1_0002.jpg"]
    assert sorted(names, key=natural_key) == [
        "006_1_0002.jpg", "006_1_0010.jpg", "img1.jpg", "img2.jpg", "img10.jpg"]


def _write_folder(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for i, name in enumerate(names):
        image = np.full((48, 64, 3), i * 10, np.uint8)
        assert cv2.imwrite(str(folder / name), image)


def test_folder_natural_order_and_index(tmp_path):
    folder = tmp_path / "s15_0101"
    _write_folder(folder, [f"img{i}.png" for i in range(1, 13)])
    (folder / "notes.txt").write_text("not a frame")
    src = FrameFolderSource(folder, fps=30)
    frames = list(src)
    assert src.name == "s15_0101" and len(frames) == 12
    assert [f.image[0, 0, 0] for f in frames] == [i * 10 for i in range(12)]
    assert frames[-1].index == 12 and frames[-1].t_stream == pytest.approx(11 / 30)


def test_folder_samm_names(tmp_path):
    folder = tmp_path / "006_1"
    _write_folder(folder, [f"006_1_{i:04d}.jpg" for i in range(1, 4)])
    assert [f.index for f in FrameFolderSource(folder, 200)] == [1, 2, 3]


def test_folder_unreadable_frame_names_file(tmp_path):
    folder = tmp_path / "v"
    _write_folder(folder, ["img1.jpg", "img2.jpg"])
    (folder / "img3.jpg").write_bytes(b"not a jpeg")
    frames = []
    with pytest.raises(UserError, match=r"img3\.jpg: cannot read image \(frame 3\)"):
        for f in FrameFolderSource(folder, 30):
            frames.append(f)
    assert len(frames) == 2


def test_folder_size_change_names_file(tmp_path):
    folder = tmp_path / "v"
    _write_folder(folder, ["img1.png"])
    cv2.imwrite(str(folder / "img2.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(UserError, match=r"img2\.png: frame 2 is 10x10, earlier frames 64x48"):
        list(FrameFolderSource(folder, 30))


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no such frame folder"):
        FrameFolderSource(tmp_path / "nope", 30)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: folder holds no image files"):
        FrameFolderSource(tmp_path / "empty", 30)
    with pytest.raises(UserError, match="fps"):
        FrameFolderSource(tmp_path, 0)


def test_open_source_kinds(make_video, tmp_path):
    assert isinstance(open_source("file", str(make_video())), VideoFileSource)
    _write_folder(tmp_path / "f", ["a1.png"])
    assert isinstance(open_source("folder", str(tmp_path / "f"), fps=30), FrameFolderSource)
    with pytest.raises(UserError, match="needs --fps"):
        open_source("folder", str(tmp_path / "f"))
    with pytest.raises(UserError, match="camera must be a device index"):
        open_source("camera", "front")
    with pytest.raises(UserError, match="not an rtsp:// URL"):
        open_source("rtsp", "http://example.org/x")
    with pytest.raises(UserError, match="--source: unknown kind"):
        open_source("webcam", "0")


class FlakyCamera:
    """Stand-in for cv2.VideoCapture(index): serves a real video file; the test's
    `plan` decides per open whether the device opens and how many frames it gives."""

    def __init__(self, video: Path, plan: list[int]) -> None:
        self.video, self.plan, self.opens = video, plan, 0
        self.real = cv2.VideoCapture  # taken before the test patches cv2.VideoCapture

    def __call__(self, index: int) -> "FlakyCamera.Capture":
        frames = self.plan[self.opens] if self.opens < len(self.plan) else 0
        self.opens += 1
        return self.Capture(self.real(str(self.video)) if frames else None, frames)

    class Capture:
        def __init__(self, cap: cv2.VideoCapture | None, frames: int) -> None:
            self.cap = cap
            self.left = frames

        def isOpened(self) -> bool:
            return self.cap is not None

        def set(self, prop: int, value: float) -> bool:
            return True

        def get(self, prop: int) -> float:
            return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def read(self):
            if self.cap is None or self.left <= 0:
                return False, None
            self.left -= 1
            return self.cap.read()

        def release(self) -> None:
            if self.cap is not None:
                self.cap.release()


def test_camera_reconnects_and_keeps_counting(make_video, monkeypatch):
    fake = FlakyCamera(make_video(frames=30), plan=[5, 0, 0, 4])
    monkeypatch.setattr(sources.cv2, "VideoCapture", fake)
    states = []
    src = CameraSource(0, 320, 240, max_retries=3, backoff_s=0.01, backoff_max_s=0.02,
                       on_state=lambda s, d: states.append(s))
    assert src.fps == 30.0 and src.is_live and src.name == "camera0"
    got = []
    with pytest.raises(SourceUnavailable, match=r"camera 0: cannot connect \(gave up after 3"):
        for frame in src:
            got.append(frame.index)
    assert got == list(range(1, 10))  # 5 frames, lost, two failed opens, 4 more frames
    assert states == ["up", "down", "up", "down"]


def test_camera_never_opens_gives_up(make_video, monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCamera(make_video(), plan=[]))
    states = []
    src = CameraSource(1, fps=30, max_retries=0, on_state=lambda s, d: states.append((s, d)))
    with pytest.raises(SourceUnavailable, match="gave up after 0 retries"):
        list(src)
    assert states == [("down", "camera 1: cannot connect")]


def test_camera_connection_lines_for_the_user(make_video, monkeypatch):
    fake = FlakyCamera(make_video(frames=30), plan=[5, 0, 0, 4])
    monkeypatch.setattr(sources.cv2, "VideoCapture", fake)
    lines: list[str] = []
    src = CameraSource(0, max_retries=3, backoff_s=0.01, backoff_max_s=0.02)
    src.on_connection = lines.append
    with pytest.raises(SourceUnavailable):
        list(src)
    assert lines == [
        "camera 0: receiving frames",
        "camera 0: stream stopped delivering frames; reconnecting",
        "waiting for camera 0 (retry 1 of 3, next in 0.01 s): cannot connect",
        "waiting for camera 0 (retry 2 of 3, next in 0.02 s): cannot connect",
        "camera 0: receiving frames (after 2 retries)",
        "camera 0: stream stopped delivering frames; reconnecting",
        "waiting for camera 0 (retry 1 of 3, next in 0.01 s): cannot connect",
        "waiting for camera 0 (retry 2 of 3, next in 0.02 s): cannot connect",
        "waiting for camera 0 (retry 3 of 3, next in 0.02 s): cannot connect",
    ]  # the fourth failure ends it: SourceUnavailable, reported once by the CLI


def test_connect_first_connects_in_a_thread_and_reports(make_video, monkeypatch):
    fake = FlakyCamera(make_video(frames=30), plan=[0, 3])
    monkeypatch.setattr(sources.cv2, "VideoCapture", fake)
    lines: list[str] = []
    src = CameraSource(0, max_retries=1, backoff_s=0.01)
    assert connect_first(src, stop=lambda: False, report=lines.append)
    assert src.fps == 30.0 and fake.opens == 2
    assert lines == ["waiting for camera 0 (retry 1 of 1, next in 0.01 s): cannot connect",
                     "camera 0: receiving frames (after 1 retries)"]
    got = []
    with pytest.raises(SourceUnavailable):
        for frame in src:  # starts on the connection made above, then fails for good
            got.append(frame.index)
    assert got == [1, 2, 3] and fake.opens == 4


def test_connect_first_raises_when_retries_run_out(make_video, monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCamera(make_video(), plan=[]))
    src = CameraSource(7, max_retries=1, backoff_s=0.01)
    with pytest.raises(SourceUnavailable, match=r"camera 7: cannot connect \(gave up after 1 retries\)"):
        connect_first(src, stop=lambda: False, report=lambda line: None)


class BlockingOpen:
    """Stand-in for cv2.VideoCapture whose open blocks until released, like an RTSP
    open to a host that accepts the connection and never answers (up to its timeout)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args: object) -> "FlakyCamera.Capture":
        self.entered.set()
        self.release.wait(60)
        return FlakyCamera.Capture(None, 0)


def test_connect_first_stop_does_not_wait_for_a_blocked_open(monkeypatch):
    blocker = BlockingOpen()
    monkeypatch.setattr(sources.cv2, "VideoCapture", blocker)
    lines: list[str] = []
    src = CameraSource(0)
    try:
        stop = threading.Event()
        threading.Timer(0.2, lambda: blocker.entered.wait(30) and stop.set()).start()
        t0 = time.monotonic()
        assert not connect_first(src, stop=stop.is_set, report=lines.append)
        # The open blocks for up to 60 s; returning within a few seconds means it was
        # abandoned, not waited for (the bound is loose on purpose: a loaded machine).
        assert time.monotonic() - t0 < 10
        assert src.closed and lines == ["stopped while waiting for camera 0"]
    finally:
        blocker.release.set()
