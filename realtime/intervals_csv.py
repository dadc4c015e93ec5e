"""Interval CSV files: `video,type,onset,offset[,score]`; ground truth adds `apex`.

Column order follows the MEGC2020 reference files: predictions start
`video,type,onset,offset,score` and add `apex,onset_s,offset_s` (the apex frame and the
times of the onset and offset frames in seconds, as in the events; empty where the writer
had no frame clock), truth is `video,type,onset,apex,offset`. Readers look columns up by
name, so any order is accepted and extra columns are ignored. Frames are 1-based and
inclusive.

Every reading mistake raises `UserError("<file>:<line>: <what is wrong>")` (line 1 is
the header). In truth rows an onset of 0 means "not annotated" (SAMM) and is replaced by
the apex, as the datasets' own convention says. An apex outside [onset, offset] is an
annotation slip (the MEGC2020 truth files hold 9: apex after the offset, one negative)
and is dropped: MEGC matching uses onset and offset only, and an interval's apex must lie
inside it. Frame numbers must be integers; a value such as `12.0` (integral, as
spreadsheet exports write it) is accepted, `12.5` is not.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Literal

from realtime.common.atomic import atomic_text
from realtime.common.errors import UserError
from realtime.common.text import text_name
from realtime.common.types import EXPR_TYPES, Interval

REQUIRED_COLUMNS = ("video", "type", "onset", "offset")
PRED_COLUMNS = ("video", "type", "onset", "offset", "score", "apex", "onset_s", "offset_s")
TRUTH_COLUMNS = ("video", "type", "onset", "apex", "offset")


def _parse_frame(text: str, where: str, column: str) -> int:
    """Parse a 1-based frame number; integral floats are tolerated (spreadsheet exports)."""
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: {column} {text!r} is not an integer frame") from None
    if not math.isfinite(value) or value != int(value):
        raise UserError(f"{where}: {column} {text!r} is not an integer frame")
    return int(value)


def _parse_score(text: str, where: str) -> float | None:
    if text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: score {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: score {text!r} is not finite")
    return value


def _parse_row(row: dict[str, str], where: str, truth: bool = True) -> Interval:
    """Validate one CSV row into an Interval (raises UserError naming file and line);
    `truth`: the datasets' onset-0 and offset-0 convention applies (not to predictions)."""
    video = text_name((row.get("video") or "").strip())  # NFC, as the replayed ids
    if not video:
        raise UserError(f"{where}: empty video name")
    kind = (row.get("type") or "").strip()
    if kind not in EXPR_TYPES:
        raise UserError(f"{where}: type {kind!r} must be ME or MaE")
    onset = _parse_frame((row.get("onset") or "").strip(), where, "onset")
    offset = _parse_frame((row.get("offset") or "").strip(), where, "offset")
    apex_text = (row.get("apex") or "").strip()
    apex = _parse_frame(apex_text, where, "apex") if apex_text else None
    if truth and onset == 0 and apex is not None and apex >= 1:
        # Truth convention of both datasets (SAMM_truth.csv has 10 such rows): onset 0 =
        # not annotated, use the apex. The MEGC2020 figures are the same either way.
        onset = apex
    if truth and offset == 0 and apex is not None and apex >= onset >= 1:
        # The same convention for the end (LGNMNet.md: the authors take max(apex, offset)):
        # a workbook row exported to CSV keeps its 0.
        offset = apex
    if onset < 1:
        raise UserError(f"{where}: onset {onset} < 1 (frames are 1-based)")
    if offset < onset:
        raise UserError(f"{where}: offset {offset} < onset {onset}")
    if apex is not None and not onset <= apex <= offset:
        apex = None  # an annotation slip (module docstring)
    score = _parse_score(row.get("score") or "", where)
    return Interval(video=video, type=kind, onset=onset, offset=offset, score=score, apex=apex)


