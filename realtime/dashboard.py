"""Terminal views with rich: the live dashboard, and the tables printed after a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rich.console import Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from calibration.postprocess import PostParams
from realtime.common.text import one_line
from realtime.common.types import ExprType
from realtime.sinks import TraceSink
from realtime.stats import RunStats

BARS = "▁▂▃▄▅▆▇█"  # a score of 0 still shows as the lowest bar


def sparkline(values: Iterable[float], width: int = 60) -> str:
    """Scores in [0, 1] as a line of block characters (most recent on the right)."""
    vals = list(values)[-width:]
    return "".join(BARS[min(len(BARS) - 1, max(0, int(round(v * (len(BARS) - 1)))))] for v in vals)


def threshold_label(params: PostParams) -> str:
    """How the spotter of one type thresholds, in a few words for the dashboard."""
    if params.threshold is None:
        return f"threshold rolling (>= {params.min_score:.2f})"
    if params.adaptive:
        return f"threshold {params.threshold:.2f}, lower where the stream's scores are (adaptive)"
    return f"threshold {params.threshold:.2f}"


def live_view(trace: TraceSink, thresholds: Mapping[ExprType, str]) -> Panel:
    """fps, latency, face present, both score traces (with `thresholds`: a label per type,
    see threshold_label), last events."""
    st = trace.status
    head = Table.grid(padding=(0, 2))
    for _ in range(6):
        head.add_column()
    face = "[green]face[/]" if st is not None and st.face else "[red]no face[/]"
    source = "[green]up[/]" if st is None or st.source == "up" else "[red]down[/]"
    head.add_row(
        f"stream [bold]{escape(one_line(st.stream)) if st else '-'}[/]", f"frame {st.frame if st else 0}",
        f"{st.fps if st else 0.0:.1f} fps", face, f"source {source}",
        f"dropped {st.dropped if st else 0}  backend {st.backend if st else '-'}/{st.flow if st else '-'}",
    )
    traces = Table.grid(padding=(0, 1))
    traces.add_column(width=4)
    traces.add_column()
    rows: tuple[tuple[ExprType, str], ...] = (("ME", "magenta"), ("MaE", "cyan"))
    for kind, colour in rows:
        thr = thresholds.get(kind)
        label = f"{kind}"
        traces.add_row(Text(label, style=f"bold {colour}"), Text(sparkline(trace.scores[kind]), style=colour))
        if thr:
            traces.add_row("", Text(thr, style="dim"))
    events = Table(show_edge=False, box=None, header_style="bold")
    for col in ("type", "frames", "seconds", "score", "latency"):
        events.add_column(col)
    for ev in list(trace.events)[::-1]:
        events.add_row(ev.type, f"{ev.onset_frame}-{ev.offset_frame}", f"{ev.onset_s:.2f}-{ev.offset_s:.2f}",
                       f"{ev.score:.2f}", f"{ev.latency_ms:.0f} ms")
    latency = st.extra.get("latency_ms") if st is not None else None
    lat = f"latency p50 {latency:.1f} ms" if isinstance(latency, (int, float)) else ""
    return Panel(Group(head, Text(lat, style="dim"), traces, events), title="lgnm-live", border_style="blue")


STAGE_ORDER = ("align", "frame_products", "pair_inputs", "model_ME", "model_MaE", "spotter", "latency")


def performance_table(runs: Sequence[RunStats], wall_s: float, unpaced: bool = True) -> Table:
    """frames, wall time, fps, per-stage ms (p50/p99), dropped frames; `unpaced`: a replay
    read as fast as it can (the read -> scores time then includes queueing)."""
    frames = sum(r.frames for r in runs)
    table = Table(title="performance")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("streams", str(len(runs)))
    table.add_row("frames", str(frames))
    table.add_row("wall time", f"{wall_s:.2f} s")
    table.add_row("throughput", f"{frames / wall_s:.1f} fps" if wall_s > 0 else "-")
    table.add_row("dropped frames", str(sum(r.dropped for r in runs)))
    table.add_row("chain breaks", str(sum(r.chain_breaks for r in runs)))
    # Of the streams that ran: a first stream that failed to open set none (the row was
    # " / "), and a run of 30 and 200 fps videos may use two flows.
    used = dict.fromkeys(f"{r.backend} / {r.flow}" for r in runs if r.backend)
    table.add_row("backend / flow", ", ".join(used) or "-")
    merged = merge_stage_summaries(runs)
    for stage in STAGE_ORDER:
        if stage in merged:
            p50, p99 = merged[stage]
            # Read -> both scores; in an unpaced replay the reader runs ahead, so this
            # includes the time a frame waits in the ring (use --realtime for camera-like).
            queue = "incl. queueing (unpaced replay: the reader runs ahead)" if unpaced else "incl. queueing"
            label = f"read -> scores, {queue}" if stage == "latency" else f"{stage} (per frame)"
            table.add_row(label, f"p50 {p50:.2f} ms  p99 {p99:.2f} ms")
    return table


def merge_stage_summaries(runs: Sequence[RunStats]) -> dict[str, tuple[float, float]]:
    """p50/p99 per stage over all runs' samples."""
    import numpy as np

    pooled: dict[str, list[float]] = {}
    for r in runs:
        for stage, values in r.times.samples.items():
            pooled.setdefault(stage, []).extend(values)
    return {s: (float(np.percentile(v, 50)), float(np.percentile(v, 99))) for s, v in pooled.items() if v}
