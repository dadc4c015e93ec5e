"""CAS(ME)^3 Part A long videos: the frame layout and the annotation workbooks.

Layout (30 fps; as the release unpacks, e.g. `part_A/data/part_A_split/part_A/`)::

    <root>/spNO.1/a/color/1.jpg ... N.jpg    (depth/ beside color/ is not read)

Video id: `spNO.1_a`, subject `spNO.1` and the video's letter, joined by `_`, the form
CAS(ME)^3 spotting and recognition code uses for its clips (`spNO.160_d_3034.npy`,
`{Subject}_{Filename}_{Onset}`). Subject folders and cells may be spelled `spNO.1`,
`spNo.1` or `1`; ids always say `spNO.<n>`.

Annotations: Part A ships one workbook per type, with these header rows (row 1):
- `cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`, sheet `label`: Subject, Filename, Onset,
  Apex, Offset, AU, Objective class, emotion;
- `cas(me)3_part_A_MaE_label_JpgIndex_v2_emotion.xlsx`, sheet `Sheet1`: sub, seq, onset,
  apex, offset, emotion.
A row's type comes from a type column when the sheet has one (`Type`, `Expression type`
or `Expression_type`: `macro...` / `micro...`, as a combined workbook would say), else
from the workbook's name (`_ME_` -> ME, `_MaE_` -> MaE). `--annotations` takes one
workbook or a folder of them (every visible .xlsx in it; two workbooks of one type there
are refused, e.g. v1 beside v2). Frame numbers are the jpg numbers ("JpgIndex"); the
missing-value rules are CAS(ME)^2's and SAMM's (`realtime.datasets`: onset 0 -> the
apex, end = max(apex, offset), a missing apex -> the midpoint). A video folder numbered
from `0.jpg` is shifted to start at frame 1 like any frame folder, and its truth with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from realtime.common.errors import UserError
from realtime.common.types import ExprType, Interval
from realtime.datasets import (
    VideoRecord,
    _cells,
    _frame_number,
    _frames_root,
    _load_workbook,
    _make_interval,
    _records,
    header_columns,
    log,
)
from realtime.sources import is_hidden

CASME3_FPS = 30.0
CASME3_FRAME = re.compile(r"^(\d+)\.jpg$", re.IGNORECASE)
FRAMES_DIR = "color"
SUBJECT = re.compile(r"^(?:sp\s*no\.?\s*)?(\d+)$", re.IGNORECASE)  # spNO.1, spNo.1, 1
COLUMNS: dict[str, tuple[str, ...]] = {  # column -> header cells naming it (any case)
    "Filename": ("Filename", "seq"),  # first: the header row is the one naming it
    "Subject": ("Subject", "sub"),
    "Onset": ("Onset",),
    "Apex": ("Apex",),
    "Offset": ("Offset",),
}
TYPE_COLUMN = ("Type", "Expression type", "Expression_type")
WORKBOOK_TYPE = (("_mae_", "MaE"), ("_me_", "ME"))  # by file name; MaE first: "_me_" is not in it


def subject_id(value: Any) -> str | None:
    """`spNO.1`, `spNo.1`, `1` or 1.0 -> `spNO.1`; None for anything else."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    match = SUBJECT.match(str(value).strip()) if value is not None else None
    return f"spNO.{int(match.group(1))}" if match else None


def video_id(subject: str, video: str) -> str:
    """`spNO.1`, `a` -> `spNO.1_a` (the id of predictions, truth and streams)."""
    return f"{subject}_{video}"


def _workbook_type(path: Path) -> ExprType | None:
    """ME or MaE from the workbook's name (`..._ME_label...`, `..._MaE_label...`), None when
    it does not say. The dataset's own name, `cas(me)3` / `cas(me)^3`, holds an "(me)"
    that is not a type: it is taken out first."""
    stem = re.sub(r"cas\(me\)\^?3", "casme3", path.stem.lower())
    name = f"_{stem}_".replace("(", "_").replace(")", "_")
    return next((kind for token, kind in WORKBOOK_TYPE if token in name), None)  # type: ignore[misc]


def _event_sheet(wb: Any, path: Path) -> tuple[Any, int, dict[str, int], int | None]:
    """The first sheet with the required columns: (sheet, header row, columns, type column)."""
    for sheet in wb.worksheets:
        found = header_columns(sheet, path, COLUMNS)
        if found is not None:
            row, col = found
            header = next(sheet.iter_rows(min_row=row, max_row=row, values_only=True))
            cells = [str(c).strip().lower() if c is not None else "" for c in header]
            kind = next((i for i, c in enumerate(cells) if c in {t.lower() for t in TYPE_COLUMN}), None)
            return sheet, row, col, kind
    raise UserError(f"{path}: no sheet with the columns {', '.join('/'.join(a) for a in COLUMNS.values())}")


