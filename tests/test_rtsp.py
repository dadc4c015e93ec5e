"""RtspSource against a real GStreamer RTSP server on loopback (tests/rtsp_server.py)."""

from __future__ import annotations

import socket
import threading

import pytest

from realtime.ring import CaptureThread, FrameRing
from realtime.sources import FROZEN_S, RawFrame, RtspSource, SourceUnavailable


def _brightness(frame: RawFrame) -> int:
    return int(frame.image[4:12, 4:12].mean())  # conftest.pattern_frame marks i*8 here


def test_reads_frames_from_server(make_video, rtsp_server):
    server = rtsp_server(make_video("moving.avi", frames=90, fps=30.0))
    src = RtspSource(server.url, read_timeout_s=10)
    assert src.fps == pytest.approx(30.0) and src.is_live and src.name == "test"
    frames = []
    for frame in src:
        frames.append(frame)
        if len(frames) == 30:
            src.close()
    assert [f.index for f in frames] == list(range(1, 31))
    assert frames[0].image.shape == (240, 320, 3)
    assert frames[0].t_stream == 0.0 and frames[-1].t_stream >= frames[1].t_stream
    # The picture moves: consecutive frames differ in the marked block (lossy JPEG:
    # compare coarsely).
    values = [_brightness(f) for f in frames[:10]]
    assert len(set(v // 4 for v in values)) > 5


def test_server_killed_and_restarted(make_video, rtsp_server):
    server = rtsp_server(make_video("long.avi", frames=300, fps=30.0))
    states: list[str] = []
    down, up_again = threading.Event(), threading.Event()

    def on_state(state: str, detail: str) -> None:
        states.append(state)
        if state == "down":
            down.set()
        elif down.is_set():
            up_again.set()

    src = RtspSource(server.url, max_retries=None, on_state=on_state, backoff_s=0.1,
                     backoff_max_s=0.4, read_timeout_s=3, open_timeout_s=3)
    ring: FrameRing[int] = FrameRing(1000, "live")
    thread = CaptureThread(src, ring, lambda f: f.index)
    thread.start()
    try:
        first = [ring.get(timeout=30) for _ in range(10)]
        server.stop()  # killed mid-stream
        assert down.wait(30), "source never reported down"
        server.start()  # same port, same URL
        assert up_again.wait(30), "source never came back up"
        later = []
        while len(later) < 10:
            later.append(ring.get(timeout=30))
    finally:
        thread.stop(timeout=30)
    assert first == list(range(1, 11))
    assert states[:3] == ["up", "down", "up"]
    indices = first + later
    assert all(a < b for a, b in zip(indices, indices[1:]))  # keeps increasing


def test_stalled_server_is_detected_by_read_timeout(make_video, rtsp_server):
    server = rtsp_server(make_video("stall.avi", frames=300, fps=30.0))
    states: list[tuple[str, str]] = []
    down, up_again = threading.Event(), threading.Event()

    def on_state(state: str, detail: str) -> None:
        states.append((state, detail))
        if state == "down":
            down.set()
        elif down.is_set():
            up_again.set()

    src = RtspSource(server.url, on_state=on_state, backoff_s=0.1, backoff_max_s=0.2,
                     read_timeout_s=1, open_timeout_s=1)
    ring: FrameRing[int] = FrameRing(1000, "live")
    thread = CaptureThread(src, ring, lambda f: f.index)
    thread.start()
    try:
        for _ in range(5):
            ring.get(timeout=30)
        server.pause()  # socket open, no data: only the read timeout can notice
        assert down.wait(30), "stall never reported"
        server.resume()
        assert up_again.wait(30), "source never came back after the stall"
        ring.get(timeout=30)
    finally:
        server.resume()
        thread.stop(timeout=30)
    assert states[1] == ("down", f"{server.url}: stream stopped delivering frames")


def test_no_server_gives_up_without_hanging():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    states = []
    src = RtspSource(f"rtsp://127.0.0.1:{port}/test", max_retries=2, backoff_s=0.05,
                     on_state=lambda s, d: states.append(s), open_timeout_s=2)
    with pytest.raises(SourceUnavailable, match=rf":{port}/test: cannot connect \(gave up after 2"):
        list(src)
    assert states == ["down"]


def test_no_server_error_reaches_capture_consumer():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = RtspSource(f"rtsp://127.0.0.1:{port}/x", fps=25, max_retries=1, backoff_s=0.05)
    ring: FrameRing[RawFrame] = FrameRing(4)
    thread = CaptureThread(src, ring, lambda f: f)
    thread.start()
    with pytest.raises(SourceUnavailable):
        ring.get(timeout=60)
    thread.join(10)
    assert not thread.is_alive()


def _mkv_with_pts(path, pts: list[int]):
    """An MJPEG MKV of pattern frames, frame i at pts[i] 30 fps frame intervals (a pause
    where they jump), as a camera that stopped sending writes it."""
    from conftest import pattern_frame
    from test_sources import write_av

    return write_av(path, [pattern_frame(i) for i in range(len(pts))], pts=pts, codec="mjpeg")


def _read_live(url: str, until) -> tuple[list[RawFrame], list[str]]:
    """The frames an RtspSource (30 fps set) delivers until `until(frames)`, and its notices."""
    src = RtspSource(url, fps=30.0, read_timeout_s=8)
    notices: list[str] = []
    src.notice = notices.append
    frames: list[RawFrame] = []
    for frame in src:
        frames.append(frame)
        if until(frames):
            src.close()
    return frames, notices


def test_a_pause_in_the_streams_timestamps_is_frames_lost_and_breaks_the_chain(tmp_path, rtsp_server):
    """A server whose stream pauses 3 s (under the read timeout, so no reconnect): the
    frames after it are numbered and timed by the stream's clock, the 90 missing frames
    are a hole in the numbering (the pipeline breaks its chain there) and a notice says
    so. Before, numbering went on by one and the K-frame pairs spanned the pause."""
    server = rtsp_server(_mkv_with_pts(tmp_path / "pause.mkv", list(range(60)) + list(range(150, 210))))
    frames, notices = _read_live(server.url, lambda frames: len(frames) == 100)
    steps = [b.index - a.index for a, b in zip(frames, frames[1:])]
    jumps = [s for s in steps if s != 1]
    assert len(jumps) == 1 and 88 <= jumps[0] <= 92, steps
    # every frame's time agrees with its number on the stream's clock
    assert max(abs(f.t_stream - (f.index - frames[0].index) / 30.0) for f in frames) < 0.1
    assert any("frame chain breaks" in n and "stream time" in n for n in notices), notices


def test_a_stream_that_goes_on_at_a_lower_rate_loses_frames_once_and_says_so(tmp_path, rtsp_server):
    """A camera that drops from 30 to 10 fps (low light, a smart codec) after the rate was
    set: one gap at the change, then frames numbered one by one again (every later frame
    was 'frames missing', so the chain broke at each and nothing was spotted), and one
    notice of the new rate."""
    pts = list(range(120)) + [120 + 3 * i for i in range(90)]  # 4 s at 30 fps, then 10 fps
    server = rtsp_server(_mkv_with_pts(tmp_path / "slower.mkv", pts))
    frames, notices = _read_live(server.url, lambda frames: frames[-1].t_stream > 8.0)
    steps = [b.index - a.index for a, b in zip(frames, frames[1:])]
    assert sum(step != 1 for step in steps) == 1 and 3 in steps, steps
    assert sum("frame chain breaks" in n for n in notices) == 1, notices
    assert sum("now delivers about 10.0 fps" in n for n in notices) == 1, notices


def test_frames_a_stalled_server_sends_late_keep_their_stream_times(make_video, rtsp_server):
    """A server stalled 1.5 s (under the read timeout) then resumed: whatever it sends
    after (a burst of held frames, or frames dropped), each frame's time and number agree
    on the stream's clock. Before, times were arrival times: a burst of frames got
    nearly one time, the frames after the stall none of their real spacing."""
    import time

    server = rtsp_server(make_video("stall.avi", frames=600, fps=30.0))
    src = RtspSource(server.url, fps=30.0, read_timeout_s=8)
    src.notice = lambda line: None
    frames = []
    for frame in src:
        frames.append(frame)
        if len(frames) == 20:
            server.pause()
            time.sleep(1.5)
            server.resume()
        if len(frames) == 80:
            src.close()
    arrival = max(b.t_capture - a.t_capture for a, b in zip(frames, frames[1:]))
    assert arrival > 1.0  # the stall happened
    assert max(abs(f.t_stream - (f.index - 1) / 30.0) for f in frames) < 0.1


def test_a_stream_that_changes_resolution_inside_a_connection_is_reconnected(tmp_path, rtsp_server):
    """OpenCV's FFmpeg capture cannot follow an RTSP stream that changes resolution inside
    one connection: it repeats the last frame of the old size as long as the stream runs
    (the face frozen, no warning). Frames byte-identical for FROZEN_S now count as a stall:
    the source says so and reconnects (a new connection decodes the new size)."""
    import fractions

    import av
    from conftest import pattern_frame

    path = tmp_path / "resize.mkv"
    tick = fractions.Fraction(1, 30)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=30)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuvj420p"
        stream.time_base = stream.codec_context.time_base = tick
        for i in range(240):  # 2 s at 320x240, then 6 s at 640x480 (same aspect), one JPEG each
            w, h = (320, 240) if i < 60 else (640, 480)
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt, encoder.time_base = w, h, "yuvj420p", tick
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, w, h), format="bgr24").reformat(format="yuvj420p")
            frame.pts, frame.time_base = i, tick
            for packet in encoder.encode(frame):
                packet.stream, packet.pts, packet.dts, packet.time_base = stream, i, i, tick
                container.mux(packet)
    server = rtsp_server(path)
    frames: list[RawFrame] = []
    states: list[tuple[str, str, float]] = []  # with the stream time of the last frame before
    src = RtspSource(server.url, fps=30.0, read_timeout_s=8, backoff_s=0.1,
                     on_state=lambda state, detail: states.append((state, detail, frames[-1].t_stream
                                                                   if frames else 0.0)))
    src.notice = lambda line: None
    for frame in src:
        frames.append(frame)
        if len(states) >= 3 or len(frames) >= 400:
            src.close()
    downs = [(d, t) for s, d, t in states if s == "down"]
    assert downs and "frames stopped changing" in downs[0][0], states
    assert downs[0][1] < 2.0 + FROZEN_S + 0.5  # found FROZEN_S after the change, not at the stream's end
    assert states[-1][0] == "up"  # and connected again
