"""The report page of a run (`lgnm-report`): one self-contained HTML file, figures
embedded as base64 PNG data URIs, inline CSS, no script, nothing fetched.

Layout: the run's summary and the MEGC table (from metrics.json) or a line saying the
run had no truth, an index of the videos, then one section per video (status, error
line of a failed stream, facts, its own MEGC counts, notices, figure)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from html import escape

from realtime.report_data import RunFiles, VideoRun
from realtime.report_marks import TypeMarks
from realtime.report_plot import TYPE_ORDER

MEGC_COLUMNS = (("TP", "tp"), ("FP", "fp"), ("FN", "fn"), ("pred", "n_pred"), ("truth", "n_truth"),
                ("precision", "precision"), ("recall", "recall"), ("F1", "f1"))

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1500px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}.error{color:#b00020;font-weight:600}
.note{color:#555}section.video{border-top:2px solid #ddd;margin-top:2em;padding-top:.5em}
img{max-width:100%;height:auto;border:1px solid #eee}.failed{color:#b00020}
"""


@dataclass(frozen=True)
class VideoFigure:
    """A video's rendered figure: PNG bytes (None: nothing to draw) and the PNG file name
    written beside the page."""

    png: bytes | None
    file_name: str | None


def anchor(index: int, name: str) -> str:
    """A unique HTML id for the index-th video (names may hold any character)."""
    return f"v{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:60]


def render_page(run: RunFiles, marks: dict[str, dict[str, TypeMarks] | None], figures: dict[str, VideoFigure]) -> str:
    """The whole page as a string. `marks[video]` per type (None without truth);
    `figures[video]` the rendered figure."""
    perf = run.performance
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>lgnm-live report: {escape(run.folder.name or str(run.folder))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>lgnm-live run: {escape(str(run.folder))}</h1>",
        f"<p>{_count(perf.get('streams', len(run.videos)), 'stream')}, {perf.get('failed', 0)} failed, "
        f"{perf.get('frames', 0)} frames in {perf.get('wall_s', 0)} s ({perf.get('fps', 0)} fps processed).</p>",
        _megc_section(run),
        _notes(run.notes),
        _reading_guide(run.has_truth),
        _index(run, marks),
    ]
    for i, video in enumerate(run.videos):
        parts.append(_video_section(i, video, marks.get(video.name), figures[video.name]))
    parts.append("</body></html>\n")
    return "\n".join(p for p in parts if p)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _megc_section(run: RunFiles) -> str:
    if run.megc is None:
        return ('<h2>MEGC</h2><p id="no-truth">This run had no truth (no annotations were given), so there is no '
                "MEGC table and no TP / FP / FN marks; predictions are drawn as they were spotted.</p>")
    rows = [_megc_row(name, run.megc[name]) for name in ("MaE", "ME", "overall")]
    return ("<h2>MEGC (metrics.json)</h2>"
            '<table id="megc"><thead><tr><th>type</th>'
            + "".join(f"<th>{h}</th>" for h, _ in MEGC_COLUMNS) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"
            '<p class="note">A truth interval is a TP when a prediction of the same video and type overlaps it '
            "with IoU &ge; 0.5 (frames inclusive); FP = max(0, predictions &minus; TP) per video and type.</p>")


def _megc_row(name: str, entry: dict) -> str:
    cells = []
    for _, key in MEGC_COLUMNS:
        value = entry.get(key)
        cells.append(f"{value:.4f}" if isinstance(value, float) else escape(str(value)))
    return f'<tr data-type="{name}"><td>{name}</td>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _notes(notes: list[str]) -> str:
    if not notes:
        return ""
    return "<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"


def _reading_guide(has_truth: bool) -> str:
    marks = ("Truth (lower lane) is green when matched (TP) and red when missed (FN); a prediction (upper lane) "
             "is green when it matches a truth and orange when it matches none (FP). "
             if has_truth else "Predictions are drawn in blue (no truth to mark them against). ")
    return ("<h2>Reading the figures</h2><p>Per type: the raw score (light), its smoothed value (dark) and the "
            "threshold in force (dashed). The x axis is time in seconds, frame n at (n &minus; 1) / fps with the "
            "stream's frame rate (frame numbers on the top axis). The score of frame i is for the frame pair "
            "(i, i + K), whose motion is centred at i + K/2, and the spotter places its intervals at the score "
            "index + K//2: each score is therefore drawn at frame i + K//2, over the interval it produces. "
            + marks + "Grey bands are frames without a face; dotted lines are chain breaks (the first frame of a "
            "new chain of pairs). There is no score for the K frames before a break.</p>")