def _row_type(value: Any, where: str) -> ExprType:
    text = str(value).strip().lower() if value is not None else ""
    if text.startswith("macro") or text == "mae":
        return "MaE"
    if text.startswith("micro") or text == "me":
        return "ME"
    raise UserError(f"{where}: expression type {value!r} is neither macro- nor micro-expression")


TYPE_KEY = "\0type"  # the type column's cell, beside the named columns (no header is named so)


def _rows(path: Path) -> Iterator[Interval]:
    """Every annotated event of one workbook."""
    wb = _load_workbook(path)
    try:
        sheet, header_row, col, type_col = _event_sheet(wb, path)
        fixed = _workbook_type(path)
        if type_col is None and fixed is None:
            raise UserError(f"{path}: cannot tell ME from MaE: no {'/'.join(TYPE_COLUMN)} column and the file "
                            "name says neither _ME_ nor _MaE_")
        columns = col if type_col is None else {**col, TYPE_KEY: type_col}
        for where, cell in _cells(sheet, header_row, columns, path):
            subject = subject_id(cell["Subject"])
            if subject is None:
                raise UserError(f"{where}: subject {cell['Subject']!r} is not like spNO.1")
            video = str(cell["Filename"]).strip() if cell["Filename"] is not None else ""
            if not video or "/" in video or "\\" in video:
                raise UserError(f"{where}: Filename {cell['Filename']!r} is not a video name like 'a'")
            kind = _row_type(cell[TYPE_KEY], where) if type_col is not None else fixed
            onset, apex, offset = (_frame_number(cell[c], where) for c in ("Onset", "Apex", "Offset"))
            yield _make_interval(video_id(subject, video), kind, onset, apex, offset, where)  # type: ignore[arg-type]
    finally:
        wb.close()


def annotation_workbooks(path: Path) -> list[Path]:
    """The workbook itself, or the visible .xlsx files of a folder (one per type at most
    when their type comes from their names)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: annotation workbook or folder not found")
    # `~$name.xlsx`: the lock file Excel leaves beside a workbook it has open, not a workbook.
    books = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xlsx" and not is_hidden(p)
                   and not p.name.startswith("~$") and p.is_file())
    if not books:
        raise UserError(f"{path}: no .xlsx annotation workbook in this folder")
    for kind in ("ME", "MaE"):
        same = [b.name for b in books if _workbook_type(b) == kind]
        if len(same) > 1:
            raise UserError(f"{path}: {len(same)} {kind} workbooks ({', '.join(same)}); keep one, or pass the "
                            "workbook itself")
    return books


def read_casme3_annotations(path: Path) -> dict[str, list[Interval]]:
    """Part A workbook(s) (a file or a folder, module docstring) -> {`spNO.1_a`: intervals},
    each video's intervals in workbook order, workbooks in name order."""
    grouped: dict[str, list[Interval]] = {}
    for book in annotation_workbooks(path):
        for iv in _rows(book):
            grouped.setdefault(iv.video, []).append(iv)
    return grouped


def _video_dirs(root: Path) -> dict[str, Path]:
    """{`spNO.1_a`: root/spNO.1/a/color} for every video folder on disk."""
    found: dict[str, Path] = {}
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p)):
        subject = subject_id(subject_dir.name)
        if subject is None:
            log.warning("%s: not a CAS(ME)^3 subject folder name (spNO.N), ignored", subject_dir)
            continue
        for video_dir in sorted(p for p in subject_dir.iterdir() if p.is_dir() and not is_hidden(p)):
            frames = video_dir / FRAMES_DIR
            if not frames.is_dir():
                log.warning("%s: no %s/ frame folder, ignored", video_dir, FRAMES_DIR)
                continue
            vid = video_id(subject, video_dir.name)
            if vid in found:
                raise UserError(f"{frames}: second folder for video {vid} (first {found[vid]})")
            found[vid] = frames
    return found


def load_casme3(root: Path, annotations: Path, *, allow_gaps: bool = False) -> list[VideoRecord]:
    """All Part A videos under `root` (the folder holding `spNO.*`, or one holding it as
    `part_A/`), sorted by id, with their truth. `allow_gaps`: keep videos with holes in
    their numbering (replays)."""
    truth = read_casme3_annotations(annotations)
    return _records(_video_dirs(_frames_root(root, "part_A")), truth, CASME3_FRAME, CASME3_FPS, allow_gaps)
