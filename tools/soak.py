"""Soak benchmark (not a test): a long replay through lgnm-live's pipeline with a real
ZeroMQ subscriber attached, watching memory growth, delivery and drops.

    python tools/soak.py                     # 10 minutes of stream time (18000 frames at 30 fps)
    python tools/soak.py --minutes 1 --clip-seconds 5

The stream is a synthetic face clip (tools/sample_media.write_face_clip, with
exact truth) decoded once and looped in memory as one continuous stream whose frame
numbers keep increasing, so the run measures the pipeline, not the disk. It goes through
`realtime.pipeline.run_stream` with the sinks `lgnm-live` uses (publisher + journal,
predictions CSV, collector) and a SUB socket in another thread counting what arrives.

Weights: the demo weights (engines/weights/demo_*.safetensors) when both exist, else
seeded untrained weights from tools/sample_media.write_random_weights (the table says which).
RSS is sampled from /proc/self/status every second; "start" is after the first 10% of
frames (model, flow and face tracker warmed up), "end" after the last frame.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import zmq
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.pair_features import make_pair_features  # noqa: E402
from engines.scorers import make_scorer  # noqa: E402
from realtime.common.errors import OneLineParser  # noqa: E402
from realtime.common.types import FrameScore, StreamStatus  # noqa: E402
from realtime.events import EventMessage, StatusMessage, decode  # noqa: E402
from realtime.pipeline import RunOptions, run_stream, setup_for_fps  # noqa: E402
from realtime.publisher import EventPublisher  # noqa: E402
from realtime.sinks import CollectSink, NullSink, PredictionsSink, PublisherSink  # noqa: E402
from realtime.sources import FrameSource, RawFrame, VideoFileSource  # noqa: E402
from realtime.stats import RunStats  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


class LoopedSource(FrameSource):
    """A decoded clip repeated as one replay stream of `total` frames (1-based, gapless)."""

    is_live = False

    def __init__(self, frames: list[np.ndarray], fps: float, total: int, name: str = "soak") -> None:
        super().__init__()
        self.frames, self._fps, self.total, self.name = frames, fps, total, name

    @property
    def fps(self) -> float:
        return self._fps

    def __iter__(self) -> Iterator[RawFrame]:
        for index in range(1, self.total + 1):
            if self.closed:
                return
            image = self.frames[(index - 1) % len(self.frames)]
            yield RawFrame(index, time.monotonic(), (index - 1) / self._fps, image)


class Subscriber(threading.Thread):
    """A real SUB socket on loopback counting events, status and seq gaps."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
        self.sock.connect(endpoint)
        self.events = self.status = self.gaps = self.last_seq = 0
        self.done = threading.Event()

    def _take(self) -> None:
        msg = decode(self.sock.recv_multipart())
        if self.last_seq and msg.seq != self.last_seq + 1:
            self.gaps += msg.seq - self.last_seq - 1
        self.last_seq = msg.seq
        if isinstance(msg, EventMessage):
            self.events += 1
        elif isinstance(msg, StatusMessage):
            self.status += 1

    def run(self) -> None:
        while not self.done.is_set():
            if self.sock.poll(50):
                self._take()
        while self.sock.poll(500):
            self._take()
        self.sock.close(0)
        self.ctx.term()


class MemoryProbe(NullSink):
    """Samples RSS once a second (on status) and once warm-up is over."""

    def __init__(self, warm_frames: int) -> None:
        self.warm_frames = warm_frames
        self.start: float | None = None
        self.peak = 0.0
        self.frames = 0

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        if scores:
            self.frames = max(self.frames, max(s.frame for s in scores))
        if self.start is None and self.frames >= self.warm_frames:
            self.start = rss_mib()

    def on_status(self, status: StreamStatus) -> None:
        self.peak = max(self.peak, rss_mib())


