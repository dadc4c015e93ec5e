"""The Python API (realtime/api.py), including the README's example run as written: it
yields exactly the intervals `lgnm-live` writes for the same clip."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.api import SpotWarning, open_input, spot
from realtime.cli import main as live_main
from realtime.common.errors import UserError
from realtime.common.types import ScoreSample, SpotEvent
from realtime.intervals_csv import read_intervals
from realtime.sources import FrameFolderSource, VideoFileSource

from media import write_face_clip

README = Path(__file__).parents[1] / "README.md"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _ = write_face_clip(tmp_path_factory.mktemp("api"), "api_clip", seconds=8.0, seed=10)
    return path


def readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_example_prints_what_lgnm_live_writes(clip: Path, tmp_path: Path) -> None:
    code = readme_example().replace('"interview.mp4"', repr(str(clip)))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {})
    lines = [ln.split() for ln in printed.getvalue().splitlines()]
    assert live_main(["--replay", str(clip), "--pub", "none", "--quiet", "--out", str(tmp_path / "o")]) == 0
    written = read_intervals(tmp_path / "o" / "predictions.csv")
    assert lines and [(t, int(on), int(off)) for t, on, _, off, _ in lines] == \
        [(iv.type, iv.onset, iv.offset) for iv in written]


def test_frames_in_memory_scores_and_early_close(clip: Path) -> None:
    frames = [raw.image for raw in VideoFileSource(clip)]
    from_file = [e for e in spot(clip) if isinstance(e, SpotEvent)]
    from_memory = [e for e in spot(frames, fps=30.0)]
    assert [(e.type, e.onset_frame, e.offset_frame) for e in from_memory] == \
        [(e.type, e.onset_frame, e.offset_frame) for e in from_file]
    items = spot(clip, scores=True)
    first = [next(items) for _ in range(20)]
    items.close()  # stops the run; must not hang
    assert all(isinstance(s, ScoreSample) for s in first) and first[0].frame == 1
    grey = [f[..., 1] for f in frames[:60]]
    assert all(isinstance(e, SpotEvent) for e in spot(grey, fps=30.0))


def test_bad_input_is_a_user_error(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="frame rate"):
        next(spot([np.zeros((48, 64, 3), np.uint8)]))
    with pytest.raises(UserError, match="no such video file"):
        next(spot(tmp_path / "nope.mp4"))
    with pytest.raises(UserError, match="types"):
        next(spot(clip, types=("XE",)))
    videos = tmp_path / "recordings"
    videos.mkdir()
    (videos / "a.mp4").write_bytes(clip.read_bytes())
    (videos / "b.MOV").write_bytes(b"")
    for fps in (None, 30.0):  # it said "a frame folder needs fps", then read no frame
        with pytest.raises(UserError, match=r"recordings: a folder of videos \(a.mp4, b.MOV\)"):
            next(spot(videos, fps=fps))
    frames = tmp_path / "frames"  # a frame folder with a preview video beside its frames
    frames.mkdir()
    for i, raw in zip(range(1, 4), VideoFileSource(clip)):
        cv2.imwrite(str(frames / f"img{i}.png"), raw.image)
    (frames / "preview.mp4").write_bytes(clip.read_bytes())
    assert isinstance(open_input(frames, 30.0), FrameFolderSource)


@pytest.mark.parametrize("fps", [float("inf"), float("nan"), 0.5, 1e6])
def test_frames_in_memory_at_an_impossible_rate_are_a_user_error(fps: float) -> None:
    # inf crashed with OverflowError; 0.5 and 1e6 ran with K rounded to nothing useful.
    with pytest.raises(UserError, match="fps: frame rate must be from 1 to 1000 fps"):
        next(spot([np.zeros((48, 64, 3), np.uint8)] * 3, fps=fps))


def test_spot_keeps_mediapipe_notices_off_stderr(clip: Path) -> None:
    """A script calling spot() sees none of mediapipe's native start-up lines (which read
    like errors), and its own stderr lines still arrive, in order."""
    import subprocess
    import sys

    from realtime.native_log import NOISE

    code = ("import sys\nfrom realtime.api import spot\n"
            "print('before', file=sys.stderr, flush=True)\n"
            f"for e in spot({str(clip)!r}):\n    print('event', file=sys.stderr, flush=True)\n"
            "print('after', file=sys.stderr, flush=True)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=Path(__file__).parents[1],
                         timeout=300)
    assert run.returncode == 0, run.stderr.decode()[-2000:]
    lines = run.stderr.splitlines()
    assert not [ln for ln in lines if NOISE.match(ln)], lines[:5]
    assert lines[0] == b"before" and lines[-1] == b"after"


def test_spot_never_holds_stderr_across_a_yield(clip: Path) -> None:
    """Between items the caller's stderr is its own: a progress line without a newline
    is not held in the filter's pipe, and a traceback while the generator is still open
    (the program ends in the middle of the loop) reaches the terminal."""
    import subprocess
    import sys

    code = ("import os, sys\nfrom realtime.api import spot\nmine = os.fstat(2).st_ino\n"
            f"g = spot({str(clip)!r}, scores=True)\nnext(g)\n"
            "print('own' if os.fstat(2).st_ino == mine else 'filtered', flush=True)\n"
            "sys.stderr.write('\\rprogress 1'); sys.stderr.flush()\n"
            "raise RuntimeError('mine')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=Path(__file__).parents[1],
                         timeout=300)
    assert run.stdout.decode().strip() == "own"
    assert b"\rprogress 1" in run.stderr and b"RuntimeError: mine" in run.stderr, run.stderr[-500:]


def test_stderr_filters_overlapping_in_any_order_restore_fd2() -> None:
    """Two filtered blocks ended out of order (two spot() generators, two threads): fd 2
    is filtered while either is open and is the original descriptor after both."""
    import os
    import stat

    from realtime.native_log import filtered_native_stderr

    before = os.fstat(2)
    a, b = filtered_native_stderr(), filtered_native_stderr()
    a.__enter__()
    b.__enter__()
    try:
        assert stat.S_ISFIFO(os.fstat(2).st_mode)
        a.__exit__(None, None, None)
        assert stat.S_ISFIFO(os.fstat(2).st_mode)  # b is still open
    finally:
        b.__exit__(None, None, None)
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_a_program_ending_with_spot_open_exits_cleanly(clip: Path) -> None:
    """`print(next(spot(path)))` as a script's last line: the run's thread was still in
    native code at interpreter shutdown and the process aborted (SIGABRT, exit 134) in
    2 of 3 runs; it is now stopped at exit."""
    import subprocess
    import sys

    code = f"from realtime.api import spot\nit = spot({str(clip)!r}, scores=True)\nprint(next(it).frame)\n"
    for _ in range(3):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=Path(__file__).parents[1],
                             timeout=300)
        assert run.returncode == 0 and run.stdout.strip() == b"1", run.stderr.decode()[-1500:]


def test_argument_and_frame_mistakes_are_user_errors_naming_them(clip: Path) -> None:
    frame = np.zeros((48, 64, 3), np.uint8)
    cases = [
        (lambda: spot([frame, None], fps=30), r"frames: item 2 is NoneType.*past the end of its video"),
        (lambda: spot([[[0, 0, 0]]], fps=30), r"frames: item 1 is list, not an \(H, W, 3\) uint8"),
        (lambda: spot([frame.astype(np.float32)], fps=30), r"frames: item 1: frame must be a uint8"),
        (lambda: spot([frame], fps="30"), r"fps: expected a number of frames per second, got '30'"),
        (lambda: spot([frame]), r"fps: frames held in memory need their frame rate \(spot\(frames, fps=30\)\)"),
        (lambda: spot(clip, weights="x.safetensors"), r"weights: a list of files, one per type"),
        (lambda: spot([frame, np.zeros((48, 48, 3), np.uint8)], fps=30), r"frame 2 is 48x48, earlier frames 64x48"),
    ]
    for make, message in cases:
        with pytest.raises(UserError, match=message):
            list(make())
    events = list(spot(clip, types="ME"))  # one type as a string, not the letters M and E
    assert {e.type for e in events if isinstance(e, SpotEvent)} <= {"ME"}


def test_spot_tells_what_lgnm_live_notices_as_warnings(tmp_path: Path) -> None:
    """No face in any frame must not read as a face without expressions: spot() said
    nothing at all; it now issues the run's notices as SpotWarnings."""
    blank = [np.full((240, 320, 3), 90, np.uint8)] * 40
    with pytest.warns(SpotWarning, match="no face found in any of its 40 frames"):
        assert list(spot(blank, fps=30)) == []
    with pytest.warns(SpotWarning, match="only 3 frames, fewer than one frame pair needs"):
        list(spot(blank[:3], fps=30))
    used = (frame for frame in blank[:5])
    list(used)
    for empty in ([], used):  # spot() twice on one generator: the second run gets no frame
        with pytest.warns(SpotWarning, match="no frame at all"):
            assert list(spot(empty, fps=30)) == []


