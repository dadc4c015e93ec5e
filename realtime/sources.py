"""Frame sources: video file, frame folder, camera and RTSP stream.

Every source is an iterable of `RawFrame`s with 1-based `index`, `t_capture`
(time.monotonic() when read) and `t_stream` (seconds: `(index - 1) / fps` for files and
folders, wall-clock seconds since the first frame for live sources).

Replay sources (`VideoFileSource`, `FrameFolderSource`) end when the input ends:
- a file OpenCV cannot open, or one with no decodable frame, raises `UserError`;
- a truncated/corrupted file ends cleanly at the first frame that cannot be decoded
  (decoders cannot tell "truncated" from "ended"; every frame before it is delivered);
- a frame whose size differs from the first frame's raises `UserError` naming the frame
  (the aligned-face pipeline tolerates it, but it always means a spliced/broken input);
- an unreadable image in a folder raises `UserError` naming the file.

Live sources (`CameraSource`, `RtspSource`) never end on their own: when frames stop
(server gone, stall past the read timeout, end of stream) they report
`on_state("down", detail)`, reconnect with capped exponential backoff and report
`on_state("up", detail)` once a frame arrives again. The frame index keeps increasing
across reconnects, so consumers must break their frame chain on "down". After
`max_retries` consecutive failed attempts (None: retry forever) they raise
`SourceUnavailable`. `on_state` runs in the thread that iterates the source (the
capture thread). `on_connection`, when set, gets one line for the user per connection
event, from the thread that connects: each failed attempt (`waiting for camera 0 (retry
2, next in 1 s): cannot connect`), frames arriving and frames stopping. `close()` may be
called from any thread; it also interrupts a backoff wait, and a connection that
completes after it is released at once. Each source is iterated once, by one thread.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import cv2
import numpy as np

from realtime.errors import UserError

SourceState = Literal["down", "up"]
StateCallback = Callable[[SourceState, str], None]
SourceKind = Literal["file", "folder", "camera", "rtsp"]
SOURCE_KINDS: tuple[str, ...] = ("file", "folder", "camera", "rtsp")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MAX_PLAUSIBLE_FPS = 1000.0  # FFmpeg reports RTP clock rates (90000) when it cannot tell
# FFmpeg's own log lines ("[tcp @ 0x..] Connection refused", "[mjpeg @ 0x..] bad data")
# would reach the user's terminal between our status and our one-line errors, which
# already say what happened (a reconnecting source, a truncated file). OpenCV reads this
# once, when its FFmpeg backend first opens something; a user's own setting wins.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
# cv2.setLogLevel during an open: silent. A failed open is reported as a source state
# and in our one-line error; OpenCV's own "[ WARN] ... can't be used to capture" and
# "[ERROR] ... Camera index out of range" lines would only repeat it.
CV_LOG_SILENT = 0


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One decoded frame as it leaves a source."""

    index: int  # 1-based, increasing by one per delivered frame (also across reconnects)
    t_capture: float  # time.monotonic() right after the read
    t_stream: float  # seconds on the stream's own time line
    image: np.ndarray  # (H, W, 3) uint8 BGR


class SourceUnavailable(UserError):
    """A live source delivered no frame in `1 + max_retries` consecutive attempts."""


NoticeCallback = Callable[[str], None]


class FrameSource(ABC):
    """Iterate to get frames; `close()` (any thread) stops the iteration at the next frame.

    `on_notice`, when set by the runner, receives one-line messages for the user about
    the input (frames that could not be decoded, a varying frame rate, a short file);
    `notices` keeps them all for the run's summary.
    """

    name: str  # video id: file stem, folder name, URL path or "camera<N>"
    is_live: bool

    def __init__(self) -> None:
        self._closed = threading.Event()
        self.on_notice: NoticeCallback | None = None
        self.notices: list[str] = []

    def notice(self, message: str) -> None:
        """Report something the user should know about this input (one line)."""
        self.notices.append(message)
        if self.on_notice is not None:
            self.on_notice(message)

    @property
    @abstractmethod
    def fps(self) -> float: ...

    @abstractmethod
    def __iter__(self) -> Iterator[RawFrame]: ...

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_fps(fps: float, what: str) -> float:
    if not (math.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS):
        raise UserError(f"{what}: frame rate must be in (0, {MAX_PLAUSIBLE_FPS:g}], got {fps}")
    return float(fps)


