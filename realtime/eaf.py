"""ELAN `.eaf` annotation files of spotted (and true) expression intervals, written with
pympi-ling (`pympi.Elan`), so ELAN opens them beside the video.

Layout of one file (one video):
- tiers `lgnm MaE`, `lgnm ME`: the predictions of each type; `truth MaE`, `truth ME`:
  the truth, when the run or file has one. Intervals of one type that overlap (other
  tools' predictions, overlapping truth in the real workbooks) go to extra tiers
  `truth MaE 2`, ... because ELAN cannot show two overlapping annotations on one tier.
- an annotation spans [start of its onset frame, end of its offset frame] in integer ms
  from the first frame (ELAN's time unit). Frames are 1-based and inclusive, so frame n
  of a constant-rate stream starts at (n - 1) / fps and ends at n / fps: frames 1-3 at
  30 fps are 0-100 ms. A live run uses the stream times of its events (a variable-rate
  file keeps its real times) and ends the offset frame 1 / fps after it starts.
- values: `MaE score=0.830 apex=546 frames=541-572` (`score=` absent when the row has
  none, `apex=` when it has no apex).
- the header links the video file (MEDIA_URL, and RELATIVE_MEDIA_URL from the .eaf's
  folder) when the stream was a video file; frame folders and cameras link nothing.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import urllib.parse
from collections.abc import Iterable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pympi import Elan

from realtime.common.atomic import atomic_text
from realtime.common.text import is_utf8
from realtime.common.types import Interval

PRED_TIER = "lgnm {type}"
TRUTH_TIER = "truth {type}"


@dataclass(frozen=True, slots=True)
class TimedInterval:
    """An interval with its span in ELAN time: [start_ms, end_ms), integer ms from the
    first frame, end_ms > start_ms."""

    interval: Interval
    start_ms: int
    end_ms: int

    def __post_init__(self) -> None:
        if self.start_ms < 0 or self.end_ms <= self.start_ms:
            raise ValueError(f"ELAN span must satisfy 0 <= start < end, got {self.start_ms}-{self.end_ms} ms")


@dataclass(frozen=True, slots=True)
class EafDocument:
    """What one .eaf holds: a video's predictions, its truth (None: not known, no truth
    tiers; [] known and empty: empty truth tiers) and the video file to link, if any."""

    video: str
    predictions: Sequence[TimedInterval]
    truth: Sequence[TimedInterval] | None = None
    media: Path | None = None


def span_from_times(onset_s: float, offset_s: float, fps: float) -> tuple[int, int]:
    """(start_ms, end_ms) of frames starting at onset_s and offset_s (seconds from the
    first frame): the offset frame lasts one frame period, 1 / fps. ValueError for fps <= 0."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    start = round(1000.0 * onset_s)
    end = round(1000.0 * (offset_s + 1.0 / fps))
    return start, max(end, start + 1)  # ELAN refuses empty annotations (fps > 1000)


