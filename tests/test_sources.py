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
from realtime.common.errors import UserError
from realtime.connect import connect_first
from realtime.sources import (
    CameraSource,
    FrameFolderSource,
    PacedSource,
    SourceUnavailable,
    VideoFileSource,
    natural_key,
    open_source,
)


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


def test_folder_unreadable_frames_are_skipped_and_named_like_damaged_video_frames(tmp_path, capfd):
    """Field trial: one zero-byte JPEG ended a whole frame-folder stream, and a JPEG cut
    short while written gave a frame with a grey lower part and a bare libjpeg line on
    stderr. Both are now holes in the numbering (the chain breaks there), named once."""
    folder = tmp_path / "v"
    _write_folder(folder, [f"img{i}.jpg" for i in range(1, 7)])
    (folder / "img3.jpg").write_bytes(b"")
    whole = (folder / "img5.jpg").read_bytes()
    (folder / "img5.jpg").write_bytes(whole[: len(whole) * 2 // 3])
    (folder / "img6.jpg").write_bytes(b"not a jpeg")
    src = FrameFolderSource(folder, 30)
    frames = list(src)
    assert [f.index for f in frames] == [1, 2, 4]
    assert len(src.notices) == 1 and "3 frames could not be read (3, 5-6: img3.jpg, img5.jpg, img6.jpg)" in src.notices[0]
    assert "Premature end" not in capfd.readouterr().err
    # Review cases, all readable: a JPEG with data after its end marker (a phone's motion
    # photo appends a video, which may hold 0xFF 0xDA), a PNG named .jpg.
    tail = folder / "img7.jpg"
    tail.write_bytes(whole + b"\x00\xff\xda\x12\x34" + bytes(100))
    png = folder / "img8.jpg"
    png.write_bytes(cv2.imencode(".png", np.zeros((240, 320, 3), np.uint8))[1].tobytes())
    assert sources.read_image(tail) is not None and sources.read_image(png) is not None
    for name in ("img7.jpg", "img8.jpg"):
        (folder / name).unlink()
    for name in ("img1.jpg", "img2.jpg", "img4.jpg"):
        (folder / name).write_bytes(b"")
    with pytest.raises(UserError, match=r"none of its 6 images can be read \(first: img1\.jpg\)"):
        list(FrameFolderSource(folder, 30))


def test_folder_of_16_bit_frames_with_12_bit_samples_reads_bright(tmp_path):
    """Field review: a high-speed camera's 12-bit samples in 16-bit PNG/TIFF files came out
    as 0..15 (OpenCV keeps the top 8 of 16 bits): black frames, no face. The folder's
    depth is found once (no flicker between frames); gray 16-bit files work too."""
    folder = tmp_path / "hs"
    folder.mkdir()
    values = [900, 1000, 3000]  # a 12-bit camera: a dark first frame, then brighter
    for i, v in enumerate(values, 1):
        img = np.full((48, 64, 3), v, np.uint16)
        if i > 1:
            img[0, 0] = 4000  # a highlight
        cv2.imwrite(str(folder / f"img{i}.png"), img)
    cv2.imwrite(str(folder / "img4.tif"), np.full((48, 64), 2048, np.uint16))  # gray
    src = FrameFolderSource(folder, 30)
    frames = list(src)
    assert [f.image.dtype for f in frames] == [np.uint8] * 4 and frames[3].image.shape == (48, 64, 3)
    # one depth for the folder, found before the first frame: the dark one is not 10-bit
    assert [int(f.image[5, 5, 0]) for f in frames] == [56, 62, 187, 128]
    assert len(src.notices) == 1 and "read as 12-bit samples" in src.notices[0]
    assert sources.to_8bit(np.full((2, 2, 3), 65535, np.uint16), 12).max() == 255  # above the depth: clipped
    assert sources.sample_bits([np.full((2, 2), 200, np.uint16)]) == 8
    from tools.features_cache import iter_frames  # training reads the folder as lgnm-live does

    trained = list(iter_frames(sorted(folder.iterdir(), key=lambda f: sources.natural_key(f.name))))
    assert [int(im[5, 5, 0]) for im in trained] == [56, 62, 187, 128]
    assert sources.sample_bits([np.array([[16, 1600], [32000, 48]], np.uint16)]) == 16  # left-aligned 12-bit
    eight_by_16 = (np.arange(256, dtype=np.uint16) * 16).reshape(16, 16)  # 0..4080: right-aligned 12-bit
    assert sources.sample_bits([eight_by_16]) == 12 and sources.to_8bit(eight_by_16, 12).max() == 255


def test_folder_size_change_names_file(tmp_path):
    """Another aspect ratio (a spliced input) fails the stream naming the file; the same
    aspect at another resolution (adaptive-resolution recordings: WebRTC, MediaRecorder)
    is scaled to the first frame's size, with one notice, and the stream goes on."""
    folder = tmp_path / "v"
    _write_folder(folder, ["img1.png"])
    cv2.imwrite(str(folder / "img2.png"), np.full((96, 128, 3), 80, np.uint8))  # 2x, same aspect
    cv2.imwrite(str(folder / "img3.png"), np.full((24, 32, 3), 90, np.uint8))  # half
    src = FrameFolderSource(folder, 30)
    frames = list(src)
    assert [f.image.shape for f in frames] == [(48, 64, 3)] * 3
    assert [int(f.image.mean()) for f in frames] == [0, 80, 90]
    assert len(src.notices) == 1
    assert "frame 2 (and maybe later ones) is 128x96; frames of other sizes are scaled to the stream's 64x48" in (
        src.notices[0])
    cv2.imwrite(str(folder / "img4.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(UserError, match=r"img4\.png: frame 4 is 10x10, earlier frames 64x48"):
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
    with pytest.raises(ValueError, match="unknown source kind"):
        open_source("webcam", "0")


class FlakyCamera:
    """Stand-in for cv2.VideoCapture(index): serves a real video file; the test's
    `plan` decides per open whether the device opens and how many frames it gives."""

    def __init__(self, video: Path, plan: list[int]) -> None:
        self.video, self.plan, self.opens = video, plan, 0
        self.real = cv2.VideoCapture  # taken before the test patches cv2.VideoCapture

    def __call__(self, index: int) -> FlakyCamera.Capture:
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
    # 5 frames (the rate probe's: only its last is delivered), lost, two failed opens, 4 more
    assert got == list(range(1, 6))
    assert states == ["up", "down", "up", "down"]


class ResizingCamera(FlakyCamera):
    """A FlakyCamera that comes back from each reconnect serving the next video."""

    def __init__(self, videos: list[Path], plan: list[int]) -> None:
        super().__init__(videos[0], plan)
        self.videos = videos

    def __call__(self, index: int) -> FlakyCamera.Capture:
        self.video = self.videos[min(self.opens, len(self.videos) - 1)]
        return super().__call__(index)


def test_a_live_source_back_at_another_size_keeps_one_frame_size(make_video, monkeypatch):
    """A camera or RTSP server that comes back from a reconnect at another resolution:
    the frames were taken at their new size without a word (the face tracker lost the
    face). The same aspect ratio is now scaled to the first size, with a notice; another
    aspect ratio fails the stream, as for files."""
    first = make_video("a.avi", frames=30, size=(320, 240))
    half = make_video("b.avi", frames=30, size=(160, 120))
    wide = make_video("c.avi", frames=30, size=(320, 160))
    monkeypatch.setattr(sources.cv2, "VideoCapture", ResizingCamera([first, half], plan=[3, 3]))
    src = CameraSource(0, fps=30, max_retries=0, backoff_s=0.01)
    with pytest.raises(SourceUnavailable):
        frames = []
        for frame in src:
            frames.append(frame)
    # the first connection's 3 frames are timed by the rate probe (its last delivered)
    assert [f.image.shape for f in frames] == [(240, 320, 3)] * 4
    assert any("camera 0: frame 2 (and maybe later ones) is 160x120; frames of other sizes are scaled" in n
               for n in src.notices), src.notices
    monkeypatch.undo()  # the stand-in keeps the real cv2.VideoCapture, not the first stand-in
    monkeypatch.setattr(sources.cv2, "VideoCapture", ResizingCamera([first, wide], plan=[3, 3]))
    with pytest.raises(UserError, match="camera 0: frame 2 is 320x160, earlier frames 320x240"):
        list(CameraSource(0, fps=30, max_retries=0, backoff_s=0.01))


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
        "camera 0: receiving frames; timing its frame rate for 1.25-3 s",  # the first connection times the rate
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
                     "camera 0: receiving frames (after 1 retry); timing its frame rate for 1.25-3 s"]
    got = []
    with pytest.raises(SourceUnavailable):
        for frame in src:  # starts on the connection made above, then fails for good
            got.append(frame.index)
    assert got == [1] and fake.opens == 4  # 3 frames timed by the rate probe, its last delivered


def test_connect_first_raises_when_retries_run_out(make_video, monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", FlakyCamera(make_video(), plan=[]))
    src = CameraSource(7, max_retries=1, backoff_s=0.01)
    with pytest.raises(SourceUnavailable, match=r"camera 7: cannot connect \(gave up after 1 retry\)"):
        connect_first(src, stop=lambda: False, report=lambda line: None)


class BlockingOpen:
    """Stand-in for cv2.VideoCapture whose open blocks until released, like an RTSP
    open to a host that accepts the connection and never answers (up to its timeout)."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def __call__(self, *args: object) -> FlakyCamera.Capture:
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

class PacedCamera:
    """Stand-in for cv2.VideoCapture(index) (no camera device here): reports `reported`
    fps, hands over `burst` frames on connect (at `burst_rate` fps, else at once), then
    one frame every 1 / `rate` s (as a V4L2 read blocks until the next frame), numbered
    in the first pixel."""

    def __init__(self, reported: float, rate: float, burst: int = 0, burst_rate: float | None = None) -> None:
        self.reported, self.rate, self.burst, self.burst_rate, self.served = reported, rate, burst, burst_rate, 0
        self.next_at: float | None = None
        self.released = False

    def __call__(self, index: int) -> PacedCamera:
        return self

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        return True

    def get(self, prop: int) -> float:
        return self.reported if prop == cv2.CAP_PROP_FPS else 0.0

    def read(self):
        rate = self.rate if self.served >= self.burst else self.burst_rate
        if rate is not None:
            now = time.monotonic()
            self.next_at = now if self.next_at is None else self.next_at + 1.0 / rate
            time.sleep(max(0.0, self.next_at - now))
        self.served += 1
        return True, np.full((8, 8, 3), self.served % 256, np.uint8)

    def release(self) -> None:
        self.released = True


@pytest.mark.parametrize("reported, rate, burst, burst_rate, expect, noticed", [
    (30.0, 15.0, 0, None, 15.0, True),   # a webcam in dim light: nominal 30, delivers 15
    (30.0, 30.0, 12, None, 30.0, False),  # as reported; a burst of buffered frames on connect is not timed
    (25.0, 25.0, 50, 100.0, 25.0, False),  # a 2 s backlog decoded at 100 fps: no faster rate is taken
    (0.0, 20.0, 0, None, 20.0, True),    # reports no rate: the measured one, not a refusal
])
def test_camera_fps_is_the_delivered_rate(monkeypatch, reported, rate, burst, burst_rate, expect, noticed):
    """K and the windows are set in frames from `fps`: it must be the rate frames arrive
    at. Only the probe's last frame is delivered (a backlog would let the camera's buffer
    overflow unseen); from there on every frame, numbered from 1, none skipped."""
    camera = PacedCamera(reported, rate, burst, burst_rate)
    monkeypatch.setattr(sources.cv2, "VideoCapture", camera)
    src = CameraSource(0, max_retries=0)
    notes: list[str] = []
    src.on_notice = notes.append
    t0 = time.monotonic()
    fps = src.fps
    assert time.monotonic() - t0 < sources.RATE_PROBE_S[1] + 1.0
    assert fps == pytest.approx(expect, rel=0.1)
    assert (len(notes) == 1) == noticed, notes
    if noticed:
        assert "camera 0" in notes[0] and f"delivers {fps:g} fps" in notes[0]
        assert "pass --fps" not in notes[0]  # a camera's --fps only asks; it cannot set the rate
    probed = camera.served
    got = []
    for frame in src:
        got.append(frame)
        if len(got) == 20:
            src.close()
    assert [f.index for f in got] == list(range(1, 21))
    assert [int(f.image[0, 0, 0]) for f in got] == list(range(probed, probed + 20))
    assert got[0].t_stream == 0.0 and all(b.t_stream > a.t_stream for a, b in zip(got, got[1:]))


def test_delivered_fps_leaves_out_the_connect_burst():
    burst = [0.0] + [0.001 * i for i in range(1, 20)]  # 19 buffered frames within 20 ms
    steady = [0.3 + i / 25.0 for i in range(30)]
    assert sources.delivered_fps(burst + steady) == pytest.approx(25.0)
    assert sources.delivered_fps(burst) is None  # nothing timed after the settle time
    assert sources.delivered_fps([0.0, 0.3, 0.3, 0.3, 0.3, 0.3]) is None  # no time passed
    long_burst = [i / 100.0 for i in range(50)] + [0.5 + i / 25.0 for i in range(1, 20)]
    assert sources.delivered_fps(long_burst) == pytest.approx(25.0)  # only the later half is timed


def test_camera_closed_while_its_rate_is_timed_lets_go(monkeypatch):
    """close() during the probe (Ctrl-C while connecting): the capture is released, no
    rate is set from a cut-short timing, and nothing is told afterwards."""
    camera = PacedCamera(30.0, 10.0)
    monkeypatch.setattr(sources.cv2, "VideoCapture", camera)
    src = CameraSource(0, max_retries=0)
    notes: list[str] = []
    src.on_notice = notes.append
    threading.Timer(0.5, src.close).start()
    with pytest.raises(SourceUnavailable, match="closed while connecting"):
        src.connect()
    assert camera.released and src._pending is None and src._fps is None and notes == []


def test_camera_reporting_a_slideshow_rate_is_refused(monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", PacedCamera(0.5, 0.5))
    src = CameraSource(0, max_retries=0)
    with pytest.raises(UserError, match="camera 0: camera reports no usable frame rate"):
        _ = src.fps


def test_rtsp_fps_given_by_the_user_is_not_measured(monkeypatch):
    monkeypatch.setattr(sources.cv2, "VideoCapture", lambda *a: PacedCamera(30.0, 10.0))
    src = sources.RtspSource("rtsp://127.0.0.1:9/x", fps=30.0, max_retries=0)
    t0 = time.monotonic()
    assert src.fps == 30.0 and time.monotonic() - t0 < 0.5  # no probe, no connection


# ---------------------------------------------------------------- frame identity and endings
# Each input below is written by the test itself (real video files, real frame folders).

import fractions  # noqa: E402
import itertools  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import av  # noqa: E402
from conftest import pattern_frame  # noqa: E402

from realtime.labels import k_from_seconds  # noqa: E402
from realtime.replay import path_items  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write_av(path: Path, images: list[np.ndarray], pts: list[int] | None = None, rate: int | fractions.Fraction = 30,
             codec: str = "mpeg4", rotation: int | None = None, faststart: bool = False,
             sar: fractions.Fraction | None = None) -> Path:
    """Write `images` (BGR) with PyAV, frame i at `pts[i]` ticks of 1/rate s (default i)."""
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        tick = fractions.Fraction(1, rate)  # the muxer changes stream.time_base once it starts
        stream.time_base = stream.codec_context.time_base = tick
        stream.bit_rate = 8_000_000  # near-lossless at these sizes: content is compared
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        for i, image in enumerate(images):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i if pts is None else pts[i]
            frame.time_base = tick
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def small(i: int) -> np.ndarray:
    return pattern_frame(i, 64, 48)


def test_variable_frame_rate_nominal_fps_and_pts_times(tmp_path):
    # 150 frames at 30 fps, then 150 at 15 fps: the mean rate (20.13) is no rate it ran at.
    pts = list(range(150)) + [150 + 2 * i for i in range(150)]
    path = write_av(tmp_path / "clip.mp4", [small(i) for i in range(300)], pts)
    src = VideoFileSource(path)
    assert src.fps == 30.0 and src.n_frames == 300
    assert k_from_seconds(6 / 30, src.fps) == 6  # K as trained at 30 fps, not 4
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 301))
    assert frames[149].t_stream == pytest.approx(149 / 30)
    assert frames[150].t_stream == pytest.approx(150 / 30)
    assert frames[299].t_stream == pytest.approx((150 + 2 * 149) / 30)  # 14.93 s, not 9.97
    assert src.notices == ["clip.mp4: frame rate varies (15.0-30.0 fps); times come from the frame "
                           "timestamps, K is set for 30 fps"]


def test_constant_rate_video_has_no_notice_and_override_sets_the_clock(tmp_path):
    path = write_av(tmp_path / "cfr.mp4", [small(i) for i in range(40)], rate=25)
    src = VideoFileSource(path)
    frames = list(src)
    assert src.fps == 25.0 and src.notices == [] and frames[-1].t_stream == pytest.approx(39 / 25)
    frames = list(VideoFileSource(path, fps=50))
    assert frames[-1].t_stream == pytest.approx(39 / 50)


def test_file_below_one_fps_is_refused_unless_fps_is_given(tmp_path):
    # A slideshow or a header's wrong rate: K would round to one frame (as --fps 0.5 is refused).
    path = write_av(tmp_path / "slow.mp4", [small(i) for i in range(4)], rate=fractions.Fraction(1, 2))
    with pytest.raises(UserError, match=r"slow.mp4: the file's frame rate \(if its header is wrong, pass --fps\): "
                                        "frame rate must be from 1 to 1000 fps, got 0.5"):
        VideoFileSource(path)
    assert [f.index for f in VideoFileSource(path, fps=30)] == [1, 2, 3, 4]


def test_an_empty_file_and_an_mp4_cut_before_its_index_say_so(tmp_path):
    """FFmpeg calls both 'Invalid data found'; a camera that died mid-recording or a copy
    still running leaves an MP4 without its moov atom, which the user must hear."""
    data = write_av(tmp_path / "full.mp4", [small(i) for i in range(30)]).read_bytes()
    assert data.find(b"moov") > len(data) // 2  # no faststart: the index is written last
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"cut.mp4: cannot open video \(an MP4/MOV without its index, the moov "
                                        r"atom: a recording cut short or still being written"):
        VideoFileSource(tmp_path / "cut.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(UserError, match=r"empty.mp4: cannot open video \(the file is empty, 0 bytes\)"):
        VideoFileSource(tmp_path / "empty.mp4")
    (tmp_path / "notes.mp4").write_text("not a video\n")
    with pytest.raises(UserError, match=r"notes.mp4: cannot open video \(unsupported or corrupted: "):
        VideoFileSource(tmp_path / "notes.mp4")


def test_nominal_fps_rule():
    thirty, fifteen = np.full(100, 1 / 30), np.full(100, 1 / 15)
    assert sources.nominal_fps(30.0, np.r_[thirty, fifteen]) == (30.0, pytest.approx((15.0, 30.0)))
    # a base rate no interval matches (LCM of 30 and 25) gives way to the median interval
    fps, varies = sources.nominal_fps(150.0, np.r_[np.full(60, 1 / 25), thirty])
    assert fps == pytest.approx(30.0) and varies == pytest.approx((25.0, 30.0))
    # a 1 ms timestamp clock at 30 fps (33/34 ms) is not a varying rate
    assert sources.nominal_fps(30.0, np.tile([0.033, 0.033, 0.034], 30)) == (30.0, None)
    assert sources.nominal_fps(None, np.empty(0)) == (None, None)


def _packets(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet's data, from a demux pass."""
    with av.open(str(path)) as container:
        return [(p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]


def test_damaged_frames_keep_the_numbering(make_video, tmp_path):
    path = make_video("clip.avi", frames=300, size=(64, 48))
    data = bytearray(path.read_bytes())
    packets = _packets(path)
    for frame in (120, 201):  # their JPEG data zeroed in place: undecodable, same length
        pos, size = packets[frame - 1]
        data[pos:pos + size] = bytes(size)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    src = VideoFileSource(damaged)
    frames = list(src)
    expected = [i for i in range(1, 301) if i not in (120, 201)]
    assert [f.index for f in frames] == expected
    by_index = {f.index: f for f in frames}
    for i in (119, 121, 202, 300):  # frame i shows pattern i - 1 (written 0-based)
        assert abs(int(by_index[i].image[:16, :16].mean()) - ((i - 1) * 8) % 256) <= 6
        assert by_index[i].t_stream == pytest.approx((i - 1) / 30)
    assert src.notices == ["damaged.avi: 2 frames could not be decoded (120, 201); the others keep "
                           "their numbers and the frame chain breaks at each gap"]


@pytest.mark.parametrize("how", ["close", "generator"])
def test_damage_met_before_a_stream_is_stopped_is_still_told(make_video, tmp_path, how):
    """A stream stopped before the file's end (--max-frames, Ctrl-C, SIGTERM: the source
    is closed, or its generator closed) said nothing of the frames it had already lost;
    the notice came only at the file's end."""
    path = make_video("clip.avi", frames=300, size=(64, 48))
    data = bytearray(path.read_bytes())
    for frame in (120, 201):
        pos, size = _packets(path)[frame - 1]
        data[pos:pos + size] = bytes(size)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    src = VideoFileSource(damaged)
    frames = iter(src)
    for raw in frames:
        if raw.index == 150:
            break
    if how == "close":
        src.close()
        assert next(frames, None) is None
    else:
        frames.close()  # type: ignore[attr-defined]
    assert src.notices == ["damaged.avi: 1 frame could not be decoded (120); the others keep "
                           "their numbers and the frame chain breaks at each gap"]


def test_damage_read_ahead_past_the_frames_used_is_not_told(make_video, tmp_path):
    """The capture thread reads ahead of scoring: a run that used frames up to 110 must
    not be told of damage at frame 120 that only the read-ahead met (review)."""
    path = make_video("clip.avi", frames=300, size=(64, 48))
    data = bytearray(path.read_bytes())
    pos, size = _packets(path)[119]
    data[pos:pos + size] = bytes(size)
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(bytes(data))
    src = PacedSource(VideoFileSource(damaged), speed=1e9)  # the wrapper passes it on
    frames = iter(src)  # held, as the capture thread holds it until the run stops
    while next(frames).index < 150:
        pass
    src.stop_after(110)
    src.close()
    frames.close()  # type: ignore[attr-defined]
    assert src.inner.notices == []  # type: ignore[attr-defined]


@pytest.mark.skipif("libx264" not in av.codecs_available, reason="this PyAV build has no libx264")
def test_h264_b_frames_in_avi_are_numbered_in_display_order(tmp_path):
    # AVI stamps packets in decode order, so the decoded B-frames' pts go backwards: those
    # stamps are not display times and the frames are numbered in the order they come out.
    path = write_av(tmp_path / "b.avi", [small(i) for i in range(60)], codec="libx264")
    with av.open(str(path)) as container:
        assert any(a > b for a, b in itertools.pairwise(f.pts for f in container.decode(video=0)))
    src = VideoFileSource(path)
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 61)) and src.fps == 30.0
    shown = [int(f.image[:16, :16].mean()) for f in frames]  # pattern i shows (i * 8) % 256
    assert all(abs(v - (i * 8) % 256) <= 6 for i, v in enumerate(shown)), shown
    assert frames[-1].t_stream == pytest.approx(59 / 30)
    assert len(src.notices) == 1 and "numbered in decode order" in src.notices[0]


def test_rotated_phone_video_comes_out_upright(tmp_path):
    upright = np.zeros((64, 48, 3), np.uint8)  # portrait, one bright corner block
    upright[:16, :16] = 250
    upright[48:, 32:] = 120
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)  # the sensor's landscape
    # rotation -90: the display turns the stored image 90 degrees clockwise (`rotate=90`)
    path = write_av(tmp_path / "phone.mp4", [stored] * 5, rotation=-90)
    frames = list(VideoFileSource(path))
    assert len(frames) == 5 and frames[0].image.shape == upright.shape
    diff = np.abs(frames[0].image.astype(int) - upright).mean()
    assert diff < 4, diff
    # turned the wrong way (counter-clockwise) it would be upside down
    assert np.abs(frames[0].image.astype(int) - cv2.rotate(upright, cv2.ROTATE_180)).mean() > 15


@pytest.mark.parametrize("codec", ["mpeg4", "libx264"])
def test_non_square_pixels_are_resampled_to_the_display_aspect(tmp_path, codec):
    """HDV and DV camcorders store anamorphic frames (1440x1080 shown as 1920x1080): read
    as stored, a face is squashed to 3/4 of its width for FaceMesh and the alignment."""
    shown = np.zeros((48, 96, 3), np.uint8)  # what a player shows: a square block 24 px wide
    shown[12:36, 36:60] = 220
    stored = cv2.resize(shown, (72, 48), interpolation=cv2.INTER_AREA)  # 4:3 pixels: 72 stored px = 96 shown
    path = write_av(tmp_path / "hdv.mp4", [stored] * 4, codec=codec, sar=fractions.Fraction(4, 3))
    src = VideoFileSource(path)
    frames = list(src)
    assert len(frames) == 4 and frames[0].image.shape == shown.shape
    assert np.abs(frames[0].image.astype(int) - shown).mean() < 6
    assert src.notices == ["hdv.mp4: non-square pixels (aspect 1.333); frames are resampled to 96x48, as players "
                           "show them"]
    square = write_av(tmp_path / "square.mp4", [shown] * 2, codec=codec)
    plain = VideoFileSource(square)
    assert list(plain)[0].image.shape == shown.shape and plain.notices == []


def test_truncated_mp4_says_how_many_declared_frames_were_read(tmp_path):
    rng = np.random.default_rng(3)  # noise: every frame's packet has about the same size
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(300)]
    whole = write_av(tmp_path / "whole.mp4", images, faststart=True)  # index first
    cut = tmp_path / "clip.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.35)])
    src = VideoFileSource(cut)
    frames = list(src)
    n = len(frames)
    assert src.n_frames == 300 and 50 < n < 150
    assert [f.index for f in frames] == list(range(1, n + 1))
    assert src.notices == [f"clip.mp4: read {n} of 300 declared frames; the file ends early (truncated?)"]
    whole_src = VideoFileSource(whole)
    assert sum(1 for _ in whole_src) == 300 and whole_src.notices == []


