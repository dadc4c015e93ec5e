"""ELAN exports: .eaf files written with pympi and read back with pympi hold exactly the
predictions (tiers, times, values) and truth; a real `lgnm-live --out` run writes one per
video timed by its events; `lgnm-export-eaf` makes the same from the run folder."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pympi import Elan

from realtime.common.types import Interval
from realtime.eaf import (
    EafDocument,
    TimedInterval,
    annotation_value,
    eaf_name,
    span_from_frames,
    span_from_times,
    timed_from_frames,
    write_eaf,
)
from realtime.intervals_csv import read_intervals

from media import write_face_clip, write_random_weights


def tier_data(path: Path) -> dict[str, list[tuple[int, int, str]]]:
    eaf = Elan.Eaf(str(path))
    return {tier: sorted(eaf.get_annotation_data_for_tier(tier)) for tier in eaf.get_tier_names()}


def test_frames_map_to_onset_start_and_offset_end_in_ms() -> None:
    assert span_from_frames(1, 3, 30.0) == (0, 100)  # frames 1..3 inclusive, 1-based
    assert span_from_frames(541, 572, 30.0) == (18000, 19067)
    assert span_from_frames(7, 7, 200.0) == (30, 35)  # one frame lasts one period
    assert span_from_times(18.0, 19.0333, 30.0) == (18000, 19067)  # an event's stream times
    with pytest.raises(ValueError):
        span_from_frames(1, 2, 0.0)


def test_write_then_read_back_with_pympi(tmp_path: Path) -> None:
    video = tmp_path / "media" / "clip.mp4"
    video.parent.mkdir()
    video.write_bytes(b"")
    pred = [Interval("clip", "MaE", 541, 572, 0.83, 546), Interval("clip", "ME", 100, 110, 0.61, 104),
            Interval("clip", "MaE", 10, 40, None, None)]
    # Truth that overlaps itself (the real workbooks hold such pairs): a second tier.
    truth = [Interval("clip", "MaE", 530, 580, apex=550), Interval("clip", "MaE", 560, 600, apex=570)]
    path = write_eaf(tmp_path / "eaf" / "clip.eaf",
                     EafDocument("clip", timed_from_frames(pred, 30.0), timed_from_frames(truth, 30.0), video))

    tiers = tier_data(path)
    assert set(tiers) == {"lgnm MaE", "lgnm ME", "truth MaE", "truth MaE 2", "truth ME"}
    assert tiers["lgnm MaE"] == [(300, 1333, "MaE frames=10-40"),
                                 (18000, 19067, "MaE score=0.830 apex=546 frames=541-572")]
    assert tiers["lgnm ME"] == [(3300, 3667, "ME score=0.610 apex=104 frames=100-110")]
    assert tiers["truth MaE"] == [(17633, 19333, "MaE apex=550 frames=530-580")]
    assert tiers["truth MaE 2"] == [(18633, 20000, "MaE apex=570 frames=560-600")]
    assert tiers["truth ME"] == []
    media = Elan.Eaf(str(path)).get_linked_files()
    assert media == [{"MEDIA_URL": video.resolve().as_uri(), "RELATIVE_MEDIA_URL": "../media/clip.mp4",
                      "MIME_TYPE": "video/mp4"}]
    assert not list(path.parent.glob("*.bak"))  # rewritten atomically, no pympi backup
    write_eaf(path, EafDocument("clip", [], None))
    assert tier_data(path) == {"lgnm MaE": [], "lgnm ME": []}  # no truth: no truth tiers


def test_file_keeps_the_eaf_document_structure(tmp_path: Path) -> None:
    """What ELAN's EAF 2.8 schema requires of these files (the XSD itself is not shipped
    with pympi; see test_validates_against_elan_xsd): element order, unique ids, every
    reference resolved, integer times."""
    pred = timed_from_frames([Interval("v", "ME", 5, 9, 0.7, 6), Interval("v", "MaE", 20, 50, 0.9, 30)], 25.0)
    path = write_eaf(tmp_path / "v.eaf", EafDocument("v", pred, timed_from_frames([], 25.0), None))
    root = ET.parse(path).getroot()
    assert root.tag == "ANNOTATION_DOCUMENT" and root.get("FORMAT") == "2.8" and root.get("VERSION") == "2.8"
    order = ["HEADER", "TIME_ORDER", "TIER", "LINGUISTIC_TYPE", "CONSTRAINT"]
    tags = [el.tag for el in root]
    assert tags == sorted(tags, key=order.index)
    slots = {ts.get("TIME_SLOT_ID"): int(ts.get("TIME_VALUE")) for ts in root.iter("TIME_SLOT")}
    assert len(slots) == len(list(root.iter("TIME_SLOT")))
    types = {lt.get("LINGUISTIC_TYPE_ID") for lt in root.iter("LINGUISTIC_TYPE")}
    assert all(t.get("LINGUISTIC_TYPE_REF") in types for t in root.iter("TIER"))
    ids = [a.get("ANNOTATION_ID") for a in root.iter("ALIGNABLE_ANNOTATION")]
    assert len(ids) == len(set(ids)) == 2
    for a in root.iter("ALIGNABLE_ANNOTATION"):
        assert slots[a.get("TIME_SLOT_REF1")] < slots[a.get("TIME_SLOT_REF2")]
    last = int(root.find("HEADER/PROPERTY[@NAME='lastUsedAnnotation']").text)
    assert last >= max(int(i[1:]) for i in ids)  # ELAN's next id does not reuse ours


def test_validates_against_elan_xsd(tmp_path: Path) -> None:
    """Against ELAN's own schema when one is on this machine (LGNM_EAF_XSD=EAFv2.8.xsd;
    nothing is downloaded) and xmlschema is installed."""
    xsd = os.environ.get("LGNM_EAF_XSD")
    if not xsd or not Path(xsd).is_file():
        pytest.skip("no ELAN EAF schema here (set LGNM_EAF_XSD to EAFv2.8.xsd to run this)")
    xmlschema = pytest.importorskip("xmlschema")
    pred = timed_from_frames([Interval("v", "ME", 5, 9, 0.7, 6)], 30.0)
    path = write_eaf(tmp_path / "v.eaf", EafDocument("v", pred, pred, tmp_path / "v.mp4"))
    xmlschema.XMLSchema(xsd).validate(str(path))


def test_names_are_safe_file_names() -> None:
    assert eaf_name("s15_0101") == "s15_0101.eaf"
    assert eaf_name("rtsp://host:8554/cam") == "rtsp___host_8554_cam.eaf"
    assert annotation_value(Interval("v", "ME", 3, 4)) == "ME frames=3-4"
    with pytest.raises(ValueError):
        TimedInterval(Interval("v", "ME", 3, 4), 10, 10)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from realtime.cli import main as live_main

    folder = tmp_path_factory.mktemp("eafrun")
    clip, _ = write_face_clip(folder, "eaf_clip", seconds=6.0, seed=11)
    weights = write_random_weights(folder, threshold=0.5)
    out = folder / "run"
    code = live_main(["--replay", str(clip), "--truth", str(folder / "eaf_clip_truth.csv"),
                      *[a for w in weights for a in ("--weights", str(w))], "--pub", "none",
                      "--journal", str(folder / "events.jsonl"), "--quiet", "--out", str(out)])
    assert code == 0
    return {"out": out, "clip": clip, "journal": folder / "events.jsonl"}


def test_a_run_writes_one_eaf_per_video_timed_by_its_events(run_folder: dict) -> None:
    out = run_folder["out"]
    events = [json.loads(line) for line in run_folder["journal"].read_text().splitlines()]
    assert events, "the run spotted nothing: the test needs events"
    tiers = tier_data(out / "eaf" / "eaf_clip.eaf")
    got = sorted(a for name, anns in tiers.items() if name.startswith("lgnm ") for a in anns)
    want = sorted((*span_from_times(e["onset_s"], e["offset_s"], 30.0),
                   f"{e['type']} score={e['score']:.3f} apex={e['apex_frame']} "
                   f"frames={e['onset_frame']}-{e['offset_frame']}") for e in events)
    assert got == want
    for e in events:  # each on its type's tier
        assert any(a[2].startswith(e["type"] + " ") for a in tiers[f"lgnm {e['type']}"])
    truth = read_intervals(out / "truth.csv")
    assert sorted(a for name, anns in tiers.items() if name.startswith("truth ") for a in anns) == \
        sorted((t.start_ms, t.end_ms, annotation_value(t.interval)) for t in timed_from_frames(truth, 30.0))
    media = Elan.Eaf(str(out / "eaf" / "eaf_clip.eaf")).get_linked_files()
    assert media[0]["MEDIA_URL"] == run_folder["clip"].resolve().as_uri()


def test_export_from_the_run_folder_matches_the_live_file(run_folder: dict, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    from tools.export_eaf import main as export_main

    out = run_folder["out"]
    assert export_main([str(out), "--out", str(tmp_path)]) == 0  # fps and media from metrics.json
    assert "wrote" in capsys.readouterr().out
    live, exported = tier_data(out / "eaf" / "eaf_clip.eaf"), tier_data(tmp_path / "eaf_clip.eaf")
    assert live.keys() == exported.keys()
    # predictions.csv carries each event's apex and frame times: the export is the live file
    assert exported == live
    assert Elan.Eaf(str(tmp_path / "eaf_clip.eaf")).get_linked_files()[0]["MEDIA_URL"] == \
        run_folder["clip"].resolve().as_uri()


def test_export_from_a_csv_needs_a_frame_rate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from realtime.intervals_csv import write_intervals
    from tools.export_eaf import main as export_main

    pred = tmp_path / "p.csv"
    write_intervals(pred, [Interval("a", "ME", 31, 45, 0.7), Interval("b", "MaE", 1, 60, 0.9)])
    assert export_main(["--pred", str(pred), "--out", str(tmp_path / "e")]) == 2
    assert "give --fps" in capsys.readouterr().err
    assert export_main(["--pred", str(pred), "--fps", "30", "--out", str(tmp_path / "e")]) == 0
    assert tier_data(tmp_path / "e" / "a.eaf") == {"lgnm MaE": [],
                                                   "lgnm ME": [(1000, 1500, "ME score=0.700 frames=31-45")]}
    assert tier_data(tmp_path / "e" / "b.eaf")["lgnm MaE"] == [(0, 2000, "MaE score=0.900 frames=1-60")]
    (tmp_path / "afile").write_text("x")  # --out at or under a file: one line, not a traceback
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert export_main(["--pred", str(pred), "--fps", "30", "--out", str(out)]) == 2
        assert f"--out {out}: " in capsys.readouterr().err


def test_export_skips_a_stream_that_failed_before_its_first_frame_and_stale_truth(
        run_folder: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A failed stream with no frames (no frame rate, no intervals) gets no file and stops
    nothing; a truth.csv the run was not scored on (metrics.json megc null: left there by
    an earlier run) gives no truth tiers."""
    import shutil

    from tools.export_eaf import main as export_main

    run = tmp_path / "run"
    shutil.copytree(run_folder["out"], run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["performance"]["runs"].append({"stream": "broken", "status": "failed", "frames": 0,
                                           "source_fps": None, "media": None})
    metrics["megc"] = None
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "truth.csv").write_text("video,type,onset,apex,offset\nzz,ME,1,2,3\n")
    assert export_main([str(run), "--out", str(tmp_path / "e")]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "e").iterdir()) == ["eaf_clip.eaf"]
    assert not any(name.startswith("truth ") for name in tier_data(tmp_path / "e" / "eaf_clip.eaf"))


