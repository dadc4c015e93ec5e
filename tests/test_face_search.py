"""Faces anywhere in view: small faces in 4K frames, several faces, no face.

Inputs are built here from the two bundled face photos (real mediapipe, real images):
a square patch around the face is scaled to a chosen face width and pasted into a frame;
the photo's own landmarks, mapped the same way, are the reference.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import mediapipe as mp
import numpy as np
import pytest

from realtime import face as fl
from realtime import face_search as fs
from realtime.stats import NO_FACE_HINT, RunStats
from realtime.synthesis.faces import FacePhoto, load_face
from realtime.synthesis.generate import SynthConfig, generate_video

UHD = (3840, 2160)


@dataclass(frozen=True)
class Patch:
    image: np.ndarray  # BGR
    landmarks: np.ndarray  # (468,2) in patch pixels


@pytest.fixture(scope="module")
def photos() -> dict[str, FacePhoto]:
    return {name: load_face(name) for name in ("astronaut", "grace_hopper")}


def face_patch(photo: FacePhoto, width_px: float, span: float = 2.6) -> Patch:
    """A square patch of `span` face widths around the face, scaled so that the face
    (landmark extent) is `width_px` wide."""
    box = fs.box_of_landmarks(photo.landmarks)
    zoom = width_px / box.w
    out = int(round(span * width_px))
    matrix = np.array([[zoom, 0.0, out / 2 - 0.5 - zoom * (box.cx - 0.5)],
                       [0.0, zoom, out / 2 - 0.5 - zoom * (box.cy - 0.5)]])
    interp = cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR
    image = cv2.warpAffine(photo.image, matrix, (out, out), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    return Patch(image, (cv2.transform((photo.landmarks - 0.5)[None], matrix)[0] + 0.5).astype(np.float32))


def frame_with(size: tuple[int, int], *placed: tuple[Patch, int, int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """A grey frame with patches pasted at (x0, y0); returns it and each face's landmarks."""
    frame = np.full((size[1], size[0], 3), 96, np.uint8)
    marks = []
    for patch, x0, y0 in placed:
        h, w = patch.image.shape[:2]
        frame[y0:y0 + h, x0:x0 + w] = patch.image
        marks.append(patch.landmarks + np.array([x0, y0], np.float32))
    return frame, marks