OPEN_SOURCE = """
import sys
from realtime.common.errors import UserError
from realtime.sources import VideoFileSource
try:
    source = VideoFileSource(sys.argv[1])
    print(sum(1 for _ in source), len(source.notices))
except UserError as exc:
    print(f"error: {exc}", file=sys.stderr)
"""


def _stderr_of_open(path: Path) -> tuple[str, str]:
    """stdout and stderr (the process's fd 2, so FFmpeg's and OpenCV's own lines count)."""
    done = subprocess.run([sys.executable, "-c", OPEN_SOURCE, str(path)], cwd=REPO, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    return done.stdout, done.stderr


@pytest.mark.parametrize("case", ["junk", "no_index", "damaged"])
def test_unreadable_or_damaged_video_prints_only_our_line(case, make_video, tmp_path):
    if case == "junk":
        path = tmp_path / "junk.avi"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    elif case == "no_index":  # an mp4 cut before its index (moov at the end)
        path = make_video("clip.mp4", frames=30, fourcc="mp4v")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path = make_video("clip.avi", frames=30, size=(64, 48))
        data = bytearray(path.read_bytes())
        pos, size = _packets(path)[10]
        data[pos:pos + size] = bytes(size)
        path.write_bytes(bytes(data))
    out, err = _stderr_of_open(path)
    if case == "damaged":
        assert (out, err) == ("29 1\n", "")  # decoded on, FFmpeg's complaint silenced
        return
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {path}: cannot open video"), err


def _write_numbered(folder: Path, numbers: list[int], pattern: str = "img{}.png") -> None:
    folder.mkdir()
    for n in numbers:
        assert cv2.imwrite(str(folder / pattern.format(n)), np.full((8, 8, 3), n % 256, np.uint8))


def test_folder_hole_keeps_file_numbers(tmp_path):
    folder = tmp_path / "v"
    _write_numbered(folder, [n for n in range(1, 301) if n != 120])
    src = FrameFolderSource(folder, 30)
    assert src.n_frames == 299
    frames = list(src)
    assert [f.index for f in frames] == [n for n in range(1, 301) if n != 120]
    after = frames[119]
    assert after.index == 121 and after.image[0, 0, 0] == 121 and after.t_stream == pytest.approx(120 / 30)
    assert src.notices == ["v: 1 frame missing from the numbering (120); the frame chain breaks at each hole"]


def test_folder_numbered_from_zero_starts_at_one(tmp_path):
    folder = tmp_path / "z"
    _write_numbered(folder, list(range(0, 5)), "frame_{:05d}.png")
    src = FrameFolderSource(folder, 30)
    frames = list(src)
    assert [f.index for f in frames] == [1, 2, 3, 4, 5] and frames[0].image[0, 0, 0] == 0
    assert src.notices == []


@pytest.mark.parametrize("names, why", [
    (["a.png", "b.png", "c.png"], "a.png has no number at the end of its name"),
    (["img1.png", "img01.png", "img2.png"], "both have number 1"),
    (["t1700000000.png", "t1700000400.png", "t1700000800.png"], "too sparse for 3 frames"),
])
def test_folder_without_usable_numbers_is_numbered_by_position(tmp_path, names, why):
    folder = tmp_path / "p"
    _write_folder(folder, names)
    src = FrameFolderSource(folder, 30)
    assert [f.index for f in src] == [1, 2, 3]
    assert len(src.notices) == 1 and src.notices[0].startswith("p: frames numbered 1..3 by position")
    assert why in src.notices[0]


def test_hidden_files_are_not_frames_nor_videos(make_video, tmp_path):
    folder = tmp_path / "v"
    _write_numbered(folder, [1, 2, 3], "img{}.jpg")
    (folder / "._img1.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble resource fork")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    src = FrameFolderSource(folder, 30)
    assert [f.index for f in src] == [1, 2, 3] and src.notices == []
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video("videos/a.avi", frames=3)
    (videos / "._a.avi").write_bytes(b"\x00\x05\x16\x07")
    hidden_dir = videos / ".frames"
    _write_numbered(hidden_dir, [1, 2])
    assert [item.name for item in path_items(videos, 30)] == ["a"]


def test_a_frame_folder_beside_videos_without_fps_is_left_out_with_a_note(make_video, tmp_path):
    """A `stills/` folder among recordings refused the whole replay ('a frame folder needs
    --fps'), and --fps would retime every video: the videos now run at their own rates and
    the folder is named in a note. Frame folders alone still need --fps."""
    from realtime.common.errors import UserError

    videos = tmp_path / "videos"
    videos.mkdir()
    make_video("videos/a.avi", frames=3)
    _write_numbered(videos / "stills", [1, 2])
    notes: list[str] = []
    assert [item.name for item in path_items(videos, None, notes)] == ["a"]
    assert len(notes) == 1 and "frame folder(s) not replayed, a frame folder needs --fps: stills" in notes[0]
    assert [item.name for item in path_items(videos, 30)] == ["a", "stills"]
    (videos / "a.avi").unlink()
    with pytest.raises(UserError, match="stills: a frame folder needs --fps"):
        path_items(videos, None, [])


def test_an_unreadable_subfolder_does_not_stop_a_folder_replay(make_video, tmp_path, monkeypatch):
    """A subfolder the user may not list (PermissionError; root ignores the mode, so it
    is simulated) ended the folder replay with a traceback (review)."""
    import realtime.replay as replay

    (tmp_path / "rp" / "locked").mkdir(parents=True)
    make_video("rp/a.avi", frames=3)
    real = replay.image_files

    def image_files(folder):
        if folder.name == "locked":
            raise PermissionError(13, "Permission denied", str(folder))
        return real(folder)

    monkeypatch.setattr(replay, "image_files", image_files)
    assert [item.name for item in path_items(tmp_path / "rp", None, [])] == ["a"]


def test_videos_in_subfolders_of_a_folder_replay_are_named(make_video, tmp_path):
    """A phone's DCIM/100APPLE/IMG_0001.MOV: the folder replay read one level and said
    "no video files" (or, beside other videos, nothing at all) of the subfolder."""
    from realtime.common.errors import UserError

    (tmp_path / "dcim" / "100APPLE").mkdir(parents=True)
    make_video("dcim/100APPLE/IMG_0001.avi", frames=3)
    with pytest.raises(UserError, match=r"its subfolder\(s\) 100APPLE hold videos: a folder replay reads one level"):
        path_items(tmp_path / "dcim", None, [])
    make_video("dcim/top.avi", frames=3)
    notes: list[str] = []
    assert [item.name for item in path_items(tmp_path / "dcim", None, notes)] == ["top"]
    assert notes == [f"{tmp_path / 'dcim'}: videos in subfolder(s) not replayed: 100APPLE (a folder replay reads "
                     "one level; replay each subfolder by its path)"]


class _Timed(sources.FrameSource):
    """Frames at given stream times (a variable-rate file, a folder numbered from 5000)."""

    is_live = False

    def __init__(self, times: list[tuple[int, float]]) -> None:
        super().__init__()
        self.name, self.times = "timed", times

    @property
    def fps(self) -> float:
        return 30.0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for index, t in self.times:
            yield sources.RawFrame(index, 0.0, t, np.zeros((2, 2, 3), np.uint8))


def test_paced_replay_follows_stream_times():
    from realtime.sources import PacedSource

    # numbered from 5000 (no wait for the 4999 frames before it), then a 0.2 s gap
    paced = PacedSource(_Timed([(5000, 4999 / 30), (5001, 5000 / 30), (5007, 5000 / 30 + 0.2)]))
    start = time.monotonic()
    got = [(raw.index, raw.t_capture - start) for raw in paced]
    assert [i for i, _ in got] == [5000, 5001, 5007]
    assert got[0][1] < 0.1 and got[2][1] >= 0.2 - 0.005 and got[2][1] < 2.0


def test_frame_clock_finds_times_across_holes():
    from realtime.pipeline import FrameClock

    clock = FrameClock(30.0, keep=16)
    for index, t in [(1, 0.0), (2, 1 / 30), (5, 0.5), (6, 0.55), (7, 0.6)]:
        clock.add(index, t, t)
    assert clock.at(5) == 0.5 and clock.at(7) == 0.6 and clock.at(2) == 1 / 30
    assert clock.at(8) == pytest.approx(0.6 + 1 / 30)  # not held: extrapolated from the end


def test_frames_lost_by_the_demuxer_keep_their_places(tmp_path):
    """A damaged MKV: the demuxer drops a whole cluster, so no packet of the lost frames
    is left; only the jump in the timestamps says they existed. The frames after the
    damage keep their numbers (their timestamps say where they are), the lost ones are
    named in a notice, and the chain breaks there (the index jumps)."""
    import av

    path = tmp_path / "clip.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"bf": "3", "g": "10", "crf": "5"}
        for i in range(100):
            img = np.full((48, 64, 3), (i * 7) % 256, np.uint8)
            img[:, i % 64] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 300] = bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8))
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    src = VideoFileSource(damaged)
    notes: list[str] = []
    src.on_notice = notes.append
    frames = [(raw.index, raw.t_stream) for raw in src]
    indices = [i for i, _ in frames]
    assert 30 < len(frames) < 100 and indices[-1] == 100  # the last frame keeps its number
    assert all(abs(t * 30.0 + 1 - i) < 0.6 for i, t in frames)  # every number fits its time
    jumps = [(a, b) for a, b in zip(indices, indices[1:]) if b != a + 1]
    # The demuxer lost whole packets: their numbers are timestamp jumps, not failed decodes.
    assert jumps and any("the timestamps jump there" in n for n in notes), notes


