"""FrameRing (drop-oldest live, blocking replay) and CaptureThread on real video files."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from realtime.common.errors import UserError
from realtime.ring import CaptureThread, FrameRing, RingClosed
from realtime.sources import FrameSource, RawFrame, VideoFileSource


@given(capacity=st.integers(1, 8), items=st.lists(st.integers(), max_size=40))
def test_live_ring_keeps_newest_and_counts_drops(capacity, items):
    ring: FrameRing[int] = FrameRing(capacity, "live")
    for item in items:
        assert ring.put(item)
    ring.close()
    assert list(ring) == (items[-capacity:] if items else [])
    assert ring.dropped == max(0, len(items) - capacity)


def test_replay_ring_never_drops():
    ring: FrameRing[int] = FrameRing(2, "replay")
    n = 500

    def produce() -> None:
        for i in range(n):
            ring.put(i)  # blocks while the consumer is behind
        ring.close()

    producer = threading.Thread(target=produce)
    producer.start()
    got = []
    for item in ring:
        assert len(ring) <= 2
        got.append(item)
    producer.join()
    assert got == list(range(n)) and ring.dropped == 0


def test_get_timeout_and_closed():
    ring: FrameRing[str] = FrameRing(3)
    with pytest.raises(TimeoutError):
        ring.get(timeout=0.01)
    ring.put("a")
    ring.close()
    assert not ring.put("b")  # closed: discarded
    assert ring.get() == "a"  # drained before the end is reported
    with pytest.raises(RingClosed):
        ring.get()


def test_closing_unblocks_a_blocked_replay_put():
    ring: FrameRing[int] = FrameRing(1, "replay")
    ring.put(0)
    results = []
    t = threading.Thread(target=lambda: results.append(ring.put(1)))
    t.start()
    ring.close()
    t.join()
    assert results == [False]


def test_bad_arguments():
    with pytest.raises(ValueError):
        FrameRing(0)
    with pytest.raises(ValueError):
        FrameRing(2, "fast")  # type: ignore[arg-type]


def test_capture_thread_processes_every_frame_in_replay(make_video):
    ring: FrameRing[tuple[int, int]] = FrameRing(4, "replay")
    source = VideoFileSource(make_video(frames=40))
    thread = CaptureThread(source, ring, lambda f: (f.index, int(f.image.mean())))
    thread.start()
    got = [index for index, _ in ring]
    thread.join()
    assert got == list(range(1, 41)) and ring.dropped == 0


class FailingSource(FrameSource):
    """A real file source that raises after some frames (like a corrupted folder)."""

    is_live = False

    def __init__(self, inner: VideoFileSource, fail_at: int) -> None:
        super().__init__()
        self.inner, self.fail_at, self.name = inner, fail_at, "failing"

    @property
    def fps(self) -> float:
        return self.inner.fps

    def __iter__(self):
        for frame in self.inner:
            if frame.index == self.fail_at:
                raise UserError(f"frame {frame.index}: broken")
            yield frame


def test_capture_thread_hands_source_error_to_consumer(make_video):
    ring: FrameRing[RawFrame] = FrameRing(64, "replay")
    thread = CaptureThread(FailingSource(VideoFileSource(make_video(frames=20)), 7), ring,
                           lambda f: f)
    thread.start()
    got = []
    with pytest.raises(UserError, match="frame 7: broken"):
        for frame in ring:
            got.append(frame.index)
    thread.join()
    assert got == [1, 2, 3, 4, 5, 6]


def test_process_error_reaches_consumer(make_video):
    ring: FrameRing[int] = FrameRing(8, "replay")

    def process(frame: RawFrame) -> int:
        if frame.index == 3:
            raise RuntimeError("alignment failed")
        return frame.index

    thread = CaptureThread(VideoFileSource(make_video(frames=10)), ring, process)
    thread.start()
    with pytest.raises(RuntimeError, match="alignment failed"):
        list(ring)
    thread.join()


def test_stop_ends_capture_early(make_video):
    ring: FrameRing[int] = FrameRing(2, "replay")
    source = VideoFileSource(make_video(frames=200))
    thread = CaptureThread(source, ring, lambda f: f.index)
    thread.start()
    assert ring.get() == 1
    thread.stop(timeout=10)
    assert not thread.is_alive() and source.closed
