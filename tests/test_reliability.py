"""Reliability of the whole pipeline under faults, with real parts only.

- RTSP outages through `run_stream` and `lgnm-live` (a real GStreamer RTSP server on
  loopback, killed mid-stream and restarted on the same port): status goes down then up,
  the frame chain is broken (no score pair spans the outage), the run recovers, and with
  the server gone for good `--max-retries` ends it with exit 2 and one line naming the URL
  after everything spotted so far is in the journal and the predictions.
- Bad input (truncated / corrupted / empty videos, frames of changing size, a video
  without a face, broken weights and engine sidecars, malformed CSVs and workbooks): a
  one-line `error:` with exit 2 naming the file, or a documented, visible skip.
- Back-pressure at the pipeline level: a stuck subscriber does not stop a replay, a
  healthy one attached at the same time still gets every message, the journal has every
  event, and the stuck one sees the drops as seq gaps.
- Ctrl-C on a live source in every state (waiting for a first connection that never
  comes, an OpenCV open blocking, running, a read stalled, reconnecting after the server
  died): a real `lgnm-live` process says what it is waiting for, exits 0 promptly and
  leaves its metrics, predictions and summary.

Waits poll with a generous deadline only to turn a hang into a failure. The durations
asserted are Ctrl-C's: from SIGINT to the run's last output (`CTRL_C_OUTPUT_S`, shorter
than the OpenCV timeouts of 5 s and the backoff of up to 8 s that a stop used to wait
out) and to the process's exit (`CTRL_C_EXIT_S`, which adds the interpreter unloading
torch: 0.5 to 2.5 s measured on the loaded 2-core machine).
"""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
import zmq
from safetensors.torch import load_file, save_file

import realtime.pipeline as pipeline
from engines.engine_meta import EngineSidecar, read_sidecar, sidecar_path
from engines.pair_features import CpuPairFeatures
from engines.scorers import make_scorer
from realtime.cli import main as live_main
from realtime.common.errors import UserError
from realtime.common.types import FlowSettings, FrameScore, StreamStatus
from realtime.events import decode, decode_payload
from realtime.intervals_csv import read_intervals
from realtime.pipeline import RunOptions, run_stream, setup_for_fps
from realtime.publisher import EventPublisher
from realtime.sinks import CollectSink, NullSink, PublisherSink
from realtime.sources import RtspSource, SourceUnavailable, VideoFileSource
from tools.evaluate import main as eval_main

from media import CLIP_SIZE, Collector, default_sigint, free_port, write_face_clip, write_random_weights

HANG_GUARD_S = 120.0  # turns a hang into a failure; never a performance bound
CTRL_C_OUTPUT_S = 3.0  # SIGINT to the last line written (measured: 0.05 s, 0.6 s for a stalled read)
CTRL_C_EXIT_S = 10.0  # SIGINT to the process's exit, interpreter teardown included
CONNECTION_LINE = ("waiting for ", ": receiving frames", ": stream stopped delivering frames")


