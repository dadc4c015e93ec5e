"""CAS(ME)^2 and SAMM-LV readers for the real layouts and annotation workbooks.

Layouts (LGNMNet.md, "Data and labels"):
- CAS(ME)^2, 30 fps: `rawpic/s15/15_0101disgustingteeth/img1.jpg ... imgN.jpg`, video id
  `s15_0101` (subject folder + 4-digit video code).
- SAMM-LV, 200 fps: `SAMM_longvideos/006_1/006_1_0001.jpg ...`, video id `006_1`.
Ids match `megc2020/*_truth.csv` and `*_videos.txt`.

Annotation rules, applied to both workbooks:
- frame numbers are rounded to the nearest integer (SAMM has decimal frame numbers);
- 0 means missing (SAMM also writes -1 for a few apexes): a missing onset becomes the
  apex; the end is max(apex, offset) (the authors' rule, which also covers a missing
  offset); a missing apex, or one outside [onset, end], becomes the midpoint of onset and end.

Frame numbers are the numbers in the file names (`img120.jpg`, `006_1_0120.jpg` -> frame
120; a video numbered from 0 is shifted to start at 1, and its truth with it, so that an
interval stays on the images the workbook names); hidden files and folders (name
starting with '.', e.g. macOS `._006_1_0001.jpg`) are skipped; two files with the same
number are a `UserError`. A hole in the numbering is a `UserError` by default (training
labels frames by position, so it needs every frame); `allow_gaps=True` (replays) keeps
the numbers, and the replay's frame source notices the hole and breaks the frame chain
there, as for any frame folder.

Loading enumerates the frame folders on disk, so videos without annotated expressions
are kept (with empty truth). Annotated videos whose frame folder is absent are skipped;
each skip is logged as a warning on this module's logger and listed in the result of
`missing_videos`.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import openpyxl

from realtime.common.errors import UserError
from realtime.common.types import ExprType, Interval
from realtime.intervals_csv import write_intervals
from realtime.sources import is_hidden

log = logging.getLogger(__name__)

CAS_FPS = 30.0
SAMM_FPS = 200.0
CAS_FRAME = re.compile(r"^img(\d+)\.jpg$", re.IGNORECASE)
SAMM_FRAME = re.compile(r"^.*_(\d+)\.jpg$", re.IGNORECASE)
CAS_VIDEO_DIR = re.compile(r"^(\d+)_(\d{4})(?!\d)")  # `15_0101disgustingteeth`
SAMM_VIDEO_DIR = re.compile(r"^(\d+)_(\d+)$")  # `006_1`
SAMM_COLUMNS = ("Subject", "Filename", "Onset", "Apex", "Offset", "Type")
SAMM_HEADER_SEARCH_ROWS = 20  # the header row is looked for among the first rows
# The authors add `disgust1` -> 0101 by hand (presumably their reader took the sheet's
# first row for a header); kept as a default so that a workbook lacking it still resolves.
CAS_CODE_FALLBACK = {"disgust1": "0101"}


@dataclass
class VideoRecord:
    """One long video: its frame files in order, their frame numbers and its truth.

    `numbers[i]` is the frame number of `frames[i]`; without holes (the default, see
    the module docstring) frame n is `frames[n - 1]`."""

    id: str
    subject: str
    fps: float
    frames: list[Path]
    truth: list[Interval]
    numbers: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.numbers:
            self.numbers = list(range(1, len(self.frames) + 1))


# ---------------------------------------------------------------- cell helpers


def _whole_number(value: Any, where: str, what: str) -> int:
    """A workbook cell holding a whole number (subject number), as an int."""
    if isinstance(value, bool):  # a TRUE/FALSE cell would otherwise read as 1/0
        raise UserError(f"{where}: {what} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or not number.is_integer():
        raise UserError(f"{where}: {what} {value!r} is not a whole number")
    return int(number)


def _frame_number(value: Any, where: str) -> int:
    """A workbook frame number as an int (nearest; 0 = missing, as are empty and < 0)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):  # a TRUE/FALSE cell would otherwise read as frame 1/0
        raise UserError(f"{where}: frame number {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: frame number {value!r} is not a number") from None
    if not math.isfinite(number):
        raise UserError(f"{where}: frame number {value!r} is not a frame number")
    # SAMM marks a few missing apexes with -1 instead of 0.
    return max(0, int(math.floor(number + 0.5)))


