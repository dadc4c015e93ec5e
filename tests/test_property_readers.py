"""Property-based tests (hypothesis) of the readers that take user files.

- Interval CSVs: any valid intervals round-trip through both writers; any garbage row or
  byte string gives `UserError("<file>:<line>: ...")` and never another exception, and the
  line it names is the first bad one (the file cut just before it reads fine).
- Annotation workbooks: random valid CAS(ME)^2 / SAMM-LV rows written by
  realtime/synthesis/layouts.py's workbook writers read back exactly; any garbage in any cell
  gives a clean result or a UserError naming the workbook, never another exception.

The event encoder/decoder already has hypothesis round-trip and garbage tests in
tests/test_events.py; they are not repeated here.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
import tempfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.datasets import read_cas_annotations, read_samm_annotations
from realtime.intervals_csv import IntervalCsvWriter, read_intervals, write_intervals
from realtime.synthesis.layouts import StandInVideo, _cas_workbook, _samm_workbook, cas_video_id, samm_video_id

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as users' tools write it: any printable or whitespace character except surrogates
# (not encodable) and NUL; video names are stored stripped (the reader strips them).
chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
video_names = st.text(chars, min_size=1, max_size=20).map(str.strip).filter(bool)
scores = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def intervals(draw, with_apex: bool, with_score: bool) -> Interval:
    onset = draw(st.integers(1, 10**9))
    offset = draw(st.integers(onset, onset + 10**6))
    apex = draw(st.integers(onset, offset)) if with_apex else None
    return Interval(video=draw(video_names), type=draw(st.sampled_from(["ME", "MaE"])), onset=onset,
                    offset=offset, apex=apex, score=draw(scores) if with_score else None)


def tmp_file(name: str) -> Path:
    """A fresh file path per hypothesis example (function-scoped tmp_path is shared)."""
    return Path(tempfile.mkdtemp(prefix="prop")) / name


# ------------------------------------------------------------------ interval CSV


@FAST
@given(ivs=st.lists(intervals(with_apex=False, with_score=True), max_size=30))
def test_predictions_round_trip(ivs: list[Interval]) -> None:
    path = tmp_file("pred.csv")
    write_intervals(path, ivs)
    assert read_intervals(path) == ivs
    stream = tmp_file("stream.csv")
    with IntervalCsvWriter(stream) as writer:  # the streaming writer lgnm-live uses
        for iv in ivs:
            writer.write(iv)
    assert read_intervals(stream) == ivs
    assert stream.read_bytes() == path.read_bytes()


@FAST
@given(ivs=st.lists(intervals(with_apex=True, with_score=False), max_size=30))
def test_truth_round_trip(ivs: list[Interval]) -> None:
    path = tmp_file("truth.csv")
    write_intervals(path, ivs, truth=True)
    assert read_intervals(path) == ivs


cell = st.one_of(
    st.text(chars.filter(lambda c: c not in "\r\n"), max_size=12),
    st.integers(-5, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["ME", "MaE", "me", " ME", "", "0", "1.0", "1e3", "nan", "-1"]),
)
rows = st.lists(st.lists(cell, min_size=0, max_size=7), min_size=1, max_size=8)
headers = st.sampled_from([
    ["video", "type", "onset", "offset", "score"],
    ["video", "type", "onset", "apex", "offset"],
    ["type", "offset", "video", "onset"],
])


def write_rows(path: Path, header: list[str], body: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(body)


@FAST
@given(header=headers, body=rows)
def test_garbage_rows_name_the_file_and_the_first_bad_line(header: list[str], body: list[list[str]]) -> None:
    path = tmp_file("garbage.csv")
    write_rows(path, header, body)  # no newline inside a cell: row i is on line i + 2
    try:
        got = read_intervals(path)
    except UserError as exc:
        m = re.match(rf"^{re.escape(str(path))}:(\d+): \S", str(exc))
        assert m and "\n" not in str(exc), str(exc)
        line = int(m.group(1))
        assert 2 <= line <= len(body) + 1
        before = tmp_file("before.csv")
        write_rows(before, header, body[: line - 2])
        read_intervals(before)  # every row before the named line is fine
        return
    assert len(got) <= len(body)
    assert all(iv.onset >= 1 and iv.offset >= iv.onset and iv.type in ("ME", "MaE") for iv in got)


@FAST
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_are_a_result_or_a_user_error(data: bytes) -> None:
    path = tmp_file("bytes.csv")
    path.write_bytes(data)
    try:
        read_intervals(path)
    except UserError as exc:
        assert str(exc).startswith(f"{path}:") and "\n" not in str(exc)


@FAST
@given(body=st.binary(max_size=200))
def test_garbage_after_a_valid_header_and_row(body: bytes) -> None:
    path = tmp_file("tail.csv")
    path.write_bytes(b"video,type,onset,offset,score\nv1,ME,3,9,0.5\n" + body)
    try:
        got = read_intervals(path)
    except UserError as exc:
        assert str(exc).startswith(f"{path}:") and "\n" not in str(exc)
        return
    assert got[0] == Interval("v1", "ME", 3, 9, score=0.5)


# ------------------------------------------------------------------ workbooks


@st.composite
def stand_in_videos(draw, max_subject: int) -> list[StandInVideo]:
    keys = draw(st.lists(st.tuples(st.integers(1, max_subject), st.integers(1, 20)), min_size=1, max_size=5,
                         unique=True))
    videos = []
    for subject, index in keys:
        truth = draw(st.lists(intervals(with_apex=True, with_score=False), max_size=4))
        videos.append(StandInVideo(subject, index, [], truth))
    return videos


def expected(videos: list[StandInVideo], video_id) -> dict[str, list[Interval]]:
    out: dict[str, list[Interval]] = {}
    for v in videos:
        for iv in v.truth:
            out.setdefault(video_id(v), []).append(
                Interval(video_id(v), iv.type, iv.onset, iv.offset, apex=iv.apex))
    return out


@SLOW
@given(videos=stand_in_videos(max_subject=40))
def test_cas_workbook_round_trip(videos: list[StandInVideo]) -> None:
    path = tmp_file("CAS.xlsx")
    _cas_workbook(videos, path)
    assert read_cas_annotations(path) == expected(videos, cas_video_id)


@SLOW
@given(videos=stand_in_videos(max_subject=999))
def test_samm_workbook_round_trip(videos: list[StandInVideo]) -> None:
    path = tmp_file("SAMM.xlsx")
    _samm_workbook(videos, path)
    assert read_samm_annotations(path) == expected(videos, samm_video_id)


ILLEGAL = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")  # openpyxl refuses these
cell_garbage = st.one_of(
    st.none(),
    st.text(chars, max_size=15).filter(lambda t: not ILLEGAL.search(t)),
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=False),  # openpyxl cannot store NaN
    st.booleans(),
    st.datetimes(min_value=datetime.datetime(1901, 1, 1), max_value=datetime.datetime(2100, 1, 1)),
    st.sampled_from(["Macro", "Micro - 1/2", "micro", "0", "-1", "1e400", "inf", "", " ", "s15", "006_1_3"]),
)


@SLOW
@given(videos=stand_in_videos(max_subject=40), layout=st.sampled_from(["CAS", "SAMM"]),
       edits=st.lists(st.tuples(st.sampled_from(["main", "naming rule1", "naming rule2"]), st.integers(1, 6),
                                st.integers(1, 10), cell_garbage), min_size=1, max_size=4))
def test_cell_garbage_is_a_result_or_a_user_error(videos: list[StandInVideo], layout: str, edits: list) -> None:
    assume(any(v.truth for v in videos))
    path = tmp_file(f"{layout}.xlsx")
    (_cas_workbook if layout == "CAS" else _samm_workbook)(videos, path)
    wb = openpyxl.load_workbook(path)
    for sheet, row, col, value in edits:
        name = wb.sheetnames[0] if sheet == "main" or layout == "SAMM" else sheet
        wb[name].cell(row=row, column=col, value=value)
    wb.save(path)
    reader = read_cas_annotations if layout == "CAS" else read_samm_annotations
    try:
        got = reader(path)
    except UserError as exc:
        assert str(exc).startswith(f"{path}:") and "\n" not in str(exc), str(exc)
        return
    for video, ivs in got.items():
        for iv in ivs:  # (an apex outside onset..offset is passed through as annotated)
            assert iv.video == video and 1 <= iv.onset <= iv.offset and iv.apex >= 1, iv


@pytest.mark.parametrize("reader", [read_cas_annotations, read_samm_annotations])
def test_workbook_that_is_a_csv_or_empty_is_a_user_error(reader, tmp_path: Path) -> None:
    for body in (b"", b"Subject,Filename\n1,2\n", io.BytesIO(b"PK\x03\x04garbage").getvalue()):
        path = tmp_path / "w.xlsx"
        path.write_bytes(body)
        with pytest.raises(UserError, match=re.escape(str(path))):
            reader(path)
