"""What one `lgnm-live` run does, as one frozen record: built once from the command line
(`realtime.cli.config_from_args`) or by a caller of `realtime.runner.run`, checked when
it is built, then only read.

A mistake is a `ConfigError`, which names the parameters it concerns (`batch: must be
>= 1, got 0`); the command line reports the same mistake with the options that set them
(`--batch: must be >= 1, got 0`). Light imports: the command line builds it before torch
loads.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engines.backends import BACKENDS, FLOW_KINDS
from realtime.choices import DEFAULT_ENDPOINT
from realtime.common.errors import UserError
from realtime.common.types import EXPR_TYPES, MIN_FPS, ExprType

THRESHOLDS = ("calibrated", "fixed", "adaptive", "rolling")  # see realtime.pipeline.setup_for_fps
SOURCES = ("camera", "rtsp", "video", "replay")
_PART = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
MAX_SAVED_FRAMES = 100_000  # a typo such as 1-10000000 must not fill the disk


class ConfigError(UserError):
    """A bad run parameter. `str()` names the parameters; `with_names` gives the same
    message with other names for them (the command line's options)."""

    def __init__(self, template: str, *params: str) -> None:
        self.template = template  # str.format template, one {} per parameter in `params`
        self.params = params
        super().__init__(template.format(*params))

    def with_names(self, names: Mapping[str, str]) -> UserError:
        return UserError(self.template.format(*(names.get(p, p) for p in self.params)))


def _lit(value: object) -> str:
    """`value` as literal text inside a ConfigError template."""
    return str(value).replace("{", "{{").replace("}", "}}")


def parse_frames(text: str, option: str = "--save-inputs") -> frozenset[int]:
    """`"120,300-310"` -> {120, 300, ..., 310}. Raises UserError naming `option` for
    anything that is not a comma-separated list of frame numbers >= 1 and ranges A-B."""
    frames: set[int] = set()
    for part in text.split(","):
        match = _PART.match(part)
        if not match:
            raise UserError(f"{option}: {part.strip()!r} is not a frame number or a range A-B "
                            "(e.g. 120,300-310)")
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if first < 1 or last < first:
            raise UserError(f"{option}: {part.strip()!r}: frames are 1-based and a range runs A <= B")
        if len(frames) + last - first + 1 > MAX_SAVED_FRAMES:
            raise UserError(f"{option}: more than {MAX_SAVED_FRAMES} frames asked for")
        frames.update(range(first, last + 1))
    return frozenset(frames)


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run of `lgnm-live`. Exactly one of camera, rtsp, video, replay is the source.

    Units: fps in frames per second, lsl_wait in seconds, frame numbers 1-based. Paths
    are as given (relative to the working directory). Raises ConfigError when built with
    a bad value or a combination that cannot run.
    """

    # source
    camera: str | None = None  # OpenCV device index or name
    rtsp: str | None = None  # rtsp:// or rtsps:// URL
    video: str | None = None  # a file played at its own frame rate
    replay: str | None = None  # demo | CAS | SAMM | CASME3 | MEGC | a path
    width: int | None = None  # camera frame size (px)
    height: int | None = None
    fps: float | None = None  # camera fps, or the fps of frame folders / MEGC clips
    data: Path | None = None  # dataset root (replay CAS, SAMM, CASME3, MEGC)
    annotations: Path | None = None  # dataset workbook(s)
    truth: Path | None = None  # truth CSV of a replayed path
    paced: bool = False  # play a replay at the source fps
    max_frames: int | None = None  # per stream
    max_retries: int | None = None  # live sources; None: forever
    # model
    weights: tuple[Path, ...] = ()  # one file per type; (): the bundled demo pair per fps
    types: tuple[ExprType, ...] = EXPR_TYPES
    backend: str = "auto"  # engines.backends.BACKENDS
    engines: tuple[Path, ...] = ()  # TensorRT engines, one per weights file
    flow: str = "auto"  # engines.backends.FLOW_KINDS
    threshold: str = "calibrated"  # THRESHOLDS
    batch: int = 16  # most frames scored in one model call
    # output
    pub: str = DEFAULT_ENDPOINT  # ZeroMQ endpoint, or "none"
    journal: Path | None = None
    curve_secret: Path | None = None
    curve_clients: Path | None = None
    lsl: str | None = None  # LSL stream name; None: no outlet
    lsl_wait: float = 0.0
    out: Path | None = None
    save_inputs: frozenset[int] = frozenset()  # first frames of the pairs to save
    report: bool = False
    quiet: bool = False
    json: bool = False
    # beyond one machine (README, Deployment)
    stream: str | None = None  # live sources: the stream id (unique behind one lgnm-proxy)
    ray: str | None = None  # a Ray cluster's address ("local": one for this run); None: one process
    connect: str | None = None  # publish into an lgnm-proxy at this endpoint instead of binding `pub`
    curve_server_key: Path | None = None  # with connect: the proxy's public key file

    def __post_init__(self) -> None:
        given = [s for s in SOURCES if getattr(self, s) is not None]
        if len(given) != 1:
            raise ConfigError("source: give exactly one of {}, {}, {}, {}", *SOURCES)
        for name, allowed in (("backend", BACKENDS), ("flow", FLOW_KINDS), ("threshold", THRESHOLDS)):
            if getattr(self, name) not in allowed:
                raise ConfigError("{}: must be one of " + _lit(", ".join(allowed)) + ", got "
                                  + _lit(repr(getattr(self, name))), name)
        if not self.types or any(t not in EXPR_TYPES for t in self.types) or len(set(self.types)) != len(self.types):
            raise ConfigError("{}: expected ME, MaE or both, got " + _lit(self.types), "types")
        if self.save_inputs and self.out is None:
            raise ConfigError("{}: needs {} (the images go to OUT/inputs/<stream>/)", "save_inputs", "out")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError("{}: must be a positive frame rate, got " + _lit(self.fps), "fps")
        if self.fps is not None and self.fps < MIN_FPS:
            # K (a fraction of a second) would round to one frame and every time be off.
            raise ConfigError("{}: must be at least " + _lit(MIN_FPS) + " frame per second (a micro-expression "
                              "lasts under 0.5 s), got " + _lit(self.fps), "fps")
        if self.batch < 1:
            raise ConfigError("{}: must be >= 1, got " + _lit(self.batch), "batch")
        if self.max_frames is not None and self.max_frames < 1:
            raise ConfigError("{}: must be >= 1, got " + _lit(self.max_frames), "max_frames")
        if self.report and self.out is None:
            raise ConfigError("{}: needs {} DIR (the report is made from the files written there)", "report", "out")
        if self.lsl is None and self.lsl_wait:
            raise ConfigError("{}: needs {}", "lsl_wait", "lsl")
        if self.engines and len(self.engines) != (len(self.weights) or len(EXPR_TYPES)):
            raise ConfigError("{}: give one engine per {} file, in the same order", "engines", "weights")
        if self.connect is None and (self.curve_secret is None) != (self.curve_clients is None):
            raise ConfigError("{} and {} go together", "curve_secret", "curve_clients")
        if self.rtsp is not None:
            parts = urlsplit(self.rtsp)
            if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
                # before any model loads (the source itself checks it again, seconds later)
                raise ConfigError("{}: not an rtsp:// or rtsps:// URL, got " + _lit(self.rtsp), "rtsp")
        if self.stream is not None and not self.live:
            raise ConfigError("{}: only with {} or {} (a file or replay is named by its video id)",
                              "stream", "camera", "rtsp")
        if self.stream is not None and not self.stream.strip():
            raise ConfigError("{}: must not be empty", "stream")
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigError("{}: must be >= 0, got " + _lit(self.max_retries), "max_retries")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError("{}: must be at least 1 pixel, got " + _lit(value), name)

    @property
    def live(self) -> bool:
        """A camera or network stream (reconnects, drops frames when behind)."""
        return self.camera is not None or self.rtsp is not None

    @property
    def shows_progress(self) -> bool:
        """Dashboard, progress bars and notes on the console (not --quiet, not --json)."""
        return not self.quiet and not self.json
