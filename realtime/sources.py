"""Frame sources: video file, frame folder, camera and RTSP stream.

Every source is an iterable of `RawFrame`s with a 1-based `index`, `t_capture`
(time.monotonic() when read) and `t_stream` (seconds on the stream's own time line).
A frame's index is its place in the source, never a count of what was decoded, so a
frame that is missing (a hole in a folder's numbering, a damaged frame in a video)
shows as a jump in `index`; the pipeline breaks its frame chain there.

Video files (`VideoFileSource`, read with PyAV/FFmpeg):
- track: the video track that is the recording: cover art (attached pictures) is skipped;
  of several tracks (a thumbnail muxed first, screen + camera), the one with the most
  frames (declared, else duration x rate, else counted), then pixels; a notice names it
  and how many were ignored.
- index: the rank of the frame's presentation timestamp (pts) among the pts of all the
  video packets in the file, counted by a demux pass that does not decode (a damaged
  frame keeps its place; frames after it keep their numbers).
  Where the timestamps are not presentation times (none at all, e.g. a raw .h264
  stream, or decode-order stamps, e.g. H.264 with B-frames in an AVI: the first
  decoded frames' pts do not increase), frames are numbered in the order they are
  decoded and a packet that fails to decode takes the next number (frames in the
  decoder's reordering window may then be placed a few frames off; the count after
  them is right).
- t_stream: `(pts - first pts) x time_base` (seconds from the first frame), so a
  variable-rate file keeps its real times; with an `fps` override or without usable
  timestamps, `(index - 1) / fps`. A pts step over SPLICE_S (joined recordings, a clock
  reset) is a splice: index and t_stream go on after a one-frame gap (`frame_places`).
  Pts that start again in packet order (by more than 1 s and 16 frame intervals, the most
  B-frame reordering moves them: `pts_restarts`) are joined recordings: decode order,
  with a notice.
- fps (nominal; sets K downstream): the container's base rate (FFmpeg's guessed rate:
  r_frame_rate, the rate all timestamps are multiples of, corrected for codecs that
  count fields) when it is in (0, 1000] and at least a quarter of the frame intervals
  are one base tick (+-10%); else 1 / the median frame interval. A rate that varies
  (5th-95th percentile of the per-interval rates more than 10% apart) is noticed.
- rotation: a display matrix (phone videos stored sideways) is applied in multiples of
  90 degrees, so frames come out upright; flips in the matrix are not applied.
- `n_frames`: the frame count the container declares (None when it declares none).

Endings and damage (one-line notices through `FrameSource.notice`, never FFmpeg's own
log, which is silenced):
- a file FFmpeg cannot open, without a video stream, or with no decodable frame raises
  `UserError` naming the file;
- a frame that cannot be decoded is skipped and named in a notice; the numbering after
  it is unchanged;
- a file that ends before its declared frame count (truncated) ends cleanly after the
  last readable frame, with a notice "read N of M declared frames"; where the demuxer
  fails (a damaged or cut tail) the frames the decoder still holds are flushed out;
- a fragmented MP4 cut inside a fragment, which FFmpeg cannot open when it may seek (it
  walks every top-level box first), is opened front to back (`_FrontToBack`) and read
  up to the cut, with a notice;
- a frame of another size than the first is scaled to it when its aspect ratio is the
  same (adaptive-resolution recordings), else raises `UserError` naming the frame (a
  spliced input): `StreamSize`, for frame folders too.

Frame folders (`FrameFolderSource`): one image per frame; hidden files (name starting
with '.', e.g. macOS `._img1.jpg`) are skipped. A frame's index is the number at the end
of its file name (`img120.jpg` -> 120, `006_1_0120.jpg` -> 120; a folder numbered from 0
is shifted by one so it starts at 1), so a hole in the numbering is a jump in `index`
and is noticed. A few files without a trailing number in a folder of numbered ones (at
most STRAY_FILES, or under STRAY_SHARE of the files: a cover.jpg, a thumbnail) are left
out, named in a notice. When the names do not give usable numbers (more names without a
trailing number, two files with the same number, or numbers spread over more than twice
as many values as there are files, e.g. timestamps), the files are numbered 1..N by
position in natural order, with a notice. t_stream is `(index - 1) / fps`. An image
that cannot be read (empty, damaged, a JPEG cut short while it was written: its lower
part would be grey) is skipped like a damaged video frame: its number is a hole, the
frame chain breaks there, and a notice names the files; a folder without one readable
image raises `UserError` naming it.

Live sources (`CameraSource`, `RtspSource`) never end on their own: when frames stop
(server gone, stall past the read timeout, end of stream) they report
`on_state("down", detail)`, reconnect with capped exponential backoff and report
`on_state("up", detail)` once a frame arrives again. The frame index keeps increasing
by one per delivered frame across reconnects, so consumers must break their frame chain
on "down". Within a connection, t_stream follows the stream's own clock where the capture
keeps one (RTSP: the RTP timestamps through CAP_PROP_POS_MSEC, so the frames a stalled
server sends in one burst keep their times), else arrival (cameras), and a step longer
than `live_gap_s` (2.5 frame intervals of stream time, 1 s of arrival time) is frames
lost: the index jumps by them (the frame chain breaks) and a notice says so, unless the
stream goes on at that lower rate (`LiveNumbering`: the loss is counted once, at the
change, and the rate told). Between
connections t_stream goes on by arrival. Frames that stay byte-identical for FROZEN_S
(a decoder that no longer follows the stream: OpenCV repeats the last frame when an RTSP
server changes resolution inside a connection) are a stall too: the source reconnects,
once until a frame changes (`FrozenWatch`). Their fps (which sets
K and the smoothing windows in frames) is what they deliver, not only what they report:
at the first connection frames are timed for RATE_PROBE_S (only the last of them is
delivered), and a delivered rate more than RATE_TOLERANCE below the reported one (a
webcam that lengthens its exposure in dim light delivers 15 of its nominal 30 fps), or a
reported rate that is missing or impossible, gives way to the measured one, with a
notice (`delivered_fps`); a faster one is a backlog, not a rate. An fps given by the user
(RtspSource's `fps`) is never replaced. The rate is set once: a reconnection that reports
another rate than the first connection did is told in a notice, and K stays.
After `max_retries`
consecutive failed attempts (None: retry forever) they raise `SourceUnavailable`.
`on_state` runs in the thread that iterates the source (the capture thread).
`on_connection`, when set, gets one line for the user per connection event, from the
thread that connects: each failed attempt (`waiting for camera 0 (retry 2, next in 1 s):
cannot connect`), frames arriving and frames stopping. `close()` may be called from any
thread; it also interrupts a backoff wait, and a connection that completes after it is
released at once. Each source is iterated once, by one thread.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import os
import re
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import cv2
import numpy as np

from realtime.common.errors import UserError
from realtime.common.text import first_few
from realtime.common.types import MIN_FPS

if TYPE_CHECKING:  # PyAV is imported where a video file is opened: a GPU check or a
    import av  # frame-folder run needs no FFmpeg build, and `--help` stays fast

SourceState = Literal["down", "up"]
StateCallback = Callable[[SourceState, str], None]
SourceKind = Literal["file", "folder", "camera", "rtsp"]
SOURCE_KINDS: tuple[str, ...] = ("file", "folder", "camera", "rtsp")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
MAX_PLAUSIBLE_FPS = 1000.0  # FFmpeg reports RTP clock rates (90000) when it cannot tell
# The delivered rate of a live source, timed at its first connection: frames arriving in
# the first RATE_SETTLE_S are not timed (a network camera's buffered frames arrive in one
# burst on connect), then frames are read until RATE_PROBE_S[0] has passed with at least
# RATE_PROBE_INTERVALS intervals timed, or until RATE_PROBE_S[1] (a camera at 5 fps).
RATE_SETTLE_S = 0.25
RATE_PROBE_S = (1.25, 3.0)
RATE_PROBE_INTERVALS = 8
RATE_TOLERANCE = 0.2  # measured vs reported, relative: beyond it the measured rate is used
PTS_PROBE_FRAMES = 32  # decoded frames whose pts must increase (several B-frame groups)
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

    index: int  # 1-based place in the source; jumps over missing frames (module doc)
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
    n_frames: int | None = None  # frames the source declares it holds (None: unknown, live)
    # t_stream is not the media file's own clock (an fps override, a splice): an export
    # must not link the file, or its player would run out of step with the annotations.
    retimed: bool = False

    def __init__(self) -> None:
        self._closed = threading.Event()
        self.on_notice: NoticeCallback | None = None
        self.notices: list[str] = []
        self._used_until: int | None = None  # stop_after

    def stop_after(self, frame: int) -> None:
        """The consumer used the frames up to `frame` and stops: what the source read
        ahead beyond it is not the run's, and its notices must not name those frames."""
        self._used_until = frame

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


def check_fps(fps: float, what: str) -> float:
    """The frame rate of a stream, refused outside [MIN_FPS, MAX_PLAUSIBLE_FPS] (also NaN
    and infinity): below, K rounds to one frame (a slideshow, a header's wrong rate);
    above, K grows past any real clip."""
    if not (math.isfinite(fps) and MIN_FPS <= fps <= MAX_PLAUSIBLE_FPS):
        raise UserError(f"{what}: frame rate must be from {MIN_FPS:g} to {MAX_PLAUSIBLE_FPS:g} fps, got {fps:g}")
    return float(fps)