def wait_for(cond: Callable[[], bool], what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not cond():
        if not alive():
            pytest.fail(f"the run ended before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {HANG_GUARD_S:.0f} s (hang)")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("reliability")
    clip, _ = write_face_clip(folder, "face", seconds=10.0, seed=21)
    short, _ = write_face_clip(folder, "short", seconds=3.0, seed=22)
    weights = write_random_weights(folder, threshold=0.5)
    return {"folder": folder, "clip": clip, "short": short, "weights": weights}


def weight_args(media: dict) -> list[str]:
    """MaE only: every CLI run loads (exports) one model instead of two."""
    return ["--weights", str(media["weights"][1]), "--types", "MaE"]


def one_error_line(err: str, after_connection_lines: bool = False) -> str:
    """The single `error:` line of a failed run's stderr; a live source's connection
    lines (waiting, receiving, stopped) may come before it when allowed."""
    lines = [line for line in err.splitlines() if line.strip()]
    if after_connection_lines:
        lines = [line for line in lines if not any(mark in line for mark in CONNECTION_LINE)]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert err.rstrip().splitlines()[-1] == lines[0], err  # the last word
    return lines[0]


class Recorder(NullSink):
    """Every status and score the pipeline hands its sinks (thread-safe enough: lists)."""

    def __init__(self) -> None:
        self.status: list[StreamStatus] = []
        self.scores: list[FrameScore] = []

    def on_status(self, status: StreamStatus) -> None:
        self.status.append(status)

    def on_scores(self, scores: Sequence[FrameScore]) -> None:
        self.scores.extend(scores)


# ------------------------------------------------------------------ RTSP outages


def test_rtsp_outage_breaks_the_chain_and_the_pipeline_recovers(media: dict, rtsp_server) -> None:
    server = rtsp_server(media["clip"])
    # Backoff 0.5 s, 1 s, 2 s: a 3.5 s window to bring the server back, then it gives up.
    source = RtspSource(server.url, max_retries=3, backoff_s=0.5)
    scorers = [make_scorer(media["weights"][1], "cpu")]
    setups = [setup_for_fps(s, source.fps) for s in scorers]  # connects (server is up)
    max_k = max(s.k for s in setups)
    rec, collect = Recorder(), CollectSink()
    result: dict = {}

    def work() -> None:
        try:
            result["stats"] = run_stream(source, setups, CpuPairFeatures(FlowSettings()), [collect, rec],
                                         RunOptions(batch=8))
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    alive = worker.is_alive

    def seen(state: str, after: int = 0, frame: int = 0) -> bool:
        return any(s.source == state and s.frame >= frame for s in rec.status[after:])

    wait_for(lambda: seen("up", frame=2 * max_k), "frames from the first connection", alive)
    server.stop()
    wait_for(lambda: seen("down"), "status source=down after the server was killed", alive)
    down_at = next(i for i, s in enumerate(rec.status) if s.source == "down")
    last_before = rec.status[down_at].frame  # every frame up to here was processed
    server.start()  # same port
    wait_for(lambda: seen("up", down_at, last_before + 2 * max_k), "frames after the restart", alive)
    server.stop()  # gone for good: 3 retries, then SourceUnavailable
    worker.join(HANG_GUARD_S)
    assert not worker.is_alive(), "run_stream hangs after the source gave up"

    err = result.get("error")
    assert isinstance(err, SourceUnavailable) and server.url in str(err), result
    states = [s.source for s in rec.status]
    first_down = states.index("down")
    assert "up" in states[first_down:], "no status source=up after the restart"
    assert states[-1] == "down"
    for setup in setups:  # score of frame i needs frames i and i + K: none spans the outage
        frames = sorted(s.frame for s in rec.scores if s.type == setup.type)
        spanning = [f for f in frames if f <= last_before < f + setup.k]
        assert not spanning, f"{setup.type} pairs span the outage after frame {last_before}: {spanning}"
        assert frames[0] <= last_before < frames[-1]  # scored before and after the outage
    for iv in collect.intervals:  # nor does any interval
        assert iv.offset <= last_before or iv.onset > last_before


class FlickerSource(VideoFileSource):
    """A real video presented as a live source whose connection drops after `at` frames
    and comes back at once (a camera hiccup, an RTSP server restarting quickly): it
    reports down and up back to back, as LiveSource does on a fast reconnect."""

    is_live = True

    def __init__(self, path: Path, at: int, reported: threading.Event) -> None:
        super().__init__(path)
        self.at, self.reported = at, reported
        self.on_state = None

    def __iter__(self):  # type: ignore[no-untyped-def]
        for raw in super().__iter__():
            yield raw
            if raw.index == self.at:
                self.on_state("down", "flicker: stream stopped delivering frames")
                self.on_state("up", "flicker: receiving frames")
                self.reported.set()


def test_fast_reconnect_still_publishes_down_then_up(media: dict) -> None:
    reported = threading.Event()

    class SlowScorer(Recorder):  # scoring is busy while the source flickers
        def on_scores(self, scores: Sequence[FrameScore]) -> None:
            reported.wait(HANG_GUARD_S)
            super().on_scores(scores)

    source = FlickerSource(media["short"], at=40, reported=reported)
    setups = [setup_for_fps(make_scorer(media["weights"][0], "cpu"), source.fps)]
    rec = SlowScorer()
    stats = run_stream(source, setups, CpuPairFeatures(FlowSettings()), [rec], RunOptions(batch=8))
    assert stats.chain_breaks == 1  # the chain itself is broken correctly
    frames = sorted(s.frame for s in rec.scores)
    assert not [f for f in frames if f <= 40 < f + setups[0].k]
    states = [s.source for s in rec.status]
    assert "down" in states and "up" in states[states.index("down"):]



def _moving_dot_video(path: Path, fps: float, frames: int = 150) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    for i in range(frames):
        img = np.full((120, 160, 3), 60, np.uint8)
        cv2.circle(img, (20 + i % 120, 60), 10, (255, 255, 255), -1)
        writer.write(img)
    writer.release()
    return path


def test_a_server_back_at_another_frame_rate_is_told(rtsp_server, tmp_path: Path) -> None:
    """A real RTSP server restarted on its port serving 15 fps instead of 30: K (a count
    of frames) stays set for the first rate, which must be said (it was taken silently);
    a server back at its own rate says nothing."""
    server = first = rtsp_server(_moving_dot_video(tmp_path / "a30.avi", 30))
    src = RtspSource(server.url, max_retries=20, backoff_s=0.2, backoff_max_s=0.5)
    assert src.fps == 30.0
    for n, _ in enumerate(src, start=1):
        if n in (10, 40):
            server.stop()
            video = tmp_path / "a30.avi" if n == 10 else _moving_dot_video(tmp_path / "b15.avi", 15)
            server = rtsp_server(video, port=first.port)
        if n == 25:
            assert not [m for m in src.notices if "came back" in m]  # same rate: nothing
        if n == 60:
            break
    src.close()
    assert f"{first.url}: came back reporting 15 fps (it reported 30 fps at first); K and the smoothing windows " \
           "stay set for 30 fps until lgnm-live is restarted" in src.notices, src.notices

@pytest.fixture(scope="module")
def gone_for_good(media: dict, rtsp_server_module) -> dict:
    """lgnm-live on a real RTSP server that is killed for good mid-stream, --max-retries 1."""
    server = rtsp_server_module(media["clip"])
    out = media["folder"] / "gone"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    cmd = [sys.executable, "-m", "realtime.cli", "--rtsp", server.url, "--max-retries", "1",
           *weight_args(media), "--pub", endpoint, "--journal", str(out / "events.jsonl"),
           "--out", str(out), "--quiet"]
    out.mkdir()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(s.frame >= 90 and s.source == "up" for s in collector.status()),
                 "90 frames from the stream", lambda: proc.poll() is None)
        server.stop()
        stdout, stderr = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        collector.done.set()
        collector.join(10)
    return {"proc": proc, "stderr": stderr, "out": out, "messages": collector.messages, "url": server.url,
            "status": collector.status(), "events": collector.events()}