def test_a_recording_pause_is_a_jump_in_the_timestamps_not_undecodable_frames(tmp_path):
    """A camera that pauses 5 s (VFR mkv, pts jump) leaves 150 frame numbers without a
    frame; none of them failed to decode, and the notice must not say so."""
    import av

    path = tmp_path / "paused.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = fractions.Fraction(1, 30)
        for i in range(60):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), (i * 9) % 256, np.uint8), format="bgr24")
            frame.pts = i if i < 30 else i + 150  # 5 s without frames after the 30th
            frame.time_base = fractions.Fraction(1, 30)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    src = VideoFileSource(path)
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 31)) + list(range(181, 211))
    assert frames[30].t_stream == pytest.approx(180 / 30, abs=0.01)
    assert src.notices == ["paused.mkv: no frame at 150 frame times (31-180): the timestamps jump there "
                           "(packets lost to damage, or the recording paused); the others keep their "
                           "numbers and times and the frame chain breaks at each gap"]


def test_frame_numbers_from_timestamps() -> None:
    from realtime.sources import frame_numbers

    tb = 1 / 1000  # ms ticks, 33/34 ms steps at 30 fps
    pts = np.round(np.arange(10) * 1000 / 30).astype(np.int64)
    assert frame_numbers(pts, tb, 30.0).tolist() == list(range(1, 11))
    lost = np.delete(pts, [4, 5, 6])  # three lost frames
    assert frame_numbers(lost, tb, 30.0).tolist() == [1, 2, 3, 4, 8, 9, 10]
    vfr = np.concatenate([pts, pts[-1] + np.round(np.arange(1, 6) * 1000 / 15).astype(np.int64)])
    assert frame_numbers(vfr, tb, 30.0).tolist() == list(range(1, 16))  # 30 -> 15 fps is no loss
    # 30 -> 10 fps (a phone in low light): one 3x step followed by more is a new rate.
    slow = np.concatenate([pts, pts[-1] + np.round(np.arange(1, 11) * 100).astype(np.int64)])
    assert frame_numbers(slow, tb, 30.0).tolist() == list(range(1, 21))
    # ... while three lost frames between ordinary steps are still counted, also at 10 fps.
    slow_lost = np.delete(slow, [13, 14, 15])
    assert frame_numbers(slow_lost, tb, 30.0).tolist() == [*range(1, 14), 17, 18, 19, 20]

    def numbered(steps_in_frames_or_s: list[float]) -> list[int]:
        steps = [s / 30 if s >= 1 else s for s in steps_in_frames_or_s]  # >= 1: frames at 30 fps
        return frame_numbers(np.round(np.cumsum([0, *steps]) * 1000).astype(np.int64), tb, 30.0).tolist()

    # Review cases: two damaged regions one frame apart are two losses, not a new rate;
    # uneven low-light timing (100, 133, 100 ms) or a drop to 8 fps is a new rate.
    assert numbered([1, 1, 11, 12, 1, 1]) == [1, 2, 3, 14, 26, 27, 28]
    assert numbered([1, 1, 3, 1, 3, 1, 1]) == [1, 2, 3, 6, 7, 10, 11, 12]
    assert numbered([1, 1, 0.1, 0.133, 0.1, 0.1]) == list(range(1, 8))
    assert numbered([1, 1, 0.1, 0.125, 0.125, 0.125, 0.125]) == list(range(1, 9))


