"""Write stand-in datasets in exactly the real CAS(ME)^2, SAMM-LV and CAS(ME)^3 layouts.

The real datasets are licensed and absent here, so tests and the synthetic video
generator produce stand-ins that `realtime.datasets.load_cas` / `load_samm` read with the
same code paths as the real data:

CAS(ME)^2 (30 fps)::

    <root>/rawpic/s15/15_0101disgustingteeth/img1.jpg ... imgN.jpg
    <root>/CAS.xlsx   sheets "CASFEcode_final", "naming rule1", "naming rule2"

SAMM-LV (200 fps)::

    <root>/SAMM_longvideos/006_1/006_1_0001.jpg ... 006_1_NNNN.jpg
    <root>/SAMM.xlsx  sheet "FACS_Movement_Only", header on row 1

CAS(ME)^3 Part A (30 fps; `realtime.casme3`)::

    <root>/part_A/spNO.1/a/color/1.jpg ... N.jpg
    <root>/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx          sheet "label"
    <root>/annotation/cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx sheet "Sheet1"

One `StandInVideo` list can be written in both layouts (frames given as a list; an
iterator can be written once). The `video` field of the truth intervals is ignored: the
id comes from the layout (`cas_video_id`, `samm_video_id`, `casme3_video_id`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import openpyxl

from realtime.common.types import Interval

# The nine real CAS(ME)^2 video codes and expression names (sheet "naming rule2"), with
# the folder description the real frame folders carry after the code.
CAS_VIDEOS: tuple[tuple[str, str, str], ...] = (
    ("0101", "disgust1", "disgustingteeth"),
    ("0102", "disgust2", "eatingworms"),
    ("0401", "anger1", "whu"),
    ("0402", "anger2", "bullyme"),
    ("0502", "happy1", "dancingbaby"),
    ("0503", "happy2", "jokes"),
    ("0505", "happy3", "fightforthecouch"),
    ("0507", "happy4", "funnydog"),
    ("0508", "happy5", "funnyinterview"),
)
CAS_SHEET = "CASFEcode_final"
SAMM_SHEET = "FACS_Movement_Only"
SAMM_HEADER = (
    "Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration",
    "Type", "Action Units", "Notes",
)  # fmt: skip
# CAS(ME)^3 Part A: one workbook per type, header on row 1 (realtime.casme3).
CASME3_ME_BOOK = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
CASME3_MAE_BOOK = "cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx"
CASME3_ME_HEADER = ("Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion")
CASME3_MAE_HEADER = ("sub", "seq", "onset", "apex", "offset", "emotion")


@dataclass
class StandInVideo:
    """One stand-in long video.

    subject: real-style subject number (CAS folder `s{subject}`, SAMM `{subject:03d}`,
        CAS(ME)^3 `spNO.{subject}`).
    index: 1-based video index of that subject (CAS: the index-th real video code,
        SAMM: the `_index` suffix, CAS(ME)^3: the index-th letter, 1 -> `a`).
    frames: BGR (or grey) uint8 images, frame 1 first.
    truth: annotated intervals (1-based, inclusive); apex defaults to the midpoint.
    """

    subject: int
    index: int
    frames: Iterable[np.ndarray]
    truth: list[Interval] = field(default_factory=list)


@dataclass(frozen=True)
class StandInLayout:
    """Where a writer put a stand-in dataset: pass `root` and `annotations` to the loader."""

    root: Path  # the frame root (`rawpic` or `SAMM_longvideos`)
    annotations: Path  # the workbook
    video_ids: list[str]  # in the order of the videos given


def cas_code(index: int) -> tuple[str, str, str]:
    """(4-digit code, expression name, folder description) of a subject's index-th video.

    Indices past the nine real videos get invented codes `09NN` / `other{NN}` so that
    bigger stand-ins stay readable by the same code.
    """
    if index < 1:
        raise ValueError(f"video index must be >= 1, got {index}")
    if index <= len(CAS_VIDEOS):
        return CAS_VIDEOS[index - 1]
    if index > 99 + len(CAS_VIDEOS):
        raise ValueError(f"CAS stand-in video index too large: {index}")
    n = index - len(CAS_VIDEOS)
    return (f"09{n:02d}", f"other{n}", "standin")


def cas_video_id(video: StandInVideo) -> str:
    """The id the CAS reader gives this video (`s15_0101`), as in megc2020/CAS_truth.csv."""
    return f"s{video.subject}_{cas_code(video.index)[0]}"


def samm_video_id(video: StandInVideo) -> str:
    """The id the SAMM reader gives this video (`006_1`), as in megc2020/SAMM_truth.csv."""
    return f"{video.subject:03d}_{video.index}"


def _apex(iv: Interval) -> int:
    return iv.apex if iv.apex is not None else (iv.onset + iv.offset) // 2


def _write_frames(folder: Path, frames: Iterable[np.ndarray], name_of: Callable[[int], str], quality: int) -> int:
    """Write frames as jpg named by `name_of(n)` for n = 1, 2, ...; returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for count, frame in enumerate(frames, start=1):
        if frame.dtype != np.uint8:
            raise ValueError(f"frame {count} of {folder.name}: dtype {frame.dtype}, need uint8")
        path = folder / name_of(count)
        if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, quality]):
            raise OSError(f"could not write {path}")
    if count == 0:
        raise ValueError(f"stand-in video {folder.name} has no frames")
    return count


