"""MEGC unseen spotting test sets (MEGC2022-2025): the clips to replay and the
submission files to write. No truth ships with them.

The test sets (https://megc2022.github.io/challenge.html, https://megc2024.github.io/
challenge.html, https://megc2025.github.io/challenge.html) hold long clips from CAS(ME)^3
at 30 fps and from the SAMM Challenge set at 200 fps, one folder of frames per clip,
e.g. `CAS_Test/<clip>/` and `SAMM_Test/<clip>/`.

Clips: under `--data ROOT`, every visible folder holding image files is a clip, at ROOT's
first level or one level further down (ROOT/CAS_Test/<clip>); its name is the clip id
(`vid`). Frame numbers are the numbers in the file names (`realtime.sources`).

Frame rate of a clip: `--fps` when given (all clips), else 200 fps for a SAMM-style id
(`002_4`: three digits, `_`, a number, as the SAMM Challenge clips are named) and 30 fps
for every other id (the CAS(ME)^3 clips). Run each part with its own `--fps` when a
test set names its clips otherwise.

Submission format (the challenge pages do not spell it out; this is what the MEGC2022
test-set entries submitted, e.g. https://github.com/genbing99/MTSN-Spot-ME-MaE
`test_model.py`, `cas_pred.csv`, `samm_pred.csv`): one CSV per part, `cas_pred.csv` for
the 30 fps (CAS(ME)^3) clips and `samm_pred.csv` for the 200 fps (SAMM) clips, header
`vid,pred_onset,pred_offset,type`, one row per spotted interval, `type` `me` or `mae`,
onset and offset in the clip's file numbers (inclusive). A clip is in the part its frame
rate is nearer to (on a log scale, as the demo weights are chosen). Each file is written
for every part that has clips, header only when nothing was spotted, rows sorted by
clip, onset, offset, type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.intervals_csv import write_csv_atomic
from realtime.sources import TRAILING_NUMBER, image_files, is_hidden, number_frames

CAS_FPS = 30.0
SAMM_FPS = 200.0
SAMM_CLIP = re.compile(r"^\d{3}_\d+$")  # 002_4
HEADER = ["vid", "pred_onset", "pred_offset", "type"]
TYPE_CODE = {"ME": "me", "MaE": "mae"}
PART_FILES = {"cas": "cas_pred.csv", "samm": "samm_pred.csv"}


@dataclass(frozen=True)
class ChallengeClip:
    """One clip of a test set: its id, frame folder, frame rate (frames/s) and
    `file_shift`, what to subtract from a frame number to get the file's number (1 for a
    folder numbered from 0, which replays as frames 1..N; else 0)."""

    name: str
    folder: Path
    fps: float
    file_shift: int = 0

    @property
    def part(self) -> str:
        """`cas` or `samm`: the submission file the clip's rows go to."""
        return "samm" if self.fps >= math.sqrt(CAS_FPS * SAMM_FPS) else "cas"


def clip_fps(name: str, fps: float | None) -> float:
    """The frame rate rule of the module docstring (frames/s)."""
    if fps is not None:
        return fps
    return SAMM_FPS if SAMM_CLIP.match(name) else CAS_FPS


def _file_shift(folder: Path) -> int:
    files = image_files(folder)
    numbering = number_frames(files)
    if numbering.why_position is not None:
        return 0  # numbered 1..N by position: the file names say nothing usable
    first = TRAILING_NUMBER.search(numbering.frames[0][1].stem)
    return 1 if first is not None and int(first.group(1)) == 0 else 0


def _clip_folders(root: Path) -> list[Path]:
    folders: list[Path] = []
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p)):
        if image_files(child):
            folders.append(child)
        else:  # a part of the test set (CAS_Test/): its clips one level down
            folders += [g for g in sorted(p for p in child.iterdir() if p.is_dir() and not is_hidden(p))
                        if image_files(g)]
    return folders


def find_clips(root: Path, fps: float | None) -> list[ChallengeClip]:
    """Every clip under `root` (module docstring), in path order. Raises UserError when
    `root` is missing, holds no clip, or two clips share an id."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"--data {root}: test set folder not found")
    folders = _clip_folders(root)
    if not folders:
        raise UserError(f"--data {root}: no clip folders (folders of image files) in it or one level down")
    seen: dict[str, Path] = {}
    for folder in folders:
        if folder.name in seen:
            raise UserError(f"{folder}: a second clip named {folder.name} (first {seen[folder.name]}); "
                            "replay the parts one at a time")
        seen[folder.name] = folder
    return [ChallengeClip(f.name, f, clip_fps(f.name, fps), _file_shift(f)) for f in folders]


@dataclass(frozen=True)
class Submission:
    """Writes the challenge's submission files for the clips of a replay."""

    clips: list[ChallengeClip]

    def rows(self, intervals: Iterable[Interval], part: str) -> list[list[str]]:
        """`vid,pred_onset,pred_offset,type` rows of one part's clips, sorted."""
        clips = {c.name: c for c in self.clips if c.part == part}
        rows = sorted((iv.video, iv.onset - clips[iv.video].file_shift, iv.offset - clips[iv.video].file_shift,
                       TYPE_CODE[iv.type]) for iv in intervals if iv.video in clips)
        return [[vid, str(on), str(off), kind] for vid, on, off, kind in rows]

    def write(self, intervals: Iterable[Interval], out: Path) -> list[Path]:
        """Write one file per part that has clips into `out`; returns their paths."""
        intervals = list(intervals)
        written = []
        for part, name in PART_FILES.items():
            if any(c.part == part for c in self.clips):
                write_csv_atomic(Path(out) / name, HEADER, self.rows(intervals, part))
                written.append(Path(out) / name)
        return written