def _pattern_av(i: int) -> np.ndarray:
    return pattern_frame(i)[:, :, ::-1].copy()  # RGB for PyAV


def test_phone_clip_dropping_to_10_fps_keeps_every_frame_and_its_time(tmp_path: Path) -> None:
    """Field trial: 30 fps for 2 s then 10 fps, nothing lost, was read as '2 frames could not
    be decoded' with a chain break at the rate change."""
    path = tmp_path / "vfr10.mp4"
    tb = fractions.Fraction(1, 90000)
    shown = list(range(60)) + list(range(60, 150, 3))  # source frames kept, at 30 fps ticks
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = stream.codec_context.time_base = tb
        for i in shown:
            frame = av.VideoFrame.from_ndarray(_pattern_av(i), format="rgb24")
            frame.pts, frame.time_base = i * 3000, tb
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    src = VideoFileSource(path)
    frames = [(f.index, f.t_stream) for f in src]
    assert [i for i, _ in frames] == list(range(1, len(shown) + 1))
    assert [round(t, 3) for _, t in frames] == [round(i / 30, 3) for i in shown]
    assert not any("could not be decoded" in n or "truncated" in n for n in src.notices), src.notices


def test_stream_copy_cut_mid_gop_is_not_called_truncated(tmp_path: Path) -> None:
    """Field trial: a complete `ffmpeg -c copy` cut starting inside a GOP (the mp4 edit list
    discards the packets before the cut) was reported as 'ends early (truncated?)'."""
    full, cut = tmp_path / "gop.mp4", tmp_path / "cut.mp4"
    with av.open(str(full), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": "30", "bf": "2"}
        for i in range(90):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_pattern_av(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(full)) as src_file, av.open(str(cut), "w") as out:
        template = out.add_stream_from_template(src_file.streams.video[0])
        for packet in [p for p in src_file.demux(src_file.streams.video[0]) if p.size][10:]:
            packet.stream = template
            out.mux(packet)
    src = VideoFileSource(cut)
    assert src.timing.discarded > 0  # the edit list is there: what the test is about
    delivered = sum(1 for _ in src)
    assert delivered > 0 and not any("truncated" in n for n in src.notices), src.notices


def _write_pyav(path: Path, container: str, codec: str, frames: int = 6) -> None:
    import av

    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for i in range(frames):
            rgb = np.full((240, 320, 3), 40 * (i % 6), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_folder_replay_takes_camcorder_and_phone_files_and_names_what_it_skips(make_video, tmp_path):
    """Field trial: a camcorder's .MTS and an old phone's .3gp in a replay folder were
    dropped without a word. They are videos now; an unknown file is named in a note."""
    from realtime.replay import plan_replay

    folder = tmp_path / "day1"
    folder.mkdir()
    make_video("day1/a.avi", frames=3)
    _write_pyav(folder / "camcorder.MTS", "mpegts", "mpeg2video")
    _write_pyav(folder / "old_phone.3gp", "3gp", "mpeg4")
    (folder / "truth.csv").write_text("video,type,onset,offset\n")
    (folder / "notes.txt").write_text("side file")
    (folder / "session.xyz").write_bytes(b"\x00unknown")
    plan = plan_replay(str(folder), data=None, annotations=None, truth=None, fps=None)
    assert [it.name for it in plan.items] == ["a", "camcorder", "old_phone"]
    for item in plan.items[1:]:
        assert sum(1 for _ in item.open()) == 6
    assert len(plan.notes) == 1 and "session.xyz" in plan.notes[0] and "not replayed" in plan.notes[0]
    assert "truth.csv" not in plan.notes[0] and "notes.txt" not in plan.notes[0]
    (folder / "a.avi").unlink()
    (folder / "camcorder.MTS").unlink()
    (folder / "old_phone.3gp").unlink()
    with pytest.raises(UserError, match="session.xyz"):
        plan_replay(str(folder), data=None, annotations=None, truth=None, fps=None)


def test_folder_of_videos_with_a_stray_image_replays_the_videos(make_video, tmp_path):
    """Field review: recordings beside a screenshot were replayed as ONE frame folder of the
    screenshot (or refused for lack of --fps), every video silently dropped. A folder with
    video files is a folder of videos; the image is named in the note."""
    import cv2

    from realtime.replay import plan_replay

    folder = tmp_path / "sessions"
    folder.mkdir()
    make_video("sessions/p01.avi", frames=3)
    make_video("sessions/p02.avi", frames=3)
    cv2.imwrite(str(folder / "setup.jpg"), np.zeros((16, 16, 3), np.uint8))
    frames = folder / "p03"  # a frame folder beside them is still one
    frames.mkdir()
    cv2.imwrite(str(frames / "img1.jpg"), np.zeros((16, 16, 3), np.uint8))
    plan = plan_replay(str(frames), data=None, annotations=None, truth=None, fps=30.0)
    assert [it.name for it in plan.items] == ["p03"]  # a plain frame folder is unchanged
    make_video("sessions/p03/preview.avi", frames=3)  # a preview beside a subfolder's frames
    plan = plan_replay(str(folder), data=None, annotations=None, truth=None, fps=30.0)
    assert [it.name for it in plan.items] == ["p01", "p02", "p03"]
    assert len(plan.notes) == 1 and "setup.jpg" in plan.notes[0]


def test_frame_places_take_a_splice_as_a_one_frame_gap():
    """A timestamp step of hours (joined recordings, a clock reset) is a splice, not
    lost data: one frame's gap (the chain breaks), times go on; an ordinary loss stays."""
    tb = 1 / 90000
    step = 3000  # 30 fps in 90 kHz ticks
    first = np.arange(5) * step
    second = first[-1] + 2**33 - 10 * step + np.arange(4) * step  # FFmpeg's unwrapped TS reset
    numbers, seconds, splices = sources.frame_places(np.concatenate((first, second)), tb, 30.0)
    assert list(numbers) == [1, 2, 3, 4, 5, 7, 8, 9, 10] and splices == [7]
    assert np.allclose(seconds, (numbers - 1) / 30.0)
    lossy = np.array([0, 1, 2, 6, 7]) * step  # 3 lost frames: counted as before
    numbers, _, splices = sources.frame_places(lossy, tb, 30.0)
    assert list(numbers) == [1, 2, 3, 7, 8] and splices == []


def test_joined_transport_streams_play_through_the_seam(tmp_path):
    """`cat a.ts b.ts > joined.ts` (camcorder or NVR segments) whose second part's clock
    is an hour on: it used to be numbered 108,000 frames on (and, paced, waited an hour)."""
    from fractions import Fraction

    import av

    def write(path: Path, start_s: float) -> None:
        with av.open(str(path), "w", format="mpegts") as out:
            stream = out.add_stream("mpeg2video", rate=30)
            stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
            stream.codec_context.time_base = Fraction(1, 30)
            for i in range(45):  # 1.5 s: a restart falls back by more than RESTART_S
                frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), 5 * i, np.uint8), format="rgb24")
                frame.pts, frame.time_base = int(start_s * 30) + i, Fraction(1, 30)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)

    parts = [tmp_path / "a.ts", tmp_path / "b.ts"]
    write(parts[0], 0.0)
    write(parts[1], 3600.0)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    src = VideoFileSource(joined)
    frames = list(src)
    assert len(frames) == 90
    assert [f.index for f in frames] == list(range(1, 46)) + list(range(47, 92))  # one frame's gap
    assert frames[-1].t_stream == pytest.approx(90 / 30, abs=1e-3)  # frame 91: no phantom hour
    assert not any("could not be decoded" in n for n in src.notices)
    assert any("jump by more than 60 s before frame 47" in n for n in src.notices)
    assert src.retimed  # the .eaf must not link the file: its player would run an hour ahead
    # Both parts' clocks starting at zero (the usual `cat` of segments): decode order.
    write(parts[1], 0.0)
    joined.write_bytes(parts[0].read_bytes() + parts[1].read_bytes())
    src = VideoFileSource(joined)
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 91)) and src.fps == 30.0 and src.retimed
    assert frames[-1].t_stream == pytest.approx(89 / 30)
    assert [n for n in src.notices if "start again 1 time(s)" in n] and len(src.notices) == 1
    assert not VideoFileSource(parts[0]).retimed