def _check_unique(ids: Sequence[str]) -> None:
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ValueError(f"stand-in videos share ids {duplicates}")


def _cas_workbook(videos: Sequence[StandInVideo], path: Path) -> None:
    """CAS.xlsx-style workbook: anonymised header rows, subject numbers 1..n that sheet
    "naming rule1" maps to folders, expression names that "naming rule2" maps to codes."""
    subjects = sorted({v.subject for v in videos})
    number = {s: n for n, s in enumerate(subjects, start=1)}
    wb = openpyxl.Workbook()
    main = wb.active
    main.title = CAS_SHEET
    main.append(["###"] * 10)
    for v in videos:
        name = cas_code(v.index)[1]
        for e, iv in enumerate(v.truth, start=1):
            kind = "Micro" if iv.type == "ME" else "Macro"
            main.append([number[v.subject], f"{name}_{e}", iv.onset, _apex(iv), iv.offset,
                         "4", "others", kind, "others", iv.offset - iv.onset])  # fmt: skip
    rule1 = wb.create_sheet("naming rule1")
    rule1.append(["###"] * 3)
    for s in subjects:
        rule1.append([s, f"s{s}", number[s]])
    rule2 = wb.create_sheet("naming rule2")
    rule2.append(["###"] * 2)
    for code, name, _ in sorted({cas_code(v.index) for v in videos}):
        rule2.append([code, name])
    wb.save(path)


def write_cas_layout(root: Path, videos: Sequence[StandInVideo], quality: int = 95) -> StandInLayout:
    """Write `videos` as CAS(ME)^2: `root/rawpic/s{subject}/{subject}_{code}{desc}/imgN.jpg`
    and `root/CAS.xlsx`."""
    ids = [cas_video_id(v) for v in videos]
    _check_unique(ids)
    frames_root = Path(root) / "rawpic"
    for v in videos:
        code, _, desc = cas_code(v.index)
        folder = frames_root / f"s{v.subject}" / f"{v.subject}_{code}{desc}"
        _write_frames(folder, v.frames, lambda n: f"img{n}.jpg", quality)
    annotations = Path(root) / "CAS.xlsx"
    _cas_workbook(videos, annotations)
    return StandInLayout(frames_root, annotations, ids)


