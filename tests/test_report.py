"""`lgnm-report` and `lgnm-live --report` on real replays: a folder of two synthetic face
clips (one with frames without a face) and a file that is not a video, with truth; and
a clip without truth whose weights spot nothing. The page is checked as text, as
figures (what is drawn where) and in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.image import imread

from calibration.megc import frame_iou, match_matrix
from engines.lgnmnet import LGNMNet
from engines.weights import WeightsMeta, save_weights
from realtime.cli import main as live_main
from realtime.common.types import FlowSettings, Interval
from realtime.intervals_csv import read_intervals, write_intervals
from realtime.report import main as report_main
from realtime.report import png_names, run_marks
from realtime.report_data import read_run
from realtime.report_plot import FrameAxis, plotted_types, video_figure

from media import write_face_clip, write_random_weights

BLANK = (60, 75)  # frames of b_gap without a face


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("report")
    videos = folder / "videos"
    videos.mkdir()
    _, truth_a = write_face_clip(videos, "a_clip", seconds=6.0, seed=11)
    _, truth_b = write_face_clip(videos, "b_gap", seconds=6.0, seed=12, blank=BLANK)
    (videos / "c_bad.avi").write_bytes(b"\x00" * 1000)  # not a video: its stream fails
    for name in ("a_clip", "b_gap"):
        (videos / f"{name}_truth.csv").rename(folder / f"{name}_truth.csv")  # not frames to replay
    write_intervals(folder / "truth.csv", truth_a + truth_b, truth=True)
    spotting = write_random_weights(folder, threshold=0.5)
    silent = write_silent_weights(folder / "silent")
    return {"folder": folder, "videos": videos, "truth": folder / "truth.csv", "weights": spotting,
            "silent": silent, "clip": videos / "a_clip.avi"}


def write_silent_weights(folder: Path) -> list[Path]:
    """ME and MaE weights whose P(expression) is ~0 for any input (a constant embedding on
    the no-expression class centre, the expression centre opposite): they spot nothing."""
    folder.mkdir()
    paths = []
    for type_, k in (("ME", 6), ("MaE", 18)):
        net = LGNMNet().eval()
        with torch.no_grad():
            net.fc.weight.zero_()
            net.fc.bias.copy_(net.head.weight[0])
            net.head.weight[1] = -net.head.weight[0]
        meta = WeightsMeta(type=type_, k=k, fps=30.0, k_seconds=k / 30.0, flow=FlowSettings(),
                           post={"k": k, "threshold": 0.5, "win": 9, "order": 2, "tiny": 0.3},
                           trained_on="silent (tests)")
        paths.append(folder / f"silent_{type_}.safetensors")
        save_weights(net, meta, paths[-1])
    return paths


def weight_args(paths: list[Path]) -> list[str]:
    return [a for w in paths for a in ("--weights", str(w))]


@pytest.fixture(scope="module")
def truth_run(media: dict) -> Path:
    """lgnm-live --report on the folder (3 streams, one failing) with truth."""
    out = media["folder"] / "run_truth"
    code = live_main(["--replay", str(media["videos"]), "--truth", str(media["truth"]), *weight_args(media["weights"]),
                      "--out", str(out), "--pub", "none", "--quiet", "--report"])
    assert code == 2  # c_bad.avi failed on its input; the others ran
    return out


@pytest.fixture(scope="module")
def plain_run(media: dict) -> dict:
    """lgnm-live --out on one clip without truth, weights that spot nothing; then the
    lgnm-report console command in its own process."""
    out = media["folder"] / "run_plain"
    assert live_main(["--replay", str(media["clip"]), *weight_args(media["silent"]), "--out", str(out),
                      "--pub", "none", "--quiet"]) == 0
    assert not (out / "report").exists()  # no --report, no page
    proc = subprocess.run([sys.executable, "-m", "realtime.report", str(out)], capture_output=True, text=True,
                          timeout=120)
    return {"out": out, "proc": proc}


def metrics_of(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def page_of(run: Path) -> str:
    return (run / "report" / "report.html").read_text(encoding="utf-8")


def sections(html: str) -> list[str]:
    return [unescape(v) for v in re.findall(r'<section class="video" id="[^"]+" data-video="([^"]*)"', html)]


def test_lgnm_report_is_a_console_script() -> None:
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("lgnm-report") == "realtime.report:main"


def test_live_report_writes_one_self_contained_page_and_a_png_per_video(truth_run: Path) -> None:
    html = page_of(truth_run)
    runs = metrics_of(truth_run)["performance"]["runs"]
    assert [r["stream"] for r in runs] == ["a_clip", "b_gap", "c_bad"]
    assert sections(html) == ["a_clip", "b_gap", "c_bad"]  # one section each, in run order
    # The index at the top links every section.
    index = html[html.index('id="index"'):html.index('<section')]
    assert re.findall(r'href="#([^"]+)"', index) == re.findall(r'<section class="video" id="([^"]+)"', html)
    # Self-contained: every image is an inline PNG, links stay in the page, no script or URL.
    srcs = re.findall(r'\ssrc="([^"]*)"', html)
    assert len(srcs) == 2 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert all(h.startswith("#") for h in re.findall(r'\shref="([^"]*)"', html))
    assert "<script" not in html and "http://" not in html and "https://" not in html
    # A PNG per video that read frames, beside the page, that decodes to an image.
    pngs = sorted(p.name for p in (truth_run / "report").glob("*.png"))
    assert pngs == ["a_clip.png", "b_gap.png"]
    for name in pngs:
        image = imread(truth_run / "report" / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 500
        assert np.ptp(image[..., :3]) > 0.5  # not a blank canvas


def test_a_failed_stream_shows_its_error_line(truth_run: Path) -> None:
    html = page_of(truth_run)
    failed = [r for r in metrics_of(truth_run)["performance"]["runs"] if r["status"] == "failed"]
    assert [r["stream"] for r in failed] == ["c_bad"]
    section = html[html.index('data-video="c_bad"'):]
    shown = re.search(r'<p class="error">stream failed: (.*?)</p>', section)
    assert shown and unescape(shown.group(1)) == failed[0]["error"]
    assert "Nothing to draw" in section


def test_marks_follow_the_megc_rule_and_add_up_to_metrics_json(truth_run: Path) -> None:
    run = read_run(truth_run)
    marks = run_marks(run)
    megc = metrics_of(truth_run)["megc"]
    n_truth = 0
    for t in ("MaE", "ME"):
        sums = dict.fromkeys(("tp", "fp", "fn", "n_pred", "n_truth"), 0)
        for video in run.videos:
            m = marks[video.name][t]
            for key in sums:
                sums[key] += getattr(m.score, key)
            # Each mark, recomputed pair by pair with the rule's IoU.
            assert m.truth_tp == [any(frame_iou(a, p) >= 0.5 for p in m.pred) for a in m.truth]
            assert m.pred_hit == [any(frame_iou(a, p) >= 0.5 for a in m.truth) for p in m.pred]
            assert sum(m.truth_tp) == m.score.tp
        assert sums == {k: megc[t][k] for k in sums}
        n_truth += sums["n_truth"]
    assert n_truth > 0  # the clips' truth was scored


def test_long_videos_are_drawn_in_rows() -> None:
    """A 148 s CAS(ME)^2 video: 4 rows of 37 s; an hour at 30 fps: 12 rows (the cap); the
    rows cover every frame once, in order."""
    from realtime.report_plot import row_spans

    for last, fps, n in ((4440, 30.0, 4), (108_000, 30.0, 12), (150, 30.0, 1), (7100, 200.0, 1)):
        rows = row_spans(last, fps)
        assert len(rows) == n and rows[0][0] == 1 and rows[-1][1] == last
        assert all(b + 1 == c for (_, b), (c, _) in zip(rows, rows[1:]))
    # a clip cut from a longer recording (frames 1001-1240): its rows start at its first
    # frame, not at frame 1 (88% of the figure was empty)
    assert row_spans(1240, 30.0, first=1001) == [(1001, 1240)]
    assert row_spans(5000, 30.0, first=1001)[0][0] == 1001 and row_spans(5000, 30.0, first=1001)[-1][1] == 5000


def test_a_video_longer_than_a_row_gets_an_axis_per_type_and_row(truth_run: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from realtime import report_plot

    monkeypatch.setattr(report_plot, "ROW_SECONDS", 2.0)  # the clips are a few seconds long
    run = read_run(truth_run)
    video = next(v for v in run.videos if v.name != "c_bad")
    fig = video_figure(video, run_marks(run)[video.name])
    types = plotted_types(video)
    rows = report_plot.row_spans(max([video.last_frame] + [iv.offset for iv in video.predictions + video.truth]),
                                 video.fps)
    assert len(rows) > 1 and len(fig.axes) >= len(types) * len(rows)
    main = [ax for ax in fig.axes if ax.get_ylabel()]  # the score axes (not the frame axes on top)
    assert [ax.get_ylabel() for ax in main] == [f"{t} score" for _ in rows for t in types]
    spans = [main[i * len(types)].get_xlim() for i in range(len(rows))]
    assert spans[0][0] == 0.0 and all(abs(a[1] - b[0]) < 1e-9 for a, b in zip(spans, spans[1:]))



def test_a_video_id_in_another_script_draws_without_warnings(truth_run: Path) -> None:
    """A Japanese file name: lgnm-report printed matplotlib's "Glyph ... missing from
    font(s)" UserWarning per glyph, with the source line, on stderr."""
    import dataclasses
    import warnings

    from realtime.report_plot import video_png

    run = read_run(truth_run)
    video = next(v for v in run.videos if v.name != "c_bad")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = video_png(dataclasses.replace(video, name="面接 録画"), run_marks(run)[video.name])
    assert png is not None and png.startswith(b"\x89PNG")