def _still_with_counter(i: int) -> np.ndarray:
    """A still scene whose top-left block shows frame i ((i * 8) % 256): libx264's
    defaults give it runs of 3 B-frames, whose packet pts fall back by 3 frame intervals."""
    image = pattern_frame(0, 160, 120)
    image[:16, :16] = (i * 8) % 256
    return image[:, :, ::-1].copy()  # RGB for PyAV


@pytest.mark.skipif("libx264" not in av.codecs_available, reason="this PyAV build has no libx264")
@pytest.mark.parametrize("fps", [1, 2])
def test_low_fps_h264_with_b_frames_is_not_taken_for_joined_recordings(tmp_path: Path, fps: int) -> None:
    """Field trial: 1-2 fps H.264 (time-lapse, security cameras) with B-frames was read as
    joined recordings ('the timestamps start again 10 time(s)'), in decode order, at 1/3 fps."""
    path = tmp_path / f"lowfps{fps}.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)  # libx264's default settings
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_still_with_counter(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as container:  # what the test is about: reordering falls back by over 1 s
        video = container.streams.video[0]
        pts = np.array([p.pts for p in container.demux(video) if p.size], np.int64)
        assert float((np.maximum.accumulate(pts)[:-1] - pts[1:]).max() * video.time_base) > sources.RESTART_S
    src = VideoFileSource(path)
    frames = list(src)
    assert src.fps == fps and src.timing.restarts == 0 and not src.retimed
    assert [f.index for f in frames] == list(range(1, 61))
    shown = [int(f.image[:16, :16].mean()) for f in frames]
    assert all(abs(v - (i * 8) % 256) <= 6 for i, v in enumerate(shown)), shown
    assert frames[-1].t_stream == pytest.approx(59 / fps)
    assert src.notices == []


def test_pts_restarts_tell_b_frame_reordering_from_a_second_clock() -> None:
    tb = 1 / 16384  # MP4's tick for 1 fps
    tick = 16384
    # 1 fps, packet order of B-frame runs: the pts fall back by 2-3 s, more than RESTART_S
    reordered = np.array([0, 3, 1, 2, 6, 4, 5, 9, 7, 8] + list(range(10, 60)), np.int64) * tick
    assert sources.pts_restarts(reordered, tb) == []
    # the deepest reordering H.264/HEVC allow: 16 frames held back
    deepest = np.array([0, 17] + list(range(1, 17)) + list(range(18, 40)), np.int64) * tick
    assert sources.pts_restarts(deepest, tb) == []
    # two 2-minute 1 fps recordings joined, each clock from zero: a second clock
    joined = np.concatenate((np.arange(120), np.arange(120))) * tick
    assert sources.pts_restarts(joined, tb) == [120]
    # 30 fps, 1.5 s parts (the joined transport streams test): found as before
    assert sources.pts_restarts(np.concatenate((np.arange(45), np.arange(45))) * 3000, 1 / 90000) == [45]
    # two 30 fps parts with B-frames (packet order P B B), the second's clock reaching the
    # first's end: its B-frames fell in and out of the test, one restart counted many times
    def p_b_b(n: int) -> list[int]:
        return [0] + [x for g in range(1, n - 2, 3) for x in (g + 2, g, g + 1)]

    both = np.array(p_b_b(91) + p_b_b(91), np.int64) * 3000
    assert sources.pts_restarts(both, 1 / 90000) == [len(p_b_b(91))]
    # 30 fps with B-frames and a 3 s pause: the B-frames coded after the first frame past
    # the pause fall back by 3 s, then the clock goes on above it (was "start again 1 time")
    paused = np.array([t if t < 180 else t + 90 for t in p_b_b(360)], np.int64) * 3000
    assert sources.pts_restarts(paused, 1 / 90000) == []


@pytest.mark.skipif("libx264" not in av.codecs_available, reason="this PyAV build has no libx264")
def test_a_pause_in_a_file_with_b_frames_keeps_its_times(tmp_path: Path) -> None:
    """Field trial: 30 fps H.264 with B-frames (libx264's defaults) and a 3 s pause was
    read as joined recordings, numbered in decode order: every later event 3 s early."""
    path = write_av(tmp_path / "paused.mp4", [_still_with_counter(i) for i in range(120)],
                    pts=[i + (90 if i >= 60 else 0) for i in range(120)], codec="libx264")  # 90 ticks = 3 s
    src = VideoFileSource(path)
    frames = list(src)
    assert src.timing.restarts == 0
    assert [f.index for f in frames] == list(range(1, 61)) + list(range(151, 211))  # 90 frame times of pause
    assert frames[60].t_stream == pytest.approx(5.0, abs=0.02)
    assert not any("start again" in n for n in src.notices)


@pytest.mark.parametrize("fmt", ["matroska", "mp4"])
def test_video_whose_first_track_is_a_still_reads_the_recording(tmp_path: Path, fmt: str) -> None:
    """Field trial: an MKV whose track 0 is a one-frame 160x120 still and track 1 the
    recording was read as one frame. The recording (150 frames, fewer pixels than the
    still) is read, with a note; MKV declares no frame counts (they are counted)."""
    path = tmp_path / ("two." + ("mkv" if fmt == "matroska" else "mp4"))
    with av.open(str(path), "w", format=fmt) as out:
        still = out.add_stream("mjpeg", rate=1)
        still.width, still.height, still.pix_fmt = 160, 120, "yuvj420p"
        video = out.add_stream("mpeg4", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.bit_rate = 8_000_000
        frame = av.VideoFrame.from_ndarray(pattern_frame(0, 160, 120)[:, :, ::-1].copy(), format="rgb24")
        for packet in [*still.encode(frame), *still.encode()]:
            out.mux(packet)
        for i in range(150):
            frame = av.VideoFrame.from_ndarray(small(i), format="bgr24")
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
    with av.open(str(path)) as container:
        assert [(s.index, s.width) for s in container.streams.video] == [(0, 160), (1, 64)]
    src = VideoFileSource(path)
    frames = list(src)
    assert src.fps == 30.0 and [f.index for f in frames] == list(range(1, 151))
    assert frames[0].image.shape == (48, 64, 3)
    shown = [int(f.image[:16, :16].mean()) for f in frames]
    assert all(abs(v - (i * 8) % 256) <= 6 for i, v in enumerate(shown)), shown
    assert src.notices == [f"{path.name}: 2 video tracks; reading track #0:1 (64x48, 150 frames), "
                           "1 other track ignored"]


def test_cover_art_is_not_a_video_track(tmp_path: Path) -> None:
    """Cover art (an attached picture) is skipped without a note beside a recording, and
    is no video on its own (it was read as a one-frame video)."""
    def write(path: Path, recording: bool) -> Path:
        with av.open(str(path), "w") as out:
            video = out.add_stream("mpeg4", rate=30) if recording else None
            if video is not None:
                video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            audio = None if recording else out.add_stream("aac", rate=48000, layout="mono")
            cover = out.add_stream("png", rate=1)  # added before muxing: the header has every stream
            cover.width, cover.height, cover.pix_fmt = 160, 120, "rgb24"
            cover.disposition = av.stream.Disposition.attached_pic
            rgb = pattern_frame(0, 160, 120)[:, :, ::-1].copy()
            out.mux([*cover.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")), *cover.encode()])
            if video is not None:
                for i in range(30):
                    out.mux(video.encode(av.VideoFrame.from_ndarray(small(i), format="bgr24")))
                out.mux(video.encode())
            if audio is not None:
                silence = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                silence.sample_rate, silence.pts = 48000, 0
                out.mux([*audio.encode(silence), *audio.encode()])
        return path

    with_video = write(tmp_path / "song.mp4", recording=True)
    src = VideoFileSource(with_video)
    assert sum(1 for _ in src) == 30 and src.notices == []
    audio_only = write(tmp_path / "audio.mp4", recording=False)
    with av.open(str(audio_only)) as container:  # what the test is about: the only video is the cover
        assert [s.disposition & av.stream.Disposition.attached_pic for s in container.streams.video] == [
            av.stream.Disposition.attached_pic]
    with pytest.raises(UserError, match="its only video is a cover picture"):
        VideoFileSource(audio_only)


def test_folder_with_a_stray_cover_keeps_the_frame_numbers(tmp_path: Path) -> None:
    """Field trial: img0001..img0150.jpg plus a 160x120 cover.jpg were numbered 1..151 by
    position (every frame one off against the truth) and scaled to the cover's size."""
    folder = tmp_path / "stray_cover"
    folder.mkdir()
    for i in range(1, 151):
        assert cv2.imwrite(str(folder / f"img{i:04d}.jpg"), pattern_frame(i, 64, 48))
    assert cv2.imwrite(str(folder / "cover.jpg"), pattern_frame(0, 16, 12))
    src = FrameFolderSource(folder, 30)
    assert src.n_frames == 150
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 151))
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    shown = [int(f.image[:16, :16].mean()) for f in frames]
    assert all(abs(v - (i * 8) % 256) <= 6 for i, v in enumerate(shown, start=1)), shown
    assert frames[-1].t_stream == pytest.approx(149 / 30)
    assert src.notices == ["stray_cover: left out cover.jpg (1 file without a frame number at the end "
                           "of the name); the 150 numbered images keep their numbers"]


@pytest.mark.parametrize("names, left_out", [
    (["img1.png", "img2.png", "img3.png", "cover.png"], ["cover.png"]),  # at most 2
    ([f"img{i}.png" for i in range(1, 61)] + ["a.png", "b.png", "thumb.png"], ["a.png", "b.png", "thumb.png"]),
    (["img1.png", "a.png", "b.png"], None),  # most files have no number: by position
    (["img1.png", "img2.png", "a.png", "b.png"], None),  # half: by position
    ([f"img{i}.png" for i in range(1, 41)] + ["a.png", "b.png", "c.png"], None),  # 3, not under 5 %
])
def test_folder_strays_left_out_only_among_numbered_files(tmp_path: Path, names: list[str],
                                                          left_out: list[str] | None) -> None:
    numbering = sources.number_frames([tmp_path / n for n in names])
    if left_out is None:
        assert numbering.why_position is not None and numbering.left_out == ()
        assert len(numbering.frames) == len(names)
    else:
        assert numbering.why_position is None and [p.name for p in numbering.left_out] == left_out
        assert numbering.frames == [(i, tmp_path / f"img{i}.png") for i in range(1, len(names) - len(left_out) + 1)]


def test_a_file_still_being_recorded_is_told_as_such(tmp_path):
    """An MKV a recorder is still writing (OBS): frames muxed after the file was opened
    were reported as 'decoded frames with no place among the file's timestamps'."""
    import av

    path = tmp_path / "growing.mkv"
    out = av.open(str(path), "w", format="matroska", options={"flush_packets": "1", "live": "1"})
    stream = out.add_stream("mjpeg", rate=30)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuvj420p"

    def write(frames: range) -> None:
        for i in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pattern_frame(i, 320, 240), format="bgr24")):
                out.mux(packet)

    write(range(30))
    src = VideoFileSource(path)  # scanned now: 30 frames
    write(range(30, 60))
    for packet in stream.encode():
        out.mux(packet)
    out.close()
    frames = list(src)
    assert frames and any("the file grew while it was read (still being recorded?)" in n for n in src.notices), \
        src.notices
    assert not any("had no place" in n for n in src.notices)