def same_size(size: tuple[int, ...] | None, image: np.ndarray, index: int, where: Path) -> tuple[int, ...]:
    """The stream's frame shape; a frame of another size is a UserError naming it (the
    aligner and the frame chain assume one size per stream)."""
    if size is not None and image.shape != size:
        raise UserError(f"{where}: frame {index} is {image.shape[1]}x{image.shape[0]}, "
                        f"earlier frames {size[1]}x{size[0]}")
    return image.shape


class VideoFileSource(FrameSource):
    """A video file read with OpenCV (FFmpeg backend); fps from the file unless given."""

    is_live = False

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such video file")
        self.name = self.path.stem
        self._iterating = False
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not self._cap.isOpened():
            self._cap.release()
            raise UserError(f"{self.path}: cannot open video (unsupported or corrupted)")
        if fps is None:
            fps = self._cap.get(cv2.CAP_PROP_FPS)
            what = f"{self.path}: the file's frame rate; pass fps to override"
        else:
            what = f"{self.path}: fps"
        try:
            self._fps = _check_fps(fps, what)
        except UserError:
            self._cap.release()
            raise

    @property
    def fps(self) -> float:
        return self._fps

    def __iter__(self) -> Iterator[RawFrame]:
        """Iterate once: the file is read front to back."""
        cap, size, index = self._cap, None, 0
        self._iterating = True
        try:
            while not self._closed.is_set():
                ok, image = cap.read()
                t_capture = time.monotonic()
                if not ok or image is None:
                    break  # end of file, or a truncated tail: a clean end (module doc)
                index += 1
                size = same_size(size, image, index, self.path)
                yield RawFrame(index, t_capture, (index - 1) / self._fps, image)
            if index == 0 and not self._closed.is_set():
                raise UserError(f"{self.path}: video has no decodable frame")
        finally:
            cap.release()

    def close(self) -> None:
        super().close()
        if not self._iterating:  # else the reading thread releases it (not thread-safe)
            self._cap.release()


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: img2 < img10, 006_1_0002 < 006_1_0010."""
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in re.split(r"(\d+)", name))


class FrameFolderSource(FrameSource):
    """A folder of image files, one per frame, in natural order; frame i is the i-th file."""

    is_live = False

    def __init__(self, path: str | Path, fps: float) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such frame folder")
        self.name = self.path.name
        self._fps = _check_fps(fps, f"{self.path}: fps")
        self.files = sorted((p for p in self.path.iterdir()
                             if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: natural_key(p.name))
        if not self.files:
            raise UserError(f"{self.path}: folder holds no image files "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")

    @property
    def fps(self) -> float:
        return self._fps

    def __iter__(self) -> Iterator[RawFrame]:
        size = None
        for index, file in enumerate(self.files, start=1):
            if self._closed.is_set():
                return
            image = cv2.imread(str(file), cv2.IMREAD_COLOR)
            t_capture = time.monotonic()
            if image is None:
                raise UserError(f"{file}: cannot read image (frame {index})")
            size = same_size(size, image, index, file)
            yield RawFrame(index, t_capture, (index - 1) / self._fps, image)


class LiveSource(FrameSource):
    """Reconnect logic shared by camera and RTSP; subclasses only open a capture."""

    is_live = True

    def __init__(self, name: str, fps: float | None, max_retries: int | None,
                 on_state: StateCallback | None, backoff_s: float, backoff_max_s: float) -> None:
        super().__init__()
        if max_retries is not None and max_retries < 0:
            raise UserError(f"max_retries: must be >= 0 or None, got {max_retries}")
        self.name = name
        self.max_retries = max_retries
        self.on_state = on_state
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._fps_override = None if fps is None else _check_fps(fps, f"{name}: fps")
        self._fps: float | None = self._fps_override
        self._state: SourceState | None = None
        # A capture opened (and its first frame read) by `connect` before iteration began.
        self._pending: tuple[cv2.VideoCapture, np.ndarray] | None = None
        self.on_connection: NoticeCallback | None = None
        self._began = False  # iteration started: it owns (re)connecting from now on

    @abstractmethod
    def _open(self) -> cv2.VideoCapture:
        """A new capture (maybe not opened: the caller checks isOpened())."""

    @abstractmethod
    def _describe(self) -> str:
        """The source as the user named it (URL or camera index), for messages."""

    def _fps_of(self, cap: cv2.VideoCapture) -> float:
        if self._fps_override is not None:
            return self._fps_override
        reported = cap.get(cv2.CAP_PROP_FPS)
        return _check_fps(reported, f"{self._describe()}: reported frame rate; pass fps")

    def describe(self) -> str:
        """The source as the user named it: the URL or `camera N`."""
        return self._describe()

    def connect(self) -> None:
        """Open the first connection now (retries and backoff included; blocks up to
        forever when `max_retries` is None), in the caller's thread; iteration starts on
        it. Raises `SourceUnavailable` when retries run out or `close()` interrupts it,
        `UserError` when the stream reports an impossible frame rate."""
        if self._pending is None and not self._began:
            self._pending = self._connect()

    @property
    def fps(self) -> float:
        """Override, else the rate the first connection reports: without an override,
        reading this connects (see `connect`) in the caller's thread."""
        if self._fps is None:
            self.connect()
        assert self._fps is not None
        return self._fps

    def _set_state(self, state: SourceState, detail: str) -> None:
        if state != self._state:
            self._state = state
            if self.on_state is not None:
                self.on_state(state, detail)

    def _tell(self, line: str) -> None:
        # A connection abandoned by close() (Ctrl-C) must not talk after the run's end.
        if self.on_connection is not None and not self._closed.is_set():
            self.on_connection(line)

    def _closed_while_connecting(self) -> SourceUnavailable:
        return SourceUnavailable(f"{self._describe()}: closed while connecting")

    def _try_open(self) -> tuple[cv2.VideoCapture, np.ndarray] | str:
        """An open capture and its first frame, or why there is none."""
        level = cv2.getLogLevel()
        cv2.setLogLevel(CV_LOG_SILENT)
        try:
            cap = self._open()
        finally:
            cv2.setLogLevel(level)
        if not cap.isOpened():
            cap.release()
            return "cannot connect"
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            return "connected but no frame arrived"
        return cap, image

    def _connect(self) -> tuple[cv2.VideoCapture, np.ndarray]:
        """Open and read one frame, retrying with capped exponential backoff (seconds:
        backoff_s, 2 x backoff_s, ... up to backoff_max_s). Raises `SourceUnavailable`
        after `max_retries` failed retries or when closed meanwhile."""
        delay, attempt = 0.0, 0
        while True:
            if self._closed.wait(delay):  # wait(0) only tests the flag
                raise self._closed_while_connecting()
            got = self._try_open()
            if self._closed.is_set():  # closed during a (possibly long) open: let go
                if not isinstance(got, str):
                    got[0].release()
                raise self._closed_while_connecting()
            if not isinstance(got, str):
                if self._fps is None:
                    try:
                        self._fps = self._fps_of(got[0])
                    except UserError:
                        got[0].release()
                        raise
                self._set_state("up", f"{self._describe()}: receiving frames")
                self._tell(f"{self._describe()}: receiving frames"
                           + (f" (after {attempt} retries)" if attempt else ""))
                return got
            detail = f"{self._describe()}: {got}"
            self._set_state("down", detail)
            if self.max_retries is not None and attempt >= self.max_retries:
                raise SourceUnavailable(f"{detail} (gave up after {attempt} retries)")
            attempt += 1
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
            of = "" if self.max_retries is None else f" of {self.max_retries}"
            self._tell(f"waiting for {self._describe()} (retry {attempt}{of}, "
                       f"next in {delay:g} s): {got}")

    def __iter__(self) -> Iterator[RawFrame]:
        index, t0, cap = 0, None, None
        self._began = True
        try:
            while not self._closed.is_set():
                if cap is None:
                    if self._pending is not None:
                        (cap, image), self._pending = self._pending, None
                    else:
                        cap, image = self._connect()
                else:
                    ok, image = cap.read()
                    if not ok or image is None:
                        cap.release()
                        cap = None
                        detail = f"{self._describe()}: stream stopped delivering frames"
                        self._set_state("down", detail)
                        self._tell(f"{detail}; reconnecting")
                        continue
                t_capture = time.monotonic()
                t0 = t_capture if t0 is None else t0
                index += 1
                yield RawFrame(index, t_capture, t_capture - t0, image)
        finally:
            if cap is not None:
                cap.release()
            if self._pending is not None:
                self._pending[0].release()
                self._pending = None