def weights(folder: Path) -> tuple[list[Path], str]:
    demo = [ROOT / "engines" / "weights" / f"demo_{t}.safetensors" for t in ("ME", "MaE")]
    if all(p.is_file() for p in demo):
        return demo, "demo weights (engines/weights)"
    from tools.sample_media import write_random_weights

    return write_random_weights(folder, threshold=0.5), "seeded untrained weights (tests/media.py)"


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="stream time to replay (default 10)")
    ap.add_argument("--clip-seconds", type=float, default=20.0, help="length of the looped clip")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args(argv)
    console = Console()
    from tools.sample_media import write_face_clip

    with tempfile.TemporaryDirectory(prefix="soak") as tmp:
        folder = Path(tmp)
        clip, _ = write_face_clip(folder, "soak", seconds=args.clip_seconds, seed=5, fps=args.fps)
        with VideoFileSource(clip) as src:
            frames = [raw.image for raw in src]
        total = int(round(args.minutes * 60 * args.fps))
        paths, which = weights(folder)
        scorers = [make_scorer(p, "cpu") for p in paths]
        pair_features = make_pair_features("auto", scorers[0].meta.flow)
        source = LoopedSource(frames, args.fps, total)
        setups = [setup_for_fps(s, args.fps) for s in scorers]
        publisher = EventPublisher("tcp://127.0.0.1:*", stream=source.name, journal=folder / "events.jsonl")
        sub = Subscriber(publisher.endpoint)
        sub.start()
        publisher.wait_for_subscriber(timeout=10)
        predictions = PredictionsSink(folder / "predictions.csv")
        collected = CollectSink()
        probe = MemoryProbe(warm_frames=total // 10)
        stats = RunStats()
        rss0 = rss_mib()
        t0 = time.monotonic()
        try:
            run_stream(source, setups, pair_features, [collected, predictions, PublisherSink(publisher), probe],
                       RunOptions(batch=args.batch), stats)
        finally:
            wall = time.monotonic() - t0
            rss_end = rss_mib()
            predictions.close()
            sent, pub_dropped = publisher.seq, publisher.pub_dropped
            publisher.close()
            sub.done.set()
            sub.join(30)
            for s in scorers:
                s.close()
        journal_lines = len((folder / "events.jsonl").read_text().splitlines())
        csv_rows = len((folder / "predictions.csv").read_text().splitlines()) - 1

    start = probe.start if probe.start is not None else rss0
    growth = 100.0 * (rss_end - start) / start
    table = Table(title=f"lgnm-live soak: {args.minutes:g} min of {args.fps:g} fps stream, "
                        f"{args.clip_seconds:g} s clip looped")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [
        ("weights", which),
        ("backend / flow", f"{stats.backend} / {stats.flow}"),
        ("frames (faces)", f"{stats.frames} ({stats.faces})"),
        ("stream time", f"{stats.frames / args.fps:.0f} s"),
        ("wall time", f"{wall:.1f} s"),
        ("fps", f"{stats.frames / wall:.1f}"),
        ("RSS before run", f"{rss0:.0f} MiB"),
        ("RSS after warm-up (10%)", f"{start:.0f} MiB"),
        ("RSS at end", f"{rss_end:.0f} MiB"),
        ("RSS peak (sampled) / maxrss",
         f"{probe.peak:.0f} / {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"),
        ("RSS growth warm-up -> end", f"{growth:+.2f} % ({'ok' if growth < 5 else 'OVER'} goal < 5 %)"),
        ("events spotted / journal / CSV", f"{stats.events} / {journal_lines} / {csv_rows}"),
        ("events sent / received", f"{stats.events} / {sub.events}"),
        ("status messages sent / received", f"{sent - stats.events} / {sub.status}"),
        ("messages published (seq)", str(sent)),
        ("seq gaps at subscriber", str(sub.gaps)),
        ("publisher drops (pub_dropped)", str(pub_dropped)),
        ("ring drops", str(stats.dropped)),
        ("chain breaks", str(stats.chain_breaks)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