def delivered_fps(times: Sequence[float], settle_s: float = RATE_SETTLE_S,
                  min_intervals: int = 4) -> float | None:
    """The rate frames arrived at, from their capture times (s, increasing, first frame
    first): only frames in the later half of the span, and not within `settle_s` of the
    first, are timed (a network camera's buffered frames arrive in a burst on connect),
    as (n - 1) / (last - first), a mean rate, so that frames a network stack hands over
    in pairs still count at their true rate. None with fewer than `min_intervals`
    intervals timed, or when they took no time (a burst throughout)."""
    timed = delivered_window(times, settle_s)
    if len(timed) < min_intervals + 1 or timed[-1] <= timed[0]:
        return None
    return (len(timed) - 1) / (timed[-1] - timed[0])


def delivered_window(times: Sequence[float], settle_s: float = RATE_SETTLE_S) -> list[float]:
    """The capture times `delivered_fps` times: the later half of the span, past `settle_s`."""
    if not times:
        return []
    start = max(settle_s, (times[-1] - times[0]) / 2)
    return [t for t in times if t - times[0] >= start]


class StreamSize:
    """One frame size per stream, the first frame's (the face search and the frame chain
    assume one geometry). A later frame of the same aspect ratio, within 1 % (recordings
    of adaptive-resolution sources: WebRTC, a browser's MediaRecorder, IP cameras under
    load), is scaled to it, named once in a notice; another aspect ratio is a UserError
    naming the frame (a spliced input: no scaling would make its faces comparable)."""

    def __init__(self, where: Path | str, notice: Callable[[str], None]) -> None:
        # a file or folder (named by its name in notices), or a live source's description
        self.where, self.notice = where, notice
        self.short = where.name if isinstance(where, Path) else where
        self.shape: tuple[int, ...] | None = None
        self._scaled = False

    def fit(self, image: np.ndarray, index: int, file: Path | None = None) -> np.ndarray:
        """`image` at the stream's size; `file` (a frame folder's image) is named in the error."""
        if self.shape is None:
            self.shape = image.shape
            return image
        if image.shape == self.shape:
            return image
        (h0, w0), (h, w) = self.shape[:2], image.shape[:2]
        if image.shape[2:] != self.shape[2:] or abs((w / h) / (w0 / h0) - 1.0) > 0.01:
            raise UserError(f"{file or self.where}: frame {index} is {w}x{h}, earlier frames {w0}x{h0}")
        if not self._scaled:
            self._scaled = True
            self.notice(f"{self.short}: frame {index} (and maybe later ones) is {w}x{h}; frames of other sizes "
                        f"are scaled to the stream's {w0}x{h0}, its first frame's")
        return cv2.resize(image, (w0, h0), interpolation=cv2.INTER_AREA if w > w0 else cv2.INTER_LINEAR)


# FFmpeg's (PyAV's) log is process-wide: silenced while any file source is inside
# FFmpeg, restored when none is. Damage and endings are reported by our own notices and
# one-line errors; FFmpeg's lines ("[mjpeg @ 0x..] No JPEG data found", "moov atom not
# found") would repeat them in its own words, on fd 2, between our lines.
_av_quiet_lock = threading.Lock()
_av_quiet_depth = 0
_av_saved_level: int | None = None


@contextlib.contextmanager
def _quiet_ffmpeg() -> Iterator[None]:
    global _av_quiet_depth, _av_saved_level
    import av.logging
    with _av_quiet_lock:
        if _av_quiet_depth == 0:
            _av_saved_level = av.logging.get_level()
            av.logging.set_level(None)  # PyAV: drop every FFmpeg log line
        _av_quiet_depth += 1
    try:
        yield
    finally:
        with _av_quiet_lock:
            _av_quiet_depth -= 1
            if _av_quiet_depth == 0 and _av_saved_level is not None:
                av.logging.set_level(_av_saved_level)


def _spans(numbers: Sequence[int], most: int = 6) -> str:
    """`[120, 121, 200]` -> "120-121, 200" (the first `most` runs, then a count)."""
    runs: list[list[int]] = []
    for n in sorted(numbers):
        if runs and n == runs[-1][1] + 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:most])
    return text + (f" and {len(runs) - most} more runs" if len(runs) > most else "")


def _frames_word(count: int) -> str:
    return "frame" if count == 1 else "frames"


SAR_TOLERANCE = 0.01  # pixel aspect ratios within 1% of square are left as they are


def pixel_aspect(stream: Any) -> float:
    """The sample (pixel) aspect ratio a video stream declares, width / height of one
    pixel (HDV 1440x1080: 4/3; DV NTSC: 10/11); 1.0 when it declares none or nonsense."""
    for sar in (getattr(stream, "sample_aspect_ratio", None),
                getattr(getattr(stream, "codec_context", None), "sample_aspect_ratio", None)):
        if sar is not None and sar.numerator > 0 and sar.denominator > 0:
            value = float(sar)
            if 0.2 <= value <= 5.0:
                return value
    return 1.0


def square_pixels(image: np.ndarray, aspect: float) -> np.ndarray:
    """`image` resampled so that its pixels are square: width x `aspect` (the display
    aspect ratio players show). FaceMesh and the face alignment assume square pixels: an
    anamorphic frame gives squashed faces and skewed flow. Unchanged within SAR_TOLERANCE."""
    if abs(aspect - 1.0) <= SAR_TOLERANCE:
        return image
    h, w = image.shape[:2]
    width = max(1, int(round(w * aspect)))
    return cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA if width < w else cv2.INTER_CUBIC)


def display_matrix(frame: av.VideoFrame) -> tuple[int, ...] | None:
    """The frame's DISPLAYMATRIX side data (FFmpeg's 3x3, row-major, 16.16 fixed point:
    a b u / c d v / x y w), None when it has none."""
    side: Any = frame.side_data  # (PyAV's stubs type it as a TypedDict without this key)
    raw = bytes(side["DISPLAYMATRIX"]) if "DISPLAYMATRIX" in side else b""
    return tuple(int(v) for v in np.frombuffer(raw, np.int32)) if len(raw) == 36 else None


def _upright(image: np.ndarray, rotation: int, matrix: tuple[int, ...] | None = None) -> np.ndarray:
    """Apply a display matrix to the decoded image as players do: its rotation in steps of
    90 degrees and its mirroring (a front camera's, an editor's flip).

    FFmpeg's matrix (libavutil/display.h) maps a source point (p, q) = (column, row) to
    (a p + c q, b p + d q) (+ the translation x, y that keeps the image in view). Where
    the matrix is no signed permutation (a turn
    that is no multiple of 90 degrees), the rotation alone (`rotation`, degrees
    counter-clockwise as FFmpeg and PyAV's `VideoFrame.rotation` give it) is applied."""
    if matrix is not None:
        a, b, c, d = (float(v) for v in (matrix[0], matrix[1], matrix[3], matrix[4]))
        if b == 0 and c == 0 and a and d:  # columns stay columns
            out = image[:, ::-1] if a < 0 else image
            return np.ascontiguousarray(out[::-1] if d < 0 else out)
        if a == 0 and d == 0 and b and c:  # columns become rows: transpose, then flips
            e, f = c, b  # column' = e row, row' = f column
            out = np.swapaxes(image, 0, 1)
            out = out[::-1] if f < 0 else out
            return np.ascontiguousarray(out[:, ::-1] if e < 0 else out)
    quarter = round(rotation / 90.0) % 4
    if quarter == 1:
        return cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if quarter == 2:
        return cv2.rotate(image, cv2.ROTATE_180)
    if quarter == 3:
        return cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE)
    return image


FOLLOWING = 4  # steps after a long one that tell a new frame rate from lost packets