def test_a_file_replayed_with_fps_links_no_media(run_folder: dict, tmp_path: Path) -> None:
    """--fps replaces the file's timestamps by (n - 1) / fps: ELAN playing the file on its
    own timestamps would be out of step with the annotations, so the file is not linked."""
    from realtime.cli import main as live_main

    weights = write_random_weights(tmp_path, threshold=0.5)
    out = tmp_path / "run"
    assert live_main(["--replay", str(run_folder["clip"]), "--fps", "25", "--max-frames", "40", "--pub", "none",
                      "--quiet", "--out", str(out), *[a for w in weights for a in ("--weights", str(w))]]) == 0
    assert json.loads((out / "metrics.json").read_text())["performance"]["runs"][0]["media"] is None
    assert Elan.Eaf(str(out / "eaf" / "eaf_clip.eaf")).get_linked_files() == []


def test_export_after_a_killed_run_keeps_its_files_and_needs_no_fps(run_folder: dict, tmp_path: Path) -> None:
    """After SIGKILL there is no metrics.json: the export said 'metrics.json records none;
    give --fps' although predictions.csv holds the times, and with --fps it overwrote the
    run's own .eaf (truth tiers, media link) with one that had neither."""
    import shutil

    from tools.export_eaf import main as export_main

    run = tmp_path / "run"
    shutil.copytree(run_folder["out"], run)
    (run / "metrics.json").unlink()  # killed: no summary
    (run / "truth.csv").unlink()
    finished = (run / "eaf" / "eaf_clip.eaf").read_bytes()
    with (run / "predictions.csv").open("a") as fh:  # the stream it was killed in (twice as long: 60 fps)
        fh.write("cut,MaE,30,60,0.8,45,0.4833,0.9833\n")
    assert export_main([str(run)]) == 0
    assert (run / "eaf" / "eaf_clip.eaf").read_bytes() == finished  # kept, with its truth tiers
    assert tier_data(run / "eaf" / "cut.eaf")["lgnm MaE"] == [(483, 1000, "MaE score=0.800 apex=45 frames=30-60")]