def read_intervals(path: str | Path, truth: bool = True) -> list[Interval]:
    """Read a truth CSV, or with `truth=False` a prediction CSV (whose onset 0 is an error,
    not the datasets' "onset not annotated, use the apex"); `score` and `apex` are read
    when present."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: a folder, not a CSV file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM (spreadsheet exports) is not a column name
        data = data[3:]
    if data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0")):  # zip (.xlsx, .ods) or OLE (.xls)
        raise UserError(f"{path}: a workbook, not a CSV file: save it as CSV (video,type,onset,apex,offset); "
                        "a dataset's own workbook (CAS.xlsx, SAMM.xlsx) is read by "
                        "lgnm-live --replay CAS|SAMM --annotations FILE")
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))  # Excel's "Unicode text" export
    try:
        text = data.decode("utf-16" if utf16 else "utf-8")
    except UnicodeDecodeError as exc:  # a binary or non-UTF-8 file: name the line
        if utf16:
            raise UserError(f"{path}: UTF-16 text that cannot be decoded; save it as UTF-8 CSV") from None
        line = data[:exc.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x})") from None
    try:
        return _read_rows(path, io.StringIO(text, newline=""), truth)
    except csv.Error as exc:  # e.g. a field over csv's size limit
        raise UserError(f"{path}: not a readable CSV ({exc})") from None


def _delimiter(first_line: str) -> str:
    """`,`, or `;` / tab when the header has those and no comma: spreadsheets in locales
    with a decimal comma save "CSV" with semicolons, and tab-separated exports are common."""
    if "," in first_line:
        return ","
    for sep in (";", "\t"):
        if sep in first_line:
            return sep
    return ","


def _read_rows(path: Path, fh: IO[str], truth: bool = True) -> list[Interval]:
    first = fh.readline()
    fh.seek(0)
    reader = csv.DictReader(fh, delimiter=_delimiter(first))
    # Column names are matched without case (a "Video,Type,Onset,Offset" header is the same).
    header = [h.strip().casefold() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        found = ", ".join(h for h in header if h) or "none"
        raise UserError(f"{path}:1: missing column(s) {', '.join(missing)} (found: {found})")
    reader.fieldnames = header
    out: list[Interval] = []
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # blank line
        out.append(_parse_row(row, f"{path}:{reader.line_num}", truth))
    return out


def _row(interval: Interval, columns: tuple[str, ...],
         times: tuple[float, float] | None = None) -> list[str]:
    """One row's fields; `times` = (onset_s, offset_s), the frame clock's times."""
    values = {
        "video": interval.video,
        "type": interval.type,
        "onset": str(interval.onset),
        "offset": str(interval.offset),
        "apex": "" if interval.apex is None else str(interval.apex),
        "score": "" if interval.score is None else repr(float(interval.score)),
        "onset_s": "" if times is None else repr(float(times[0])),
        "offset_s": "" if times is None else repr(float(times[1])),
    }
    return [values[c] for c in columns]


def _writerow(fh: IO[str], values: list[str]) -> None:
    """One CSV row. Python 3.11's csv quotes a field holding the line terminator ("\n")
    but not a lone "\r", which every reader then takes for a line end (a video name with a
    "\r" would split its row in two): such rows are written fully quoted."""
    quoting: Literal[0, 1] = csv.QUOTE_ALL if any("\r" in v for v in values) else csv.QUOTE_MINIMAL
    csv.writer(fh, lineterminator="\n", quoting=quoting).writerow(values)


def write_intervals(path: str | Path, intervals: Iterable[Interval], truth: bool = False) -> None:
    """Write a whole CSV atomically (temp file + rename): readers never see half a file.

    `truth=True` writes `video,type,onset,apex,offset` (the MEGC truth layout).
    """
    path = Path(path)
    columns = TRUTH_COLUMNS if truth else PRED_COLUMNS
    with atomic_text(path, newline="") as fh:
        _writerow(fh, list(columns))
        for interval in intervals:
            _writerow(fh, _row(interval, columns))


class IntervalCsvWriter:
    """Appending prediction writer for streaming: the header is written at once and each
    row is flushed as it is written, so a crash or Ctrl-C leaves a valid CSV holding
    every interval emitted so far."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] | None = self.path.open("w", newline="", encoding="utf-8")
        _writerow(self._fh, list(PRED_COLUMNS))
        self._fh.flush()
        self.count = 0

    def write(self, interval: Interval, times: tuple[float, float] | None = None) -> None:
        """Append one interval; `times` = (onset_s, offset_s) in seconds, when known."""
        if self._fh is None:
            raise ValueError(f"{self.path}: writer is closed")
        _writerow(self._fh, _row(interval, PRED_COLUMNS, times))
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> IntervalCsvWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_csv_atomic(path: str | Path, header: list[str], rows: Iterable[list[str]]) -> None:
    """Write a whole CSV of any columns atomically (temp file + rename), rows quoted as
    `write_intervals` quotes them (other formats of intervals: challenge submissions)."""
    with atomic_text(path, newline="") as fh:
        _writerow(fh, header)
        for row in rows:
            _writerow(fh, row)