def test_a_link_to_nothing_in_a_frame_folder_is_named(tmp_path):
    """A frame folder copied with its links but not their targets: the dangling links were
    skipped without a word (a hole in the numbering the user could not explain)."""
    folder = tmp_path / "f"
    _write_numbered(folder, [1, 2, 4])
    (folder / "img3.png").symlink_to(tmp_path / "gone" / "img3.png")
    src = FrameFolderSource(folder, 30)
    assert [f.index for f in src] == [1, 2, 4]
    assert any("1 image link points to nothing, not read: img3.png" in n for n in src.notices), src.notices


def test_float_tiff_frames_in_0_1_or_0_255_read_as_8_bit(tmp_path):
    """Float TIFF exports: 0..255 came out all white and 0..1 brightened (OpenCV's own
    8-bit conversion)."""
    ramp = (np.arange(48 * 64 * 3).reshape(48, 64, 3) % 256).astype(np.float32)
    cv2.imwrite(str(tmp_path / "a.tif"), ramp)
    cv2.imwrite(str(tmp_path / "b.tif"), ramp / 255)
    highlight = ramp / 255
    highlight[0, 0] = 2.5  # a linear export's highlight above 1
    cv2.imwrite(str(tmp_path / "c.tif"), highlight)
    for name in ("a.tif", "b.tif", "c.tif"):
        image = sources.read_image(tmp_path / name)
        assert image.dtype == np.uint8 and np.abs(image[1:].astype(int) - ramp[1:].astype(int)).max() <= 5, name