def test_server_gone_for_good_exits_2_naming_the_url(gone_for_good: dict) -> None:
    assert gone_for_good["proc"].returncode == 2, gone_for_good["stderr"]
    line = one_error_line(gone_for_good["stderr"], after_connection_lines=True)
    assert gone_for_good["url"] in line and "gave up after 1 retry" in line
    url = gone_for_good["url"]
    said = gone_for_good["stderr"].splitlines()
    assert said[0] == f"{url}: receiving frames; timing its frame rate for 1.25-3 s"
    assert f"{url}: stream stopped delivering frames; reconnecting" in said
    assert any(line.startswith(f"waiting for {url} (retry 1 of 1, next in 0.5 s): ") for line in said)
    status = gone_for_good["status"]
    assert status[-1].source == "down"  # the outage was published before the exit
    seqs = [m.seq for m in gone_for_good["messages"]]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_server_gone_for_good_keeps_the_journal_and_predictions(gone_for_good: dict) -> None:
    out = gone_for_good["out"]
    journal = [decode_payload(line) for line in (out / "events.jsonl").read_text().splitlines()]
    events = gone_for_good["events"]
    assert [m.seq for m in journal] == [e.seq for e in events]
    predicted = read_intervals(out / "predictions.csv")  # a valid CSV, every row flushed
    assert [(p.type, p.onset, p.offset) for p in predicted] == \
        [(e.event.type, e.event.onset_frame, e.event.offset_frame) for e in events]
    assert len(events) > 0, "90 face frames with a 0.5 threshold should spot something"
    assert (out / "metrics.json").is_file()


def test_server_gone_for_good_metrics_count_the_frames_processed(gone_for_good: dict) -> None:
    metrics = json.loads((gone_for_good["out"] / "metrics.json").read_text())
    assert metrics["performance"]["frames"] >= 90
    assert metrics["performance"]["runs"][0]["chain_breaks"] >= 1


# ------------------------------------------------------------------ Ctrl-C on live sources


