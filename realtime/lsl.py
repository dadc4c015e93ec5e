"""Lab Streaming Layer markers: every event, beside ZeroMQ, as a string marker on an LSL
outlet, so that a recorder (LabRecorder) stores the expressions in the same file and
clock as EEG, eye tracking or the stimulus markers.

The stream: name `lgnm-live` (or the name given to `--lsl NAME`), type `Markers`,
irregular rate, one channel of format string, source_id `lgnm-live/<name>` (a
recorder reconnects to it after a restart). Each sample is the event's JSON body,
byte for byte the ZeroMQ message body and journal line (seq, emitted_at included; seq
counts status messages too, which LSL does not carry, so it skips them).

The timestamp, in the LSL clock (pylsl.local_clock(), the sending machine's; LSL
recorders map it to their own): the instant lgnm-live read the interval's **onset
frame** (time.monotonic() mapped to the LSL clock). The expression ends about
offset_s - onset_s later (for live and paced sources, where stream time runs at wall
time). On a replay that is not paced (`--replay` without `--realtime`) frames are read
as fast as they can be, so the stamp is when the onset frame was read, not a time in the
video; onset_s / offset_s in the body are. When the onset frame's read time is no longer
held, the offset frame's minus (offset_s - onset_s) is used, and failing that the
publish time. Stamps follow the onsets, not the arrival order (an ME event can be
published after a later MaE, README Events), so they are not increasing. A camera's own
delay before OpenCV hands over a frame (typically tens of ms) is not known and not
subtracted.

Delivery: LSL sends a sample only to the inlets connected when it is pushed: markers
pushed before a recorder connects are lost (measured with liblsl 1.18: an inlet that
connects after five pushes receives none of them). `--lsl-wait SECONDS` waits for a
consumer before the first frame. On close, the outlet lingers `LINGER_S` while a consumer
is connected, since liblsl drops what its send thread has not sent when the outlet is
destroyed (measured: 1 of 200 markers pushed just before arrived; all 200 after 50 ms).

pylsl is imported when an outlet is opened, so `lgnm-live --help` stays fast; without
pylsl or its liblsl the run stops with one `error:` line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.common.errors import UserError
from realtime.common.types import SpotEvent

DEFAULT_NAME = "lgnm-live"
STREAM_TYPE = "Markers"
LINGER_S = 0.5


@dataclass(frozen=True, slots=True)
class LslSettings:
    """The outlet to open: stream name and how long (s) to wait for a first consumer
    before the run starts (0: do not wait)."""

    name: str = DEFAULT_NAME
    wait_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise UserError("--lsl: the stream name must not be empty")
        if not self.wait_s >= 0:
            raise UserError(f"--lsl-wait: must be >= 0 seconds, got {self.wait_s}")


def import_pylsl() -> Any:
    """The pylsl module with its liblsl loaded; UserError (one line) when either is missing."""
    try:
        import pylsl
    except ImportError as exc:
        raise UserError(f"--lsl: needs pylsl with its liblsl (pip install 'pylsl>=1.18.6'): {exc}") from None
    except (OSError, RuntimeError) as exc:  # pylsl present, liblsl not found or not loadable
        raise UserError(f"--lsl: pylsl cannot load liblsl: {exc}") from None
    return pylsl


def marker_stamp(event: SpotEvent, mono_now: float, lsl_now: float) -> float:
    """The LSL timestamp of an event (module docstring): its onset frame's read time on
    the LSL clock, given one reading of both clocks (time.monotonic(), local_clock())."""
    if event.onset_captured is not None:
        return event.onset_captured - mono_now + lsl_now
    if event.offset_captured is not None:
        return event.offset_captured - (event.offset_s - event.onset_s) - mono_now + lsl_now
    return lsl_now


class LslMarkerOutlet:
    """An LSL `Markers` outlet for event JSON bodies; a publisher listener
    (`EventPublisher(listeners=[outlet.send])`). Use as a context manager or `close()`."""

    def __init__(self, settings: LslSettings) -> None:
        self.settings = settings
        self._pylsl = import_pylsl()
        pylsl = self._pylsl
        info = pylsl.StreamInfo(settings.name, STREAM_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                f"lgnm-live/{settings.name}")
        channel = info.desc().append_child("channels").append_child("channel")
        channel.append_child_value("label", "event")
        channel.append_child_value("format", "application/json; schema=lgnm.event/1")
        info.desc().append_child_value("stamp", "capture time of the onset frame")
        self._outlet: Any = pylsl.StreamOutlet(info)
        self.sent = 0

    def wait_for_consumer(self, stop: Callable[[], bool] = lambda: False) -> bool:
        """Block up to settings.wait_s for a consumer (True: one is connected); `stop()`
        (Ctrl-C) ends the wait within 0.1 s."""
        deadline = time.monotonic() + self.settings.wait_s
        while not self._outlet.have_consumers():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or stop():
                return False
            self._outlet.wait_for_consumers(min(0.1, remaining))
        return True

    def send(self, event: SpotEvent, body: bytes) -> None:
        """Push one event body, stamped (module docstring); never blocks."""
        stamp = marker_stamp(event, time.monotonic(), self._pylsl.local_clock())
        self._outlet.push_sample([body.decode("utf-8")], stamp)
        self.sent += 1

    def close(self) -> None:
        if self._outlet is None:
            return
        if self.sent and self._outlet.have_consumers():
            time.sleep(LINGER_S)  # let liblsl's send thread deliver (module docstring)
        self._outlet = None  # pylsl destroys the outlet when the object goes

    def __enter__(self) -> LslMarkerOutlet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