def test_a_frame_folder_with_input_subfolders_names_them(make_video, tmp_path):
    """A cover image beside clip folders made the parent one 1-frame stream and its
    subfolders went unreplayed without a word."""
    import cv2

    parent = tmp_path / "parent"
    (parent / "B").mkdir(parents=True)
    (parent / "C").mkdir()
    frame = np.full((48, 64, 3), 128, np.uint8)
    for i in (1, 2):
        cv2.imwrite(str(parent / "B" / f"{i:04d}.png"), frame)
    cv2.imwrite(str(parent / "cover.png"), frame)
    make_video("parent/C/clip.avi", frames=3)
    notes: list[str] = []
    assert [item.name for item in path_items(parent, 30.0, notes)] == ["parent"]
    assert notes == [f"{parent}: replayed as one frame folder (its 1 image); its subfolder(s) B, C hold frames or "
                     "videos and were not replayed (replay each by its path, or move the loose images out)"]
    (parent / "cover.png").unlink()
    assert [item.name for item in path_items(parent, 30.0, [])] == ["B"]  # (C's clip is one level down)


def test_a_multi_page_tiff_is_refused_by_name(tmp_path):
    """OpenCV reads a TIFF stack's first page as a 1-frame video ("only 1 frame")."""
    import cv2

    from realtime.common.errors import UserError

    pages = [np.full((48, 64, 3), v, np.uint8) for v in (10, 90, 170)]
    assert cv2.imwritemulti(str(tmp_path / "stack.tif"), pages)
    with pytest.raises(UserError, match=r"stack.tif: a TIFF of 3 pages; write its pages as one image per frame"):
        path_items(tmp_path / "stack.tif", None, [])
    assert cv2.imwrite(str(tmp_path / "one.tif"), pages[0])
    assert [item.name for item in path_items(tmp_path / "one.tif", None, [])] == ["one"]


def test_links_to_missing_videos_are_named(make_video, tmp_path):
    """A link into an unmounted NAS (or a loop of links) beside good videos was skipped
    without a word; alone it gave "no video files or frame folders in it"."""
    from realtime.common.errors import UserError

    (tmp_path / "mixed").mkdir()
    make_video("mixed/good.avi", frames=3)
    os.symlink("/mnt/nas/interview.mp4", tmp_path / "mixed" / "interview.mp4")
    os.symlink("loop.mp4", tmp_path / "mixed" / "loop.mp4")
    notes: list[str] = []
    assert [item.name for item in path_items(tmp_path / "mixed", None, notes)] == ["good"]
    assert notes == [f"{tmp_path / 'mixed'}: not replayed, interview.mp4 (a link to /mnt/nas/interview.mp4, whose "
                     "target is missing), loop.mp4 (a link to loop.mp4, whose target is missing)"]
    (tmp_path / "mixed" / "good.avi").unlink()
    with pytest.raises(UserError, match=r"no video files or frame folders in it \(not replayed: interview.mp4 \(a link"):
        path_items(tmp_path / "mixed", None, [])
    with pytest.raises(UserError, match=r"interview.mp4: a link to /mnt/nas/interview.mp4, whose target is missing$"):
        path_items(tmp_path / "mixed" / "interview.mp4", None, [])


