"""`--save-inputs FRAMES`: what the model saw for chosen pairs, as PNG files.

For each chosen frame i and each type (K of that type at the stream's fps), the pair
(i, i + K) is written to `OUT/inputs/<stream>/` (`safe_name`) as:

- `<type>_<i>-<i+K>_face_a.png`, `..._face_b.png`: the aligned grey faces of both frames
  (the crops the flow is computed on, at the aligner's size);
- `..._flow_hs.png`: the HS image of the pair's flow over the whole face at flow size
  (hue = direction, value = magnitude normalised as the weights say), before the nose
  subtraction, the eye masks and the ROI selection; computed by the CPU reference
  (`engines.features`) whichever flow backend ran;
- `..._input.png`: the 112x112 network input itself (brows on top, mouth below), the
  array the scorer received turned back into pixels (x * 128 + 127.5, exact: the input
  is made from uint8 pixels), so feeding it to the model gives the run's raw score.

Frame numbers are 1-based stream frame numbers, as in scores.csv (a pair is listed under
its first frame i; its interval frames are i + K//2, see README, Method notes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from engines import features
from realtime.common.types import FlowSettings, FrameRecord

WINDOWS_DEVICES = frozenset({"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
                             *(f"LPT{i}" for i in range(1, 10))})


def safe_name(stream: str) -> str:
    """A folder name for a stream id, one per id: letters of any script, digits, `.`, `_`
    and `-` are kept; an id that had anything else (an RTSP URL holds '/' and ':',
    `take 1` a space), a capital letter or a Windows device name also gets the first 8
    hex digits of its SHA-1, so that `take 1` and `take_1`, or `Clip` and `clip` on a
    case-insensitive disk, do not write into one folder, whichever process writes it (a
    Ray replay)."""
    name = re.sub(r"[^\w.-]+", "_", stream).strip("._") or "stream"
    # Kept as it is only when no other id can give the same folder: on macOS and Windows
    # `Clip` and `clip` are one folder, so a name with capitals is hashed too (lower-case
    # plain names are not), and so are Windows' device names (CON, NUL, COM1...).
    if name == stream and name == name.lower() and name.split(".")[0].upper() not in WINDOWS_DEVICES:
        return name
    return f"{name}-{hashlib.sha1(stream.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def input_pixels(x: np.ndarray) -> np.ndarray:
    """(3,S,S) float32 network input -> (S,S,3) uint8 BGR, the inverse of
    `features.normalise` ((pixel - 127.5) / 128)."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"network input must be (3,S,S), got {x.shape}")
    return np.clip(np.rint(x * 128.0 + 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0).copy()


class InputSaver:
    """Writes the PNGs of the chosen pairs of one stream (module docstring)."""

    def __init__(self, folder: Path, frames: frozenset[int], settings: FlowSettings,
                 on_error: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.frames = frames
        self.settings = settings
        self.written = 0
        # A folder or file that cannot be written (a file named like the folder, a full
        # disk) ends the saving, not the stream: said once through on_error.
        self.on_error = on_error
        self.error: str | None = None

    def wants(self, frame: int) -> bool:
        return frame in self.frames

    def save(self, type_: str, a: FrameRecord, b: FrameRecord, x: np.ndarray) -> None:
        """Write the four PNGs of the pair (a, b) of `type_`; `x` (3,112,112) is the
        network input the scorer received for it."""
        if a.face is None or b.face is None:
            return  # never paired: a pair needs a face in both frames
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._fail(f"--save-inputs: cannot create {self.folder} ({exc.strerror or exc})")
            return
        stem = self.folder / f"{type_}_{a.index}-{b.index}"
        fa = features.flow_frame(a.face, self.settings)
        fb = features.flow_frame(b.face, self.settings)
        flow = features.pair_flow(fa, fb, self.settings)  # with the weights' head-motion model
        within = (features.value_region(fa.geometry) if self.settings.value_range == "roi" else None)
        hs = features.encode_hs(flow, self.settings.clip, within if within is not None and within.any() else None,
                                self.settings.value_floor)
        for suffix, image in (("face_a", a.face.grey), ("face_b", b.face.grey), ("flow_hs", hs),
                              ("input", input_pixels(x))):
            path = Path(f"{stem}_{suffix}.png")
            if not cv2.imwrite(str(path), image):
                self._fail(f"--save-inputs: could not write {path}")
                return
        self.written += 1

    def _fail(self, message: str) -> None:
        self.error, self.frames = message, frozenset()
        if self.on_error is not None:
            self.on_error(message)