def test_scores_are_drawn_over_the_intervals_they_produce(truth_run: Path) -> None:
    """Each score of frame i is drawn at frame i + K//2 (seconds: (i + K//2 - 1) / fps),
    the frames the spotter gives its intervals; so inside every predicted interval the
    drawn smoothed curve reaches the threshold (at the interval's peak)."""
    run = read_run(truth_run)
    table = pd.read_csv(truth_run / "scores.csv")
    runs = {r["stream"]: r for r in metrics_of(truth_run)["performance"]["runs"]}
    checked = 0
    for video in run.videos:
        fig = video_figure(video, run_marks(run)[video.name])
        if video.name == "c_bad":
            assert fig is None
            continue
        fps = runs[video.name]["source_fps"]
        assert fps == 30.0
        for ax, t in zip(fig.axes, plotted_types(video)):
            k = runs[video.name]["models"][t]["k"]
            lines = {line.get_gid(): line for line in ax.get_lines() if line.get_gid()}
            x, y = (np.asarray(v, float) for v in lines["smoothed"].get_data())
            _, thr = (np.asarray(v, float) for v in lines["threshold"].get_data())
            rows = table[(table.video == video.name) & (table.type == t) & (table.face == 1)].sort_values("frame")
            keep = ~np.isnan(x)
            np.testing.assert_allclose(x[keep], (rows.frame.to_numpy() + k // 2 - 1) / fps)
            np.testing.assert_allclose(y[keep], rows.smoothed.to_numpy(), rtol=1e-6)
            for iv in (p for p in video.predictions if p.type == t):
                inside = (x >= (iv.onset - 1) / fps) & (x < iv.offset / fps)
                assert np.any(y[inside] >= thr[inside] - 1e-9), (video.name, iv)
                checked += 1
    assert checked > 0  # the spotting weights did spot something


def span_x(patch) -> tuple[float, float]:
    """x extent (data) of an axvspan: a Rectangle (matplotlib >= 3.9) or a Polygon before."""
    if hasattr(patch, "get_width"):
        return float(patch.get_x()), float(patch.get_x() + patch.get_width())
    xs = np.asarray(patch.get_xy())[:, 0]
    return float(xs.min()), float(xs.max())


def test_frames_without_a_face_and_the_chain_break_are_drawn(truth_run: Path) -> None:
    video = next(v for v in read_run(truth_run).videos if v.name == "b_gap")
    assert set(range(BLANK[0], BLANK[1] + 1)) <= set(video.no_face.tolist())
    fig = video_figure(video, run_marks(read_run(truth_run))["b_gap"])
    axis = FrameAxis(video.fps)
    for ax in fig.axes[: len(plotted_types(video))]:
        spans = [span_x(p) for p in ax.patches if p.get_gid() == "no_face"]
        assert any(a <= axis.x(BLANK[0]) + 1e-9 and b >= axis.x(BLANK[1] + 1) - 1e-9 for a, b in spans)
        breaks = [float(line.get_xdata()[0]) for line in ax.get_lines() if line.get_gid() == "chain_break"]
        assert breaks and min(breaks) >= axis.x(BLANK[1] + 1) - 1e-9  # the chain restarts after the blank


def test_a_run_without_truth_or_predictions(plain_run: dict) -> None:
    proc, out = plain_run["proc"], plain_run["out"]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "report.html" in proc.stderr
    assert metrics_of(out)["megc"] is None and read_intervals(out / "predictions.csv") == []
    html = page_of(out)
    assert 'id="no-truth"' in html and 'id="megc"' not in html
    assert sections(html) == ["a_clip"] and "No interval was spotted in this video." in html
    video = read_run(out).videos[0]
    assert run_marks(read_run(out)) == {"a_clip": None}
    fig = video_figure(video, None)
    gids = {c.get_gid() for ax in fig.axes for c in ax.collections}
    assert "truth" not in gids and "pred" not in gids  # nothing to mark, nothing spotted
    assert imread(out / "report" / "a_clip.png").shape[0] > 200


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


# Injected into a copy of the page: what the browser decoded and shows, as JSON in the DOM.
PROBE = """<pre id="probe"></pre><script>
window.addEventListener('load', () => {
  const imgs = [...document.images].map(i => ({w: i.naturalWidth, h: i.naturalHeight, ok: i.complete}));
  const sections = [...document.querySelectorAll('section.video')].map(s => ({
    video: s.dataset.video, shown: s.getBoundingClientRect().height > 0,
    error: (s.querySelector('.error') || {}).innerText || null}));
  const megc = [...document.querySelectorAll('#megc tbody tr')].map(r => [...r.cells].map(c => c.innerText));
  document.getElementById('probe').textContent = JSON.stringify({imgs, sections, megc});
});
</script>"""


def test_headless_browser_shows_sections_figures_and_the_megc_table(truth_run: Path, tmp_path: Path) -> None:
    browser = find_chromium()
    if browser is None:
        pytest.skip("chromium not found (apt-get install chromium; .ci/run installs it)")
    page = tmp_path / "probed.html"
    page.write_text(page_of(truth_run).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    proc = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1), proc.stderr[-2000:]
    shown = json.loads(unescape(found.group(1)))
    runs = metrics_of(truth_run)["performance"]["runs"]
    assert [s["video"] for s in shown["sections"]] == [r["stream"] for r in runs]
    assert all(s["shown"] for s in shown["sections"])
    assert {s["video"]: s["error"] for s in shown["sections"]}["c_bad"] == \
        f"stream failed: {next(r['error'] for r in runs if r['stream'] == 'c_bad')}"
    pngs = [imread(truth_run / "report" / f"{name}.png") for name in ("a_clip", "b_gap")]
    assert [(i["w"], i["h"]) for i in shown["imgs"]] == [(p.shape[1], p.shape[0]) for p in pngs]
    megc = metrics_of(truth_run)["megc"]
    want = [[name] + [f"{megc[name][k]:.4f}" if isinstance(megc[name][k], float) else str(megc[name][k])
                      for k in ("tp", "fp", "fn", "n_pred", "n_truth", "precision", "recall", "f1")]
            for name in ("MaE", "ME", "overall")]
    assert shown["megc"] == want


def corrupt(run: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    """A copy of a run folder with one file damaged; returns it and the file named."""
    bad = tmp_path / "bad_run"
    shutil.copytree(run, bad)
    if how == "no_metrics":
        (bad / "metrics.json").unlink()
        return bad, "metrics.json"
    if how == "metrics_not_json":
        (bad / "metrics.json").write_text('{"megc": null, "perf')
        return bad, "metrics.json"
    if how == "metrics_no_runs":
        (bad / "metrics.json").write_text(json.dumps({"megc": None, "performance": {"runs": 3}}))
        return bad, "metrics.json"
    if how == "scores_bad_number":
        lines = (bad / "scores.csv").read_text().splitlines()
        cells = lines[5].split(",")
        cells[3] = "high"
        lines[5] = ",".join(cells)
        (bad / "scores.csv").write_text("\n".join(lines) + "\n")
        return bad, "scores.csv:6"
    if how == "scores_no_column":
        table = pd.read_csv(bad / "scores.csv").drop(columns=["threshold"])
        table.to_csv(bad / "scores.csv", index=False)
        return bad, "scores.csv:1"
    if how == "predictions_binary":
        (bad / "predictions.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        return bad, "predictions.csv"
    if how == "no_truth_file":
        (bad / "truth.csv").unlink()
        return bad, "truth.csv"
    if how == "unknown_video":
        write_intervals(bad / "predictions.csv", [Interval("zz_other", "ME", 1, 5, 0.9)])
        return bad, "predictions.csv"
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["no_metrics", "metrics_not_json", "metrics_no_runs", "scores_bad_number",
                                 "scores_no_column", "predictions_binary", "no_truth_file", "unknown_video"])
def test_a_missing_or_garbled_file_is_one_error_line(truth_run: Path, tmp_path: Path, how: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    bad, named = corrupt(truth_run, tmp_path, how)
    shutil.rmtree(bad / "report")
    assert report_main([str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
    assert f"{bad}/{named}" in err, err
    assert not (bad / "report" / "report.html").exists()


def test_a_missing_run_folder_and_report_without_out(media: dict, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    assert report_main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(tmp_path / "nope") in err and err.count("\n") == 1
    assert live_main(["--replay", str(media["clip"]), "--pub", "none", "--quiet", "--report"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --report: needs --out") and err.count("\n") == 1


def test_report_out_option_and_png_names(truth_run: Path, tmp_path: Path) -> None:
    assert report_main([str(truth_run), "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["a_clip.png", "b_gap.png", "report.html"]
    names = png_names(["rtsp://cam/a b", "x", "X", "x", ""])
    assert len(set(n.lower() for n in names)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.png", n) for n in names)


def test_match_matrix_is_the_rule_count_matched_truth_counts() -> None:
    truth = [Interval("v", "ME", 10, 20), Interval("v", "ME", 40, 50)]
    pred = [Interval("v", "ME", 12, 21), Interval("v", "ME", 30, 41), Interval("v", "ME", 10, 19)]
    m = match_matrix(truth, pred)
    assert m.shape == (2, 3)
    assert m.tolist() == [[frame_iou(t, p) >= 0.5 for p in pred] for t in truth]
    assert match_matrix([], pred).shape == (0, 3) and match_matrix(truth, []).shape == (2, 0)


def test_extra_prediction_columns_are_ignored(truth_run: Path, tmp_path: Path) -> None:
    """predictions.csv is read by column name: columns in another order or added later
    (as apex and the seconds were) change nothing."""
    run = tmp_path / "run"
    shutil.copytree(truth_run, run)
    table = pd.read_csv(run / "predictions.csv")
    assert len(table) > 0 and {"apex", "onset_s", "offset_s"} <= set(table.columns)
    table = table[list(reversed(table.columns))]
    table.insert(2, "annotator_note", "checked")
    table.to_csv(run / "predictions.csv", index=False)
    assert report_main([str(run)]) == 0
    before, after = read_run(truth_run), read_run(run)
    assert [(iv.video, iv.type, iv.onset, iv.offset) for v in after.videos for iv in v.predictions] == \
        [(iv.video, iv.type, iv.onset, iv.offset) for v in before.videos for iv in v.predictions]
    assert sections(page_of(run)) == sections(page_of(truth_run))