def _expr_type(value: Any, where: str) -> ExprType:
    """`Macro` -> MaE; `Micro` (CAS) or `Micro - 1/2` (SAMM) -> ME."""
    text = str(value).strip().lower()
    if text.startswith("macro"):
        return "MaE"
    if text.startswith("micro"):
        return "ME"
    raise UserError(f"{where}: type {value!r} is neither Macro nor Micro")


def _make_interval(video: str, kind: ExprType, onset: int, apex: int, offset: int, where: str) -> Interval:
    """Apply the missing-value rules (module docstring) and build the Interval."""
    end = max(apex, offset)
    start = onset if onset > 0 else apex
    if end <= 0:
        raise UserError(f"{where}: apex and offset are both missing")
    if start <= 0:
        raise UserError(f"{where}: onset and apex are both missing")
    if end < start:
        raise UserError(f"{where}: end frame {end} is before onset {start}")
    # A missing apex, or one before the onset (an annotation slip: an interval's apex lies
    # inside it), becomes the midpoint, as for SAMM's -1.
    peak = apex if start <= apex <= end else (start + end) // 2
    return Interval(video=video, type=kind, onset=start, offset=end, apex=peak)


def _load_workbook(path: Path) -> openpyxl.Workbook:
    """The workbook, whole (annotation workbooks are small): openpyxl's read-only mode
    trusts the sheet's stored dimension, which streaming writers and appending tools
    leave wrong (`A1`), and then yields no rows at all. A merged cell (one Subject cell
    spanning its subject's rows, as people format these sheets) gives its value to every
    cell it covers."""
    if not Path(path).is_file():
        raise UserError(f"{path}: annotation workbook not found")
    try:
        wb = openpyxl.load_workbook(path, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises several types for a non-workbook
        raise UserError(f"{path}: not a readable .xlsx workbook ({exc})") from None
    for sheet in wb.worksheets:
        _fill_merged(sheet)
    return wb


def _fill_merged(sheet: Any) -> None:
    """Give each merged range's value to the cells it covers, in rows that hold something
    else (a merge running over the blank line between two subjects leaves it blank)."""
    merges = [(m, sheet.cell(m.min_row, m.min_col).value) for m in list(sheet.merged_cells.ranges)]
    for merged, _ in merges:
        sheet.unmerge_cells(str(merged))
    covered = {(r, c) for m, _ in merges for r in range(m.min_row, m.max_row + 1)
               for c in range(m.min_col, m.max_col + 1)}
    for merged, value in merges:
        for r in range(merged.min_row, merged.max_row + 1):
            row = sheet[r]
            if r != merged.min_row and _is_blank(tuple(c.value for c in row if (r, c.column) not in covered)):
                continue
            for c in range(merged.min_col, merged.max_col + 1):
                sheet.cell(r, c).value = value


def _sheet(wb: openpyxl.Workbook, name: str, path: Path) -> Any:
    if name not in wb.sheetnames:
        raise UserError(f"{path}: sheet {name!r} is missing")
    return wb[name]


def _is_blank(row: tuple) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in row)