def span_from_frames(onset: int, offset: int, fps: float) -> tuple[int, int]:
    """(start_ms, end_ms) of 1-based inclusive frames onset..offset at a constant fps:
    [(onset - 1) / fps, offset / fps] in ms. ValueError for fps <= 0."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    start = round(1000.0 * (onset - 1) / fps)
    return start, max(round(1000.0 * offset / fps), start + 1)


def timed_from_frames(intervals: Iterable[Interval], fps: float) -> list[TimedInterval]:
    """Intervals timed by their frame numbers at a constant fps (CSV files hold no times)."""
    return [TimedInterval(iv, *span_from_frames(iv.onset, iv.offset, fps)) for iv in intervals]


def annotation_value(iv: Interval) -> str:
    """`MaE score=0.830 apex=546 frames=541-572` (missing score or apex left out)."""
    parts: list[str] = [iv.type]
    if iv.score is not None:
        parts.append(f"score={iv.score:.3f}")
    if iv.apex is not None:
        parts.append(f"apex={iv.apex}")
    parts.append(f"frames={iv.onset}-{iv.offset}")
    return " ".join(parts)


def _lanes(items: Sequence[TimedInterval]) -> list[list[TimedInterval]]:
    """Items split into lanes without overlap in any lane (first fit, by start)."""
    lanes: list[list[TimedInterval]] = []
    for item in sorted(items, key=lambda t: (t.start_ms, t.end_ms)):
        for lane in lanes:
            if lane[-1].end_ms <= item.start_ms:
                lane.append(item)
                break
        else:
            lanes.append([item])
    return lanes


def _add_tiers(eaf: Elan.Eaf, pattern: str, items: Sequence[TimedInterval]) -> None:
    for type_ in ("MaE", "ME"):
        lanes = _lanes([t for t in items if t.interval.type == type_]) or [[]]
        for n, lane in enumerate(lanes, start=1):
            tier = pattern.format(type=type_) + ("" if n == 1 else f" {n}")
            eaf.add_tier(tier)
            for t in lane:
                eaf.add_annotation(tier, t.start_ms, t.end_ms, annotation_value(t.interval))


def build_eaf(doc: EafDocument, eaf_path: Path | None = None) -> Elan.Eaf:
    """The pympi Eaf object of `doc`; `eaf_path` (where it will be written) makes the
    media link's relative URL."""
    eaf = Elan.Eaf(author="lgnm-live")
    eaf.remove_tier("default")  # pympi's placeholder tier
    if doc.media is not None:
        media = Path(doc.media).resolve()
        mime = mimetypes.guess_type(media.name)[0] or "video/*"
        relative = None
        if eaf_path is not None:
            rel = Path(os.path.relpath(media, Path(eaf_path).resolve().parent)).as_posix()
            if not is_utf8(rel):  # bytes that are not UTF-8 (a Latin-1 name): percent-encoded, as in the URL
                rel = urllib.parse.quote_from_bytes(os.fsencode(rel), safe="/")
            relative = rel if rel.startswith("../") else f"./{rel}"
        eaf.add_linked_file(media.as_uri(), relpath=relative, mimetype=mime)
    _add_tiers(eaf, PRED_TIER, doc.predictions)
    if doc.truth is not None:
        _add_tiers(eaf, TRUTH_TIER, doc.truth)
    # ELAN numbers the annotations a user adds from this property; pympi leaves it at 0,
    # which would reuse the ids written here.
    eaf.remove_property("lastUsedAnnotation")
    eaf.add_property("lastUsedAnnotation", eaf.maxaid)
    return eaf


def write_eaf(path: str | Path, doc: EafDocument) -> Path:
    """Write `doc` as an .eaf, atomically (temp file + rename: a reader never sees half
    a file, and no `.bak` is left as pympi's own writer does). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = Elan.to_string(build_eaf(doc, path), encoding="unicode")
    with atomic_text(path) as fh:
        fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        fh.write(text)
    return path


def eaf_name(video: str) -> str:
    """A file name for a video id (a stream may be a URL: '/' and other unsafe characters
    become '_')."""
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in video).strip(".") or "stream"
    return f"{safe}.eaf"


def unique_eaf_name(video: str, owners: MutableMapping[str, str]) -> str:
    """`eaf_name(video)`, or, when another video id already owns that file name (ids that
    differ only in characters eaf_name replaces, 'take 1' and 'take_1', or only in case,
    which some file systems ignore), that name with the first 8 hex digits of the id's
    SHA-1: no stream's .eaf overwrites another's. `owners` (casefolded file name -> video
    id) records the choice."""
    name = eaf_name(video)
    owner = owners.setdefault(name.casefold(), video)
    if owner == video:
        return name
    digest = hashlib.sha1(video.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    name = f"{name[: -len('.eaf')]}-{digest}.eaf"
    owners[name.casefold()] = video
    return name


__all__ = ["EafDocument", "TimedInterval", "annotation_value", "build_eaf", "eaf_name", "span_from_frames",
           "span_from_times", "timed_from_frames", "unique_eaf_name", "write_eaf"]
