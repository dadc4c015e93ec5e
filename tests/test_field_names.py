"""Names and options that real folders bring: file names that are not UTF-8 (Latin-1 from
an old zip or a Windows share), ids that give one .eaf file name, a frame folder replayed as
`.`, and `--types` with a truth file of both types. Real replays through `lgnm-live`."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import unicodedata
from pathlib import Path

import cv2
import pytest
from pympi import Elan

from realtime.cli import main as live_main
from realtime.common.text import text_name
from realtime.eaf import unique_eaf_name
from tools.sample_media import write_face_clip, write_random_weights


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("names")
    path, _ = write_face_clip(folder, "clip", seconds=4.0, seed=5)
    return path, write_random_weights(folder, threshold=0.5)


def _run(args: list[str], weights: list[Path]) -> int:
    return live_main([*args, *[a for w in weights for a in ("--weights", str(w))], "--pub", "none", "--quiet"])


def _can_make_latin1_names(folder: Path) -> bool:
    try:
        probe = os.fsencode(folder) + b"/\xe9probe"
        open(probe, "wb").close()
        os.remove(probe)
        return True
    except OSError:
        return False


def test_text_name_keeps_utf8_and_escapes_other_bytes() -> None:
    assert text_name("café clip") == "café clip"
    assert text_name(os.fsdecode(b"caf\xe9")) == "caf\\xe9"


def test_eaf_names_never_collide() -> None:
    owners: dict[str, str] = {}
    first = unique_eaf_name("take 1", owners)
    second = unique_eaf_name("take_1", owners)
    third = unique_eaf_name("TAKE 1", owners)  # only case differs: one file on macOS and Windows
    assert first == "take_1.eaf"
    assert len({first.casefold(), second.casefold(), third.casefold()}) == 3
    assert second.startswith("take_1-") and second.endswith(".eaf")
    assert unique_eaf_name("take_1", owners) == second  # the same id keeps its name
    assert unique_eaf_name("take 1", owners) == first


def test_a_folder_with_odd_names_replays_every_video_with_its_own_outputs(clip, tmp_path: Path,
                                                                           capsys: pytest.CaptureFixture) -> None:
    """A Latin-1 name used to fail its stream with three tracebacks and end the run before
    the next video; `take 1` and `take_1` shared one .eaf."""
    src, weights = clip
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["take 1", "take_1", "zz_last"]
    for n in names:
        shutil.copy(src, folder / f"{n}.avi")
    if _can_make_latin1_names(folder):
        shutil.copy(src, os.fsencode(folder) + b"/caf\xe9.avi")
        names.append("caf\\xe9")
    out = tmp_path / "run"
    assert _run(["--replay", str(folder), "--out", str(out)], weights) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err
    runs = json.loads((out / "metrics.json").read_text())["performance"]["runs"]
    assert sorted(r["stream"] for r in runs) == sorted(names)
    assert all(r["status"] == "ok" and r["frames"] == 120 for r in runs)
    with open(out / "scores.csv", newline="", encoding="utf-8") as fh:
        assert {row["video"] for row in csv.DictReader(fh)} == set(names)
    eafs = sorted(p.name for p in (out / "eaf").iterdir())
    assert len(eafs) == len(names)
    assert "its .eaf is eaf/take_1-" in err
    # Each .eaf links its own video (the media URL names the file it was made from).
    linked = {Elan.Eaf(str(out / "eaf" / e)).get_linked_files()[0]["MEDIA_URL"].rsplit("/", 1)[1] for e in eafs}
    assert len(linked) == len(names)


def test_a_frame_folder_replayed_as_dot_is_named_after_the_folder(clip, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    src, weights = clip
    frames = tmp_path / "session_03"
    frames.mkdir()
    cap = cv2.VideoCapture(str(src))
    for i in range(1, 31):
        ok, img = cap.read()
        assert ok
        cv2.imwrite(str(frames / f"{i:04d}.png"), img)
    cap.release()
    out = tmp_path / "run"
    monkeypatch.chdir(frames)
    assert _run(["--replay", ".", "--fps", "30", "--out", str(out)], weights) == 0
    runs = json.loads((out / "metrics.json").read_text())["performance"]["runs"]
    assert [r["stream"] for r in runs] == ["session_03"]
    assert (out / "eaf" / "session_03.eaf").is_file()


def test_types_scores_only_the_types_spotted(clip, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src, weights = clip
    truth = src.with_name("clip_truth.csv")
    out = tmp_path / "run"
    assert _run(["--replay", str(src), "--truth", str(truth), "--types", "ME", "--out", str(out)],
                [w for w in weights if "_ME" in w.name]) == 0
    megc = json.loads((out / "metrics.json").read_text())["megc"]
    with open(truth, newline="") as fh:
        n_mae = sum(row["type"] == "MaE" for row in csv.DictReader(fh))
    assert n_mae > 0, "the clip needs MaE truth for this test"
    assert megc["MaE"]["n_truth"] == 0
    with open(out / "truth.csv", newline="") as fh:
        assert {row["type"] for row in csv.DictReader(fh)} <= {"ME"}
    # (truth after the last frame read is counted in its own note)
    assert f"{n_mae} truth interval(s) of MaE in the frames read, not spotted (--types ME), not scored" in \
        capsys.readouterr().err
    # the stream's .eaf holds the truth it is scored on, as truth.csv (it held MaE truth too)
    tiers = Elan.Eaf(str(out / "eaf" / "clip.eaf")).tiers
    assert not [t for t in tiers if t.startswith("truth") and "MaE" in t and tiers[t][0]], list(tiers)


def test_a_name_written_decomposed_matches_its_truth_written_composed(clip, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """macOS stores `café` decomposed (e + a combining accent); a CSV typed by hand has
    the composed é. The video counted as not replayed and its truth as missed."""
    src, weights = clip
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / (unicodedata.normalize("NFD", "café") + ".avi"))
    rows = list(csv.DictReader(open(src.with_name("clip_truth.csv"), newline="")))
    truth = tmp_path / "truth.csv"
    with open(truth, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "video": unicodedata.normalize("NFC", "café")} for r in rows)
    out = tmp_path / "run"
    assert _run(["--replay", str(folder), "--truth", str(truth), "--out", str(out)], weights) == 0
    err = capsys.readouterr().err
    assert "not replayed" not in err, err
    megc = json.loads((out / "metrics.json").read_text())["megc"]
    assert megc["MaE"]["n_truth"] + megc["ME"]["n_truth"] == len(rows)
    with open(out / "predictions.csv", newline="", encoding="utf-8") as fh:
        assert {row["video"] for row in csv.DictReader(fh)} <= {unicodedata.normalize("NFC", "café")}
    assert text_name(unicodedata.normalize("NFD", "café")) == "café"


def test_save_inputs_gives_every_stream_its_own_folder(clip, tmp_path: Path) -> None:
    """`take 1` and `take_1`, and two names in another script, wrote into one folder
    (`take_1`, `stream`), the second stream's PNGs over the first's."""
    src, weights = clip
    folder = tmp_path / "in"
    folder.mkdir()
    names = ["take 1", "take_1", "面接", "録画", "Clip", "clip"]
    for n in names:
        shutil.copy(src, folder / f"{n}.avi")
    out = tmp_path / "run"
    assert _run(["--replay", str(folder), "--max-frames", "40", "--save-inputs", "2", "--out", str(out)],
                weights) == 0
    made = sorted(p.name for p in (out / "inputs").iterdir())
    assert len(made) == 6 and {"take_1", "面接", "録画", "clip"} <= set(made), made
    assert len({m.casefold() for m in made}) == 6  # also apart on a case-insensitive disk
    from realtime.input_images import safe_name

    assert safe_name("CON").startswith("CON-") and safe_name("nul.x").startswith("nul.x-")  # Windows devices
    assert all(any((out / "inputs" / m).glob("*_input.png")) for m in made)


@pytest.mark.parametrize("named, hint", [
    ("clip.avi", "video ids are file stems without a suffix ('clip', not 'clip.avi')"),
    ("other", "the replayed ids are clip"),
])
def test_truth_naming_no_replayed_video_says_what_the_ids_are(clip, tmp_path: Path, named: str, hint: str,
                                                              capsys: pytest.CaptureFixture) -> None:
    """A truth CSV naming `clip.avi` (or another video) said only "none of its videos
    (clip.avi...) is replayed": not what the replayed ids are."""
    src, weights = clip
    truth = tmp_path / "truth.csv"
    truth.write_text(f"video,type,onset,apex,offset\n{named},MaE,10,20,30\n", encoding="utf-8")
    assert _run(["--replay", str(src), "--truth", str(truth)], weights) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --truth {truth}: none of its videos ({named}) is replayed; {hint}"