class LiveProcess:
    """`lgnm-live` as a real process that sees Ctrl-C (default SIGINT), its stderr and
    stdout read line by line as they come, each line's arrival time kept."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "realtime.cli", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
        self.err: list[str] = []
        self.out: list[str] = []
        self.last_line_at = 0.0  # time.monotonic() of the latest line on either stream
        self.readers = [threading.Thread(target=self._read, args=(pipe, lines), daemon=True)
                        for pipe, lines in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for reader in self.readers:
            reader.start()

    def _read(self, pipe, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in pipe:
            lines.append(line.rstrip("\n"))
            self.last_line_at = time.monotonic()

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_line(self, start: str) -> None:
        wait_for(lambda: any(line.startswith(start) for line in self.err), f"stderr line {start!r}...",
                 self.running)

    def interrupt(self) -> tuple[float, float]:
        """Send SIGINT; seconds until its last output line and until it exited."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(HANG_GUARD_S)
        exited = time.monotonic() - t0
        for reader in self.readers:
            reader.join(10)
        return max(0.0, self.last_line_at - t0), exited

    def kill(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def summary(self) -> dict:
        """The --json summary line (the last line of stdout)."""
        return json.loads(self.out[-1])["summary"]


def assert_clean_interrupt(run: LiveProcess, times: tuple[float, float], out: Path, what: str) -> dict:
    """Exit 0 within the bounds, no traceback, metrics.json and a valid predictions.csv;
    prints the times (pytest -s) and returns metrics.json."""
    output_s, exit_s = times
    print(f"\n{what}: SIGINT to last output {output_s:.2f} s, to exit {exit_s:.2f} s")
    stderr = "\n".join(run.err)
    assert run.proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "error:" not in stderr, stderr
    assert output_s < CTRL_C_OUTPUT_S, f"Ctrl-C took {output_s:.2f} s to end the run"
    assert exit_s < CTRL_C_EXIT_S, f"the process took {exit_s:.2f} s to exit after Ctrl-C"
    read_intervals(out / "predictions.csv")  # valid, header at least
    return json.loads((out / "metrics.json").read_text())


def closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["camera", "rtsp"])
def test_ctrl_c_while_waiting_for_a_first_connection(kind: str, media: dict, tmp_path: Path) -> None:
    """A source that never answers, retried forever (the default): no camera device
    can exist here (index 99; test machines have no camera at all, and a /dev/video99
    would be a machine with a hundred of them), and nothing listens on the RTSP port.
    The process says what it waits for and Ctrl-C ends it at once, in a backoff wait
    (both opens fail at once, so that is where the connecting thread spends its time)."""
    out = tmp_path / "out"
    where = "camera 99" if kind == "camera" else f"rtsp://127.0.0.1:{closed_port()}/x"
    source = ["--camera", "99"] if kind == "camera" else ["--rtsp", where]
    run = LiveProcess([*source, *weight_args(media), "--pub", "none", "--quiet", "--out", str(out)])
    try:
        run.wait_line(f"waiting for {where} (retry 3, next in 2 s): cannot connect")
        times = run.interrupt()
    finally:
        run.kill()
    metrics = assert_clean_interrupt(run, times, out, f"{kind}, waiting for a first connection")
    assert [line[:line.index(" (")] for line in run.err[:3]] == [f"waiting for {where}"] * 3
    assert run.err[-1] == f"stopped while waiting for {where}"
    assert metrics["performance"]["frames"] == 0 and len(metrics["performance"]["runs"]) == 1
    assert read_intervals(out / "predictions.csv") == []


def test_ctrl_c_while_an_rtsp_open_blocks(media: dict, tmp_path: Path) -> None:
    """A server that accepts the TCP connection and never answers: OpenCV's open blocks
    for its whole timeout (5 s). Ctrl-C must not wait for it."""
    out = tmp_path / "out"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # the kernel completes handshakes; nobody accepts or answers
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/x"
        run = LiveProcess(["--rtsp", url, *weight_args(media), "--pub", "none", "--json", "--out", str(out)])
        try:
            wait_for(lambda: bool(select.select([silent], [], [], 0.05)[0]), "a connection attempt", run.running)
            opened_at = time.monotonic()  # the open started here and would return 5 s later
            time.sleep(0.3)
            interrupted_at = time.monotonic()
            times = run.interrupt()
        finally:
            run.kill()
    metrics = assert_clean_interrupt(run, times, out, "RTSP open blocking")
    done_at = interrupted_at + times[0]  # the summary, the run's last output
    assert done_at - opened_at < 5.0, "the run waited for the blocked open"
    assert run.err == [f"stopped while waiting for {url}"]  # the open never returned
    assert metrics["performance"]["frames"] == 0
    assert run.summary()["performance"]["frames"] == 0  # the summary is printed too


@pytest.mark.parametrize("state", ["running", "read stalled", "reconnecting"])
def test_ctrl_c_on_an_rtsp_stream(state: str, media: dict, tmp_path: Path, rtsp_server) -> None:
    """A real RTSP server: Ctrl-C while frames flow, while a read blocks on a server that
    stopped sending (SIGSTOP: the read only returns at its 5 s timeout), and while
    reconnecting after the server died (retried forever, the default)."""
    server = rtsp_server(media["clip"])
    out = tmp_path / "out"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    run = LiveProcess(["--rtsp", server.url, *weight_args(media), "--pub", endpoint, "--out", str(out),
                       "--json"])
    try:
        wait_for(lambda: any(s.frame >= 30 and s.face for s in collector.status()), "30 frames", run.running)
        if state == "read stalled":
            server.pause()
            time.sleep(0.5)  # the capture thread is blocked in its read by now
        elif state == "reconnecting":
            server.stop()
            run.wait_line(f"waiting for {server.url} (retry 2, next in 1 s): cannot connect")
        times = run.interrupt()
    finally:
        run.kill()
        server.resume()
        collector.done.set()
        collector.join(10)
    metrics = assert_clean_interrupt(run, times, out, f"RTSP {state}")
    assert run.err[0] == f"{server.url}: receiving frames; timing its frame rate for 1.25-3 s"
    if state == "reconnecting":
        assert f"{server.url}: stream stopped delivering frames; reconnecting" in run.err
    frames = metrics["performance"]["frames"]
    assert frames >= 30 and run.summary()["performance"]["frames"] == frames
    events = collector.events()  # what was spotted before Ctrl-C, all of it in predictions.csv
    assert [(e.event.type, e.event.onset_frame) for e in events] == \
        [(p.type, p.onset) for p in read_intervals(out / "predictions.csv")]