def _cells(sheet: Any, header_row: int, col: dict[str, int], path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, {column: value}) for each non-blank row below the header; `where` names
    the file, sheet and row for error messages."""
    rows = sheet.iter_rows(min_row=header_row + 1, values_only=True)
    for r, row in enumerate(rows, start=header_row + 1):
        if _is_blank(row):
            continue
        yield f"{path}: sheet {sheet.title!r} row {r}", {c: row[i] if i < len(row) else None for c, i in col.items()}


# ---------------------------------------------------------------- CAS(ME)^2


def _cas_folders(wb: openpyxl.Workbook, path: Path) -> dict[int, str]:
    """Sheet "naming rule1": (folder number, folder `s15`, subject number) -> {1: "s15"}."""
    folders: dict[int, str] = {}
    rows = _sheet(wb, "naming rule1", path).iter_rows(min_row=2, values_only=True)
    for r, row in enumerate(rows, start=2):
        if _is_blank(row):
            continue
        where = f"{path}: sheet 'naming rule1' row {r}"
        if len(row) < 3 or row[1] is None or row[2] is None:
            raise UserError(f"{where}: need folder and subject number")
        folders[_whole_number(row[2], where, "subject number")] = str(row[1]).strip()
    return folders


def _cas_code(value: Any) -> str | None:
    """A video code cell as 4 digits; the code may be stored as a number (`101`)."""
    text = str(value).strip()
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return text.zfill(4) if text.isdigit() and len(text) <= 4 else None


def _cas_codes(wb: openpyxl.Workbook, path: Path) -> dict[str, str]:
    """Sheet "naming rule2": (code, expression name) -> {"disgust1": "0101"}.

    Every row with a numeric code counts, header or not, so neither the anonymised
    header nor a first data row mistaken for a header loses a video."""
    codes = dict(CAS_CODE_FALLBACK)
    for row in _sheet(wb, "naming rule2", path).iter_rows(values_only=True):
        if len(row) >= 2 and row[0] is not None and row[1] is not None:
            code = _cas_code(row[0])
            if code is not None:
                codes[str(row[1]).strip()] = code
    return codes


def _cas_main_sheet(wb: openpyxl.Workbook, path: Path) -> Any:
    """The event sheet: the first one that is not a naming rule."""
    for name in wb.sheetnames:
        if not name.lower().startswith("naming rule"):
            return wb[name]
    raise UserError(f"{path}: no annotation sheet besides the naming rules")


def _cas_rows(path: Path) -> Iterator[Interval]:
    """Every annotated event of CAS.xlsx (row 1 is the anonymised header)."""
    wb = _load_workbook(path)
    try:
        folders = _cas_folders(wb, path)
        codes = _cas_codes(wb, path)
        sheet = _cas_main_sheet(wb, path)
        for r, row in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
            if _is_blank(row):
                continue
            where = f"{path}: sheet {sheet.title!r} row {r}"
            if len(row) < 8:
                raise UserError(f"{where}: need 8 columns (subject .. type), found {len(row)}")
            subject = _whole_number(row[0], where, "subject number")
            if subject not in folders:
                raise UserError(f"{where}: subject {row[0]!r} not in sheet 'naming rule1'")
            name = str(row[1]).strip().rsplit("_", 1)[0]
            if name not in codes:
                raise UserError(f"{where}: expression {row[1]!r} not in sheet 'naming rule2'")
            onset, apex, offset = (_frame_number(v, where) for v in row[2:5])
            video = f"{folders[subject]}_{codes[name]}"
            yield _make_interval(video, _expr_type(row[7], where), onset, apex, offset, where)
    finally:
        wb.close()


def _group(intervals: Iterable[Interval]) -> dict[str, list[Interval]]:
    grouped: dict[str, list[Interval]] = {}
    for iv in intervals:
        grouped.setdefault(iv.video, []).append(iv)
    return grouped


def read_cas_annotations(xlsx: Path) -> dict[str, list[Interval]]:
    """CAS(ME)^2 workbook -> {video id `s15_0101`: intervals in workbook order}."""
    return _group(_cas_rows(Path(xlsx)))


# ---------------------------------------------------------------- SAMM-LV


def header_columns(sheet: Any, path: Path, columns: dict[str, tuple[str, ...]]) -> tuple[int, dict[str, int]] | None:
    """Find a sheet's header row and where each required column is.

    `columns` maps each column's name (as error messages say it) to the header cells that
    name it (any case, e.g. `{"Subject": ("subject", "sub")}`). The header is the first of
    the first rows holding a cell of the FIRST column's names; None when no row does.
    Raises a UserError naming the file, the sheet and the columns it lacks."""
    names_of = {c: {a.lower() for a in aliases} for c, aliases in columns.items()}
    marker = next(iter(names_of.values()))
    rows = sheet.iter_rows(max_row=SAMM_HEADER_SEARCH_ROWS, values_only=True)
    for r, row in enumerate(rows, start=1):
        cells = [str(c).strip().lower() if c is not None else "" for c in row]
        if marker & set(cells):
            missing = [c for c, aliases in names_of.items() if not aliases & set(cells)]
            if missing:
                raise UserError(f"{path}: sheet {sheet.title!r} lacks column(s) {', '.join(missing)}")
            return r, {c: next(i for i, cell in enumerate(cells) if cell in aliases)
                       for c, aliases in names_of.items()}
    return None


def _samm_sheet(wb: openpyxl.Workbook, path: Path) -> tuple[Any, int, dict[str, int]]:
    """The first sheet with a `Filename` header (a notes or summary sheet may come first),
    its header row and columns; the first sheet's error when none has one."""
    for sheet in wb.worksheets:
        if header_columns(sheet, path, {"Filename": ("Filename",)}) is not None:
            return (sheet, *_samm_header(sheet, path))
    first = wb.worksheets[0]
    return (first, *_samm_header(first, path))  # raises, naming the first sheet