class CameraSource(LiveSource):
    """A local camera (cv2.VideoCapture(index)); reads rely on the backend's own timeout
    (V4L2: select() with a timeout), after which the camera is reopened."""

    def __init__(self, index: int = 0, width: int | None = None, height: int | None = None,
                 fps: float | None = None, *, max_retries: int | None = None,
                 on_state: StateCallback | None = None, backoff_s: float = 0.5,
                 backoff_max_s: float = 8.0, name: str | None = None) -> None:
        super().__init__(name or f"camera{index}", None, max_retries, on_state,
                         backoff_s, backoff_max_s)
        self.index, self.width, self.height, self.requested_fps = index, width, height, fps

    def _describe(self) -> str:
        return f"camera {self.index}"

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.index)
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.width),
                            (cv2.CAP_PROP_FRAME_HEIGHT, self.height),
                            (cv2.CAP_PROP_FPS, self.requested_fps)):
            if value is not None and cap.isOpened():
                cap.set(prop, value)
        return cap

    def _fps_of(self, cap: cv2.VideoCapture) -> float:
        # Cameras often report 0 or a nominal rate they ignore; fall back to the request.
        reported = cap.get(cv2.CAP_PROP_FPS)
        if math.isfinite(reported) and 0 < reported <= MAX_PLAUSIBLE_FPS:
            return float(reported)
        if self.requested_fps is not None:
            return _check_fps(self.requested_fps, "--fps")
        raise UserError(f"{self._describe()}: camera reports no frame rate; pass fps")