def frame_numbers(pts: np.ndarray, time_base: float, fps: float | None) -> np.ndarray:
    """1-based frame numbers of sorted unique pts: their rank, plus the frames a jump in
    the timestamps says are missing.

    A demuxer can lose whole packets of a damaged file (an MKV cluster), leaving no trace
    but the jump: a step longer than 2.5 x the frame interval there stands for
    round(step / interval) - 1 lost frames, so the frames after the damage keep their
    places (and the chain breaks there). The interval there is the nominal one, or, where
    the rate is clearly lower, the step before it or the median of the (up to) FOLLOWING
    steps after it: a phone dropping from 30 to 10 fps makes one 3x step followed by
    more of the same, a new rate, not two lost frames, while lost packets leave long
    steps among ordinary ones (also two damaged regions one frame apart). A variable rate
    doubling its interval (30 -> 15 fps) stays under the factor anyway; a single lost
    frame is not seen (the step is only 2x)."""
    n = len(pts)
    if n < 2 or not fps or time_base <= 0:
        return np.arange(1, n + 1)
    steps = np.diff(pts).astype(np.float64) * time_base
    nominal = 1.0 / fps
    padded = np.concatenate((steps[1:], np.full(FOLLOWING, np.nan)))
    ahead = np.lib.stride_tricks.sliding_window_view(padded, FOLLOWING)[: len(steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the last step has none after it
        later = np.nanmedian(ahead, axis=1)
    lost = np.zeros(len(steps), np.int64)
    rate_step = nominal  # the last step that was a frame interval, not a loss
    for i, step in enumerate(steps):
        # The frame interval here: the nominal one, or a rate that is clearly lower before
        # or after (ms timestamps jitter 33/34 ms around 33.3: the nominal is exact).
        interval = rate_step if rate_step > 1.5 * nominal else nominal
        if later[i] > 1.5 * nominal:
            interval = max(interval, float(later[i]))
        if step > 2.5 * interval:
            lost[i] = int(np.rint(step / interval)) - 1
        else:
            rate_step = float(step)
    return np.concatenate(([1], 2 + np.arange(n - 1) + np.cumsum(lost)))


# A timestamp step longer than this is a splice (recordings joined with `cat`, a camera's
# clock reset), not lost data: numbering the frames it "skips" made millions of phantom
# frames and, paced, a wait of hours.
SPLICE_S = 60.0


def splice_step_s(fps: float) -> float:
    """The shortest timestamp step that is a splice: SPLICE_S, or 100 frame intervals for
    a time-lapse at under one frame a minute (whose every step is longer than SPLICE_S)."""
    return max(SPLICE_S, 100.0 / fps)


TRUNCATED_S = 0.5  # a track this much shorter than its declared duration ends early
RESTART_S = 1.0  # pts going back by more than this in packet order (and REORDER_FRAMES): a second clock
# H.264 and HEVC let a decoder hold back at most 16 frames for reordering (B-frames), so
# in packet order a pts can fall back by up to 16 frame intervals: at 1-2 fps (time-lapse,
# security cameras) that is many seconds, and is no second clock.
REORDER_FRAMES = 16


def pts_restarts(pts: np.ndarray, time_base: float) -> list[int]:
    """Where the pts (int64, packet order) fall back below the highest so far by more
    than RESTART_S and more than REORDER_FRAMES frame intervals, and stay below it for
    more than REORDER_FRAMES packets (the packet index of each fall): recordings joined
    with `cat` whose clocks each start near zero. The interval is the median step of the
    sorted unique pts (a few lost frames or a splice do not move it). A B-frame coded
    after the first frame past a pause falls back by the whole pause, but a packet above
    the old highest follows within the reorder window: that is no second clock. A joined
    part shorter than REORDER_FRAMES + 1 frames is not told from reordering."""
    if len(pts) < 2:
        return []
    steps = np.diff(np.unique(pts))
    interval = float(np.median(steps)) * time_base if steps.size else 0.0
    # + half an interval: millisecond timestamps round each interval by up to a tick
    limit = max(RESTART_S, (REORDER_FRAMES + 0.5) * interval)
    # The highest pts of the current part only: measured against the whole file's, a
    # second part's B-frames flip in and out of the test as its clock nears the first
    # part's end, and one restart was counted several times.
    limit_ticks = limit / time_base
    starts: list[int] = []
    values = pts.tolist()
    top = int(values[0])
    for i, value in enumerate(values[1:], start=1):
        if top - value > limit_ticks and _stays_below(values[i : i + REORDER_FRAMES + 1], top):
            starts.append(i)
            top = value
        elif value > top:
            top = value
    return starts


def _stays_below(window: list[int], top: int) -> bool:
    """A fall that outlasts the reorder window: REORDER_FRAMES + 1 packets, all below `top`."""
    return len(window) > REORDER_FRAMES and max(window) < top


def frame_places(pts: np.ndarray, time_base: float, fps: float | None) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(frame numbers, times in s from the first frame, numbers of the first frames after
    each splice) of sorted unique pts. Between splices, `frame_numbers` and the pts; at a
    splice (a step > SPLICE_S) the numbering goes on after a one-frame hole (the frame
    chain breaks there) and the times go on one hole later (2 frame intervals)."""
    pts = np.asarray(pts, np.int64)
    if len(pts) < 2 or not fps or time_base <= 0:
        return frame_numbers(pts, time_base, fps), (pts - (pts[0] if len(pts) else 0)) * time_base, []
    cuts = np.flatnonzero(np.diff(pts) * time_base > splice_step_s(fps)) + 1
    numbers: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    splices: list[int] = []
    next_number, next_second = 0, 0.0
    for segment in np.split(pts, cuts):
        num = frame_numbers(segment, time_base, fps) + next_number
        sec = (segment - segment[0]) * time_base + next_second
        if numbers:
            splices.append(int(num[0]))
        numbers.append(num)
        seconds.append(sec)
        next_number, next_second = int(num[-1]) + 1, float(sec[-1]) + 2.0 / fps
    return np.concatenate(numbers), np.concatenate(seconds), splices


def _header_frames(stream: av.video.stream.VideoStream) -> int | None:
    """A video track's frame count from the container's headers: the declared count, else
    duration x frame rate; None when neither is there."""
    if stream.frames and stream.frames > 0:
        return int(stream.frames)
    rates = (r for r in (stream.average_rate, stream.guessed_rate) if r and 0 < r <= MAX_PLAUSIBLE_FPS)
    rate = next(rates, None)
    if stream.duration and stream.duration > 0 and stream.time_base and rate:
        return round(float(stream.duration * stream.time_base * rate))
    return None


@dataclass(frozen=True)
class VideoTiming:
    """What the demux pass learned: presentation timestamps in stream ticks (sorted,
    unique; empty when the packets carry none), the tick in seconds, the nominal fps and
    the range of rates when the rate varies."""

    pts: np.ndarray  # int64, sorted unique
    in_order: bool  # decoded frames carry these pts in display order: frames are ranked by them
    time_base: float  # seconds per tick
    packets: int  # video packets read (with data)
    declared: int | None  # frame count the container declares
    fps: float | None  # None: neither the container nor the timestamps give a rate
    varies: tuple[float, float] | None  # (lowest, highest) fps when it varies
    discarded: int = 0  # packets an edit list cuts (declared, never presented)
    restarts: int = 0  # times the pts started again in packet order (`pts_restarts`: joined recordings)
    # what the file is when its rate is FFmpeg's default, not its own (`undeclared_rate`)
    undeclared: str | None = None
    # the track's duration its header declares (s; MKV's per-track DURATION tag), for files
    # that declare no frame count: how a truncated MKV is told
    declared_s: float | None = None
    end_s: float | None = None  # where the last frame read ends, its packet's duration counted (s)


def declared_duration(stream: av.video.stream.VideoStream) -> float | None:
    """Where the track ends on the file's own clock (s), as its header declares it where it
    declares no frame count: the DURATION tag FFmpeg and mkvmerge write per Matroska track
    (HH:MM:SS.fraction, the end of the last frame, a late start included), else the
    stream's start time plus its duration (a length: an MPEG-TS starting 1.4 s in, or one
    whose timestamps wrap, FFmpeg's start then negative); None when neither is there."""
    tag = (stream.metadata or {}).get("DURATION")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if stream.duration and stream.duration > 0 and stream.time_base:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    return None


# Raw elementary streams whose demuxer stamps frames at its `framerate` option (default 25)
# unless the bitstream carries a rate (H.264/HEVC VUI, MPEG-4 VOL): MJPEG never does.
RAW_RATE_FORMATS = {"mjpeg": "a raw MJPEG stream", "mpjpeg": "a multipart MJPEG stream",
                    "h261": "a raw H.261 stream", "h263": "a raw H.263 stream"}
FFMPEG_DEFAULT_FPS = 25.0


def undeclared_rate(format_name: str, path: Path, guessed: float | None) -> str | None:
    """What the file is ("a raw MJPEG stream", "a Y4M file with F0:0") when it declares no
    frame rate and FFmpeg fell back to 25 fps, else None."""
    if guessed is None or abs(guessed - FFMPEG_DEFAULT_FPS) > 1e-9:
        return None
    if format_name in RAW_RATE_FORMATS:
        return RAW_RATE_FORMATS[format_name]
    if format_name == "yuv4mpegpipe":  # header tokens: W H F<num>:<den> ...; F0:0 or none = no rate
        try:
            with path.open("rb") as fh:
                header = fh.readline(256).split()
        except OSError:
            return None
        rates = [t[1:] for t in header if t.startswith(b"F")]
        if not rates or rates[0].split(b":")[0] in (b"0", b""):
            return f"a Y4M file with {'F' + rates[0].decode('ascii', 'replace') if rates else 'no F'} in its header"
    return None


def nominal_fps(base_rate: float | None,
                intervals_s: np.ndarray) -> tuple[float | None, tuple[float, float] | None]:
    """The nominal frame rate and, when the rate varies, its (low, high) range.

    Nominal: the container's base rate when it is plausible, i.e. in (0, 1000] and at
    least a quarter of the frame intervals are one tick of it (+-10%); else 1 / the
    median interval. A 30 fps clip that drops to 15 fps for its second half is 30 (its
    base rate; the mean rate, 20, is no rate the camera ran at). Varies: the 5th and
    95th percentiles of the per-interval rates are more than 10% apart (a 1 ms
    timestamp clock at 30 fps, 33/34 ms, does not count)."""
    intervals = intervals_s[np.isfinite(intervals_s) & (intervals_s > 0)]
    fps = None
    if base_rate is not None and math.isfinite(base_rate) and 0 < base_rate <= MAX_PLAUSIBLE_FPS:
        on_tick = np.abs(intervals * base_rate - 1.0) <= 0.1
        if intervals.size == 0 or on_tick.mean() >= 0.25:
            fps = float(base_rate)
    if fps is None and intervals.size:
        fps = float(1.0 / np.median(intervals))
    varies = None
    if intervals.size >= 2:
        low, high = (float(r) for r in np.percentile(1.0 / intervals, [5, 95]))
        if high > 1.1 * low:
            varies = (low, high)
    return fps, varies


def _mp4_boxes(path: Path) -> list[bytes] | None:
    """The types of an MP4/MOV file's top-level boxes (an `ftyp` box first), up to one that
    runs to the end or past it; None when it is no MP4/MOV. Reads box headers only."""
    size = path.stat().st_size
    kinds: list[bytes] = []
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8 or head[4:8] != b"ftyp":
            return None
        pos = 0
        while pos + 8 <= size:
            fh.seek(pos)
            header = fh.read(16)
            box, kind = int.from_bytes(header[:4], "big"), header[4:8]
            kinds.append(kind)
            if box == 1 and len(header) == 16:  # a 64-bit size follows the type
                box = int.from_bytes(header[8:16], "big")
            if box < 8:  # 0: the box runs to the end of the file
                break
            pos += box
    return kinds


def _has_mp4_index(path: Path) -> bool | None:
    """Whether an MP4/MOV file holds its index, the `moov` box, among its top-level boxes;
    None when it is no MP4/MOV."""
    kinds = _mp4_boxes(path)
    return None if kinds is None else b"moov" in kinds


class _FrontToBack(io.RawIOBase):
    """A file that can only be read front to back. FFmpeg's MP4 demuxer, given a seekable
    file, first walks every top-level box, and a fragmented MP4 (a `moov` without samples,
    then `moof` + `mdat` pairs: what cameras and browsers record) cut inside a `moof` then
    fails to open at all; read front to back it demuxes fragment by fragment, to the cut.
    The file is closed when this object is (PyAV leaves it open; garbage collection does)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._file = open(path, "rb")  # lives as long as the container

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def unopenable_reason(path: Path, ffmpeg_reason: str) -> str:
    """Why FFmpeg could not open a video file, in the user's terms where the bytes tell: an
    empty file, or an MP4/MOV without its index (a camera or recorder stopped before
    writing it, or a copy still being written), which FFmpeg calls 'Invalid data'."""
    try:
        if path.stat().st_size == 0:
            return "the file is empty, 0 bytes"
        if _has_mp4_index(path) is False:
            return ("an MP4/MOV without its index, the moov atom: a recording cut short or still "
                    "being written; it needs repair before it can be read")
    except OSError:
        pass
    return f"unsupported or corrupted: {ffmpeg_reason}"


def missing_file_reason(path: Path) -> str:
    """Why `path` cannot be read as a video file: absent, or present but not a regular file
    (a pipe such as /dev/stdin, a camera device, a socket: a file is read by seeking, and a
    device is a camera's)."""
    if not path.exists():
        return "no such video file"
    if path.is_dir():
        return "a folder, not a video file"
    hint = ("; give a camera as --camera N" if str(path).startswith("/dev/video")
            else "; save the stream to a file first, or give a live stream as --rtsp URL")
    return f"not a regular file (a pipe, device or socket){hint}"


class VideoFileSource(FrameSource):
    """A video file read with PyAV (FFmpeg); numbering, times, fps, rotation and endings
    as in the module docstring. `fps` overrides the file's rate (and its clock)."""

    is_live = False

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: {missing_file_reason(self.path)}")
        self.name = self.path.stem
        self._override = None if fps is None else check_fps(fps, f"{self.path}: fps")
        self._track: int | None = None  # stream index of the recording (`_pick_track`)
        self._track_note: str | None = None  # other video tracks were ignored (told in `__iter__`)
        self._front_to_back = False  # a fragmented MP4 FFmpeg could only read front to back (told in `__iter__`)
        self._scanned_size = self.path.stat().st_size  # a file still being recorded grows past it
        self.timing = self._scan()
        self.n_frames: int | None = self.timing.declared
        if self._override is not None:
            self._fps = self._override
        else:
            self._fps = check_fps(self.timing.fps if self.timing.fps is not None else math.nan,
                                   f"{self.path}: the file's frame rate (if its header is wrong, pass --fps)")
        # frame pts -> frame number; empty: numbered in decode order (module docstring)
        numbers, seconds, splices = frame_places(self.timing.pts, self.timing.time_base, self.timing.fps)
        ranked = self.timing.in_order
        self._rank = {int(p): int(n) for p, n in zip(self.timing.pts, numbers, strict=True)} if ranked else {}
        self._seconds = {int(p): float(t) for p, t in zip(self.timing.pts, seconds, strict=True)} if ranked else {}
        self._splices = splices if ranked else []
        self.retimed = self._override is not None or bool(self._splices) or self.timing.restarts > 0

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def last_number(self) -> int:
        """The number the file's last frame will get (frames numbered by their timestamps,
        holes counted; the packet count where frames go in decode order)."""
        return max(self._rank.values(), default=0) or self.timing.packets

    def _open_container(self) -> av.container.InputContainer:
        import av

        try:
            return av.open(str(self.path), "r")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
        with contextlib.suppress(OSError):
            if b"moof" in (_mp4_boxes(self.path) or []):  # fragmented: its fragments up to the cut
                stream_file = _FrontToBack(self.path)
                try:
                    container = av.open(stream_file, "r")
                except (av.error.FFmpegError, OSError, UnicodeDecodeError):
                    stream_file.close()
                else:
                    self._front_to_back = True
                    return container
        raise UserError(f"{self.path}: cannot open video ({unopenable_reason(self.path, reason)})") from None

    def _grew(self) -> bool:
        """The file is larger than when it was scanned (a recording still being written)."""
        return _file_grew(self.path, self._scanned_size)

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        """The open file and its recording's video stream (`_pick_track`, chosen once)."""
        container = self._open_container()
        try:
            if self._track is None:
                self._track = self._pick_track(container)
            stream = next(s for s in container.streams.video if s.index == self._track)
            if stream.codec_context is None or stream.codec_context.codec is None:
                raise UserError(f"{self.path}: cannot open video (no decoder for its codec)")
        except BaseException:
            container.close()
            raise
        return container, stream

    def _pick_track(self, container: av.container.InputContainer) -> int:
        """The stream index of the video track that is the recording: cover art (attached
        pictures) never is; of several tracks (a thumbnail muxed first, screen + camera),
        the one with the most frames, then the one marked default (what players show), then
        pixels. When there are several, the choice is
        put in `_track_note`, told when the file is read (cover art goes untold)."""
        import av

        videos = list(container.streams.video)
        if not videos:
            raise UserError(f"{self.path}: cannot open video (no video stream in it)")
        tracks = [s for s in videos if not s.disposition & av.stream.Disposition.attached_pic]
        if not tracks:
            raise UserError(f"{self.path}: cannot open video (its only video is a cover picture)")
        if len(tracks) == 1:
            return tracks[0].index
        frames = {s.index: _header_frames(s) for s in tracks}
        if any(n is None for n in frames.values()):  # (MKV declares neither count nor duration)
            frames = dict(self._count_packets([s.index for s in tracks]))
        chosen = max(tracks, key=lambda s: (frames[s.index] or 0, bool(s.disposition & av.stream.Disposition.default),
                                            s.width * s.height))
        others = len(tracks) - 1
        self._track_note = (f"{self.path.name}: {len(tracks)} video tracks; reading track #0:{chosen.index} "
                            f"({chosen.width}x{chosen.height}, {frames[chosen.index] or 0} frames), "
                            f"{others} other {'track' if others == 1 else 'tracks'} ignored")
        return chosen.index

    def _count_packets(self, indices: list[int]) -> dict[int, int]:
        """Video packets (with data) per stream index, from a demux pass over the file."""
        import av

        counts = dict.fromkeys(indices, 0)
        container = self._open_container()
        try:
            streams = [s for s in container.streams.video if s.index in counts]
            for packet in container.demux(*streams):
                if packet.size:
                    counts[packet.stream.index] += 1
        except (av.error.FFmpegError, OSError):
            pass  # a damaged or truncated tail: the packets before it count
        finally:
            container.close()
        return counts

    def _scan(self) -> VideoTiming:
        """Demux every video packet once: the file's frame places (only the first few
        packets are decoded, to see whether the pts are in display order)."""
        import av

        with _quiet_ffmpeg():
            container, stream = self._open()
            try:
                declared = int(stream.frames) if stream.frames and stream.frames > 0 else None
                # FFmpeg's guess: the base rate (r_frame_rate) corrected for codecs that
                # count fields (raw H.264 says 60 for 30 fps), else the base rate.
                base = stream.guessed_rate or stream.base_rate
                undeclared = undeclared_rate(container.format.name, self.path, float(base) if base else None)
                declared_s = None if declared else declared_duration(stream)
                time_base = float(stream.time_base) if stream.time_base else 0.0
                pts: list[int | None] = []
                # The first frames are decoded too: their pts must increase for the pts to
                # be display times (an AVI stamps H.264 B-frames in decode order).
                probed: list[int | None] = []
                discarded = 0
                end_tick = None  # where the last frame ends, its own duration counted (MKV's DURATION does)
                try:
                    for packet in container.demux(stream):
                        if packet.size and not packet.is_discard:
                            pts.append(packet.pts)
                            if packet.pts is not None and packet.duration:
                                end_tick = max(end_tick or 0, packet.pts + packet.duration)
                        elif packet.size:
                            discarded += 1  # edit-list cut (ffmpeg -c copy): declared, never shown
                        if len(probed) < PTS_PROBE_FRAMES and len(pts) <= 2 * PTS_PROBE_FRAMES:
                            try:
                                probed.extend(frame.pts for frame in packet.decode())
                            except (av.error.FFmpegError, OSError):
                                pass  # a damaged frame: the probe goes on with the next
                except (av.error.FFmpegError, OSError):
                    pass  # a damaged or truncated tail: the packets before it count
            finally:
                container.close()
        if not pts:
            raise UserError(f"{self.path}: video has no decodable frame")
        rate = float(base) if base else None
        if any(p is None for p in pts) or time_base <= 0:  # no timestamps: the rate alone
            fps, _ = nominal_fps(rate, np.empty(0))
            return VideoTiming(np.empty(0, np.int64), False, 0.0, len(pts), declared, fps, None, discarded,
                               undeclared=undeclared)
        restarts = pts_restarts(np.asarray(pts, np.int64), time_base)
        if restarts:  # two clocks in one file: the pts cannot place the frames; the rate from the first
            first = np.unique(np.asarray(pts[: restarts[0]], np.int64))
            fps, _ = nominal_fps(rate, np.diff(first) * time_base)
            return VideoTiming(np.empty(0, np.int64), False, 0.0, len(pts), declared, fps, None, discarded,
                               len(restarts), undeclared)
        stamped = np.unique(np.asarray(pts, np.int64))
        in_order = all(p is not None for p in probed) and all(
            a < b for a, b in itertools.pairwise(probed))  # type: ignore[operator]
        fps, varies = nominal_fps(rate, np.diff(stamped) * time_base)
        return VideoTiming(stamped, in_order, time_base, len(pts), declared, fps, varies if in_order else None,
                           discarded, undeclared=undeclared, declared_s=declared_s,
                           end_s=end_tick * time_base if end_tick is not None else None)

    def __iter__(self) -> Iterator[RawFrame]:
        """Iterate once: the file is decoded front to back."""
        import av

        timing = self.timing
        if self._track_note is not None:
            self.notice(self._track_note)
        if self._front_to_back:
            self.notice(f"{self.path.name}: a fragmented MP4 cut inside a fragment (a recording stopped "
                        "while it was written?); its fragments are read up to the cut")
        if timing.undeclared and self._override is None:
            self.notice(f"{self.path.name}: {timing.undeclared}, which declares no frame rate: "
                        f"{FFMPEG_DEFAULT_FPS:g} fps assumed (FFmpeg's default), which sets K and the times; "
                        "give --fps with the rate it was recorded at")
        if timing.varies is not None and self._override is None:
            low, high = timing.varies
            self.notice(f"{self.path.name}: frame rate varies ({low:.1f}-{high:.1f} fps); times come "
                        f"from the frame timestamps, K is set for {self._fps:g} fps")
        if timing.restarts:
            self.notice(f"{self.path.name}: the timestamps start again {timing.restarts} time(s) (joined "
                        f"recordings?); frames are numbered in decode order and times are (frame - 1) / "
                        f"{self._fps:g} fps")
        for first in self._splices:
            self.notice(f"{self.path.name}: the timestamps jump by more than {splice_step_s(timing.fps or self._fps):g} s "
                        f"before frame {first} "
                        "(joined recordings, a clock reset?); numbering and times go on after a one-frame "
                        "gap, where the frame chain breaks")
        if not self._rank and not timing.restarts:
            self.notice(f"{self.path.name}: no display-order frame timestamps (a raw stream, or "
                        "B-frames in an AVI?); frames are numbered in decode order and times are "
                        f"(frame - 1) / {self._fps:g} fps")
        size, last, delivered, skipped = StreamSize(self.path, self.notice), 0, 0, 0
        undecoded: list[int] = []
        with _quiet_ffmpeg():
            container, stream = self._open()
        aspect = pixel_aspect(stream)
        if abs(aspect - 1.0) > SAR_TOLERANCE:
            self.notice(f"{self.path.name}: non-square pixels (aspect {aspect:.4g}); frames are resampled to "
                        f"{int(round(stream.width * aspect))}x{stream.height}, as players show them")
        early = True  # stopped before the file's end (a frame limit, Ctrl-C, SIGTERM, an error)
        try:
            packets = container.demux(stream)
            cut = False  # the demuxer failed: a damaged or truncated tail, the file ends here
            while not self._closed.is_set() and not cut:
                with _quiet_ffmpeg():
                    try:
                        packet = next(packets, None)
                    except (av.error.FFmpegError, OSError):
                        packet, cut = None, True
                    if packet is None and not cut:
                        break
                    try:
                        # At a cut, the frames the decoder still holds (its reordering delay)
                        # are flushed out, as the end of a whole file's packets does.
                        frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
                    except (av.error.FFmpegError, OSError):
                        if packet is not None and not self._rank:  # decode order: the lost frame takes the next number
                            last += 1
                            undecoded.append(last)
                        continue  # (ranked: its frame shows as a gap in the ranks)
                for frame in frames:
                    pts = frame.pts
                    index = (self._rank.get(pts, 0) if pts is not None else 0) if self._rank else last + 1
                    if index <= last:
                        skipped += 1  # a timestamp outside the packets' or a repeated one
                        continue
                    image = _upright(square_pixels(frame.to_ndarray(format="bgr24"), aspect), frame.rotation,
                                     display_matrix(frame))
                    t_capture = time.monotonic()
                    if index > last + 1:
                        undecoded.extend(range(last + 1, index))
                    if self._override is not None or not self._rank:
                        t_stream = (index - 1) / self._fps
                    else:
                        assert pts is not None  # ranked: its number came from its pts
                        t_stream = self._seconds[pts]
                    image = size.fit(image, index)
                    last, delivered = index, delivered + 1
                    yield RawFrame(index, t_capture, t_stream, image)
                    if self._closed.is_set():
                        return
            early = self._closed.is_set()
        finally:
            container.close()
            if early:  # the damage met so far is said too (it was lost with the stream's end)
                used = last if self._used_until is None else min(last, self._used_until)
                self._tell_gaps([n for n in undecoded if n < used])
        if self._closed.is_set():
            return
        if delivered == 0:
            raise UserError(f"{self.path}: video has no decodable frame")
        truncated = self.n_frames is not None and timing.packets + timing.discarded < self.n_frames
        if not truncated:  # (a truncated file's last packet is partial: its ending says it)
            undecoded.extend(range(last + 1, (max(self._rank.values(), default=0) or timing.packets) + 1))
        self._tell_gaps(undecoded)
        if skipped and self._grew():
            self.notice(f"{self.path.name}: the file grew while it was read (still being recorded?): "
                        f"{skipped} {_frames_word(skipped)} written after it was opened were not spotted; "
                        "replay it once the recording has ended")
        elif skipped:
            self.notice(f"{self.path.name}: {skipped} decoded {_frames_word(skipped)} had no place "
                        f"among the file's timestamps and {'was' if skipped == 1 else 'were'} skipped")
        if truncated and self.n_frames is not None and delivered < self.n_frames:
            self.notice(f"{self.path.name}: read {delivered} of {self.n_frames} declared frames; "
                        "the file ends early (truncated?)")
        elif self.n_frames is None and timing.declared_s and timing.pts.size and timing.fps:
            # No frame count (MKV): compare times, which a variable rate does not upset. The
            # end read is on the file's own clock, as FFmpeg's DURATION tag is (the end of the
            # track's last frame, a late start included).
            end = timing.end_s or float(timing.pts[-1]) * timing.time_base + 1.0 / timing.fps
            if timing.declared_s - end > max(TRUNCATED_S, 2.0 / timing.fps):
                self.notice(f"{self.path.name}: read {delivered} {_frames_word(delivered)}, to {end:.1f} s of the "
                            f"{timing.declared_s:.1f} s its header declares; the file ends early (truncated?)")

    def _tell_gaps(self, missing: list[int]) -> None:
        """Notices for the frame numbers `missing` among those read: jumps in the
        timestamps and frames that failed to decode (called at the file's end, or for the
        frames read so far when the stream is stopped before it)."""
        missing = sorted(set(missing) - {first - 1 for first in self._splices})  # a splice's gap is no frame
        # A number no packet holds is a jump in the timestamps (packets lost to damage, a
        # camera that paused), not a frame that failed to decode: say which it was.
        placed = set(self._rank.values())
        jumped = [n for n in missing if self._rank and n not in placed]
        undecoded = [n for n in missing if not (self._rank and n not in placed)]
        if jumped:
            self.notice(f"{self.path.name}: no frame at {len(jumped)} frame {'time' if len(jumped) == 1 else 'times'} "
                        f"({_spans(jumped)}): the timestamps jump there (packets lost to damage, or "
                        "the recording paused); the others keep their numbers and times and the "
                        "frame chain breaks at each gap")
        if undecoded:
            self.notice(f"{self.path.name}: {len(undecoded)} {_frames_word(len(undecoded))} could not "
                        f"be decoded ({_spans(undecoded)}); the others keep their numbers and the "
                        "frame chain breaks at each gap")


def _retries(n: int) -> str:
    return f"{n} {'retry' if n == 1 else 'retries'}"


def _file_grew(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size > size
    except OSError:
        return False


def natural_key(name: str) -> tuple:
    """Sort key comparing digit runs as numbers: img2 < img10, 006_1_0002 < 006_1_0010."""
    return tuple(int(part) if part.isdigit() else part.lower()
                 for part in re.split(r"(\d+)", name))


def is_hidden(path: Path) -> bool:
    """A hidden file or folder (name starting with '.'): macOS `._img1.jpg` resource
    forks, `.DS_Store`; never a frame or a video."""
    return path.name.startswith(".")


def _image_entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    """The visible image files of a folder, unordered. os.scandir's entries know their
    type from the listing itself: a folder of 100,000 frames is not stat'ed file by file."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if (not entry.name.startswith(".") and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
                    and _is_file(entry)):
                yield entry


def _is_file(entry: os.DirEntry[str]) -> bool:
    """entry.is_file(), False for a link loop (ELOOP), as Path.is_file() says."""
    try:
        return entry.is_file()
    except OSError:
        return False


def image_files(folder: Path) -> list[Path]:
    """The visible image files of a folder (IMAGE_SUFFIXES), in natural order."""
    return sorted((folder / e.name for e in _image_entries(folder)), key=lambda p: natural_key(p.name))


def has_image_files(folder: Path) -> bool:
    """Whether the folder holds an image file (stops at the first)."""
    return next(_image_entries(folder), None) is not None


TRAILING_NUMBER = re.compile(r"(\d+)$")


# A numbered folder's files without a number, at most this many (or under STRAY_SHARE of
# the files), are strays (a cover.jpg, a thumbnail) and are left out: ranked among the
# frames they would move every frame after them by one and set the stream's size.
STRAY_FILES = 2
STRAY_SHARE = 0.05


@dataclass(frozen=True)
class Numbering:
    """Frame numbers for a folder's files: `frames` sorted by number; `why_position` says
    why the names were not used (then the numbers are 1..N by position); `left_out`: the
    few files of a numbered folder whose names have no number (not frames)."""

    frames: list[tuple[int, Path]]
    why_position: str | None = None
    left_out: tuple[Path, ...] = ()

    @property
    def missing(self) -> list[int]:
        """Numbers absent between the first and the last frame (holes)."""
        numbers = [n for n, _ in self.frames]
        if not numbers:
            return []
        held = set(numbers)
        return [n for n in range(numbers[0], numbers[-1] + 1) if n not in held]


def number_frames(files: Sequence[Path]) -> Numbering:
    """Number frame files by the number their names end with (the module docstring's
    rule; a few files without one among numbered files are strays, `left_out`), or by
    position when the names do not give usable numbers."""
    numbers = [int(m.group(1)) if (m := TRAILING_NUMBER.search(p.stem)) else None for p in files]
    by_position = [(i, p) for i, p in enumerate(sorted(files, key=lambda p: natural_key(p.name)), start=1)]
    if not files:
        return Numbering([])
    unnumbered = [p for p, n in zip(files, numbers, strict=True) if n is None]
    strays = 2 * len(unnumbered) < len(files) and (
        len(unnumbered) <= STRAY_FILES or len(unnumbered) < STRAY_SHARE * len(files))
    if unnumbered and not strays:
        return Numbering(by_position, f"{unnumbered[0].name} has no number at the end of its name")
    seen: dict[int, Path] = {}
    for p, n in zip(files, numbers, strict=True):
        if n is None:
            continue  # a stray, left out
        if n in seen:
            return Numbering(by_position, f"{seen[n].name} and {p.name} both have number {n}")
        seen[n] = p
    shift = 1 if min(seen) == 0 else 0  # a folder numbered from 0: frame 1 is the first file
    frames = sorted((n + shift, p) for n, p in seen.items())
    span = frames[-1][0] - frames[0][0] + 1
    if span > 2 * len(frames):
        return Numbering(by_position, f"the numbers in the names ({frames[0][0] - shift}.."
                                      f"{frames[-1][0] - shift}) are too sparse for {len(frames)} frames")
    return Numbering(frames, left_out=tuple(sorted(unnumbered, key=lambda p: natural_key(p.name))))


def _jpeg_cut_short(data: bytes) -> bool:
    """Whether JPEG bytes lack the end-of-image marker after their first scan (a file
    cut short while being written). The marker segments before the scan are skipped by
    their lengths, so an EXIF thumbnail's own markers do not count; data after the end
    marker (a phone's appended motion-photo video) does not matter. 0xFF 0xD9 cannot
    occur inside scan data (0xFF is stuffed there)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return True  # broken header: let nothing half-decoded through
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker == 0xDA:  # start of scan
            return data.find(b"\xff\xd9", i) < 0
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return True


def read_image(file: Path) -> np.ndarray | None:
    """(H, W, 3) BGR image of a frame file: uint8, or uint16 for a 16-bit file (PNG,
    TIFF; see `to_8bit`); None when it cannot be read: empty, not an image, damaged, or a
    JPEG (by its content, whatever the suffix) cut short while being written (OpenCV would
    decode it with a grey lower part and libjpeg would print a bare warning)."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    if not data or (data.startswith(b"\xff\xd8") and _jpeg_cut_short(data)):
        return None
    buf = np.frombuffer(data, np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image is not None and image.dtype.kind == "f":
        # float TIFF (scientific exports): 0..1 or 0..255 by convention; OpenCV's own 8-bit
        # conversion turned 0..255 white and brightened 0..1
        image = np.nan_to_num(image.astype(np.float64))
        # by the 99th percentile, not the max: a few highlights above 1 in a 0..1 export
        # must not turn it black (a 0..255 frame whose 99% lie under 2 is black anyway)
        scale = 255.0 if np.percentile(image, 99) <= 2.0 else 1.0
        image = np.clip(np.rint(image * scale), 0, 255).astype(np.uint8)
    elif image is not None and image.dtype not in (np.uint8, np.uint16):
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)  # other depths (32-bit integer): OpenCV's 8-bit conversion
    return image


SAMPLE_BITS = (8, 10, 12, 14, 16)
DEPTH_PROBES = 8  # files of a folder looked at for its sample depth


def sample_bits(images: Sequence[np.ndarray]) -> int:
    """The sample depth of 16-bit images (8, 10, 12, 14 or 16 bits): high-speed and
    scientific cameras store 10-14-bit samples in 16-bit PNG/TIFF files, right-aligned
    (top bits zero: the smallest depth their values fit in) or left-aligned (low 4 bits
    zero in every value, and a top value past 12 bits: 16). 8-bit values scaled by 16
    (0..4080, low 4 bits zero, a converter's 12-bit output) are right-aligned 12-bit: read
    as left-aligned they came out 16 times too dark."""
    top = max(int(im.max()) for im in images)
    low = 0
    for im in images:
        low |= int(np.bitwise_or.reduce(im.ravel() & 0xF))
    if top >= 1 << 12 and low == 0:
        return 16
    return next(b for b in SAMPLE_BITS if top < 1 << b)


def folder_sample_bits(files: Sequence[Path]) -> int | None:
    """The sample depth of a folder's 16-bit images, from up to DEPTH_PROBES files spread
    over it, so that a stream has one depth from its first frame to its last (a depth
    found on a dark first frame and raised later would change every pixel between two
    frames); None when those files are 8-bit or unreadable."""
    if not files:
        return None
    picks = sorted({int(i) for i in np.linspace(0, len(files) - 1, min(DEPTH_PROBES, len(files))).round()})
    images = [im for im in (read_image(files[i]) for i in picks) if im is not None and im.dtype == np.uint16]
    return sample_bits(images) if images else None


class FolderDepth:
    """8-bit frames of one folder: its 16-bit images scaled by one sample depth, found
    (`folder_sample_bits`) at the first 16-bit image and kept for the whole stream;
    8-bit images pass through. Shared by `FrameFolderSource` and the training features."""

    def __init__(self, files: Sequence[Path]) -> None:
        self.files = files
        self.bits: int | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if image.dtype != np.uint16:
            return image
        if self.bits is None:
            self.bits = folder_sample_bits(self.files) or sample_bits([image])
        return to_8bit(image, self.bits)


def to_8bit(image: np.ndarray, bits: int) -> np.ndarray:
    """uint8 image of `bits`-bit samples (uint16 storage); values above the depth clip.
    OpenCV's own conversion keeps the top 8 of 16 bits, which leaves 12-bit data at 0..15:
    no face is found in such frames."""
    if image.dtype == np.uint8:
        return image
    return np.minimum(image >> (bits - 8), 255).astype(np.uint8)


class FrameFolderSource(FrameSource):
    """A folder of image files, one per frame, numbered by the numbers in their names
    (module docstring). `frames` gives the (number, file) list instead of listing the
    folder (dataset layouts with their own naming); `name` overrides the folder name."""

    is_live = False

    def __init__(self, path: str | Path, fps: float, *, frames: Sequence[tuple[int, Path]] | None = None,
                 name: str | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_dir():
            raise UserError(f"{self.path}: no such frame folder")
        self.name = name or self.path.name
        self._fps = check_fps(fps, f"{self.path}: fps")
        self._broken: list[str] = []
        if frames is None:
            files = image_files(self.path)
            if not files:
                raise UserError(f"{self.path}: folder holds no image files "
                                f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            self.numbering = number_frames(files)
            # links to nothing (a moved drive, a half-copied set) are no frames; named, not silent
            self._broken = sorted(p.name for p in self.path.iterdir()
                                  if p.is_symlink() and not p.exists() and p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            if not frames:
                raise UserError(f"{self.path}: folder holds no frames")
            self.numbering = Numbering(sorted(frames))
        self.files = [p for _, p in self.numbering.frames]
        self.n_frames = len(self.files)

    @property
    def fps(self) -> float:
        return self._fps

    def _announce(self) -> None:
        numbering, where = self.numbering, self.path.name
        broken = self._broken
        if broken:
            self.notice(f"{where}: {len(broken)} image {'link points' if len(broken) == 1 else 'links point'} "
                        f"to nothing, not read: {first_few(broken, 3)}")
        if numbering.left_out:
            strays = len(numbering.left_out)
            self.notice(f"{where}: left out {first_few([p.name for p in numbering.left_out], 3)} ({strays} "
                        f"{'file' if strays == 1 else 'files'} without a frame number at the end of the name); "
                        f"the {len(self.files)} numbered images keep their numbers")
        if numbering.why_position is not None:
            self.notice(f"{where}: frames numbered 1..{len(self.files)} by position in the folder "
                        f"({numbering.why_position})")
            return
        first = numbering.frames[0][0]
        if first != 1:
            self.notice(f"{where}: frame numbers start at {first} (the numbers in the file names)")
        missing = numbering.missing
        if missing:
            self.notice(f"{where}: {len(missing)} {_frames_word(len(missing))} missing from the "
                        f"numbering ({_spans(missing)}); the frame chain breaks at each hole")

    def __iter__(self) -> Iterator[RawFrame]:
        self._announce()
        size = StreamSize(self.path, self.notice)
        unreadable: list[tuple[int, Path]] = []
        delivered = 0
        depth = FolderDepth(self.files)
        try:
            for index, file in self.numbering.frames:
                if self._closed.is_set():
                    return
                image = read_image(file)
                t_capture = time.monotonic()
                if image is None:
                    unreadable.append((index, file))
                    continue
                first_deep = depth.bits is None and image.dtype == np.uint16
                image = depth(image)
                if first_deep:
                    self.notice(f"{self.path.name}: 16-bit images, read as {depth.bits}-bit samples (values "
                                "above the depth clip)")
                image = size.fit(image, index, file)
                delivered += 1
                yield RawFrame(index, t_capture, (index - 1) / self._fps, image)
        finally:
            if unreadable:
                names = first_few([f.name for _, f in unreadable], 3)
                self.notice(f"{self.path.name}: {len(unreadable)} {_frames_word(len(unreadable))} could not be "
                            f"read ({_spans([i for i, _ in unreadable])}: {names}) and "
                            f"{'was' if len(unreadable) == 1 else 'were'} skipped; the frame "
                            "chain breaks at each")
        if delivered == 0 and not self._closed.is_set():
            raise UserError(f"{self.path}: none of its {len(self.files)} images can be read "
                            f"(first: {self.files[0].name})")


# A live source's frames arrive with network and USB jitter: a step in arrival time is lost
# frames only beyond this (the landmark filter restarts after the same gap). A stream clock
# (RTP timestamps) is as regular as a file's, so there the files' 2.5 frame intervals hold.
LIVE_ARRIVAL_GAP_S = 1.0


def live_gap_s(fps: float, on_clock: bool) -> float:
    """The longest step between two delivered frames that is no loss of frames: 2.5
    frame intervals on a stream clock (as `frame_numbers` for files), LIVE_ARRIVAL_GAP_S
    (at least that) on arrival times."""
    files = 2.5 / fps
    return files if on_clock else max(files, LIVE_ARRIVAL_GAP_S)


# A live stream whose frames stay byte-identical this long (stream time) is frozen, not
# still: a sensor's noise changes every frame. OpenCV's FFmpeg capture does that when an
# RTSP server changes resolution inside a connection (it repeats the last frame of the old
# size for as long as the stream runs); a new connection decodes the new size.
FROZEN_S = 2.0


class FrozenWatch:
    """Counts how long a live stream's frames have stayed byte-identical; `frozen` once
    they have for FROZEN_S. Re-armed only by a frame that differs, so a stream frozen
    again after its reconnection (a static test pattern) is reconnected once, not forever."""

    def __init__(self) -> None:
        self._last: np.ndarray | None = None
        self._last_t = 0.0
        self._since: float | None = None
        self.armed = True

    def frozen(self, image: np.ndarray, t: float) -> bool:
        last = self._last
        # A coarse grid first: a live frame differs there almost always (sensor noise), so the
        # whole frame is compared only while the stream looks frozen (4K: ~5 ms a frame).
        same = (last is not None and image.shape == last.shape
                and np.array_equal(image[::16, ::16], last[::16, ::16]) and np.array_equal(image, last))
        self._last, previous_t, self._last_t = image, self._last_t, t
        if not same:
            self._since, self.armed = None, True
            return False
        self._since = previous_t if self._since is None else self._since  # the run's first frame
        return self.armed and t - self._since >= FROZEN_S

    def reconnecting(self) -> None:
        """The stream is reconnected for a freeze: no second time until a frame changes (the
        frozen frame is kept: the new connection's first frame is compared with it)."""
        self.armed, self._since = False, None


def _stamp(pos_ms: float | None) -> float | None:
    """A capture's frame time in ms, None where it has none (None, NaN, 0 or less)."""
    return pos_ms if pos_ms is not None and math.isfinite(pos_ms) and pos_ms > 0 else None


# Notices about a live stream's gaps and rate come at most this often (s of stream time);
# the gaps in between are counted into the next one.
LIVE_NOTICE_S = 30.0


class LiveNumbering:
    """How many frames a live stream lost between two frames, from the step between them
    (s) and the stream's rate: none up to `live_gap_s` of the frame interval, else
    round(step / interval) - 1. The interval is the nominal one, or the step before where
    that was clearly longer (> 1.5 intervals): a stream that goes on at a lower rate (night
    mode, a smart codec, bandwidth adaptation) loses frames once, at the change, not at
    every frame after it, as `frame_numbers` reads a file. Notices: `gap` and `rate`
    return the line to tell, at most one per LIVE_NOTICE_S."""

    def __init__(self, fps: float) -> None:
        self.nominal = 1.0 / fps
        self._previous: float | None = None
        self._slow = 0  # steps in a row clearly longer than the nominal interval
        self._rate_told = False
        self._gap_told_at = -math.inf
        self._untold_gaps = 0

    def lost(self, step: float, on_clock: bool) -> int:
        previous, self._previous = self._previous, step
        interval = previous if previous is not None and previous > 1.5 * self.nominal else self.nominal
        self._slow = self._slow + 1 if step > 1.5 * self.nominal else 0
        if self._slow == 0:
            self._rate_told = False
        if step <= live_gap_s(1.0 / interval, on_clock):
            return 0
        return max(int(np.rint(step / interval)) - 1, 1)

    def gap(self, t: float) -> int | None:
        """The gaps to tell now (this one and those not told since), or None: not yet."""
        self._untold_gaps += 1
        if t - self._gap_told_at < LIVE_NOTICE_S:
            return None
        told, self._untold_gaps, self._gap_told_at = self._untold_gaps, 0, t
        return told

    def slower(self) -> float | None:
        """The rate the stream delivers at, once it has gone on clearly slower than the
        nominal rate for 10 steps (told once until it is back)."""
        if self._slow < 10 or self._rate_told or self._previous is None:
            return None
        self._rate_told = True
        return 1.0 / self._previous


class LiveClock:
    """t_stream of a live source's frames (s): the steps of the stream's own clock where
    the capture keeps one and it moves forward (RTSP: the RTP timestamps, so frames a
    stalled server sends in a burst keep their times), else of arrival times. A step of
    the stream clock over SPLICE_S (its clock reset) counts as one frame interval."""

    def __init__(self, t_capture: float, pos_ms: float | None) -> None:
        self.t = 0.0
        self._arrival, self._pos = t_capture, _stamp(pos_ms)

    def restart(self, t_capture: float, pos_ms: float | None) -> None:
        """A new connection: its clock starts again; the time between goes by arrival."""
        self.t += max(t_capture - self._arrival, 0.0)
        self._arrival, self._pos = t_capture, _stamp(pos_ms)

    def step(self, t_capture: float, pos_ms: float | None) -> tuple[float, bool]:
        """Advance to a frame; returns (its step in seconds, whether the stream clock gave it).
        A time of 0 or less is none (OpenCV's answer for a frame without a timestamp): the
        step goes by arrival and the clock's reference stays, so one such frame shifts no
        later time."""
        arrival = max(t_capture - self._arrival, 0.0)
        step, usable = arrival, False
        stamp = _stamp(pos_ms)
        if stamp is not None and self._pos is not None and stamp > self._pos:
            on_clock = (stamp - self._pos) / 1000.0
            if on_clock <= SPLICE_S:
                step, usable = on_clock, True
        self.t += step
        self._arrival = t_capture
        if stamp is not None:
            self._pos = stamp
        return step, usable


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
        self._fps_override = None if fps is None else check_fps(fps, f"{name}: fps")
        self._fps: float | None = self._fps_override
        # The rate the first connection reported (None: none usable, or --fps given): a
        # reconnection that reports another one is told (K stays set for the first).
        self._first_reported: float | None = None
        self._state: SourceState | None = None
        # A capture opened by `connect` before iteration began, with the frame to deliver
        # first (capture time, image): its first, or the last the rate probe read.
        self._pending: tuple[cv2.VideoCapture, tuple[float, np.ndarray]] | None = None
        self.on_connection: NoticeCallback | None = None
        self._began = False  # iteration started: it owns (re)connecting from now on

    @abstractmethod
    def _open(self) -> cv2.VideoCapture:
        """A new capture (maybe not opened: the caller checks isOpened())."""

    @abstractmethod
    def _describe(self) -> str:
        """The source as the user named it (URL or camera index), for messages."""


    def _probe(self, cap: cv2.VideoCapture, first: tuple[float, np.ndarray]) -> tuple[list[float], tuple[float, np.ndarray]]:
        """The capture times of `first` and the frames read after it for the rate probe
        (module doc), and the last frame read. The frames before it are not delivered:
        handed over afterwards as a backlog, they would let the camera's own buffer
        overflow unseen (frames lost without a gap in the numbering). Stops early when a
        read fails (the iteration then reconnects) or the source closes."""
        times, last = [first[0]], first
        while not self._closed.is_set():
            elapsed = times[-1] - times[0]
            if elapsed >= RATE_PROBE_S[1] or (elapsed >= RATE_PROBE_S[0]
                                              and len(delivered_window(times)) > RATE_PROBE_INTERVALS):
                break
            ok, image = cap.read()
            if not ok or image is None:
                break
            last = (time.monotonic(), image)
            times.append(last[0])
        return times, last

    def _reported(self, cap: cv2.VideoCapture) -> tuple[float, str]:
        """The rate the capture reports (or, for a camera that reports none, the rate it
        was asked for) and how to name it in a notice. UserError when there is none."""
        reported = cap.get(cv2.CAP_PROP_FPS)
        return check_fps(reported, f"{self._describe()}: reported frame rate; pass fps"), "reports"

    def _settle_fps(self, cap: cv2.VideoCapture, times: list[float]) -> float:
        """The stream's fps from what the capture reports and the capture `times` of the
        probe (module doc); a notice when they disagree. A measured rate above the
        reported one is not taken (a camera does not outrun its own rate: frames that
        came faster were a backlog). UserError when neither gives a usable rate."""
        try:
            reported: float | None
            reported, said = self._reported(cap)
            said = f"{said} {reported:g} fps"
            why = None
        except UserError as exc:
            reported, said, why = None, "reports no usable frame rate", exc
        self._first_reported = reported
        measured = delivered_fps(times)
        if measured is not None and not MIN_FPS <= measured <= MAX_PLAUSIBLE_FPS:
            measured = None  # a burst, or a slideshow: not a rate to set K by
        if measured is None:
            if reported is None:
                assert why is not None
                raise why
            return reported
        if reported is not None and measured / reported - 1.0 >= -RATE_TOLERANCE:
            return reported
        rate = round(measured, 1)
        self.notice(f"{self._describe()}: {said} but delivers {rate:g} fps (timed over {len(times)} frames); "
                    f"K and the smoothing windows follow {rate:g} fps{self._rate_advice()}")
        return rate

    def _check_rate_kept(self, cap: cv2.VideoCapture) -> None:
        """A notice when a reconnection reports another frame rate than the first
        connection did: K and the smoothing windows were set by the first (frames are
        counted, not timed, in a pair), so a camera or server back at another rate gives
        pairs of another time span until lgnm-live is restarted."""
        if self._first_reported is None:
            return
        try:
            now, _ = self._reported(cap)
        except UserError:
            return  # nothing usable reported this time: nothing to compare
        if abs(now / self._first_reported - 1.0) <= RATE_TOLERANCE:
            return
        self.notice(f"{self._describe()}: came back reporting {now:g} fps (it reported {self._first_reported:g} fps "
                    f"at first); K and the smoothing windows stay set for {self._fps:g} fps until lgnm-live is "
                    "restarted")

    def _rate_advice(self) -> str:
        """What the user can do about a rate taken from timing (appended to its notice)."""
        return " (pass --fps to set the rate)"

    def describe(self) -> str:
        """The source as the user named it: the URL or `camera N`."""
        return self._describe()

    def connect(self) -> None:
        """Open the first connection now (retries and backoff included; blocks up to
        forever when `max_retries` is None), in the caller's thread; iteration starts on
        it. Raises `SourceUnavailable` when retries run out or `close()` interrupts it,
        `UserError` when the stream reports an impossible frame rate."""
        if self._pending is None and not self._began:
            pending = self._connect()
            if self._closed.is_set():  # closed as it completed: released, never iterated
                pending[0].release()
                raise self._closed_while_connecting()
            self._pending = pending

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

    def _try_open(self) -> tuple[cv2.VideoCapture, tuple[float, np.ndarray]] | str:
        """An open capture and its first frame (capture time, image), or why there is none."""
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
        return cap, (time.monotonic(), image)

    def _connect(self) -> tuple[cv2.VideoCapture, tuple[float, np.ndarray]]:
        """Open and read one frame, retrying with capped exponential backoff (seconds:
        backoff_s, 2 x backoff_s, ... up to backoff_max_s); at the first connection also
        the rate probe. Returns the capture and the frame to deliver first (capture time,
        image). Raises `SourceUnavailable` after `max_retries` failed retries or when
        closed meanwhile, `UserError` when no usable frame rate is reported or measured."""
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
                cap, first = got
                self._set_state("up", f"{self._describe()}: receiving frames")
                # The first connection times its frames before any is processed: say so,
                # or the user waits up to RATE_PROBE_S[1] s after "receiving" for nothing.
                probing = self._fps is None
                self._tell(f"{self._describe()}: receiving frames"
                           + (f" (after {_retries(attempt)})" if attempt else "")
                           + (f"; timing its frame rate for {RATE_PROBE_S[0]:g}-{RATE_PROBE_S[1]:g} s"
                              if probing else ""))
                if probing:
                    times, first = self._probe(cap, first)
                    if self._closed.is_set():  # closed while timing: let go, set nothing
                        cap.release()
                        raise self._closed_while_connecting()
                    try:
                        self._fps = self._settle_fps(cap, times)
                    except UserError:
                        cap.release()
                        raise
                else:
                    self._check_rate_kept(cap)
                return cap, first
            detail = f"{self._describe()}: {got}"
            self._set_state("down", detail)
            if self.max_retries is not None and attempt >= self.max_retries:
                raise SourceUnavailable(f"{detail} (gave up after {_retries(attempt)})")
            attempt += 1
            delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
            of = "" if self.max_retries is None else f" of {self.max_retries}"
            self._tell(f"waiting for {self._describe()} (retry {attempt}{of}, "
                       f"next in {delay:g} s): {got}")

    def _stream_ms(self, cap: cv2.VideoCapture) -> float | None:
        """The last read frame's time on the stream's own clock (ms), None where the
        capture keeps none (a camera: its frames are timed on arrival)."""
        return None

    def _step(self, index: int, clock: LiveClock, numbering: LiveNumbering, t_capture: float,
              pos_ms: float | None) -> int:
        """The index of a frame after `index` (module doc): a step over `live_gap_s` in
        stream time (arrival time without a stream clock) stands for lost frames, a hole in
        the numbering where the frame chain breaks, with a notice (`LiveNumbering`)."""
        step, on_clock = clock.step(t_capture, pos_ms)
        lost = numbering.lost(step, on_clock)
        if lost and (told := numbering.gap(clock.t)) is not None:
            what = "stream time" if on_clock else "arrival time"
            more = f"; {told - 1} more such gap{'s' if told > 2 else ''} since the last notice" if told > 1 else ""
            self.notice(f"{self._describe()}: no frame for {step:.2f} s of {what} after frame {index} "
                        f"({lost} frame{'s' if lost != 1 else ''} missing); the frame chain breaks there{more}")
        if (rate := numbering.slower()) is not None:
            self.notice(f"{self._describe()}: now delivers about {rate:.1f} fps (set for {1 / numbering.nominal:g} fps "
                        "at the start); K and the smoothing windows count frames, so each pair now spans more "
                        "time")
        return index + 1 + lost

    def __iter__(self) -> Iterator[RawFrame]:
        index, cap = 0, None
        clock: LiveClock | None = None
        frozen = FrozenWatch()
        read: tuple[float, np.ndarray] | None = None  # the frame a connection read before iteration
        fresh = False  # `read` is a connection's first frame: the stream clock starts again there
        self._began = True
        # One frame size per stream, across reconnects too (a camera or server that comes
        # back at another resolution): the same aspect is scaled, another fails the stream.
        size = StreamSize(self._describe(), self.notice)
        # OpenCV's FFmpeg backend logs a stalled read ("Stream timeout triggered") on
        # stderr; the connection lines say it in our words
        level = cv2.getLogLevel()
        cv2.setLogLevel(CV_LOG_SILENT)
        try:
            while not self._closed.is_set():
                if read is not None:
                    (t_capture, image), read = read, None
                elif cap is None:
                    if self._pending is not None:
                        (cap, read), self._pending = self._pending, None
                    else:
                        cap, read = self._connect()
                    fresh = True
                    continue
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
                assert cap is not None  # a frame came from it
                pos_ms = self._stream_ms(cap)
                if clock is None:
                    clock, index = LiveClock(t_capture, pos_ms), 1
                    numbering = LiveNumbering(self.fps)
                elif fresh:  # a reconnection: "down" broke the chain; times go on by arrival
                    clock.restart(t_capture, pos_ms)
                    index += 1
                else:
                    index = self._step(index, clock, numbering, t_capture, pos_ms)
                fresh = False
                if frozen.frozen(image, clock.t):
                    cap.release()
                    cap = None
                    frozen.reconnecting()
                    detail = (f"{self._describe()}: frames stopped changing ({FROZEN_S:g} s of identical frames: "
                              "a stream the decoder no longer follows, e.g. a resolution change inside the "
                              "connection)")
                    self._set_state("down", detail)
                    self._tell(f"{detail}; reconnecting")
                    continue
                yield RawFrame(index, t_capture, clock.t, size.fit(image, index))
        finally:
            cv2.setLogLevel(level)
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

    def _reported(self, cap: cv2.VideoCapture) -> tuple[float, str]:
        # Cameras often report 0 or a nominal rate they ignore; fall back to the request.
        reported = cap.get(cv2.CAP_PROP_FPS)
        if math.isfinite(reported) and MIN_FPS <= reported <= MAX_PLAUSIBLE_FPS:
            return float(reported), "reports"
        if self.requested_fps is not None:
            return check_fps(self.requested_fps, "--fps"), "was asked for (--fps)"
        raise UserError(f"{self._describe()}: camera reports no usable frame rate ({reported:g}); pass fps")

    def _rate_advice(self) -> str:
        return ""  # --fps only asks a camera for a rate: it runs at the rate it delivers


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

    def _stream_ms(self, cap: cv2.VideoCapture) -> float | None:
        # FFmpeg's presentation time of the frame read, from the RTP timestamps
        return float(cap.get(cv2.CAP_PROP_POS_MSEC))

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
    raise ValueError(f"open_source kind: unknown source kind {kind!r} (one of {', '.join(SOURCE_KINDS)})")


class PacedSource(FrameSource):
    """Delivers a file source's frames no earlier than their stream times (`--realtime`):
    t_stream, not index / fps, so a variable-rate file plays at its own pace and a folder
    numbered from 5000 does not first wait 4999 frame times."""

    def __init__(self, inner: FrameSource, speed: float = 1.0) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name
        self.is_live = inner.is_live
        self.n_frames = inner.n_frames
        self.speed = speed

    @property
    def fps(self) -> float:
        return self.inner.fps

    def __iter__(self) -> Iterator[RawFrame]:
        t0, first = time.monotonic(), None
        for raw in self.inner:
            first = raw.t_stream if first is None else first
            due = t0 + (raw.t_stream - first) / self.speed
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if self.closed:
                return
            yield RawFrame(raw.index, time.monotonic(), raw.t_stream, raw.image)

    def stop_after(self, frame: int) -> None:
        super().stop_after(frame)
        self.inner.stop_after(frame)

    def close(self) -> None:
        super().close()
        self.inner.close()