def test_export_warns_about_inputs_that_would_export_wrongly(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """An --fps that predictions.csv's own times contradict, truth and predictions with no
    video id in common (or a suffix look-alike), and an export with nothing to write each
    get a line; the files are still written as asked."""
    from realtime.intervals_csv import write_intervals
    from tools.export_eaf import main as export_main

    pred = tmp_path / "p.csv"  # as lgnm-live writes it: times at 30 fps
    pred.write_text("video,type,onset,offset,score,apex,onset_s,offset_s\n"
                    "clip,MaE,84,123,0.9,100,2.7667,4.0667\n", encoding="utf-8")
    assert export_main(["--pred", str(pred), "--fps", "25", "--out", str(tmp_path / "e25")]) == 0
    err = capsys.readouterr().err
    assert "warning: --fps 25: " in err and "imply 30 fps" in err
    assert export_main(["--pred", str(pred), "--fps", "30", "--out", str(tmp_path / "e30")]) == 0
    assert capsys.readouterr().err == ""
    truth = tmp_path / "t.csv"
    write_intervals(truth, [Interval("clip.mp4", "MaE", 80, 120, apex=100)], truth=True)
    assert export_main(["--pred", str(pred), "--truth", str(truth), "--fps", "30", "--out", str(tmp_path / "et")]) == 0
    err = capsys.readouterr().err
    assert "share no video id" in err and "'clip.mp4' and 'clip'" in err
    assert {p.name for p in (tmp_path / "et").iterdir()} == {"clip.eaf", "clip.mp4.eaf"}
    empty = tmp_path / "empty.csv"
    empty.write_text("video,type,onset,offset,score\n", encoding="utf-8")
    assert export_main(["--pred", str(empty), "--fps", "30", "--out", str(tmp_path / "e0")]) == 0
    assert capsys.readouterr().err.startswith(f"note: nothing to export: {empty} holds no predictions")
    killed = tmp_path / "killed"  # a killed run (no metrics.json) whose .eaf files are all kept
    (killed / "eaf").mkdir(parents=True)
    (killed / "predictions.csv").write_bytes(pred.read_bytes())
    assert export_main([str(killed), "--fps", "30"]) == 0 and capsys.readouterr().err == ""
    assert export_main([str(killed), "--fps", "30"]) == 0 and "nothing to export" not in capsys.readouterr().err
