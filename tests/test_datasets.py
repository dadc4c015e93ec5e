"""Dataset readers on stand-ins written in the real layouts, and on the real workbooks."""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.datasets import (
    CAS_FPS,
    SAMM_FPS,
    VideoRecord,
    export_truth_csv,
    load_cas,
    load_samm,
    missing_videos,
    read_cas_annotations,
    read_samm_annotations,
)
from realtime.intervals_csv import read_intervals
from realtime.labels import k_from_intervals
from realtime.synthesis.layouts import (
    StandInVideo,
    cas_video_id,
    samm_video_id,
    write_cas_layout,
    write_samm_layout,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/reference absent")

Row = tuple[str, int, int | None, int]


def _frames(count: int, seed: int) -> list[np.ndarray]:
    """Flat 32x32 frames whose grey level encodes the frame number (survives jpeg)."""
    return [np.full((32, 32, 3), (seed * 40 + 11 * n) % 256, np.uint8) for n in range(1, count + 1)]


def _standins() -> list[StandInVideo]:
    return [
        StandInVideo(15, 1, _frames(12, 0), [Interval("x", "MaE", 2, 9, apex=5), Interval("x", "ME", 10, 11)]),
        StandInVideo(15, 3, _frames(3, 1), []),
        StandInVideo(16, 2, _frames(4, 2), [Interval("x", "ME", 1, 4, apex=2)]),
    ]


def _rows(intervals: list[Interval]) -> list[Row]:
    return [(iv.type, iv.onset, iv.apex, iv.offset) for iv in intervals]


def _expected_rows(video: StandInVideo) -> list[Row]:
    # The writer fills a missing apex with the midpoint, as the readers do.
    return [(iv.type, iv.onset, iv.apex or (iv.onset + iv.offset) // 2, iv.offset) for iv in video.truth]


def _grey_levels(record: VideoRecord) -> list[int]:
    return [int(round(cv2.imread(str(p)).mean())) for p in record.frames]


def _check_round_trip(records: list[VideoRecord], videos: list[StandInVideo], ids: list[str], fps: float) -> None:
    by_id = {r.id: r for r in records}
    assert sorted(by_id) == sorted(ids)
    for video, vid in zip(videos, ids):
        record = by_id[vid]
        assert record.fps == fps
        assert _rows(record.truth) == _expected_rows(video)
        assert all(iv.video == vid for iv in record.truth)
        expected = [int(f.mean()) for f in video.frames]  # type: ignore[union-attr]
        assert np.abs(np.array(_grey_levels(record)) - expected).max() <= 2


def test_cas_stand_in_round_trip(tmp_path: Path) -> None:
    videos = _standins()
    layout = write_cas_layout(tmp_path, videos)
    assert layout.video_ids == ["s15_0101", "s15_0401", "s16_0102"] == [cas_video_id(v) for v in videos]
    assert (tmp_path / "rawpic" / "s15" / "15_0101disgustingteeth" / "img12.jpg").is_file()
    records = load_cas(layout.root, layout.annotations)
    _check_round_trip(records, videos, layout.video_ids, CAS_FPS)
    first = next(r for r in records if r.id == "s15_0101")
    # img10 .. img12 come after img9, not after img1
    assert [p.name for p in first.frames[8:]] == ["img9.jpg", "img10.jpg", "img11.jpg", "img12.jpg"]
    assert first.subject == "s15"
    # the dataset folder holding rawpic is accepted too
    assert [r.id for r in load_cas(tmp_path, layout.annotations)] == [r.id for r in records]


def test_samm_stand_in_round_trip(tmp_path: Path) -> None:
    videos = _standins()
    layout = write_samm_layout(tmp_path, videos)
    assert layout.video_ids == ["015_1", "015_3", "016_2"] == [samm_video_id(v) for v in videos]
    records = load_samm(tmp_path, layout.annotations)
    _check_round_trip(records, videos, layout.video_ids, SAMM_FPS)
    first = next(r for r in records if r.id == "015_1")
    assert [p.name for p in first.frames[8:10]] == ["015_1_0009.jpg", "015_1_0010.jpg"]
    assert first.subject == "015"


def test_export_truth_csv_round_trip(tmp_path: Path) -> None:
    layout = write_samm_layout(tmp_path / "d", _standins())
    records = load_samm(layout.root, layout.annotations)
    out = tmp_path / "truth.csv"
    export_truth_csv(records, out)
    assert out.read_text().splitlines()[0] == "video,type,onset,apex,offset"
    assert read_intervals(out) == [iv for r in records for iv in r.truth]


def test_missing_frame_folder_is_skipped_with_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    layout = write_cas_layout(tmp_path, _standins())
    shutil.rmtree(layout.root / "s16")
    with caplog.at_level(logging.WARNING, logger="realtime.datasets"):
        records = load_cas(layout.root, layout.annotations)
    assert [r.id for r in records] == ["s15_0101", "s15_0401"]
    assert "s16_0102" in caplog.text
    assert missing_videos(records, read_cas_annotations(layout.annotations)) == ["s16_0102"]


def test_cas_code_stored_as_number_and_missing_disgust1(tmp_path: Path) -> None:
    layout = write_cas_layout(tmp_path, _standins())
    wb = openpyxl.load_workbook(layout.annotations)
    rule2 = wb["naming rule2"]
    for row in rule2.iter_rows(min_row=2):
        if row[1].value == "anger1":
            row[0].value = 401  # a numeric cell loses the leading zero
        if row[1].value == "disgust1":
            row[1].value = row[0].value = None  # the authors' hand fix supplies it
    wb.save(layout.annotations)
    assert sorted(read_cas_annotations(layout.annotations)) == ["s15_0101", "s16_0102"]  # s15_0401 has no truth
    assert [r.id for r in load_cas(layout.root, layout.annotations)] == ["s15_0101", "s15_0401", "s16_0102"]


def test_samm_header_below_row_one_and_decimal_onsets(tmp_path: Path) -> None:
    layout = write_samm_layout(tmp_path, _standins())
    wb = openpyxl.load_workbook(layout.annotations)
    sheet = wb.active
    sheet["D2"] = 2.4  # onset of 015_1_1, decimals as in the real workbook
    sheet["F2"] = 8.6  # offset
    sheet.insert_rows(1, 2)
    sheet["A1"] = "SAMM long videos, FACS coded"
    wb.save(layout.annotations)
    truth = read_samm_annotations(layout.annotations)
    assert _rows(truth["015_1"])[0] == ("MaE", 2, 5, 9)


def test_missing_onset_uses_apex_and_offset_is_at_least_apex(tmp_path: Path) -> None:
    layout = write_cas_layout(tmp_path, _standins())
    wb = openpyxl.load_workbook(layout.annotations)
    sheet = wb.active
    sheet["C2"] = 0  # onset missing
    sheet["E2"] = 4  # offset before the apex (5)
    wb.save(layout.annotations)
    assert _rows(read_cas_annotations(layout.annotations)["s15_0101"])[0] == ("MaE", 5, 5, 5)


def _expect_user_error(call: object, *fragments: str) -> None:
    with pytest.raises(UserError) as info:
        call()  # type: ignore[operator]
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_user_errors_name_the_file(tmp_path: Path) -> None:
    cas = write_cas_layout(tmp_path / "cas", _standins())
    samm = write_samm_layout(tmp_path / "samm", _standins())
    _expect_user_error(lambda: load_cas(tmp_path / "nope", cas.annotations), "nope", "not found")
    _expect_user_error(lambda: read_cas_annotations(tmp_path / "none.xlsx"), "none.xlsx")

    empty = samm.root / "015_3"
    for frame in empty.iterdir():
        frame.unlink()
    _expect_user_error(lambda: load_samm(samm.root, samm.annotations), "015_3", "no frames")

    (cas.root / "s15" / "15_0101disgustingteeth" / "img5.jpg").unlink()
    _expect_user_error(lambda: load_cas(cas.root, cas.annotations), "15_0101", "frame 5 missing")


def test_workbook_mistakes(tmp_path: Path) -> None:
    cas = write_cas_layout(tmp_path / "cas", _standins())
    wb = openpyxl.load_workbook(cas.annotations)
    wb.active["D2"] = "apex?"
    wb.save(cas.annotations)
    _expect_user_error(lambda: read_cas_annotations(cas.annotations), "CAS.xlsx", "row 2", "'apex?'")
    del wb["naming rule2"]
    wb.save(cas.annotations)
    _expect_user_error(lambda: read_cas_annotations(cas.annotations), "CAS.xlsx", "naming rule2")

    samm = write_samm_layout(tmp_path / "samm", _standins())
    wb = openpyxl.load_workbook(samm.annotations)
    wb.active["H1"] = "Kind"
    wb.save(samm.annotations)
    _expect_user_error(lambda: read_samm_annotations(samm.annotations), "SAMM.xlsx", "Type")
    not_xlsx = tmp_path / "bad.xlsx"
    not_xlsx.write_text("video,type\n")
    _expect_user_error(lambda: read_samm_annotations(not_xlsx), "bad.xlsx")


# ------------------------------------------------------------- real workbooks


def _by_video(intervals: list[Interval]) -> dict[str, list[Interval]]:
    grouped: dict[str, list[Interval]] = defaultdict(list)
    for iv in intervals:
        grouped[iv.video].append(iv)
    return grouped


def _explained(mine: Interval, ref: Interval, ref_onset: int, ref_apex: int) -> bool:
    """Differences from megc2020/*_truth.csv that follow the documented rules (`ref_apex`
    as written in the CSV: the reader drops an apex outside its interval)."""
    same_span = (mine.onset, mine.offset) == (ref.onset, ref.offset)
    onset_was_missing = ref_onset == 0 and mine.onset == ref_apex and mine.offset == ref.offset
    offset_raised_to_apex = ref.offset < ref_apex == mine.offset == mine.apex
    # a missing apex (-1 in SAMM) becomes the midpoint; the CSV has values outside the span
    apex_was_missing = same_span and mine.apex == (mine.onset + mine.offset) // 2
    return onset_was_missing or offset_raised_to_apex or apex_was_missing


def _raw_onsets(csv_path: Path) -> list[tuple[int, int]]:
    """(onset, apex) of each row as written (truth CSVs: video,type,onset,apex,offset)."""
    return [(int(line.split(",")[2]), int(line.split(",")[3])) for line in csv_path.read_text().splitlines()[1:]]


@needs_shared
@pytest.mark.parametrize(
    ("name", "reader", "k_me", "k_mae"),
    [("CAS", read_cas_annotations, 6, 18), ("SAMM", read_samm_annotations, 37, 174)],
)
def test_real_workbooks(name: str, reader: object, k_me: int, k_mae: int) -> None:
    truth = reader(SHARED / "annotations" / f"{name}.xlsx")  # type: ignore[operator]
    mine = [iv for ivs in truth.values() for iv in ivs]
    assert k_from_intervals([iv for iv in mine if iv.type == "ME"]) == k_me
    assert k_from_intervals([iv for iv in mine if iv.type == "MaE"]) == k_mae

    csv_path = SHARED / "megc2020" / f"{name}_truth.csv"
    ref = read_intervals(csv_path)  # replaces onset 0 by the apex
    raw_onset = dict(zip(map(id, ref), _raw_onsets(csv_path)))
    videos = set((SHARED / "megc2020" / f"{name}_videos.txt").read_text().split())
    assert set(truth) <= videos
    ref_by_video = _by_video(ref)
    assert sorted(truth) == sorted(ref_by_video)
    for video, ivs in truth.items():
        pairs = list(zip(ivs, ref_by_video[video], strict=True))
        differing = [(m, r) for m, r in pairs if _rows([m]) != _rows([r])]
        assert all(_explained(m, r, *raw_onset[id(r)]) for m, r in differing), differing


def test_hole_in_the_numbering_is_kept_for_replays(tmp_path: Path) -> None:
    """A frame missing from a dataset video: training refuses it (it labels frames by
    position), a replay keeps the file numbers, notices the hole and breaks there."""
    from realtime.replay import dataset_items

    cas = write_cas_layout(tmp_path / "cas", _standins())
    (cas.root / "s15" / "15_0101disgustingteeth" / "img5.jpg").unlink()
    _expect_user_error(lambda: load_cas(cas.root, cas.annotations), "15_0101", "frame 5 missing")
    record = next(r for r in load_cas(cas.root, cas.annotations, allow_gaps=True) if r.id == "s15_0101")
    assert record.numbers == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12]
    item = next(it for it in dataset_items("CAS", cas.root, cas.annotations) if it.name == "s15_0101")
    source = item.open()
    frames = list(source)
    assert source.name == "s15_0101"  # the truth's video id, not the folder name
    assert [f.index for f in frames] == record.numbers
    assert abs(int(frames[4].image.mean()) - (11 * 6) % 256) <= 3  # img6 is frame 6
    assert frames[4].t_stream == pytest.approx(5 / CAS_FPS)
    assert source.notices == ["15_0101disgustingteeth: 1 frame missing from the numbering (5); "
                              "the frame chain breaks at each hole"]

    samm = write_samm_layout(tmp_path / "samm", _standins())
    (samm.root / "015_1" / "015_1_0007.jpg").unlink()
    record = next(r for r in load_samm(samm.root, samm.annotations, allow_gaps=True) if r.id == "015_1")
    assert record.numbers == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12]


def test_hidden_files_are_not_frames(tmp_path: Path) -> None:
    """macOS copies leave `._name` resource forks beside each file and folder."""
    samm = write_samm_layout(tmp_path / "samm", _standins())
    video = samm.root / "015_1"
    (video / "._015_1_0001.jpg").write_bytes(b"\x00\x05\x16\x07AppleDouble")
    (samm.root / "._015_1").mkdir()  # a hidden folder named like a video
    records = load_samm(samm.root, samm.annotations)
    assert [r.id for r in records] == ["015_1", "015_3", "016_2"]
    assert [p.name for p in records[0].frames][:2] == ["015_1_0001.jpg", "015_1_0002.jpg"]
    cas = write_cas_layout(tmp_path / "cas", _standins())
    (cas.root / "s15" / "15_0101disgustingteeth" / "._img1.jpg").write_bytes(b"\x00\x05\x16\x07")
    (cas.root / ".Trashes").mkdir()
    assert len(next(r for r in load_cas(cas.root, cas.annotations) if r.id == "s15_0101").frames) == 12


def test_duplicate_and_zero_based_frame_numbers(tmp_path: Path) -> None:
    samm = write_samm_layout(tmp_path / "samm", _standins())
    video = samm.root / "015_3"
    shutil.copy(video / "015_3_0001.jpg", video / "015_3_01.jpg")
    _expect_user_error(lambda: load_samm(samm.root, samm.annotations), "015_3", "are both frame 1")
    (video / "015_3_01.jpg").unlink()
    for n in (1, 2, 3):  # renumbered 0..2
        (video / f"015_3_{n:04d}.jpg").rename(video / f"015_3_{n - 1:04d}.jpg.tmp")
    for p in video.glob("*.tmp"):
        p.rename(p.with_suffix(""))
    record = next(r for r in load_samm(samm.root, samm.annotations) if r.id == "015_3")
    assert record.numbers == [1, 2, 3] and record.frames[0].name == "015_3_0000.jpg"


@pytest.mark.parametrize("dataset", ["CAS", "SAMM"])
def test_folder_numbered_from_zero_keeps_truth_on_its_images(tmp_path: Path, dataset: str) -> None:
    """The workbook numbers the files: when a folder starts at file 0 and reads as frames
    1..N, an interval must stay on the files the workbook names (one frame later)."""
    if dataset == "CAS":
        layout = write_cas_layout(tmp_path / "cas", _standins())
        folder, name, load = next(p for p in layout.root.rglob("15_0101*") if p.is_dir()), "img{}.jpg", load_cas
        vid = "s15_0101"
    else:
        layout = write_samm_layout(tmp_path / "samm", _standins())
        folder, name, load, vid = layout.root / "015_1", "015_1_{:04d}.jpg", load_samm, "015_1"
    for n in range(1, 13):
        (folder / name.format(n)).rename(folder / name.format(n - 1))
    record = next(r for r in load(layout.root, layout.annotations) if r.id == vid)
    assert record.frames[0].name == name.format(0) and record.numbers[:2] == [1, 2]
    # The workbook's files 2..9 (apex 5) are frames 3..10 (apex 6): the same images.
    assert _rows(record.truth) == [("MaE", 3, 6, 10), ("ME", 11, 11, 12)]
    assert record.frames[3 - 1].name == name.format(2)


def _set_dimension(book: Path, ref: str) -> None:
    """Rewrite every sheet's stored `<dimension ref=...>`, as streaming writers leave it."""
    import re
    import zipfile

    parts = {}
    with zipfile.ZipFile(book) as z:
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                data = re.sub(rb'<dimension ref="[^"]*"', f'<dimension ref="{ref}"'.encode(), data)
            parts[info.filename] = data
    with zipfile.ZipFile(book, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in parts.items():
            z.writestr(name, data)


def test_workbook_quirks_of_real_files(tmp_path: Path) -> None:
    """Field review: a CAS workbook whose Subject cell is merged over its subject's rows
    refused to load ("subject number None"), one whose stored dimension is wrong (`A1`,
    streaming writers) gave NO truth without a word, and a SAMM workbook with a notes
    sheet first could not be read."""
    layout = write_cas_layout(tmp_path / "cas", _standins())
    expected = read_cas_annotations(layout.annotations)
    wb = openpyxl.load_workbook(layout.annotations)
    sheet = wb[[n for n in wb.sheetnames if not n.lower().startswith("naming rule")][0]]
    assert sheet["A2"].value == sheet["A3"].value == 1  # s15's two events
    sheet["A3"] = None
    sheet.insert_rows(4)  # a blank line before the next subject, which the merge runs over
    sheet.merge_cells("A2:A4")
    wb.save(layout.annotations)
    _set_dimension(layout.annotations, "A1")
    assert read_cas_annotations(layout.annotations) == expected

    samm = write_samm_layout(tmp_path / "samm", _standins())
    expected = read_samm_annotations(samm.annotations)
    wb = openpyxl.load_workbook(samm.annotations)
    notes = wb.create_sheet("About", 0)
    notes["A1"] = "SAMM long videos, coded by two FACS coders"
    wb.save(samm.annotations)
    assert read_samm_annotations(samm.annotations) == expected