def _samm_workbook(videos: Sequence[StandInVideo], path: Path) -> None:
    """SAMM.xlsx-style workbook with the real header on row 1."""
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.title = SAMM_SHEET
    sheet.append(list(SAMM_HEADER))
    for v in videos:
        vid = samm_video_id(v)
        for e, iv in enumerate(v.truth, start=1):
            kind = "Micro - 1/2" if iv.type == "ME" else "Macro"
            sheet.append([f"{v.subject:03d}", f"{vid}_{e}", v.index, iv.onset, _apex(iv),
                          iv.offset, iv.offset - iv.onset + 1, kind, "4", None])  # fmt: skip
    wb.save(path)


def _samm_frame_name(video_id: str, n: int) -> str:
    """SAMM-LV's frame file name: `006_1_0120.jpg`."""
    return f"{video_id}_{n:04d}.jpg"


def write_samm_layout(root: Path, videos: Sequence[StandInVideo], quality: int = 95) -> StandInLayout:
    """Write `videos` as SAMM-LV: `root/SAMM_longvideos/{sss}_{i}/{sss}_{i}_{NNNN}.jpg`
    and `root/SAMM.xlsx`."""
    ids = [samm_video_id(v) for v in videos]
    _check_unique(ids)
    frames_root = Path(root) / "SAMM_longvideos"
    for v, vid in zip(videos, ids, strict=True):
        _write_frames(frames_root / vid, v.frames, functools.partial(_samm_frame_name, vid), quality)
    annotations = Path(root) / "SAMM.xlsx"
    _samm_workbook(videos, annotations)
    return StandInLayout(frames_root, annotations, ids)


def casme3_letter(index: int) -> str:
    """The CAS(ME)^3 video name of a subject's index-th video: 1 -> `a` ... 26 -> `z`."""
    if not 1 <= index <= 26:
        raise ValueError(f"CAS(ME)^3 stand-in video index must be 1..26, got {index}")
    return chr(ord("a") + index - 1)


def casme3_video_id(video: StandInVideo) -> str:
    """The id the CAS(ME)^3 reader gives this video (`spNO.1_a`)."""
    return f"spNO.{video.subject}_{casme3_letter(video.index)}"


def _casme3_workbooks(videos: Sequence[StandInVideo], folder: Path) -> tuple[Path, Path]:
    """Part A's two workbooks in their real layouts: MEs in sheet "label", MaEs in "Sheet1"."""
    folder.mkdir(parents=True, exist_ok=True)
    books = []
    for name, sheet_name, header, kind in ((CASME3_ME_BOOK, "label", CASME3_ME_HEADER, "ME"),
                                           (CASME3_MAE_BOOK, "Sheet1", CASME3_MAE_HEADER, "MaE")):
        wb = openpyxl.Workbook()
        sheet = wb.active
        sheet.title = sheet_name
        sheet.append(list(header))
        for v in videos:
            for iv in (iv for iv in v.truth if iv.type == kind):
                row = [f"spNO.{v.subject}", casme3_letter(v.index), iv.onset, _apex(iv), iv.offset]
                sheet.append(row + (["4+7", "others", "others"] if kind == "ME" else ["others"]))
        wb.save(folder / name)
        books.append(folder / name)
    return books[0], books[1]


def write_casme3_layout(root: Path, videos: Sequence[StandInVideo], quality: int = 95) -> StandInLayout:
    """Write `videos` as CAS(ME)^3 Part A: `root/part_A/spNO.{subject}/{letter}/color/{n}.jpg`
    and the two workbooks in `root/annotation/` (StandInLayout.annotations: that folder)."""
    ids = [casme3_video_id(v) for v in videos]
    _check_unique(ids)
    frames_root = Path(root) / "part_A"
    for v in videos:
        folder = frames_root / f"spNO.{v.subject}" / casme3_letter(v.index) / "color"
        _write_frames(folder, v.frames, lambda n: f"{n}.jpg", quality)
    annotations = Path(root) / "annotation"
    _casme3_workbooks(videos, annotations)
    return StandInLayout(frames_root, annotations, ids)