def test_retries_exhausted_before_a_first_frame_is_one_error_line(media: dict, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    code, _, err = run_live(["--camera", "99", "--max-retries", "2", *weight_args(media), "--pub", "none",
                             "--quiet", "--out", str(out)], capsys)
    assert code == 2
    line = one_error_line(err, after_connection_lines=True)
    assert line.endswith(": camera 99: cannot connect (gave up after 2 retries)"), line
    assert err.splitlines()[:2] == ["waiting for camera 99 (retry 1 of 2, next in 0.5 s): cannot connect",
                                    "waiting for camera 99 (retry 2 of 2, next in 1 s): cannot connect"]
    assert json.loads((out / "metrics.json").read_text())["performance"]["frames"] == 0



# ------------------------------------------------------------------ bad videos


def run_live(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = live_main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def write_video(path: Path, frames: Sequence[np.ndarray], fourcc: str, fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, CLIP_SIZE)
    assert writer.isOpened()
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def decodable(path: Path) -> int:
    with VideoFileSource(path) as src:
        return sum(1 for _ in src)


def test_truncated_avi_replays_the_frames_before_the_cut(media: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    whole = media["short"].read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole[: len(whole) // 2])
    n = decodable(cut)
    assert 0 < n < 90  # documented: a truncated tail ends the file cleanly
    out = tmp_path / "out"
    code, _, err = run_live(["--replay", str(cut), *weight_args(media), "--pub", "none", "--quiet",
                             "--out", str(out)], capsys)
    assert code == 0, err
    assert "Traceback" not in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["performance"]["frames"] == n and metrics["performance"]["runs"][0]["faces"] > n // 2
    read_intervals(out / "predictions.csv")  # valid


def unusable_video(case: str, tmp_path: Path) -> Path:
    frames = [np.full((CLIP_SIZE[1], CLIP_SIZE[0], 3), i, np.uint8) for i in range(40)]
    if case == "truncated_mp4":  # mp4v puts the index (moov) at the end: half a file is unusable
        path = write_video(tmp_path / "clip.mp4", frames, "mp4v")
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case.startswith("zero_frames"):
        path = write_video(tmp_path / f"empty.{case[-3:]}", [], "MJPG" if case.endswith("avi") else "mp4v")
    else:
        path = tmp_path / "noise.avi"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return path


@pytest.mark.parametrize("case", ["truncated_mp4", "zero_frames_avi", "zero_frames_mp4", "not_a_video"])
def test_unusable_video_is_a_user_error_naming_it(case: str, tmp_path: Path) -> None:
    path = unusable_video(case, tmp_path)
    with pytest.raises(UserError) as info:
        VideoFileSource(path).__iter__().__next__()
    assert str(path) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("case", ["truncated_mp4", "zero_frames_avi"])
def test_unusable_video_is_one_line_exit_2(case: str, media: dict, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    path = unusable_video(case, tmp_path)
    out = tmp_path / "out"
    code, _, err = run_live(["--replay", str(path), *weight_args(media), "--pub", "none", "--quiet",
                             "--out", str(out)], capsys)
    assert code == 2
    assert str(path) in one_error_line(err)


def test_corrupted_middle_of_a_video_is_never_a_traceback(media: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    data = bytearray(media["short"].read_bytes())
    third = len(data) // 3
    data[third:third + 20_000] = np.random.default_rng(1).integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    bad = tmp_path / "corrupt.avi"
    bad.write_bytes(bytes(data))
    n = decodable(bad)
    out = tmp_path / "out"
    code, _, err = run_live(["--replay", str(bad), *weight_args(media), "--pub", "none", "--quiet",
                             "--out", str(out)], capsys)
    assert code == 0 and "Traceback" not in err
    assert json.loads((out / "metrics.json").read_text())["performance"]["frames"] == n > 0


def test_frames_of_changing_aspect_name_the_frame_and_keep_the_output(media: dict, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    with VideoFileSource(media["short"]) as src:
        for raw in src:
            if raw.index > 60:
                break
            # another aspect ratio: a spliced input (the same aspect at another size is scaled)
            image = raw.image if raw.index != 50 else cv2.resize(raw.image, (200, 240))
            cv2.imwrite(str(folder / f"img{raw.index}.jpg"), image)
    out = tmp_path / "out"
    code, _, err = run_live(["--replay", str(folder), "--fps", "30", *weight_args(media), "--pub", "none",
                             "--quiet", "--out", str(out)], capsys)
    assert code == 2
    line = one_error_line(err)
    assert "img50.jpg" in line and "200x240" in line and "320x240" in line
    read_intervals(out / "predictions.csv")  # what was spotted before frame 80 stays valid
    assert (out / "metrics.json").is_file()


def test_video_without_a_face_completes_with_no_events_and_reports_it(media: dict, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(2)
    frames = [np.clip(rng.normal(120, 30, (CLIP_SIZE[1], CLIP_SIZE[0], 3)), 0, 255).astype(np.uint8)
              for _ in range(45)]
    video = write_video(tmp_path / "empty_room.avi", frames, "MJPG")
    out = tmp_path / "out"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    collector = Collector(endpoint)
    collector.start()
    try:
        code, stdout, err = run_live(["--replay", str(video), *weight_args(media), "--pub", endpoint,
                                      "--out", str(out), "--json"], capsys)
    finally:
        collector.done.set()
        collector.join(10)
    assert code == 0, err
    run = json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]
    assert run["frames"] == 45 and run["faces"] == 0 and run["scores"] == 0 and run["events"] == 0
    assert read_intervals(out / "predictions.csv") == []
    status = collector.status()
    assert status and all(not s.face for s in status) and status[-1].frame == 45
    assert not collector.events()
    assert json.loads(stdout.strip().splitlines()[-1])["summary"]["performance"]["frames"] == 45


# ------------------------------------------------------------------ bad weights, sidecars


def weights_variant(media: dict, tmp_path: Path, case: str) -> Path:
    src = media["weights"][0]
    path = tmp_path / f"{case}.safetensors"
    if case == "truncated":
        path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
        return path
    if case == "truncated_header":
        path.write_bytes(src.read_bytes()[:20])
        return path
    from engines.weights import read_meta

    tensors = load_file(str(src))
    meta = read_meta(src).to_dict()
    if case == "no_metadata":
        save_file(tensors, str(path))
        return path
    if case == "foreign_metadata":
        save_file(tensors, str(path), metadata={"format": "pt"})
        return path
    if case == "metadata_not_an_object":
        save_file(tensors, str(path), metadata={"lgnm": "[6, 30]"})
        return path
    if case == "missing_tensors":
        save_file(dict(list(tensors.items())[:-2]), str(path), metadata={"lgnm": json.dumps(meta)})
        return path
    key, value = {
        "post_is_a_string": ("post", "threshold=0.5"),
        "post_threshold_text": ("post", {**meta["post"], "threshold": "high"}),
        "post_win_text": ("post", {**meta["post"], "win": "9"}),
        "flow_face_size_text": ("flow", {**meta["flow"], "face_size": "112"}),
        "flow_face_size_tiny": ("flow", {**meta["flow"], "face_size": -5}),
        "k_fractional": ("k", 6.5),
        "fps_nan": ("fps", float("nan")),
        "k_seconds_negative": ("k_seconds", -0.2),
        "norm_std_zero": ("norm_std", 0),
        "roi_size_text": ("roi_size", "112"),
        "type_number": ("type", 1),
    }[case]
    meta[key] = value
    save_file(tensors, str(path), metadata={"lgnm": json.dumps(meta)})
    return path


@pytest.mark.parametrize("case", [
    "truncated", "truncated_header", "no_metadata", "foreign_metadata", "metadata_not_an_object",
    "missing_tensors", "post_is_a_string", "post_threshold_text", "post_win_text", "flow_face_size_text",
    "flow_face_size_tiny", "k_fractional", "fps_nan", "k_seconds_negative", "norm_std_zero", "roi_size_text",
    "type_number",
])
def test_broken_weights_are_one_line_exit_2_naming_the_file(case: str, media: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    bad = weights_variant(media, tmp_path, case)
    code, _, err = run_live(["--replay", str(media["short"]), "--weights", str(bad), "--types", "ME",
                             "--pub", "none", "--quiet", "--max-frames", "10"], capsys)
    assert code == 2
    assert str(bad) in one_error_line(err)


GOOD_SIDECAR = EngineSidecar("10.3.0", "NVIDIA H100", "9.0", "fp16", "input", (3, 112, 112), 32,
                             "ab" * 32, {"type": "ME"}, "lgnm_ME.safetensors").to_dict()


@pytest.mark.parametrize("change", [
    "not json", "[]", {"max_batch": "32"}, {"max_batch": 0}, {"input_shape": [3, 112]},
    {"input_shape": "3x112x112"}, {"precision": "fp8"}, {"weights_sha256": 12}, {"weights_meta": "ME"},
    {"format_version": 99}, {"compute_capability": 9.0}, {"gpu_name": None}, {"unknown_field": 1},
])
def test_broken_engine_sidecar_is_a_user_error_naming_it(change, tmp_path: Path) -> None:
    engine = tmp_path / "lgnm_ME.engine"
    engine.write_bytes(b"\0" * 64)
    if isinstance(change, str):
        sidecar_path(engine).write_text(change)
    else:
        sidecar_path(engine).write_text(json.dumps({**GOOD_SIDECAR, **change}))
    with pytest.raises(UserError, match="invalid engine sidecar") as info:
        read_sidecar(engine)
    assert str(sidecar_path(engine)) in str(info.value) and "\n" not in str(info.value)
    sidecar_path(engine).write_text(json.dumps(GOOD_SIDECAR))
    assert read_sidecar(engine).input_shape == (3, 112, 112)  # the good one still loads


# ------------------------------------------------------------------ malformed CSVs, workbooks


@pytest.mark.parametrize("body, line, what", [
    (b"video,type,onset,offset\nv,ME,1,5\nv,XE,3,9\n", 3, "type"),
    (b"video,type,onset,offset\nv,ME,one,5\n", 2, "onset"),
    (b"video,type,onset,offset\nv,ME,9,5\n", 2, "offset 5 < onset 9"),
    (b"video,type,onset\nv,ME,1\n", 1, "missing column"),
    (b"video,type,onset,offset,score\nv,ME,1,5,nan\n", 2, "score"),
    (b"video,type,onset,offset\nv,ME,1,5\n\xff\xfe\x00garbage,ME,1,2\n", 3, "UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, ""),
])
def test_malformed_csv_through_lgnm_eval(body: bytes, line: int, what: str, media: dict, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    good = tmp_path / "truth.csv"
    good.write_text("video,type,onset,apex,offset\nv,ME,1,3,5\n")
    bad = tmp_path / "pred.csv"
    bad.write_bytes(body)
    code = eval_main(["--truth", str(good), "--pred", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    msg = one_error_line(err)
    assert f"{bad}:{line}" in msg and what in msg


def damaged_workbook(layout: str, damage: str, tmp_path: Path) -> Path:
    import openpyxl

    root = tmp_path / layout
    (root / ("rawpic" if layout == "CAS" else "SAMM_longvideos")).mkdir(parents=True)
    book = root / f"{layout}.xlsx"
    if damage == "not_a_zip":
        book.write_text("subject,onset\n1,2\n")
    else:
        wb = openpyxl.Workbook()
        wb.active.title = "notes"
        wb.active.append(["nothing", "here"])
        wb.save(book)
        if damage == "truncated_zip":
            book.write_bytes(book.read_bytes()[:300])
    return book


@pytest.mark.parametrize("layout", ["CAS", "SAMM"])
@pytest.mark.parametrize("damage", ["not_a_zip", "truncated_zip", "wrong_sheet"])
def test_malformed_workbook_is_a_user_error_naming_it(layout: str, damage: str, tmp_path: Path) -> None:
    from realtime.datasets import read_cas_annotations, read_samm_annotations

    book = damaged_workbook(layout, damage, tmp_path)
    with pytest.raises(UserError) as info:
        (read_cas_annotations if layout == "CAS" else read_samm_annotations)(book)
    assert str(book) in str(info.value) and "\n" not in str(info.value)


def test_malformed_workbook_through_lgnm_live(media: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    book = damaged_workbook("SAMM", "truncated_zip", tmp_path)
    root = book.parent
    code, _, err = run_live(["--replay", "SAMM", "--data", str(root), "--annotations", str(book),
                             *weight_args(media), "--pub", "none", "--quiet"], capsys)
    assert code == 2
    assert str(book) in one_error_line(err)


@pytest.mark.parametrize("dataset", ["CAS", "synth"])
def test_malformed_annotations_through_lgnm_train(dataset: str, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    from tools.train import main as train_main

    if dataset == "CAS":
        (tmp_path / "rawpic").mkdir()
        bad = tmp_path / "CAS.xlsx"
        bad.write_text("subject,onset\n1,2\n")
        extra = ["--annotations", str(bad)]
    else:
        bad = tmp_path / "truth.csv"
        bad.write_text("video,type,onset,apex,offset\nv1,ME,3,5,9\nv1,MaE,12,ten,20\n")
        extra = []
    code = train_main(["--dataset", dataset, "--data", str(tmp_path), *extra, "--out", str(tmp_path / "out")])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and str(bad) in line
    if dataset == "synth":
        assert f"{bad}:3" in line and "apex" in line


# ------------------------------------------------------------------ back-pressure


def test_stuck_subscriber_does_not_stop_a_replay_nor_starve_a_healthy_one(
        media: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_publisher.py proves the publisher never blocks; here the whole replay
    runs with a stuck subscriber (connected, never reading, tiny buffers) and a healthy
    one attached. Status goes out after every batch with a 1 MB field so that the stuck
    subscriber's queue overflows within a short clip."""
    monkeypatch.setattr(pipeline, "STATUS_PERIOD_S", 0.0)
    clip = media["short"]
    ctx = zmq.Context()
    journal = tmp_path / "events.jsonl"
    pad = "p" * (1 << 20)
    try:
        with EventPublisher("tcp://127.0.0.1:*", stream="short", journal=journal, sndhwm=16) as pub:
            stuck = ctx.socket(zmq.SUB)
            stuck.setsockopt(zmq.RCVHWM, 1)
            stuck.setsockopt(zmq.RCVBUF, 4096)
            stuck.setsockopt(zmq.SUBSCRIBE, b"lgnm.")
            stuck.connect(pub.endpoint)
            healthy = Collector(pub.endpoint)
            healthy.start()
            assert pub.wait_for_subscriber(timeout=30, count=2)
            scorers = [make_scorer(media["weights"][1], "cpu")]
            source = VideoFileSource(clip)
            setups = [setup_for_fps(s, source.fps) for s in scorers]
            collect = CollectSink()
            stats = run_stream(source, setups, CpuPairFeatures(FlowSettings()), [collect, PublisherSink(pub)],
                               RunOptions(batch=2), status_extra=lambda: {"pad": pad})
            sent = pub.seq
            healthy.done.set()
            healthy.join(30)
            stuck_seqs = []
            while stuck.poll(500):  # now the stuck one reads what reached it
                stuck_seqs.append(decode(stuck.recv_multipart()).seq)
            stuck.close(0)
    finally:
        ctx.destroy(linger=0)
    assert stats.frames == 90 and stats.dropped == 0  # the replay ran to its end
    journal_seqs = [decode_payload(line).seq for line in journal.read_text().splitlines()]
    assert len(journal_seqs) == stats.events == len(collect.intervals) > 0
    assert [m.seq for m in healthy.messages] == list(range(1, sent + 1))  # healthy: everything
    assert [m.seq for m in healthy.events()] == journal_seqs
    assert stuck_seqs == sorted(stuck_seqs) and len(stuck_seqs) < sent  # stuck: drops...
    missed = sent - len(stuck_seqs)
    gaps = sum(b - a - 1 for a, b in zip([0, *stuck_seqs], [*stuck_seqs, sent + 1]))
    assert gaps == missed > 0  # ...visible as seq gaps


def _output_commands(video: Path, weights: Path) -> dict[str, tuple[Callable[[list[str]], int], list[str], str]]:
    """Each command that writes into a folder the user names: (main, args before it, option)."""
    from realtime.cli import main as live
    from tools.calibrate import main as calibrate
    from tools.make_baseline_weights import main as baseline
    from tools.quality import main as quality
    from tools.synth import main as synth
    from tools.train import main as train
    from tools.validation_synth.cli import main as validation

    data = str(video.parent)
    return {
        "lgnm-live": (live, ["--replay", str(video), "--pub", "none"], "--out"),
        "lgnm-synth": (synth, [], "--out"),
        "lgnm-train": (train, ["--dataset", "synth", "--data", data], "--out"),
        "lgnm-calibrate": (calibrate, ["--weights", str(weights), "--dataset", "synth", "--data", data], "--out"),
        "tools.quality": (quality, ["--weights", str(weights)], "--work"),
        "tools.validation_synth": (validation, [], "--out"),
        "tools.make_baseline_weights": (baseline, ["--data", data], "--out"),
    }


@pytest.mark.parametrize("command", ["lgnm-live", "lgnm-synth", "lgnm-train", "lgnm-calibrate", "tools.quality",
                                     "tools.validation_synth", "tools.make_baseline_weights"])
@pytest.mark.parametrize("where", ["a file", "under a file"])
def test_an_output_folder_that_cannot_be_made_is_a_user_error_naming_the_option(
    command: str, where: str, make_video: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Field trial: `lgnm-live --out notes.txt` (an existing file) ended in a
    FileExistsError traceback; every command that writes into a user-named folder now
    says which option and path, and exits 2, before any work."""
    video = make_video("clip.avi", frames=8)
    weights = Path(__file__).resolve().parents[1] / "engines" / "weights" / "demo_ME.safetensors"
    main, args, option = _output_commands(video, weights)[command]
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    target = blocker if where == "a file" else blocker / "run"
    code = main([*args, option, str(target)])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {option} {target}:" in err and "Traceback" not in err, err
    assert blocker.read_text() == "not a folder"