def test_a_file_without_a_frame_rate_says_25_fps_was_assumed(tmp_path: Path) -> None:
    """A raw MJPEG stream (and a Y4M file with F0:0) carries no rate: FFmpeg stamps it at
    25 fps, which silently set K and every time (a 30 fps recording's events 20% late)."""
    mjpeg = tmp_path / "cam.mjpeg"
    with av.open(str(mjpeg), "w", format="mjpeg") as out:
        stream = out.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for i in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_still_with_counter(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    y4m = tmp_path / "raw.y4m"
    plane = np.full(160 * 120 * 3 // 2, 128, np.uint8).tobytes()
    y4m.write_bytes(b"YUV4MPEG2 W160 H120 F0:0 Ip A1:1 C420jpeg\n" + b"FRAME\n".join([b""] + [plane] * 10))
    for path, what in ((mjpeg, "a raw MJPEG stream"), (y4m, "a Y4M file with F0:0 in its header")):
        src = VideoFileSource(path)
        assert len(list(src)) == 10 and src.fps == 25.0
        assert src.notices == [f"{path.name}: {what}, which declares no frame rate: 25 fps assumed (FFmpeg's "
                               "default), which sets K and the times; give --fps with the rate it was recorded at"]
        given = VideoFileSource(path, fps=30.0)
        assert len(list(given)) == 10 and given.fps == 30.0 and given.notices == []
    y4m.write_bytes(y4m.read_bytes().replace(b"F0:0", b"F25:1", 1))  # a declared 25 fps: nothing to say
    assert VideoFileSource(y4m).timing.undeclared is None


def test_a_truncated_mkv_says_it_ends_early(tmp_path: Path) -> None:
    """MKV declares no frame count, so a cut file ended early without a word (an MP4 or
    AVI says "read N of M declared frames"); its header's DURATION tells. A whole file,
    also one with a pause (variable rate), says nothing."""
    def write(path: Path, pause_after: int | None, last_held_s: float | None = None) -> None:
        with av.open(str(path), "w") as out:
            stream = out.add_stream("mpeg4", rate=30)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            stream.codec_context.time_base = fractions.Fraction(1, 1000)
            last = round(89 * 1000 / 30) + (1000 if pause_after is not None else 0)
            for i in range(91):
                frame = None
                if i < 90:
                    frame = av.VideoFrame.from_ndarray(_still_with_counter(i), format="rgb24")
                    frame.pts = round(i * 1000 / 30) + (1000 if pause_after is not None and i > pause_after else 0)
                    frame.time_base = fractions.Fraction(1, 1000)
                for packet in stream.encode(frame):
                    if last_held_s is not None and packet.pts is not None and \
                            round(packet.pts * packet.time_base * 1000) == last:
                        packet.duration = round(last_held_s / packet.time_base)  # a slideshow's last slide
                    out.mux(packet)

    whole, paused, held = tmp_path / "whole.mkv", tmp_path / "paused.mkv", tmp_path / "held.mkv"
    write(whole, None)
    write(paused, 40)
    write(held, None, last_held_s=3.0)  # its DURATION counts the held last frame
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    for path in (whole, paused, held):
        src = VideoFileSource(path)
        assert len(list(src)) == 90 and not any("ends early" in n for n in src.notices), src.notices
    src = VideoFileSource(cut)
    n = len(list(src))
    assert 20 < n < 90
    assert [x for x in src.notices if "ends early" in x] == [
        f"cut.mkv: read {n} frames, to {(n - 1) / 30 + 1 / 30:.1f} s of the 3.0 s its header declares; the file ends "
        "early (truncated?)"]


def test_a_mirrored_display_matrix_is_mirrored_not_turned_upside_down(tmp_path):
    """A front camera's (or an editor's) horizontal flip in the MP4 track header: PyAV
    reports it as a rotation of -180, and the face was analysed upside down."""
    import struct

    image = np.zeros((48, 64, 3), np.uint8)
    image[:16, :16] = 250  # top left
    image[40:, 20:30] = 120
    path = write_av(tmp_path / "selfie.mp4", [image] * 3)
    data = bytearray(path.read_bytes())
    at = data.index(b"tkhd")
    matrix_at = at + 4 + (40 if data[at + 4] == 0 else 52)
    identity = struct.pack(">9i", 1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    assert bytes(data[matrix_at : matrix_at + 36]) == identity
    data[matrix_at : matrix_at + 36] = struct.pack(">9i", -(1 << 16), 0, 0, 0, 1 << 16, 0, 64 << 16, 0, 1 << 30)
    path.write_bytes(bytes(data))
    frames = list(VideoFileSource(path))
    assert len(frames) == 3 and frames[0].image.shape == image.shape
    assert np.abs(frames[0].image.astype(int) - image[:, ::-1]).mean() < 4  # as players show it
    assert np.abs(frames[0].image.astype(int) - image[::-1, ::-1]).mean() > 15  # not turned 180 degrees


def test_of_two_equal_tracks_the_default_one_is_read(tmp_path: Path) -> None:
    """Field trial: two 90-frame tracks, #0:0 marked default (the face), #0:1 larger
    (a screen capture): the larger was read, 'no face found', where players show #0:0."""
    path = tmp_path / "two.mkv"
    with av.open(str(path), "w") as out:
        face = out.add_stream("mpeg4", rate=30)
        face.width, face.height, face.pix_fmt = 64, 48, "yuv420p"
        face.bit_rate = 8_000_000
        face.disposition = av.stream.Disposition.default  # what a player shows
        screen = out.add_stream("mpeg4", rate=30)
        screen.width, screen.height, screen.pix_fmt = 160, 120, "yuv420p"
        for i in range(90):
            for stream, image in ((face, small(i)), (screen, pattern_frame(0, 160, 120))):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                    out.mux(packet)
        for stream in (face, screen):
            for packet in stream.encode():
                out.mux(packet)
    with av.open(str(path)) as container:
        defaults = [bool(s.disposition & av.stream.Disposition.default) for s in container.streams.video]
    assert defaults == [True, False]
    src = VideoFileSource(path)
    frames = list(src)
    assert len(frames) == 90 and frames[0].image.shape == (48, 64, 3)
    assert src.notices == [f"{path.name}: 2 video tracks; reading track #0:0 (64x48, 90 frames), "
                           "1 other track ignored"]


def test_an_mpeg_ts_whose_clock_wraps_early_is_not_called_truncated(tmp_path: Path) -> None:
    """An MPEG-TS declares no frame count and FFmpeg gives its track a length whose start
    is not 0 (1.4 s on most recorders; negative where it unwraps timestamps that wrap at
    2^33 ticks). The length was compared with where the last frame ends on the file's
    clock: a whole file wrapping 2.4 s in was called 'truncated?'. The declared end is
    now the start plus the length."""
    def write(path: Path, first_tick: int) -> Path:
        tick = fractions.Fraction(1, 90000)
        with av.open(str(path), "w", format="mpegts") as out:
            stream = out.add_stream("mpeg4", rate=30)
            stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
            stream.time_base = tick
            for i in range(90):
                frame = av.VideoFrame.from_ndarray(_still_with_counter(i), format="rgb24")
                frame.pts, frame.time_base = first_tick + i * 3000, tick
                out.mux(stream.encode(frame))
            out.mux(stream.encode())
        return path

    for path in (write(tmp_path / "wraps.ts", 2**33 - 216000), write(tmp_path / "late.ts", 10 * 90000)):
        src = VideoFileSource(path)
        assert len(list(src)) == 90 and not any("ends early" in n for n in src.notices), src.notices


def test_a_fragmented_mp4_cut_inside_a_fragment_is_read_up_to_the_cut(tmp_path: Path) -> None:
    """A fragmented MP4 (what cameras and browsers record: fragments of moof + mdat) cut
    inside its third fragment's moof box could not be opened at all ('Invalid data'), and
    the two whole fragments before the cut were lost. Read front to back, every frame of
    them is delivered, with a notice; the frames the decoder still held at the cut too."""
    path = tmp_path / "frag.mp4"
    tick = fractions.Fraction(1, 30)
    with av.open(str(path), "w", options={"movflags": "frag_keyframe+empty_moov"}) as out:
        stream = out.add_stream("libx264", rate=30)  # B-frames: the decoder holds frames back
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.options = {"g": "30", "keyint_min": "30"}
        for i in range(150):
            frame = av.VideoFrame.from_ndarray(_still_with_counter(i), format="rgb24")
            frame.pts, frame.time_base = i, tick
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    data = path.read_bytes()
    moofs, pos = [], 0
    while pos < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"moof":
            moofs.append((pos, size))
        pos += size
    assert len(moofs) == 5
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: moofs[2][0] + moofs[2][1] // 2])
    src = VideoFileSource(cut)
    frames = list(src)
    assert [f.index for f in frames] == list(range(1, 61))
    assert frames[-1].t_stream == pytest.approx(59 / 30)
    assert any("fragmented MP4 cut inside a fragment" in n for n in src.notices), src.notices
    assert not any("could not be decoded" in n for n in src.notices), src.notices
    whole = VideoFileSource(path)  # a whole fragmented file is read as before, without a word
    assert len(list(whole)) == 150 and not whole.notices


def test_a_frozen_live_stream_is_reconnected_once_until_a_frame_changes() -> None:
    """FrozenWatch: byte-identical frames for FROZEN_S ask for one reconnection; a stream
    still frozen after it (a static test pattern) is not reconnected again every FROZEN_S
    (it was, forever), until a frame has changed. One pixel off the coarse grid counts."""
    from realtime.sources import FROZEN_S, FrozenWatch

    watch = FrozenWatch()
    still = np.full((48, 64, 3), 90, np.uint8)
    asks = []
    for i in range(600):  # 20 s at 30 fps
        if watch.frozen(still.copy(), i / 30):
            asks.append(i / 30)
            watch.reconnecting()
    assert len(asks) == 1 and asks[0] == pytest.approx(FROZEN_S, abs=0.05)
    moved = still.copy()
    moved[5, 5] = 91  # off the 16-pixel grid
    assert not watch.frozen(moved, 20.0)  # a change re-arms it
    assert any(watch.frozen(moved.copy(), 20.0 + i / 30) for i in range(1, 70))


def test_live_numbering_counts_a_pause_as_lost_frames_and_a_lower_rate_as_a_rate() -> None:
    """LiveNumbering (30 fps): a 3 s pause on the stream clock is 89 frames lost; a stream
    going on at 10 fps loses frames once, at the change, and its new rate is told once; gap
    notices come at most once per LIVE_NOTICE_S, the others counted into the next."""
    from realtime.sources import LIVE_NOTICE_S, LiveNumbering

    n = LiveNumbering(30.0)
    assert [n.lost(1 / 30, True) for _ in range(5)] == [0] * 5
    assert n.lost(3.0, True) == 89
    assert n.lost(1 / 30, True) == 0
    assert n.lost(0.1, True) == 2  # the change to 10 fps
    later = [n.lost(0.1, True) for _ in range(20)]
    assert later == [0] * 20
    rates = [n.slower() for _ in range(3)]
    assert rates[0] == pytest.approx(10.0) and rates[1:] == [None, None]
    assert n.lost(1.2, False) == 11 and LiveNumbering(30.0).lost(0.5, False) == 0  # arrival: over 1 s only
    assert n.gap(0.0) == 1 and n.gap(5.0) is None and n.gap(10.0) is None and n.gap(LIVE_NOTICE_S + 1) == 3


def test_a_live_frame_without_a_timestamp_shifts_no_later_time() -> None:
    """OpenCV gives POS_MSEC 0 for a frame without a timestamp: it was taken as the
    clock's new reference, so the next frame 'came 2 s later' (60 frames lost) and every
    later time was 2 s off."""
    from realtime.sources import LiveClock

    clock = LiveClock(0.0, 1000.0)
    times = []
    for i in range(1, 90):
        arrival = i / 30
        pos = 0.0 if i == 45 else 1000.0 + i * 1000 / 30
        step, _ = clock.step(arrival, pos)
        times.append(clock.t)
        assert step < 0.1
    assert times[-1] == pytest.approx(89 / 30, abs=0.04)
