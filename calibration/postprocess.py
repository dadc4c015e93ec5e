"""Post-processing of a per-frame score sequence into spotted intervals (LGNMNet.md).

Steps: Savitzky-Golay smoothing -> threshold (fixed, or Moilanen mean + p*(max-mean))
-> peaks above threshold with distance >= K -> pairing (or, rule "runs", the runs above
the threshold) -> interval score (mean smoothed score inside) -> Gaussian soft-NMS ->
merge of overlapping intervals.

Index convention: `scores[i]` is P(expression) of the pair (frame first_frame+i,
frame first_frame+i+K). The motion of that pair is centred at frame + K//2, so index i
maps to frame `first_frame + i + shift` with `shift = K//2` by default
(`PostParams.shift`). Offline and online use the same mapping.

Interval rules (`PostParams.rule`, chosen per type by the grid search on labelled videos):

- "peaks" (the paper's): `half = floor(tiny*K + 0.5)` frames each side of a peak. Pairing
  is greedy left to right: peaks i < j pair when the span [p_i - half, p_j + half] holds
  at most 4K frames.
- "runs" (not in the paper): intervals follow the maximal runs of smoothed samples >=
  the threshold. Two consecutive runs separated by at most `gap = floor(run_gap*K + 0.5)`
  quiet samples pair into one interval (greedy left to right, two at most, as the paper
  pairs peaks: a K-frame pair sees motion while a face moves into an expression and
  again while it leaves it, and little while it holds the apex, so one expression often
  scores as two runs); `pad = floor(run_pad*K + 0.5)` samples are added at each end (a
  negative pad trims; an interval trimmed to nothing is dropped); intervals holding fewer
  than `min_run*K` samples >= the threshold are dropped; apex = highest smoothed sample
  inside, score = mean smoothed score from the first run's start to the last run's end.
  Why: the peak rule boxes 2*half+1 frames around a peak or a pair of peaks at most 4K
  apart, so an expression whose score is a plateau, or whose onset and offset are more
  than 4K apart, misses the IoU >= 0.5 rule; runs follow the score from the onset to the
  offset. Here `half = max(pad, 0)`.

Both rules then score, soft-NMS and merge the same way. Intervals are clipped to the
indices that have scores (the chunk, see below), then shifted to frames.

Streaming-equivalent structure: the smoothed sequence is cut into independent CHUNKS at
quiet runs of at least Q samples below the threshold; Q = quiet_gap(k, tiny) = 4K +
2*half + 2 for "peaks", Q = max(2*half + 2, gap + 1) for "runs" (`PostParams.quiet`). Across such a
run, peaks are more than Q > K apart (no distance suppression), span more than 4K (no
pairing) and their intervals (half each side) cannot overlap (no soft-NMS decay, no
merge); runs are ended by the first quiet sample, do not pair across more than `gap`
quiet samples, and their pads cannot meet across Q.
So processing chunks independently equals processing the whole sequence, except for one deliberate deviation: soft-NMS keeps at
most `keep` intervals PER CHUNK rather than per video (a per-video cap cannot be
decided causally by the online spotter). Each chunk carries `margin = half + 1`
below-threshold samples around its first/last active sample, so peak detection (needs
one lower neighbour) and interval scores (need half samples) see the same data as on the
whole sequence. A chunk that reaches L = `max_chunk` samples (default max(2 * (4K +
2*half + 2), 2Q), i.e. 2Q for "peaks"; the short Q of "runs" does not shorten it)
without a quiet run is cut (`ChunkSplitter._force_cut`): where the activity has already ended
(at least `margin` quiet samples at its tail) exactly where a quiet run would have closed
it, otherwise at the lowest smoothed sample of its second half (the valley between two
expressions on a face that keeps moving), and the rest continues as the next chunk.
This bounds the online emission delay for ANY score stream (an interval's chunk closes
at most L - 1 samples after the interval's offset), keeps memory bounded, and keeps the
soft-NMS cap per chunk from capping a long active stream (a chunk of L samples holds
at most ~L/K peaks; with "runs" and min_run 0, a score hovering at the threshold can make
more than `keep` short runs in one chunk, and the cap then keeps the best-scored ones).
Offline applies the identical rule, so offline and online agree exactly.
`ChunkSplitter` is the causal state machine; `split_chunks` takes a vectorised path where
no cut can happen and runs the splitter itself where one does (tested equal).

Invariants: every interval satisfies first_frame <= onset <= apex <= offset <= the last
frame covered (index n - 1 + shift), with a score in [0, 1] (clipped: smoothing can
overshoot); `Interval` refuses an onset < 1 or an apex outside its interval.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy.signal import find_peaks, savgol_filter

from realtime.common.types import ExprType, Interval, check_type

MAX_CHUNK_QUIETS = 2  # default max_chunk = 2 * (4K + 2*half + 2) samples (module docstring)
RULES = ("peaks", "runs")  # interval rules (module docstring)


@dataclass(frozen=True)
class PostParams:
    """Post-processing parameters of one expression type."""

    k: int
    tiny: float = 0.3
    p: float = 0.8
    win: int = 11
    order: int = 2
    threshold: float | None = None  # fixed threshold; None = Moilanen over the sequence
    nms_sigma: float = 0.5
    keep: int = 10  # per chunk (see module docstring)
    min_score: float = 0.1
    shift: int | None = None  # index -> frame shift; None = K // 2
    max_chunk: int | None = None  # forced cut length L; None = the default (module docstring)
    # ME only: drop ME intervals that overlap a spotted MaE interval (calibration.cross_type).
    drop_inside_mae: bool = False
    rule: str = "peaks"  # interval rule: "peaks" (paper) or "runs" (module docstring)
    run_pad: float = 0.0  # "runs": floor(run_pad*K + 0.5) samples added at each end (< 0 trims)
    min_run: float = 0.0  # "runs": intervals with fewer than min_run*K active samples are dropped
    run_gap: float = 0.0  # "runs": runs at most floor(run_gap*K + 0.5) quiet samples apart pair
    # "peaks" only (a deviation, fitted on labelled videos): a peak that pairs with no other
    # gives no interval. Its box of 2*tiny*K + 1 frames cannot match (IoU >= 0.5) an
    # expression longer than twice that, and on faces doing nothing such lone peaks are
    # most of the false intervals.
    drop_unpaired: bool = False
    # With a fixed `threshold`: the threshold in force is min(threshold, max(Moilanen, min_score)),
    # i.e. the calibrated value is a ceiling that the method's own relative threshold
    # lowers where a stream's scores run lower than the calibration's (see resolve_threshold).
    adaptive: bool = False

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.win < 1 or self.win % 2 == 0:
            raise ValueError(f"win must be odd and >= 1, got {self.win}")
        if not 0 <= self.order < self.win:
            raise ValueError(f"order must be in [0, win), got {self.order} for win {self.win}")
        if self.tiny < 0:
            raise ValueError(f"tiny must be >= 0, got {self.tiny}")
        if self.keep < 1 or self.nms_sigma <= 0:
            raise ValueError("keep must be >= 1 and nms_sigma > 0")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        if self.rule == "peaks" and (self.run_pad != 0 or self.min_run != 0 or self.run_gap != 0):
            raise ValueError("run_pad, min_run and run_gap apply to rule 'runs' only")
        if self.rule == "runs" and self.drop_unpaired:
            raise ValueError("drop_unpaired applies to rule 'peaks' only")
        if not all(math.isfinite(v) for v in (self.run_pad, self.min_run, self.run_gap)):
            raise ValueError("run_pad, min_run and run_gap must be finite")
        if self.min_run < 0 or self.run_gap < 0:
            raise ValueError(f"min_run and run_gap must be >= 0, got {self.min_run}, {self.run_gap}")
        if self.adaptive and self.threshold is None:
            raise ValueError("adaptive needs a fixed threshold to lower (threshold is null)")
        if self.max_chunk is not None and self.max_chunk < 2 * self.quiet:
            raise ValueError(f"max_chunk must be >= 2*Q = {2 * self.quiet}, got {self.max_chunk}")

    @property
    def pad(self) -> int:
        """"runs": samples added at each end of a run (negative: trimmed)."""
        return int(math.floor(self.run_pad * self.k + 0.5))

    @property
    def gap(self) -> int:
        """"runs": most quiet samples between two runs that pair."""
        return int(math.floor(self.run_gap * self.k + 0.5))

    @property
    def half(self) -> int:
        """Samples an interval reaches beyond the peak ("peaks") or run ("runs") it comes from."""
        return half_width(self.k, self.tiny) if self.rule == "peaks" else max(self.pad, 0)

    @property
    def frame_shift(self) -> int:
        return self.k // 2 if self.shift is None else self.shift

    @property
    def quiet(self) -> int:
        """Q: below-threshold samples that close a chunk (module docstring)."""
        return quiet_gap(self.k, self.tiny) if self.rule == "peaks" else max(2 * self.half + 2, self.gap + 1)

    @property
    def margin(self) -> int:
        return self.half + 1

    @property
    def chunk_limit(self) -> int:
        """L: the longest chunk (module docstring); never below 2Q."""
        default = max(MAX_CHUNK_QUIETS * (4 * self.k + 2 * self.half + 2), 2 * self.quiet)
        return default if self.max_chunk is None else self.max_chunk

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PostParams:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown post-processing parameters: {sorted(unknown)}")
        return cls(**d)

    def with_(self, **changes: object) -> PostParams:
        return replace(self, **changes)  # type: ignore[arg-type]


def odd_at_least(value: float, minimum: int) -> int:
    """A Savitzky-Golay window length: `value` rounded, at least `minimum`, made odd."""
    n = max(minimum, int(round(value)))
    return n if n % 2 else n + 1


def half_width(k: int, tiny: float) -> int:
    """Frames each side of a peak: tiny*K rounded half up (never banker's rounding)."""
    return int(math.floor(tiny * k + 0.5))


def quiet_gap(k: int, tiny: float) -> int:
    """Q: below-threshold run that makes chunks independent (4K pairing span + both
    intervals' half widths + 2, which also exceeds the peak distance K)."""
    return 4 * k + 2 * half_width(k, tiny) + 2


def effective_window(n: int, win: int, order: int) -> int:
    """Savitzky-Golay window for a sequence of n samples: `win`, or for n < win the
    largest odd length <= n that is > order; 0 means no smoothing is possible."""
    if n >= win:
        return win
    w = n if n % 2 == 1 else n - 1
    return w if w > order else 0


def smooth(scores: np.ndarray, win: int, order: int) -> np.ndarray:
    """Savitzky-Golay smoothing (mode 'interp': edges use a polynomial fitted to the
    first/last window). Sequences shorter than `win` use `effective_window`; when no
    window fits, the scores are returned unsmoothed (as float64)."""
    x = np.asarray(scores, dtype=np.float64)
    w = effective_window(len(x), win, order)
    if w == 0:
        return x.copy()
    return savgol_filter(x, w, order, mode="interp")


def moilanen_threshold(smoothed: np.ndarray, p: float) -> float:
    """Moilanen threshold: mean + p * (max - mean)."""
    mean = float(np.mean(smoothed))
    return mean + p * (float(np.max(smoothed)) - mean)


def resolve_threshold(smoothed: np.ndarray, params: PostParams) -> float:
    """The threshold of a whole segment offline: the fixed one when given, else Moilanen
    (mean + p (max - mean), LGNMNet.md) over the whole sequence. `adaptive`: the fixed one
    as a ceiling, min(threshold, max(Moilanen, min_score)); the live spotter's twin of this
    uses its rolling Moilanen (realtime.spotter), so the two agree only where the
    ceiling holds."""
    if params.threshold is None:
        return moilanen_threshold(smoothed, params.p)
    if params.adaptive and smoothed.size:
        return min(float(params.threshold), max(moilanen_threshold(smoothed, params.p), params.min_score))
    return float(params.threshold)


def find_spot_peaks(smoothed: np.ndarray, threshold: float, k: int) -> np.ndarray:
    """Indices of peaks with height >= threshold, at least K samples apart."""
    peaks, _ = find_peaks(smoothed, height=threshold, distance=max(k, 1))
    return peaks


def pair_peaks(peaks: np.ndarray, k: int, tiny: float, n_frames: int) -> list[tuple[int, int, int, int]]:
    """Greedy left-to-right pairing: peaks i < j pair when [p_i - half, p_j + half] holds
    at most 4K frames. Returns (start, end, left_peak, right_peak) index tuples, start/end
    clipped to [0, n_frames - 1]; a single peak has left_peak == right_peak."""
    half = half_width(k, tiny)
    out: list[tuple[int, int, int, int]] = []
    peak_list = [int(p) for p in np.sort(peaks)]
    i = 0
    while i < len(peak_list):
        left = peak_list[i]
        right = left
        if i + 1 < len(peak_list) and (peak_list[i + 1] + half) - (left - half) + 1 <= 4 * k:
            right = peak_list[i + 1]
            i += 2
        else:
            i += 1
        out.append((max(left - half, 0), min(right + half, n_frames - 1), left, right))
    return out


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    return inter / ((a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter)


def soft_nms(intervals: list[Interval], sigma: float, keep: int, min_score: float) -> list[Interval]:
    """Gaussian soft-NMS: take the best, decay the others by exp(-IoU^2 / sigma), repeat;
    at most `keep` survive and scores below `min_score` are dropped. Returns in
    selection order (best first)."""
    pool = [iv for iv in intervals if (iv.score or 0.0) >= min_score]
    kept: list[Interval] = []
    while pool and len(kept) < keep:
        best_i = max(range(len(pool)), key=lambda j: (pool[j].score, -pool[j].onset))
        best = pool.pop(best_i)
        kept.append(best)
        decayed = []
        for iv in pool:
            assert iv.score is not None  # soft-NMS runs on scored peak intervals only
            o = interval_iou((best.onset, best.offset), (iv.onset, iv.offset))
            score = float(iv.score) * math.exp(-(o * o) / sigma) if o > 0 else float(iv.score)
            if score >= min_score:
                decayed.append(replace(iv, score=score))
        pool = decayed
    return kept


def merge_overlapping(
    intervals: list[Interval], apex_of: Callable[[int, int], int] | None = None
) -> list[Interval]:
    """Merge intervals sharing at least one frame, left to right: onset = midpoint of the
    onsets (rounded down), offset = midpoint of the offsets (rounded up), score = max.

    The apex must stay inside the merged interval, which the higher-scored interval's
    apex need not do ([134,160] apex 136 and [150,190] merge to [142,175]): `apex_of(onset,
    offset)` gives it (process_chunk: the frame of the highest smoothed score inside);
    without it, the higher-scored interval's apex is clamped into the merged interval."""
    out: list[Interval] = []
    for iv in sorted(intervals, key=lambda x: (x.onset, x.offset)):
        if out and iv.onset <= out[-1].offset:
            cur = out[-1]
            best = cur if (cur.score or 0.0) >= (iv.score or 0.0) else iv
            onset = (cur.onset + iv.onset) // 2
            offset = -((-(cur.offset + iv.offset)) // 2)
            if apex_of is not None:
                apex: int | None = apex_of(onset, offset)
            else:
                apex = None if best.apex is None else min(max(best.apex, onset), offset)
            out[-1] = replace(cur, onset=onset, offset=offset, score=best.score, apex=apex)
        else:
            out.append(iv)
    return out


def process_chunk(
    smoothed_chunk: np.ndarray,
    start: int,
    threshold: float,
    params: PostParams,
    video: str,
    type: ExprType,
    first_frame: int = 1,
) -> list[Interval]:
    """Intervals of one chunk. `start` is the chunk's index in its segment; intervals are
    clipped to the chunk (which equals clipping to the video where the chunk touches an
    end, see module docstring) and mapped to frames with first_frame + index + shift."""
    check_type(type)
    s = np.asarray(smoothed_chunk, dtype=np.float64)
    offset = first_frame + start + params.frame_shift
    spans = (run_spans(s, threshold, params) if params.rule == "runs"
             else [(lo, hi, left if s[left] >= s[right] else right, lo, hi)
                   for lo, hi, left, right in pair_peaks(find_spot_peaks(s, threshold, params.k),
                                                         params.k, params.tiny, len(s))
                   if not (params.drop_unpaired and left == right)])
    candidates = []
    for lo, hi, apex, score_lo, score_hi in spans:
        # The smoothed curve of a probability can overshoot [0, 1] (Savitzky-Golay of order
        # >= 2 over a saturated run); an interval's score is a probability again.
        score = min(max(float(np.mean(s[score_lo : score_hi + 1])), 0.0), 1.0)
        candidates.append(
            Interval(video=video, type=type, onset=offset + lo, offset=offset + hi, score=score, apex=offset + apex)
        )
    kept = soft_nms(candidates, params.nms_sigma, params.keep, params.min_score)

    def apex_of(onset: int, end: int) -> int:
        lo, hi = onset - offset, end - offset
        return offset + lo + int(np.argmax(s[lo : hi + 1]))

    # Each interval's highest smoothed score, after merging (a merged interval's bounds
    # are midpoints, so its peak is read from the curve, not taken from either part).
    return [replace(iv, peak=float(np.max(s[iv.onset - offset : iv.offset - offset + 1])))
            for iv in merge_overlapping(kept, apex_of)]


def run_spans(s: np.ndarray, threshold: float, params: PostParams) -> list[tuple[int, int, int, int, int]]:
    """The "runs" rule on one chunk of smoothed samples `s` (shape (n,)): maximal runs of
    samples >= threshold, paired left to right when at most `params.gap` quiet samples
    apart; per interval a..b (first run's start to last run's end) holding at least
    `min_run*K` active samples, (lo, hi, apex, a, b) with lo..hi = a..b padded by
    `params.pad` each side (clipped to 0..n-1; an interval trimmed to nothing is dropped)
    and apex the highest sample in lo..hi (module docstring)."""
    # Run edges from the 0/1 steps of the active mask (scipy.ndimage.label does the same at
    # ~10x the cost per call; the grid search makes tens of thousands of calls).
    edges = np.flatnonzero(np.diff(np.concatenate(([0], (s >= threshold).view(np.int8), [0]))))
    runs = list(zip(edges[0::2].tolist(), (edges[1::2] - 1).tolist(), strict=True))
    min_len = math.ceil(params.min_run * params.k - 1e-9)
    out = []
    i = 0
    while i < len(runs):
        a, b = runs[i]
        active = b - a + 1
        if i + 1 < len(runs) and runs[i + 1][0] - b - 1 <= params.gap:
            b = runs[i + 1][1]
            active += runs[i + 1][1] - runs[i + 1][0] + 1
            i += 2
        else:
            i += 1
        lo, hi = max(a - params.pad, 0), min(b + params.pad, len(s) - 1)
        if active < min_len or lo > hi:
            continue
        out.append((lo, hi, lo + int(np.argmax(s[lo : hi + 1])), a, b))
    return out


def split_chunks(
    smoothed: np.ndarray, threshold: float, q: int, margin: int, max_len: int | None = None
) -> list[tuple[int, int]]:
    """Inclusive (start, end) index ranges of the chunks holding samples >= threshold,
    exactly as `ChunkSplitter` closes them online.

    Active samples separated by fewer than `q` quiet samples share a group; a group's
    chunk spans [first - margin, last + margin] (clipped). A group the splitter would
    force-cut (it stays open for `max_len` samples: its span plus the quiet wait, or the
    data's end) is handed to the splitter itself, so the cut rule has one implementation."""
    s = np.asarray(smoothed, dtype=np.float64)
    n = len(s)
    active = np.flatnonzero(s >= threshold)
    if active.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(active) - 1 >= q)
    firsts = active[np.concatenate(([0], breaks + 1))].tolist()
    lasts = active[np.concatenate((breaks, [active.size - 1]))].tolist()
    chunks: list[tuple[int, int]] = []
    floor = 0
    for first, last in zip(firsts, lasts, strict=True):
        start = max(first - margin, floor)
        open_until = min(last + q - 1, n - 1)  # the last step at which the chunk is open
        if max_len is None or open_until - start + 1 < max_len:
            chunks.append((start, min(last + margin, n - 1)))
        else:
            splitter = ChunkSplitter(q, margin, max_len, lambda i, j: s[i : j + 1])
            splitter.floor = floor
            for t in range(first, open_until + 1):
                chunks.extend(splitter.step(t, bool(s[t] >= threshold)))
            if splitter.start is not None:  # the data ended with the chunk open
                tail = splitter.finish(n)
                assert tail is not None
                chunks.append(tail)
        floor = chunks[-1][1] + 1
    return chunks


class ChunkSplitter:
    """Causal twin of `split_chunks`: feed final smoothed samples one by one; `step`
    returns the chunks (start, end) it closed (usually none), `finish(n)` closes the
    open one at the end of a segment of n samples.

    `values(i, j)` returns the smoothed samples i..j (inclusive) seen so far; it is read
    only to place a forced cut (module docstring)."""

    def __init__(self, q: int, margin: int, max_len: int | None = None,
                 values: Callable[[int, int], np.ndarray] | None = None) -> None:
        if max_len is not None and values is None:
            raise ValueError("a splitter with max_len needs values() to place its cuts")
        self.q = q
        self.margin = margin
        self.max_len = max_len
        self.values = values
        self.start: int | None = None  # open chunk's first index
        self.last = -1  # last active index of the open chunk
        self.floor = 0  # first index a new chunk may use
        self._active: deque[int] = deque()  # active indices of the open chunk

    def step(self, t: int, active: bool) -> list[tuple[int, int]]:
        if active:
            if self.start is None:
                self.start = max(t - self.margin, self.floor)
            self.last = t
            self._active.append(t)
        if self.start is None:
            return []
        if t - self.last >= self.q:
            return [self._close(self.last + self.margin)]
        if self.max_len is not None and t - self.start + 1 >= self.max_len:
            return self._force_cut(t)
        return []

    def finish(self, n: int) -> tuple[int, int] | None:
        """Close the open chunk at the end of a segment of n samples."""
        if self.start is None:
            return None
        return self._close(min(self.last + self.margin, n - 1))

    def _force_cut(self, t: int) -> list[tuple[int, int]]:
        """The open chunk reached max_len samples at step t: cut it (module docstring)."""
        assert self.start is not None and self.max_len is not None and self.values is not None
        if t - self.last >= self.margin:
            return [self._close(self.last + self.margin)]  # activity over: a quiet close
        lo = self.start + self.max_len // 2
        window = self.values(lo, t)
        cut = lo + len(window) - 1 - int(np.argmin(window[::-1]))  # the latest lowest sample
        closed = [self._close_at(cut)]
        while self._active and self._active[0] <= cut:
            self._active.popleft()
        if self._active:  # the rest of the activity continues as the next chunk
            self.start = max(self._active[0] - self.margin, self.floor)
            if t - self.last >= self.q:
                closed.append(self._close(self.last + self.margin))
        return closed

    def _close(self, end: int) -> tuple[int, int]:
        chunk = self._close_at(end)
        self._active.clear()
        return chunk

    def _close_at(self, end: int) -> tuple[int, int]:
        assert self.start is not None
        chunk = (self.start, end)
        self.start = None
        self.floor = end + 1
        return chunk


def postprocess_smoothed(
    smoothed: np.ndarray, threshold: float, params: PostParams, video: str, type: ExprType, first_frame: int = 1
) -> list[Interval]:
    """Chunk a smoothed sequence and process each chunk (reused by the grid search)."""
    out: list[Interval] = []
    for c0, c1 in split_chunks(smoothed, threshold, params.quiet, params.margin, params.chunk_limit):
        out.extend(process_chunk(smoothed[c0 : c1 + 1], c0, threshold, params, video, type, first_frame))
    return out


def postprocess(
    scores: np.ndarray, params: PostParams, video: str, type: ExprType, first_frame: int = 1
) -> list[Interval]:
    """Offline post-processing of one video segment's scores of one type."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        return []
    smoothed = smooth(scores, params.win, params.order)
    threshold = resolve_threshold(smoothed, params)
    return postprocess_smoothed(smoothed, threshold, params, video, type, first_frame)