@pytest.mark.parametrize("shapes", [[(0, 0, 3)] * 3, [(100, 100, 3), (0, 100, 3)], [(0, 64)]])
def test_an_empty_frame_in_memory_is_a_user_error(shapes: list) -> None:
    """A frame with no pixels raised cv2.error or ZeroDivisionError from deep inside."""
    frames = [np.zeros(shape, np.uint8) for shape in shapes]
    with pytest.raises(UserError, match=f"frames: item {len(shapes) if len(shapes) == 2 else 1}: frame is empty"):
        list(spot(frames, fps=30))


def test_a_native_notice_inside_a_python_line_is_cut_out_of_it() -> None:
    """Seen in a multi-stream replay: mediapipe's notice written between a warning's text
    and its newline passed the filter (which matched line starts only), glued to it."""
    import os
    import threading

    from realtime.native_log import _pump

    notice = b"W0000 00:00:1796199024.961282   29803 inference_feedback_manager.cc:114] Feedback manager requires"
    written = (b"before\nwarning: h263.3gp: as players show them" + notice + b"\n\nI0000 00:00:1.0  1 gl_context.cc:1] x\n"
               b"\nafter")
    pipe_r, pipe_w = os.pipe()
    out_r, out_w = os.pipe()
    pump = threading.Thread(target=_pump, args=(pipe_r, out_w))
    pump.start()
    os.write(pipe_w, written)
    os.close(pipe_w)
    pump.join(10)
    with os.fdopen(out_r, "rb") as out:
        assert out.read() == b"before\nwarning: h263.3gp: as players show them\n\nafter"
    pipe_r, pipe_w = os.pipe()  # the stream ends inside a line that holds a notice: its text stays
    out_r, out_w = os.pipe()
    pump = threading.Thread(target=_pump, args=(pipe_r, out_w))
    pump.start()
    os.write(pipe_w, b"last words" + notice)
    os.close(pipe_w)
    pump.join(10)
    with os.fdopen(out_r, "rb") as out:
        assert out.read() == b"last words"