def _samm_header(sheet: Any, path: Path) -> tuple[int, dict[str, int]]:
    """Find the header row (the one naming `Filename`) and the required columns."""
    order = ("Filename", *(c for c in SAMM_COLUMNS if c != "Filename"))
    found = header_columns(sheet, path, {c: (c,) for c in order})
    if found is None:
        raise UserError(f"{path}: no header row with a 'Filename' column in sheet {sheet.title!r}")
    return found




def _samm_video(filename: Any, where: str) -> str:
    """`006_1_3` (video 006_1, event 3) -> `006_1`."""
    parts = str(filename).strip().split("_")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise UserError(f"{where}: Filename {filename!r} is not subject_video_event")
    return f"{parts[0]}_{parts[1]}"


def _samm_rows(path: Path) -> Iterator[Interval]:
    wb = _load_workbook(path)
    try:
        sheet, header_row, col = _samm_sheet(wb, path)
        for where, cell in _cells(sheet, header_row, col, path):
            video = _samm_video(cell["Filename"], where)
            onset, apex, offset = (_frame_number(cell[c], where) for c in ("Onset", "Apex", "Offset"))
            yield _make_interval(video, _expr_type(cell["Type"], where), onset, apex, offset, where)
    finally:
        wb.close()


def read_samm_annotations(xlsx: Path) -> dict[str, list[Interval]]:
    """SAMM-LV workbook -> {video id `006_1`: intervals in workbook order}."""
    return _group(_samm_rows(Path(xlsx)))


# ---------------------------------------------------------------- frame folders


def _numbered_frames(folder: Path, pattern: re.Pattern[str], allow_gaps: bool) -> list[tuple[int, Path]]:
    """(frame number, file) of a video's frames, by number (rules: module docstring)."""
    numbered = []
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and not is_hidden(path) and path.is_file():
            numbered.append((int(match.group(1)), path))
    if not numbered:
        raise UserError(f"{folder}: video folder has no frames")
    numbered.sort()
    for (a, first), (b, second) in itertools.pairwise(numbered):
        if a == b:
            raise UserError(f"{folder}: {first.name} and {second.name} are both frame {a}")
    if numbered[0][0] == 0:  # numbered from 0: frame 1 is the first file
        numbered = [(n + 1, p) for n, p in numbered]
    numbers = [n for n, _ in numbered]
    if not allow_gaps and numbers != list(range(1, len(numbers) + 1)):
        gap = next(i for i, n in enumerate(numbers, start=1) if n != i)
        raise UserError(f"{folder}: frames are not numbered 1..{len(numbers)} (frame {gap} missing)")
    return numbered