def test_a_prediction_with_onset_0_is_an_error_not_the_truth_convention(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    """The datasets' "onset 0 = not annotated, use the apex" narrowed a prediction 0-60
    (apex 50) to 50-60 and scored it a TP; for predictions it is a mistake to name."""
    from tools.evaluate import main as eval_main

    truth, pred = tmp_path / "t.csv", tmp_path / "p.csv"
    truth.write_text("video,type,onset,apex,offset\nw,MaE,50,55,60\nv,MaE,0,55,60\n", encoding="utf-8")
    pred.write_text("video,type,onset,offset,score,apex\nw,MaE,0,60,0.5,50\n", encoding="utf-8")
    assert eval_main(["--truth", str(truth), "--pred", str(pred)]) == 2
    assert capsys.readouterr().err == f"error: {pred}:2: onset 0 < 1 (frames are 1-based)\n"
    pred.write_text("video,type,onset,offset,score,apex\nw,MaE,50,60,0.5,55\nv,MaE,55,60,0.5,55\n", encoding="utf-8")
    assert eval_main(["--truth", str(truth), "--pred", str(pred), "--json"]) == 0  # truth: onset 0 -> the apex
    assert '"tp": 2' in capsys.readouterr().out


def test_decomposed_names_are_one_id_in_every_reader(tmp_path: Path) -> None:
    """NFC ids reached read_intervals and the replay first: lgnm-export-eaf then lost a
    macOS (NFD) name's recorded times ('frame rate unknown'), and an NFD media path's
    relative link was percent-encoded as if it were not UTF-8 (review)."""
    from realtime.eaf import EafDocument, build_eaf
    from tools.export_eaf import main as export_main

    nfd = unicodedata.normalize("NFD", "café")
    pred = tmp_path / "pred.csv"
    pred.write_text("video,type,onset,offset,score,apex,onset_s,offset_s\n"
                    f"{nfd},MaE,31,60,0.9,45,1.0,1.9667\n{nfd},MaE,91,120,0.8,100,3.0,3.9667\n", encoding="utf-8")
    assert export_main(["--pred", str(pred), "--out", str(tmp_path / "eaf")]) == 0
    assert len(list((tmp_path / "eaf").glob("*.eaf"))) == 1
    media = tmp_path / "media" / f"{nfd} clip.mp4"
    media.parent.mkdir()
    media.write_bytes(b"")
    eaf = build_eaf(EafDocument(unicodedata.normalize("NFC", "café"), [], None, media), tmp_path / "x" / "a.eaf")
    relative = eaf.get_linked_files()[0]["RELATIVE_MEDIA_URL"]
    assert "%" not in relative and relative.endswith(" clip.mp4"), relative


def test_control_characters_in_names_keep_every_message_one_line(clip, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """A newline in a file name split `error:` and log lines in two; a stream id holding
    rich markup (`--stream`-style text such as `cam[/x]`) raised a MarkupError in the
    console sink, which failed the stream."""
    from rich.console import Console

    from realtime.common.text import one_line
    from realtime.common.types import Interval, SpotEvent
    from realtime.sinks import ConsoleSink

    assert one_line("a\nb\rc\x1bd\te\x7f") == "a\\nb\\rc\\x1bd\te\\x7f"
    odd = "a\x85b\u2028c\x9bd\x1ce"  # what str.splitlines (and terminals) also break on
    assert len(one_line(odd).splitlines()) == 1 and one_line(odd) == "a\\x85b\\u2028c\\x9bd\\x1ce"
    src, weights = clip
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(src, folder / "new\nline.avi")
    (folder / "bad\nname.avi").write_bytes(b"")
    assert _run(["--replay", str(folder), "--out", str(tmp_path / "run"), "--max-frames", "30"], weights) == 2
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith(("error: ", "warning: ", "note: ")) for line in err), err
    assert any(line.startswith("error: stream bad\\nname: ") for line in err), err
    console = Console(record=True, width=200)
    event = SpotEvent(stream="cam[/x]\nB", type="MaE", onset_frame=10, apex_frame=12, offset_frame=20, onset_s=0.3,
                      offset_s=0.63, score=0.9, latency_ms=5.0)
    ConsoleSink(console).on_event(event, Interval("cam", "MaE", 10, 20, score=0.9))
    assert "cam[/x]\\nB  frames 10-20" in console.export_text()
    # the live dashboard and lgnm-sub's event rows show the same id as it is
    from realtime.common.types import StreamStatus
    from realtime.dashboard import live_view
    from realtime.sinks import TraceSink
    from realtime.subscriber import _event_row, _row_table

    trace = TraceSink()
    trace.status = StreamStatus("cam[/x]", 3, 30.0, 0, True, "cpu", "cpu", "up")
    console.print(live_view(trace, {}))
    assert "stream cam[/x]" in console.export_text()
    from realtime.events import EventMessage, decode, encode_event

    message = decode(encode_event(dataclasses.replace(event, stream="lab[/b]"), seq=1))
    assert isinstance(message, EventMessage)
    table = _row_table(header=False)
    table.add_row(*_event_row(message))
    console.print(table)
    assert "lab[/b]" in console.export_text()
