"""What `--replay demo|CAS|SAMM|CASME3|MEGC|PATH` and `--video PATH` replay: a list of streams, each
a source to open and the ground truth when it is known.

Hidden files and folders (name starting with '.', e.g. macOS `._clip.mp4`) are never
taken for videos or frame folders. Dataset videos keep their frame numbers across holes
in the numbering (the source notices each hole and the frame chain breaks there)."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from realtime.common.errors import UserError
from realtime.common.text import first_few, text_name
from realtime.common.types import Interval
from realtime.dataset_loaders import LOADERS, load_dataset
from realtime.datasets import VideoRecord
from realtime.intervals_csv import read_intervals
from realtime.megc_testset import Submission, find_clips
from realtime.sources import (
    FrameFolderSource,
    FrameSource,
    VideoFileSource,
    has_image_files,
    image_files,
    is_hidden,
    missing_file_reason,
)

# What a folder replay takes as a video (a file named directly is opened whatever its
# suffix). Camcorders write MPEG-TS (.mts, .m2ts, .ts), old phones 3GPP.
VIDEO_SUFFIXES = frozenset({
    ".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp", ".3g2",
    ".flv", ".f4v", ".wmv", ".asf", ".ogv", ".mxf", ".vob", ".dv", ".m2v", ".qt", ".y4m",
})  # fmt: skip
# Files that sit beside videos and are skipped without a note (truth, notes, exports, sound).
SIDE_SUFFIXES = frozenset({
    ".csv", ".json", ".txt", ".md", ".xlsx", ".xls", ".npz", ".npy", ".eaf", ".pfsx", ".log", ".html", ".pdf",
    ".srt", ".vtt", ".xml", ".yaml", ".yml", ".ini", ".wav", ".mp3", ".m4a", ".aac", ".flac", ".zip", ".gz",
})  # fmt: skip
DEMO_SEED = 20261126  # never used for the demo weights' training data (tools/make_demo_weights.sh)
DEMO_SECONDS = 40.0
DEMO_VERSION = "v1"


@dataclass
class ReplayItem:
    """One stream of a replay: how to open it and its truth (empty when unknown)."""

    name: str
    open: Callable[[], FrameSource]
    truth: list[Interval] = field(default_factory=list)
    n_frames: int | None = None
    media: Path | None = None  # the video file (linked from .eaf exports); None for frame folders

    def __post_init__(self) -> None:
        # The id goes into every output file: a name that is not UTF-8 must not fail them;
        # NFC, and the truth's ids with it (a dataset's ids come from its folder names).
        self.name = text_name(self.name)
        self.truth = [dataclasses.replace(iv, video=text_name(iv.video)) for iv in self.truth]


@dataclass
class ReplayPlan:
    items: list[ReplayItem]
    has_truth: bool
    # Every truth interval given (a --truth file may annotate videos not replayed: the
    # summary names them); None: the items' own truth is all there is.
    truth: list[Interval] | None = None
    # A challenge test set (--replay MEGC): writes its submission files after the run.
    submission: Submission | None = None
    notes: list[str] = field(default_factory=list)  # for the summary's note: lines

    def all_truth(self) -> list[Interval]:
        return self.truth if self.truth is not None else [iv for it in self.items for iv in it.truth]


def _has_images(folder: Path) -> bool:
    try:
        return has_image_files(folder)
    except OSError:  # an unreadable subfolder: not a frame folder we could replay
        return False


def _has_videos(folder: Path) -> bool:
    """Whether the folder holds video files (a folder of recordings, a phone's DCIM/100APPLE)."""
    try:
        return any(p.is_file() and not is_hidden(p) and p.suffix.lower() in VIDEO_SUFFIXES for p in folder.iterdir())
    except OSError:  # an unreadable subfolder: not a folder of videos we could replay
        return False


def _is_frame_folder(folder: Path) -> bool:
    """Images and no video files: a folder of recordings that also holds a screenshot or
    a consent scan is a folder of videos, not one stream of frames."""
    return _has_images(folder) and not _has_videos(folder)


def _video_item(path: Path, fps: float | None) -> ReplayItem:
    return ReplayItem(path.stem, lambda: VideoFileSource(path, fps=fps), media=path)


def _folder_item(path: Path, fps: float | None) -> ReplayItem:
    if fps is None:
        raise UserError(f"{path}: a frame folder needs --fps")
    # The folder's own name also for `.` or `..` (whose Path.name is '' or '..').
    name = Path(os.path.abspath(path)).name or "frames"
    return ReplayItem(name, lambda: FrameFolderSource(path, fps), n_frames=len(image_files(path)))


def path_items(path: Path, fps: float | None, notes: list[str] | None = None) -> list[ReplayItem]:
    """A video file, a frame folder, or a folder of either (video id = stem / folder name).
    Without fps, the frame folders of a folder that also holds videos are left out (the
    videos play at their own rates; --fps would retime them too), said in `notes`."""
    if not path.exists():
        raise UserError(f"{path}: {broken_link(path) or 'no such file or folder'}")
    if path.is_file():
        pages = tiff_pages(path)
        if pages > 1:  # OpenCV reads a stack's first page as a 1-frame video
            raise UserError(f"{path}: a TIFF of {pages} pages; write its pages as one image per frame into a folder "
                            "and replay that folder with --fps")
        return [_video_item(path, fps)]
    if not path.is_dir():  # a pipe, a device: not a file, and listing it as a folder fails
        raise UserError(f"{path}: {missing_file_reason(path)}")
    if _is_frame_folder(path):
        with os.scandir(path) as entries:  # (entry types from the listing: 100,000 frames are not stat'ed)
            subfolders = sorted(Path(e.path) for e in entries if not e.name.startswith(".") and _is_dir(e))
        nested_inputs = [c.name for c in subfolders if _has_images(c) or _has_videos(c)]
        if nested_inputs and notes is not None:
            # A cover image or a contact sheet beside clip folders makes the folder itself
            # a frame folder: its subfolders would go unreplayed without a word.
            n = len(image_files(path))
            notes.append(f"{path}: replayed as one frame folder (its {n} image{'s' if n != 1 else ''}); its "
                         f"subfolder(s) {first_few(nested_inputs)} hold frames or videos and were not replayed "
                         "(replay each by its path, or move the loose images out)")
        return [_folder_item(path, fps)]
    items: list[ReplayItem] = []
    children = sorted(p for p in path.iterdir() if not is_hidden(p))
    has_videos = any(c.is_file() and c.suffix.lower() in VIDEO_SUFFIXES for c in children)
    no_rate: list[str] = []  # frame folders beside videos, without --fps
    nested: list[str] = []  # folders holding videos: one level is read, as the datasets lay them out
    dangling = [f"{c.name} ({broken_link(c)})" for c in children if c.is_symlink() and not c.exists()]
    if dangling and notes is not None:  # (a NAS not mounted): is_file() and is_dir() say False
        notes.append(f"{path}: not replayed, {first_few(dangling)}")
    for child in children:
        if child.is_file() and child.suffix.lower() in VIDEO_SUFFIXES:
            items.append(_video_item(child, fps))
        elif child.is_dir() and _has_images(child):  # (a preview video inside does not unmake it)
            if fps is None and has_videos:
                no_rate.append(child.name)
                continue
            items.append(_folder_item(child, fps))
        elif child.is_dir() and _has_videos(child):
            nested.append(child.name)
    if no_rate and notes is not None:
        notes.append(f"{path}: frame folder(s) not replayed, a frame folder needs --fps: {first_few(no_rate)} "
                     "(replay each by its path with --fps; --fps here would also retime the videos)")
    if not items:
        unknown = skipped_files(path)
        hint = f" (skipped by their suffix: {first_few([p.name for p in unknown])}; replay one by its path)" if unknown else ""
        if nested:
            hint += (f" (its subfolder(s) {first_few(nested)} hold videos: a folder replay reads one level; "
                     "replay each subfolder by its path)")
        if dangling:
            hint += f" (not replayed: {first_few(dangling)})"
        raise UserError(f"{path}: no video files or frame folders in it{hint}")
    if nested and notes is not None:
        notes.append(f"{path}: videos in subfolder(s) not replayed: {first_few(nested)} (a folder replay reads "
                     "one level; replay each subfolder by its path)")
    names = [it.name for it in items]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        # A video id names a stream, its predictions and its truth: two inputs with one
        # id (clip.mp4 and clip.mkv, or a clip.mp4 beside a folder clip/) would mix.
        raise UserError(f"{path}: several inputs share the video id {dup[0]!r} (file stem or folder name); "
                        "rename one")
    return items


def suffix_twins(names: Iterable[str], ids: Collection[str]) -> list[tuple[str, str]]:
    """(name, id) for each name that is an id plus a video file's suffix (`s1/clip.mp4` and
    `s1/clip`): a file name written where a video id (the file stem) was meant. Sorted."""
    twins = []
    for name in names:
        suffix = PurePosixPath(name).suffix
        if suffix.lower() in VIDEO_SUFFIXES and name[: -len(suffix)] in ids:
            twins.append((name, name[: -len(suffix)]))
    return sorted(twins)


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop
        return False


def broken_link(path: Path) -> str | None:
    """'a link to TARGET, whose target is missing' for a symbolic link whose target is
    missing (or a loop of links), else None."""
    if not path.is_symlink():
        return None
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return f"a link to {target}, whose target is missing" if not path.exists() else None


def tiff_pages(path: Path) -> int:
    """Pages of a TIFF file (0 for other files, or a TIFF OpenCV cannot read)."""
    if path.suffix.lower() not in (".tif", ".tiff"):
        return 0
    import cv2

    try:
        return int(cv2.imcount(str(path)))
    except cv2.error:
        return 0


def skipped_files(folder: Path) -> list[Path]:
    """Files of a folder replay that are neither videos by their suffix nor known side files
    (truth, exports, sound): a user should hear that they were not replayed."""
    return [p for p in sorted(folder.iterdir()) if p.is_file() and not is_hidden(p)
            and p.suffix.lower() not in VIDEO_SUFFIXES | SIDE_SUFFIXES]  # fmt: skip


def attach_truth(items: list[ReplayItem], truth_csv: Path) -> list[Interval]:
    """Give each item its truth from the CSV; returns every row (also of other videos)."""
    try:
        truth = read_intervals(truth_csv)
    except UserError as exc:  # name the option: the message alone names a path
        raise UserError(f"--truth {exc}") from None
    by_video: dict[str, list[Interval]] = {}
    for iv in truth:
        by_video.setdefault(iv.video, []).append(iv)
    replayed = {it.name for it in items}
    unknown = sorted(set(by_video) - replayed)
    if len(unknown) == len(by_video) and by_video:
        # a truth that names files (clip.mp4) where the ids are their stems (clip)
        twins = suffix_twins(unknown, replayed)
        hint = (f"; video ids are file stems without a suffix ({twins[0][1]!r}, not {twins[0][0]!r})" if twins else
                f"; the replayed ids are {', '.join(sorted(replayed)[:3])}{'...' if len(replayed) > 3 else ''}")
        listed = ", ".join(unknown[:3]) + ("..." if len(unknown) > 3 else "")
        raise UserError(f"--truth {truth_csv}: none of its videos ({listed}) is replayed{hint}")
    for it in items:
        it.truth = by_video.get(it.name, [])
    return truth


def _record_source(record: VideoRecord) -> FrameFolderSource:
    """The frames a dataset record names, under its video id."""
    return FrameFolderSource(record.frames[0].parent, record.fps, name=record.id,
                             frames=list(zip(record.numbers, record.frames, strict=True)))


def dataset_items(kind: str, root: Path, annotations: Path) -> list[ReplayItem]:
    records = load_dataset(kind, root, annotations, allow_gaps=True)
    if not records:
        raise UserError(f"--data {root}: no {kind} videos found")
    # The stream is named by the video id (`s15_0101`), as the truth is, not by its folder
    # (`15_0101disgustingteeth`), and reads exactly the frames the layout names.
    return [
        ReplayItem(r.id, functools.partial(_record_source, r), list(r.truth), n_frames=len(r.frames))
        for r in records
    ]


def demo_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lgnm-live" / f"demo-{DEMO_VERSION}"


def demo_items(progress: Callable[[int, int], None] | None = None) -> list[ReplayItem]:
    """The built-in demo: a synthetic face video with exact truth, generated once (seeded,
    no download) and cached; see realtime/synthesis/generate.py."""
    folder = demo_dir()
    video = folder / "synth_001.mp4"
    truth_csv = folder / "truth.csv"
    if not (video.is_file() and truth_csv.is_file()):
        from realtime.synthesis.generate import write_dataset

        tmp = folder.with_name(folder.name + ".partial")
        on_frame = (lambda _v, k, n: progress(k, n)) if progress else None
        write_dataset(tmp, 1, 30.0, face_images=("grace_hopper",), seed=DEMO_SEED,
                      layout="mp4", duration_s=DEMO_SECONDS, on_frame=on_frame)
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        tmp.rename(folder)
    items = [_video_item(video, None)]
    attach_truth(items, truth_csv)
    return items


def plan_replay(target: str, *, data: Path | None, annotations: Path | None, truth: Path | None,
                fps: float | None, demo_progress: Callable[[int, int], None] | None = None) -> ReplayPlan:
    notes: list[str] = []
    if target == "demo":
        items = demo_items(demo_progress)
    elif target in LOADERS:
        if data is None or annotations is None:
            raise UserError(f"--replay {target}: needs --data ROOT and --annotations FILE")
        items = dataset_items(target, data, annotations)
    elif target == "MEGC":
        return megc_plan(data, fps, truth)
    else:
        items = path_items(Path(target), fps, notes)
        folder = Path(target)
        unknown = skipped_files(folder) if folder.is_dir() and not _is_frame_folder(folder) else []
        if unknown:
            notes.append(f"{folder}: {len(unknown)} file(s) not replayed, not videos by their suffix: "
                         f"{first_few([p.name for p in unknown])} (replay one by its path to try it)")
    given = attach_truth(items, truth) if truth is not None else None
    if given is not None and not given:
        notes.append(f"--truth {truth} holds no intervals: every prediction counts as a false positive")
    return ReplayPlan(items, has_truth=target in ("demo", *LOADERS) or truth is not None, truth=given, notes=notes)


def megc_plan(data: Path | None, fps: float | None, truth: Path | None) -> ReplayPlan:
    """An unlabelled MEGC test set (realtime.megc_testset): its clips, no truth, and the
    submission to write after the run."""
    if data is None:
        raise UserError("--replay MEGC: needs --data ROOT (the test set's folder of clip folders)")
    if truth is not None:
        raise UserError("--replay MEGC: a test set has no truth; replay its folder as --replay PATH --truth FILE")
    clips = find_clips(data, fps)
    return ReplayPlan([_folder_item(c.folder, c.fps) for c in clips], has_truth=False,
                      submission=Submission(clips))