def errors(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(found - truth, axis=1)


# ---------------------------------------------------------------------- small faces

@pytest.mark.parametrize(("name", "width"), [("grace_hopper", 232), ("astronaut", 232), ("grace_hopper", 160)])
def test_small_face_in_a_4k_frame_is_found_where_it_is(photos, name: str, width: int) -> None:
    patch = face_patch(photos[name], width)
    frame, (truth,) = frame_with(UHD, (patch, 2417, 1203))
    with fl.FaceMesh(static_image_mode=True) as mesh:
        assert mesh.detect(frame) is None  # what the user saw: FaceMesh alone misses it
    with fl.FaceAligner(size=112) as aligner:
        landmarks = aligner.landmarks(frame)
        face = aligner.align(frame)
        notices = aligner.notices
    assert landmarks is not None and face is not None
    err = errors(landmarks, truth)
    # within ~1% of the face width of where FaceMesh puts them at the photo's own scale
    assert np.median(err) < 3.0 and np.percentile(err, 95) < 8.0, (np.median(err), err.max())
    assert len(notices) == 1 and notices[0].startswith("small face (") and "in a 3840x2160 frame" in notices[0]


def test_small_face_is_tracked_on_its_crop_in_every_frame(photos) -> None:
    patch = face_patch(photos["grace_hopper"], 232)
    with fl.FaceAligner(size=112) as aligner:
        worst = []
        for i in range(12):  # the face drifts right and down, 6 px and 3 px a frame
            frame, (truth,) = frame_with(UHD, (patch, 1500 + 6 * i, 900 + 3 * i))
            landmarks = aligner.landmarks(frame)
            assert landmarks is not None, f"frame {i}"
            worst.append(np.median(errors(landmarks, truth)))
            assert aligner.on_crop
        searches = aligner.searches
    assert searches == 1  # found once, then tracked on the crop around its last landmarks
    assert max(worst) < 3.0


def test_lost_small_face_is_searched_again(photos) -> None:
    patch = face_patch(photos["astronaut"], 232)
    blank = np.full((UHD[1], UHD[0], 3), 96, np.uint8)
    first, _ = frame_with(UHD, (patch, 600, 400))
    moved, (truth,) = frame_with(UHD, (patch, 2800, 1300))
    with fl.FaceAligner(size=112) as aligner:
        assert aligner.landmarks(first) is not None
        assert aligner.landmarks(blank) is None  # lost: searched at once, nothing there
        # an empty view is searched again SEARCH_EVERY frames later
        found = [aligner.landmarks(moved) for _ in range(fl.SEARCH_EVERY)]
        searches = aligner.searches
    assert [f is None for f in found] == [True] * (fl.SEARCH_EVERY - 1) + [False]
    assert np.median(errors(found[-1], truth)) < 3.0
    assert searches == 3  # the first frame, the blank one, the face at its new place


# ---------------------------------------------------------------------- several faces

def two_faces(photos, hopper_px: float, astro_px: float, dx: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    return frame_with((1280, 720), (face_patch(photos["grace_hopper"], hopper_px), 40 + dx, 100),
                      (face_patch(photos["astronaut"], astro_px), 700 - dx, 100))


def test_two_faces_the_largest_is_analysed_and_kept(photos) -> None:
    """Hopper is larger when tracking starts; from frame 4 the astronaut grows, larger
    than Hopper from frame 8, and Hopper stays the analysed face (no switch between people)."""
    with fl.FaceAligner(size=112) as aligner:
        for i in range(12):
            astro = 150 + 8 * max(0, i - 3)
            frame, (hopper, astronaut) = two_faces(photos, 180, astro, dx=2 * i)
            landmarks = aligner.landmarks(frame)
            assert landmarks is not None, f"frame {i}"
            assert np.median(errors(landmarks, hopper)) < 3.0, f"frame {i}: not on the first face"
        notices = list(aligner.notices)
        searches = aligner.searches
    assert searches == 0  # ordinary sizes: FaceMesh on the whole frame
    assert len(notices) == 1, notices
    assert notices[0].startswith("2 faces in view; analysing the largest (at x=")


def test_when_facemesh_takes_the_smaller_face_the_largest_is_followed_on_its_crop(photos, monkeypatch) -> None:
    frame, (hopper, astronaut) = two_faces(photos, 200, 150)
    with fl.FaceAligner(size=112) as aligner:
        # FaceMesh picks by detector score, not size: make it take the astronaut
        monkeypatch.setattr(aligner.landmarker, "detect_all", lambda rgb: [astronaut.copy()])
        found = [aligner.landmarks(frame) for _ in range(5)]
        pinned = aligner.on_crop
        notices = list(aligner.notices)
    assert all(lm is not None and np.median(errors(lm, hopper)) < 3.0 for lm in found)
    assert pinned
    assert notices == [notices[0]] and notices[0].startswith("2 faces in view; analysing the largest (at x=")


def test_when_the_analysed_face_leaves_the_switch_breaks_the_chain(photos) -> None:
    with fl.FaceAligner(size=112) as aligner:
        for _ in range(4):
            frame, _ = two_faces(photos, 180, 150)
            assert aligner.align(frame) is not None
        alone, (astronaut,) = frame_with((1280, 720), (face_patch(photos["astronaut"], 150), 700, 100))
        assert aligner.align(alone) is None  # never one flow pair across two people
        after = [aligner.landmarks(alone) for _ in range(4)]
        notices = list(aligner.notices)
    assert all(lm is not None and np.median(errors(lm, astronaut)) < 3.0 for lm in after)
    assert any(n.startswith("the analysed face left; now analysing the only face in view (at x=") for n in notices)
    assert notices[-1].startswith("1 face in view; analysing it (at x=")


def test_two_small_faces_in_4k_are_counted(photos) -> None:
    frame, (hopper, _) = frame_with(UHD, (face_patch(photos["grace_hopper"], 260), 700, 600),
                                    (face_patch(photos["astronaut"], 200), 2600, 900))
    with fl.FaceAligner(size=112) as aligner:
        found = [aligner.landmarks(frame) for _ in range(3)]
        notices = list(aligner.notices)
    assert all(lm is not None and np.median(errors(lm, hopper)) < 3.0 for lm in found)
    assert notices[0].startswith("2 faces in view; analysing the largest (at x=")
    assert sum(n.startswith("2 faces") for n in notices) == 1


def test_a_face_that_joins_a_tracked_small_face_is_counted(photos, monkeypatch) -> None:
    monkeypatch.setattr(fl, "COUNT_EVERY", 2)
    hopper = face_patch(photos["grace_hopper"], 232)
    astronaut = face_patch(photos["astronaut"], 260)
    with fl.FaceAligner(size=112) as aligner:
        for i in range(10):
            placed = [(hopper, 700, 600)] + ([(astronaut, 2600, 900)] if i >= 2 else [])
            frame, (truth, *_) = frame_with(UHD, *placed)
            landmarks = aligner.landmarks(frame)
            assert landmarks is not None and np.median(errors(landmarks, truth)) < 3.0, f"frame {i}"
        notices = [n for n in aligner.notices if not n.startswith("small face")]
        searches = aligner.searches
    assert searches == 1  # the newcomer is counted, the tracked face kept
    assert notices == [notices[0]] and notices[0].startswith("2 faces in view; analysing the one tracked so far")


def test_static_images_are_independent(photos) -> None:
    hopper, _ = frame_with((1280, 720), (face_patch(photos["grace_hopper"], 180), 100, 100))
    astro, (truth,) = frame_with((1280, 720), (face_patch(photos["astronaut"], 150), 800, 200))
    with fl.FaceAligner(size=112, static_image_mode=True) as aligner:
        assert aligner.align(hopper) is not None
        landmarks = aligner.landmarks(astro)
        assert landmarks is not None and np.median(errors(landmarks, truth)) < 3.0
        assert aligner.notices == []


# ---------------------------------------------------------------------- no face, ordinary faces

@pytest.mark.parametrize("size", [(640, 480), UHD])
def test_no_face_gives_none_and_the_summary_says_so(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    frames = [np.full((size[1], size[0], 3), 96, np.uint8),
              rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)]
    stats = RunStats(stream="empty")
    with fl.FaceAligner(size=112) as aligner:
        for frame in frames:
            stats.frames += 1
            face = aligner.align(frame)
            assert face is None
            stats.faces += face is not None
        assert aligner.notices == []
    assert stats.face_coverage() == "no face found in any of its 2 frames: nothing could be spotted (" + NO_FACE_HINT + ")"


def test_face_coverage_notice() -> None:
    assert RunStats(frames=10, faces=10).face_coverage() is None
    assert RunStats(frames=0, faces=0).face_coverage() is None
    assert RunStats(frames=300, faces=280).face_coverage() == (
        "face found in 280 of 300 frames (93%); frames without a face were not scored")


def test_ordinary_faces_keep_the_whole_frame_landmarks() -> None:
    """The default path is unchanged: FaceMesh on the whole frame, as before this module."""
    video = generate_video(SynthConfig(name="plain", fps=30.0, duration_s=3.0, size=(640, 480)), 5)
    before = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                             min_detection_confidence=0.5, min_tracking_confidence=0.5)
    with fl.FaceAligner(size=112) as aligner:
        for frame in itertools.islice(video.frames(), 30):
            old = fl.detect_landmarks(frame, before)
            new = aligner.landmarks(frame)
            assert old is not None and new is not None
            assert np.abs(new - old).max() <= 0.5
        assert aligner.searches == 0 and aligner.notices == []
    before.close()


# ---------------------------------------------------------------------- pure parts

@pytest.mark.parametrize(("w", "h"), [UHD, (1920, 1080), (1280, 720)])
def test_tiles_cover_the_frame_with_half_a_tile_of_overlap(w: int, h: int) -> None:
    tiles = fs.search_tiles(w, h)
    assert tiles and len({t[2] for t in tiles}) == 1
    side = tiles[0][2]
    xs, ys = sorted({t[0] for t in tiles}), sorted({t[1] for t in tiles})
    assert xs[0] == 0 and ys[0] == 0 and xs[-1] + side == w and ys[-1] + side == h
    assert all(b - a <= side / 2 for a, b in zip(xs, xs[1:]))
    assert all(b - a <= side / 2 for a, b in zip(ys, ys[1:]))


def test_small_frames_have_no_tiles_but_wide_ones_get_full_height_tiles() -> None:
    assert fs.search_tiles(640, 480) == [] and fs.search_tiles(400, 200) == []
    tiles = fs.search_tiles(1280, 480)
    assert {t[2] for t in tiles} == {480} and {t[1] for t in tiles} == {0}
    xs = sorted(t[0] for t in tiles)
    assert xs[0] == 0 and xs[-1] + 480 == 1280 and all(b - a <= 240 for a, b in zip(xs, xs[1:]))
    assert {t[2] for t in fs.search_tiles(480, 1280)} == {480}  # portrait alike


@pytest.mark.parametrize(("name", "width", "x0"), [("astronaut", 120, 800), ("astronaut", 100, 100),
                                                   ("grace_hopper", 100, 800)])
def test_face_in_a_wide_small_frame_is_found(photos, name: str, width: int, x0: int) -> None:
    """A face of 8-9 % of the width of a 1280x480 frame (two people side by side, a wide
    webcam mode): FaceMesh alone misses it, the full-height tiles find it, then it is
    tracked on its crop."""
    patch = face_patch(photos[name], width)
    frame, (truth,) = frame_with((1280, 480), (patch, x0, 100))
    with fl.FaceMesh(static_image_mode=True) as mesh:
        assert mesh.detect(frame) is None  # what the user saw
    with fl.FaceAligner(size=112) as aligner:
        found = [aligner.landmarks(frame) for _ in range(3)]
        searches = aligner.searches
    assert searches == 1
    for landmarks in found:
        assert landmarks is not None and np.median(errors(landmarks, truth)) < 2.0


def test_boxes_of_one_face_merge_and_a_cut_face_does_not_count() -> None:
    whole = fs.FaceBox(100, 100, 50, 50, 0.9)
    cut = fs.FaceBox(100, 115, 40, 20, 0.7)  # the lower half seen in another tile
    other = fs.FaceBox(300, 100, 40, 40, 0.8)
    assert fs.merge_boxes([cut, whole, other]) == [whole, other]


def test_choice_is_the_largest_then_the_nearest() -> None:
    big, small = fs.FaceBox(100, 100, 80, 80), fs.FaceBox(400, 100, 40, 40)
    assert fs.choose_face([small, big], None) == (1, False)
    grown = fs.FaceBox(400, 100, 120, 120)
    assert fs.choose_face([fs.FaceBox(105, 102, 80, 80), grown], small) == (1, False)
    assert fs.choose_face([fs.FaceBox(105, 102, 80, 80)], small) == (0, True)  # it left


def test_face_count_is_told_once_when_it_holds() -> None:
    count = fs.FaceCount(hold=3)
    told = [count.observe(n) for n in (1, 2, 1, 2, 2, 2, 2, 2, 1, 1, 1)]
    assert told == [None, None, None, None, None, 2, None, None, None, None, 1]
    assert fs.FaceCount(hold=3).observe(3, weight=3) == 3