def _index(run: RunFiles, marks: dict[str, dict[str, TypeMarks] | None]) -> str:
    head = "<tr><th>video</th><th>status</th><th>frames</th><th>fps</th><th>predictions</th>"
    if run.has_truth:
        head += "<th>TP</th><th>FP</th><th>FN</th>"
    rows = []
    for i, v in enumerate(run.videos):
        status = '<span class="failed">failed</span>' if v.failed else "ok"
        row = (f'<tr><td><a href="#{anchor(i, v.name)}">{escape(v.name)}</a></td><td>{status}</td>'
               f"<td>{v.frames}</td><td>{_fps(v)}</td><td>{len(v.predictions)}</td>")
        video_marks = marks.get(v.name)
        if run.has_truth and video_marks is not None and v.frames:
            total = [sum(getattr(m.score, key) for m in video_marks.values()) for key in ("tp", "fp", "fn")]
            row += "".join(f"<td>{n}</td>" for n in total)
        elif run.has_truth:
            row += "<td>&ndash;</td>" * 3  # nothing was read, so nothing was scored
        rows.append(row + "</tr>")
    return f'<h2>Videos</h2><table id="index"><thead>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _fps(video: VideoRun) -> str:
    return f"{video.fps:g}" if video.fps else "unknown"


def _video_section(i: int, video: VideoRun, marks: dict[str, TypeMarks] | None, figure: VideoFigure) -> str:
    out = [f'<section class="video" id="{anchor(i, video.name)}" data-video="{escape(video.name)}">',
           f"<h2>{escape(video.name)}</h2>"]
    if video.failed:
        out.append(f'<p class="error">stream failed: {escape(video.error or "no error recorded")}</p>')
    ks = ", ".join(f"{t} K = {video.k[t]}" for t in TYPE_ORDER if t in video.k) or "no model ran"
    out.append(f"<p>{video.frames} frames read (last frame {video.last_frame}), {_fps(video)} fps, {ks}; "
               f"{_count(len(video.predictions), 'predicted interval')}"
               + ("" if video.truth is None else f", {_count(len(video.truth), 'truth interval')} scored")
               + f", {len(video.no_face)} frames without a face.</p>")
    if not video.predictions and video.frames:
        out.append('<p class="no-predictions">No interval was spotted in this video.</p>')
    if marks:
        out.append(_video_counts(marks))
    if video.notices:
        out.append("<ul>" + "".join(f'<li class="note">{escape(n)}</li>' for n in video.notices) + "</ul>")
    if figure.png is not None:
        data = base64.b64encode(figure.png).decode("ascii")
        out.append(f'<img alt="scores and intervals of {escape(video.name)}" src="data:image/png;base64,{data}">')
        out.append(f'<p class="note">Also written as {escape(figure.file_name or "")} beside this page.</p>')
    else:
        out.append('<p class="note">Nothing to draw: no frame of this stream was read.</p>')
    out.append("</section>")
    return "\n".join(out)


def _video_counts(marks: dict[str, TypeMarks]) -> str:
    rows = []
    for t in TYPE_ORDER:
        m = marks.get(t)
        if m is None:
            continue
        s = m.score
        rows.append(f'<tr data-type="{t}"><td>{t}</td><td>{s.tp}</td><td>{s.fp}</td><td>{s.fn}</td>'
                    f"<td>{s.n_pred}</td><td>{s.n_truth}</td></tr>")
    extra = [t for t in TYPE_ORDER if t in marks and marks[t].unmatched != marks[t].score.fp]
    note = ("" if not extra else '<p class="note">' + ", ".join(extra) + ": the FP count differs from the number "
            "of orange predictions: several predictions matched one truth (MEGC counts the extra ones as FP), or "
            "one prediction matched several truths.</p>")
    return ('<table class="video-megc"><thead><tr><th>type</th><th>TP</th><th>FP</th><th>FN</th><th>pred</th>'
            "<th>truth</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>" + note)
