"""Interval CSV reading, validation errors and writing."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.common.errors import UserError
from realtime.common.types import Interval
from realtime.intervals_csv import IntervalCsvWriter, read_intervals, write_intervals


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.csv"
    path.write_text(text)
    return path


def test_roundtrip_predictions_and_truth(tmp_path: Path) -> None:
    items = [Interval("s15_0401", "MaE", 3, 9, score=0.25), Interval("a b", "ME", 1, 1, score=None)]
    write_intervals(tmp_path / "p.csv", items)
    assert read_intervals(tmp_path / "p.csv") == items
    truth = [Interval("v", "ME", 3, 9, apex=5)]
    write_intervals(tmp_path / "t.csv", truth, truth=True)
    assert (tmp_path / "t.csv").read_text().splitlines()[0] == "video,type,onset,apex,offset"
    assert read_intervals(tmp_path / "t.csv") == truth


def test_columns_in_any_order_and_integral_floats(tmp_path: Path) -> None:
    path = _write(tmp_path, "offset,onset,type,video\n12.0,10,ME,v\n")
    assert read_intervals(path) == [Interval("v", "ME", 10, 12)]


def test_truth_onset_zero_uses_apex(tmp_path: Path) -> None:
    path = _write(tmp_path, "video,type,onset,apex,offset\nv,MaE,0,40,50\n")
    assert read_intervals(path)[0].onset == 40


def test_truth_offset_zero_uses_apex_as_the_workbooks_do(tmp_path: Path) -> None:
    """A CAS workbook row (offset 0: not annotated) saved as CSV reads as the workbook
    reader reads it; in a prediction file offset 0 stays an error."""
    path = _write(tmp_path, "video,type,onset,apex,offset\nv,MaE,81,92,0\n")
    assert read_intervals(path) == [Interval("v", "MaE", 81, 92, apex=92)]
    with pytest.raises(UserError, match=":2: offset 0 < onset 81"):
        read_intervals(path, truth=False)
    with pytest.raises(UserError, match=":2: offset 0 < onset 81"):  # no apex to stand in
        read_intervals(_write(tmp_path, "video,type,onset,offset\nv,MaE,81,0\n"))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("video,type,onset\nv,ME,1\n", ":1: missing column(s) offset"),
        ("video,type,onset,offset\nv,ME,1,2\nv,XX,1,2\n", ":3: type 'XX'"),
        ("video,type,onset,offset\nv,ME,1.5,2\n", ":2: onset '1.5' is not an integer"),
        ("video,type,onset,offset\nv,ME,a,2\n", ":2: onset 'a'"),
        ("video,type,onset,offset\nv,ME,5,4\n", ":2: offset 4 < onset 5"),
        ("video,type,onset,offset\nv,ME,0,4\n", ":2: onset 0 < 1"),
        ("video,type,onset,offset,score\nv,ME,1,4,x\n", ":2: score 'x'"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as err:
        read_intervals(path)
    assert str(err.value).startswith(str(path))
    assert needle in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such file"):
        read_intervals(tmp_path / "absent.csv")
    with pytest.raises(UserError, match="a folder, not a CSV file"):
        read_intervals(tmp_path)


@pytest.mark.parametrize("text", [
    "video;type;onset;offset\nv;ME;10;12\n",  # a decimal-comma locale's spreadsheet "CSV"
    "video\ttype\tonset\toffset\nv\tME\t10\t12\n",  # a tab-separated export
    "Video,Type,Onset,Offset\nv,ME,10,12\n",  # capitalised column names
])
def test_semicolons_tabs_and_capitalised_headers_read_the_same(tmp_path: Path, text: str) -> None:
    assert read_intervals(_write(tmp_path, text)) == [Interval("v", "ME", 10, 12)]


def test_a_header_without_the_columns_names_what_it_found(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"missing column\(s\) onset, offset \(found: video, type, start, end\)"):
        read_intervals(_write(tmp_path, "video,type,start,end\nv,ME,1,2\n"))


def test_streaming_writer_rows_are_readable_before_close(tmp_path: Path) -> None:
    path = tmp_path / "live" / "pred.csv"
    writer = IntervalCsvWriter(path)
    assert read_intervals(path) == []
    writer.write(Interval("cam", "ME", 5, 9, score=0.5, apex=7), times=(0.1333, 0.2667))
    assert read_intervals(path) == [Interval("cam", "ME", 5, 9, score=0.5, apex=7)]  # predictions keep the apex
    header, row = path.read_text().splitlines()
    assert header == "video,type,onset,offset,score,apex,onset_s,offset_s"
    assert row == "cam,ME,5,9,0.5,7,0.1333,0.2667"
    writer.write(Interval("cam", "MaE", 20, 40, score=0.75))
    assert len(read_intervals(path)) == 2 and writer.count == 2
    writer.close()
    with pytest.raises(ValueError):
        writer.write(Interval("cam", "ME", 1, 2))


def test_truth_apex_outside_its_interval_is_dropped(tmp_path: Path) -> None:
    """The MEGC2020 truth files hold rows such as `s27_0101,MaE,1221,1230,1224` (apex
    after the offset) and a negative apex; MEGC uses onset/offset only, and an interval's
    apex must lie inside it."""
    path = tmp_path / "t.csv"
    path.write_text("video,type,onset,apex,offset\ns27_0101,MaE,1221,1230,1224\n"
                    "032_3,ME,1896,-1069,1970\nv,ME,10,12,20\n")
    rows = read_intervals(path)
    assert [(r.onset, r.apex, r.offset) for r in rows] == [(1221, None, 1224), (1896, None, 1970), (10, 12, 20)]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_whole_file_outputs_and_weights_get_the_mode_of_any_new_file(tmp_path: Path, umask: int) -> None:
    """Field trial: truth.csv, the ELAN files and the MEGC submission files were written
    0600 (tempfile.mkstemp), and weights files too (safetensors' save_file), while
    predictions.csv was 0644: other users and a web server could not read them. Every
    whole-file writer now follows the umask, as open() does."""
    import os

    from engines.weights import load_weights, save_weights
    from realtime.eaf import EafDocument, write_eaf
    from realtime.intervals_csv import write_csv_atomic

    previous = os.umask(umask)
    try:
        write_intervals(tmp_path / "truth.csv", [Interval("v", "MaE", 3, 9, apex=5)], truth=True)
        write_csv_atomic(tmp_path / "cas_pred.csv", ["vid", "pred_onset"], [["v", "3"]])
        write_eaf(tmp_path / "eaf" / "v.eaf", EafDocument("v", []))
        with IntervalCsvWriter(tmp_path / "predictions.csv") as writer:
            writer.write(Interval("v", "ME", 1, 4))
        weights = Path(__file__).resolve().parents[1] / "engines" / "weights" / "demo_ME.safetensors"
        net, meta = load_weights(weights)
        save_weights(net, meta, tmp_path / "w.safetensors")  # safetensors' own writer: 0600
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    for name in ("truth.csv", "cas_pred.csv", "eaf/v.eaf", "predictions.csv", "w.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cas_pred.csv", "eaf", "predictions.csv", "truth.csv",
                                                          "w.safetensors"]
    assert load_weights(tmp_path / "w.safetensors")[1] == meta
    assert read_intervals(tmp_path / "truth.csv")[0].offset == 9


def test_a_workbook_or_utf16_export_given_as_a_csv(tmp_path: Path) -> None:
    """--truth t.xlsx said only 'not UTF-8 text (byte 0xf4)'; Excel's 'Unicode text'
    export (UTF-16 with a BOM) is a readable truth file."""
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["video", "type", "onset", "apex", "offset"])
    book.save(tmp_path / "t.xlsx")
    workbook = r"t.xlsx: a workbook, not a CSV file: save it as CSV .*lgnm-live --replay CAS\|SAMM --annotations FILE"
    with pytest.raises(UserError, match=workbook):
        read_intervals(tmp_path / "t.xlsx")
    (tmp_path / "t16.csv").write_bytes("video,type,onset,apex,offset\r\nclip,MaE,10,15,20\r\n".encode("utf-16"))
    assert read_intervals(tmp_path / "t16.csv") == [Interval("clip", "MaE", 10, 20, None, 15)]