class RtspSource(LiveSource):
    """An RTSP stream read by OpenCV's FFmpeg backend, over TCP by default (no UDP loss),
    with open and read timeouts so that a dead server never blocks a read forever."""

    def __init__(self, url: str, fps: float | None = None, *, max_retries: int | None = None,
                 on_state: StateCallback | None = None, backoff_s: float = 0.5,
                 backoff_max_s: float = 8.0, open_timeout_s: float = 5.0,
                 read_timeout_s: float = 5.0, transport: Literal["tcp", "udp"] = "tcp",
                 name: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
            raise UserError(f"{url}: not an rtsp:// URL")
        if transport not in ("tcp", "udp"):
            raise UserError(f"transport: must be tcp or udp, got {transport!r}")
        super().__init__(name or (Path(parts.path).name or parts.hostname), fps, max_retries,
                         on_state, backoff_s, backoff_max_s)
        self.url, self.transport = url, transport
        self.open_timeout_s, self.read_timeout_s = open_timeout_s, read_timeout_s

    def _describe(self) -> str:
        return self.url

    def _open(self) -> cv2.VideoCapture:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.read_timeout_s * 1000)]
        # OpenCV reads FFmpeg options only from this variable, at open time. Set it just
        # for this open unless the user set it; restore afterwards.
        key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
        user_value = os.environ.get(key)
        if user_value is None:
            os.environ[key] = f"rtsp_transport;{self.transport}"
        try:
            return cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
        finally:
            if user_value is None:
                os.environ.pop(key, None)


def open_source(kind: str, value: str, *, fps: float | None = None, width: int | None = None,
                height: int | None = None, max_retries: int | None = None,
                on_state: StateCallback | None = None, backoff_s: float = 0.5,
                backoff_max_s: float = 8.0) -> FrameSource:
    """Open a source by kind ("file", "folder", "camera", "rtsp") and value (path, camera
    index or URL). Options that do not apply to the kind are ignored; `fps` is required
    for folders and overrides what files and streams report."""
    if kind == "file":
        return VideoFileSource(value, fps=fps)
    if kind == "folder":
        if fps is None:
            raise UserError(f"{value}: a frame folder needs --fps")
        return FrameFolderSource(value, fps)
    if kind == "camera":
        try:
            index = int(value)
        except ValueError:
            raise UserError(f"{value}: camera must be a device index (0, 1, ...)") from None
        return CameraSource(index, width, height, fps, max_retries=max_retries,
                            on_state=on_state, backoff_s=backoff_s, backoff_max_s=backoff_max_s)
    if kind == "rtsp":
        return RtspSource(value, fps, max_retries=max_retries, on_state=on_state,
                          backoff_s=backoff_s, backoff_max_s=backoff_max_s)
    raise UserError(f"--source: unknown kind {kind!r} (one of {', '.join(SOURCE_KINDS)})")