def _frames_root(root: Path, child: str) -> Path:
    """Accept either the frame root itself or the dataset folder that holds it."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    return root / child if (root / child).is_dir() else root


def _cas_video_dirs(root: Path) -> dict[str, Path]:
    """{`s15_0101`: rawpic/s15/15_0101...} for every video folder on disk."""
    found: dict[str, Path] = {}
    for subject in sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p)):
        for folder in sorted(p for p in subject.iterdir() if p.is_dir() and not is_hidden(p)):
            match = CAS_VIDEO_DIR.match(folder.name)
            if not match:
                log.warning("%s: not a CAS(ME)^2 video folder name, ignored", folder)
                continue
            video = f"{subject.name}_{match.group(2)}"
            if video in found:
                raise UserError(f"{folder}: second folder for video {video} (first {found[video]})")
            found[video] = folder
    return found


def _samm_video_dirs(root: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(root.iterdir())
            if p.is_dir() and not is_hidden(p) and SAMM_VIDEO_DIR.match(p.name)}


def _records(
    dirs: dict[str, Path], truth: dict[str, list[Interval]], pattern: re.Pattern[str], fps: float,
    allow_gaps: bool,
) -> list[VideoRecord]:
    for video in sorted(set(truth) - set(dirs)):
        log.warning("annotated video %s has no frame folder; skipped", video)
    records = []
    for video, folder in sorted(dirs.items()):
        numbered = _numbered_frames(folder, pattern, allow_gaps)
        intervals = truth.get(video, [])
        match = pattern.match(numbered[0][1].name)
        if match and int(match.group(1)) == 0:
            # Numbered from 0, the files read as frames 1..N; the workbook numbers the
            # files, so its truth moves along: an interval stays on the same images.
            intervals = [replace(iv, onset=iv.onset + 1, offset=iv.offset + 1,
                                 apex=iv.apex + 1 if iv.apex is not None else None) for iv in intervals]
        records.append(VideoRecord(id=video, subject=video.rsplit("_", 1)[0], fps=fps,
                                   frames=[p for _, p in numbered], truth=intervals,
                                   numbers=[n for n, _ in numbered]))
    return records


def load_cas(root: Path, annotations: Path, *, allow_gaps: bool = False) -> list[VideoRecord]:
    """All CAS(ME)^2 videos under `root` (`rawpic` or the folder holding it), sorted by id.
    `allow_gaps`: keep videos with holes in their frame numbering (module docstring)."""
    truth = read_cas_annotations(annotations)
    frames_root = _frames_root(root, "rawpic")
    return _records(_cas_video_dirs(frames_root), truth, CAS_FRAME, CAS_FPS, allow_gaps)


def load_samm(root: Path, annotations: Path, *, allow_gaps: bool = False) -> list[VideoRecord]:
    """All SAMM-LV videos under `root` (`SAMM_longvideos` or the folder holding it).
    `allow_gaps`: keep videos with holes in their frame numbering (module docstring)."""
    truth = read_samm_annotations(annotations)
    frames_root = _frames_root(root, "SAMM_longvideos")
    return _records(_samm_video_dirs(frames_root), truth, SAMM_FRAME, SAMM_FPS, allow_gaps)


def missing_videos(records: Iterable[VideoRecord], truth: dict[str, list[Interval]]) -> list[str]:
    """Annotated video ids that `load_*` skipped because their frame folder is absent."""
    return sorted(set(truth) - {r.id for r in records})


# ---------------------------------------------------------------- export


def export_truth_csv(records: Iterable[VideoRecord], path: Path) -> None:
    """Write `video,type,onset,apex,offset` like megc2020/*_truth.csv (videos in the
    order given, each video's intervals in workbook order)."""
    write_intervals(path, [iv for record in records for iv in record.truth], truth=True)
