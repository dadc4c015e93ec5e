"""`lgnm-live --lsl`: a real LSL inlet on this machine receives every event of a short
real run as a JSON string marker equal to the journal line, in order, stamped in the
LSL clock; and the outlet's parts (stamp, settings, missing pylsl) on their own."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from realtime.common.errors import UserError
from realtime.common.types import SpotEvent
from realtime.lsl import LslSettings, import_pylsl, marker_stamp

from media import write_face_clip, write_random_weights

# Discovery on this machine only, IPv4: no multicast beyond the host, no IPv6 stack needed.
LSL_CFG = """[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
KnownPeers = {127.0.0.1}
"""
# liblsl reads its configuration once per process, at its first use: set it before
# pylsl is even imported (a machine's own LSLAPICFG wins).
if "LSLAPICFG" not in os.environ:
    _cfg = Path(tempfile.mkdtemp(prefix="lgnm-lsl-")) / "lsl_api.cfg"
    _cfg.write_text(LSL_CFG)
    os.environ["LSLAPICFG"] = str(_cfg)

pylsl = pytest.importorskip("pylsl", reason="pylsl (a dependency) is not installed")


class Inlet(threading.Thread):
    """Resolves the named marker stream (waiting for lgnm-live to open it), connects, and
    pulls samples until `done` is set and the stream has been quiet for a second."""

    def __init__(self, name: str) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.samples: list[tuple[str, float]] = []
        self.info: dict = {}
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            found = pylsl.resolve_byprop("name", self.name_, 1, 120.0)
            assert found, f"no LSL stream named {self.name_!r} appeared"
            inlet = pylsl.StreamInlet(found[0])
            inlet.open_stream(30.0)
            info = inlet.info(10.0)
            self.info = {"type": info.type(), "channels": info.channel_count(),
                         "format": info.channel_format(), "rate": info.nominal_srate(),
                         "source_id": info.source_id()}
            while True:
                sample, stamp = inlet.pull_sample(timeout=1.0)
                if sample is not None:
                    self.samples.append((sample[0], stamp))
                elif self.done.is_set():
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def test_every_event_of_a_real_run_reaches_an_lsl_inlet(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from realtime.cli import main as live_main

    clip, _ = write_face_clip(tmp_path, "lsl_clip", seconds=6.0, seed=11)
    weights = write_random_weights(tmp_path, threshold=0.5)
    name = f"lgnm-test-{os.getpid()}-{time.monotonic_ns()}"  # never another run's stream
    inlet = Inlet(name)
    inlet.start()
    journal = tmp_path / "events.jsonl"
    t_start = pylsl.local_clock()
    code = live_main(["--replay", str(clip), *[a for w in weights for a in ("--weights", str(w))],
                      "--pub", "none", "--journal", str(journal), "--lsl", name, "--lsl-wait", "60",
                      "--quiet", "--out", str(tmp_path / "out")])
    t_end = pylsl.local_clock()
    inlet.done.set()
    inlet.join(30)
    assert code == 0, capsys.readouterr().err
    assert inlet.error is None, inlet.error
    assert inlet.info == {"type": "Markers", "channels": 1, "format": pylsl.cf_string, "rate": 0.0,
                          "source_id": f"lgnm-live/{name}"}

    lines = journal.read_text().splitlines()
    assert lines, "the run spotted nothing: the test needs events"
    # Every event, in order, byte for byte the journal line (= the ZeroMQ body).
    assert [body for body, _ in inlet.samples] == lines
    docs = [json.loads(line) for line in lines]
    assert [d["seq"] for d in docs] == sorted(d["seq"] for d in docs)
    # Stamps are LSL times within the run (the onset frame's read time), and each is
    # before its event could be published: latency runs from the offset frame.
    stamps = [stamp for _, stamp in inlet.samples]
    assert all(t_start <= s <= t_end for s in stamps), (t_start, stamps, t_end)
    assert predictions_match(tmp_path / "out" / "predictions.csv", docs)


def predictions_match(path: Path, docs: list[dict]) -> bool:
    from realtime.intervals_csv import read_intervals

    return [(p.type, p.onset, p.offset) for p in read_intervals(path)] == \
        [(d["type"], d["onset_frame"], d["offset_frame"]) for d in docs]


def test_stamp_is_the_onset_frame_read_time_on_the_lsl_clock() -> None:
    ev = SpotEvent("s", "MaE", 10, 12, 19, 0.3, 0.6, 0.9, 40.0, onset_captured=100.0, offset_captured=100.3)
    # LSL clock 5000 s ahead of time.monotonic() at the moment both were read
    assert marker_stamp(ev, mono_now=101.0, lsl_now=5101.0) == pytest.approx(5100.0)
    held_offset_only = SpotEvent("s", "MaE", 10, 12, 19, 0.3, 0.6, 0.9, 40.0, offset_captured=100.3)
    assert marker_stamp(held_offset_only, 101.0, 5101.0) == pytest.approx(5100.0)
    assert marker_stamp(SpotEvent("s", "MaE", 10, 12, 19, 0.3, 0.6, 0.9, 40.0), 101.0, 5101.0) == 5101.0


def test_settings_refuse_nonsense() -> None:
    with pytest.raises(UserError, match="--lsl-wait"):
        LslSettings("x", -1.0)
    with pytest.raises(UserError, match="--lsl"):
        LslSettings("  ")


def test_missing_pylsl_is_one_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pylsl", None)  # `import pylsl` raises ImportError
    with pytest.raises(UserError, match=r"--lsl: needs pylsl"):
        import_pylsl()


def test_lsl_wait_without_lsl_is_refused(capsys: pytest.CaptureFixture) -> None:
    from realtime.cli import main as live_main

    assert live_main(["--replay", "nope.mp4", "--pub", "none", "--lsl-wait", "3"]) == 2
    assert "error: --lsl-wait: needs --lsl" in capsys.readouterr().err


def test_liblsl_info_lines_are_filtered_its_errors_are_not() -> None:
    from realtime.native_log import NOISE

    info = (b"2026-12-01 03:29:32.096 (   0.007s) [        F4A2AB80]         api_config.cpp:126   "
            b"INFO| Loaded default config")
    error = (b"2026-12-01 03:25:57.694 (   1.133s) [R_t-late        ]      data_receiver.cpp:375    "
             b"ERR| Stream transmission broke off (Input stream error.); re-connecting...")
    assert NOISE.match(info) and not NOISE.match(error)
