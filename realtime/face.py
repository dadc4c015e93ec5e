"""Face landmarks (mediapipe FaceMesh, 468 points), similarity alignment, landmark groups,
and `FaceAligner`: which face of a frame is analysed and how its landmarks are found
(FaceMesh on the whole frame; small faces via `realtime.face_search`).

The landmark groups the pre-processing needs (the 106-point to 468-point mapping) are
in `engines.landmarks`; this module re-exports them.

Alignment: a similarity transform (rotation + uniform scale + translation,
cv2.estimateAffinePartial2D) maps the ALIGN_POINTS (eye corners and the nose ridge, tip
and wings: points that expressions barely move, so the crop does not follow a smile) onto
ALIGN_TEMPLATE. The template unit is the outer eye-corner distance (IOD); the crop spans
CROP_SPAN_IOD IODs centred CROP_CENTRE below the eye line, so the whole face oval
(forehead ~0.48 IOD above the eyes, chin ~1.16 below, cheeks +-0.75) fills the crop and
brows (~0.24 above) and mouth (~0.84 below) are well inside. Template values are the
mean of FaceMesh on skimage's astronaut and matplotlib's grace_hopper, made symmetric.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import cv2
import mediapipe as mp
import numpy as np

from engines.landmarks import (  # noqa: F401 (re-exported: the groups are part of this module's interface)
    LEFT_BROW,
    LEFT_EYE,
    LEFT_LOWER_LID,
    MOUTH,
    N_LANDMARKS,
    NOSE_TIP,
    RIGHT_BROW,
    RIGHT_EYE,
    RIGHT_LOWER_LID,
)
from realtime.common.errors import UserError
from realtime.common.types import AlignedFace, LandmarkFilter
from realtime.face_search import (
    FaceBox,
    FaceCount,
    box_of_landmarks,
    choose_face,
    detect_faces,
    detector_boxes,
    is_listed,
    landmarks_on_crop,
    merge_boxes,
    mesh_landmarks,
    nearest,
    search_tiles,
)
from realtime.landmark_filter import OneEuroLandmarks

ALIGN_POINTS = np.array([33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327], dtype=np.int32)
ALIGN_TEMPLATE = np.array(
    [
        [-0.500, 0.000], [-0.192, 0.018], [0.192, 0.018], [0.500, 0.000],  # eye corners
        [0.0, -0.034], [0.0, 0.050], [0.0, 0.130], [0.0, 0.204], [0.0, 0.285],  # ridge
        [0.0, 0.382], [0.0, 0.451], [0.0, 0.500],  # tip, below tip
        [-0.207, 0.456], [0.207, 0.456],  # nose wings
    ],
    dtype=np.float64,
)
CROP_SPAN_IOD = 1.8  # crop side in IODs
CROP_CENTRE = np.array([0.0, 0.35])  # crop centre in template units (IOD, eye-line origin)


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Return a uint8 BGR view/copy of a grey or BGR frame; reject anything else."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise UserError(f"frame must be a uint8 numpy array, got {getattr(image, 'dtype', type(image))}")
    if image.ndim in (2, 3) and 0 in image.shape[:2]:
        raise UserError(f"frame is empty, shape {image.shape}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise UserError(f"frame must be (H,W) grey or (H,W,3) BGR, got shape {image.shape}")


def as_grey(image: np.ndarray) -> np.ndarray:
    """uint8 grey version of a grey or BGR frame."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2:
        return image
    return cv2.cvtColor(as_bgr(image), cv2.COLOR_BGR2GRAY)


def detect_landmarks(bgr: np.ndarray, mesh) -> np.ndarray | None:
    """468 FaceMesh landmarks of the first face in frame pixel coordinates, (468,2) float32.

    `mesh` is a `mediapipe.solutions.face_mesh.FaceMesh` (or a `FaceLandmarker`).
    Returns None when no face is found: a missing face is reported, never guessed.
    """
    if isinstance(mesh, FaceLandmarker):
        mesh = mesh.mesh
    faces = mesh_landmarks(mesh, cv2.cvtColor(as_bgr(bgr), cv2.COLOR_BGR2RGB))
    return faces[0] if faces else None


def template_points(size: int) -> np.ndarray:
    """ALIGN_TEMPLATE in pixel coordinates of a size x size crop, (N,2) float32."""
    scale = size / CROP_SPAN_IOD
    return ((ALIGN_TEMPLATE - CROP_CENTRE) * scale + size / 2.0).astype(np.float32)


def similarity_matrix(landmarks: np.ndarray, size: int) -> np.ndarray | None:
    """(2,3) float64 similarity transform frame -> crop from the stable landmarks.

    None when the fit fails (degenerate landmarks); RANSAC drops a mis-tracked point,
    then OpenCV refines on the inliers by least squares.
    """
    src = np.asarray(landmarks, dtype=np.float32)[ALIGN_POINTS]
    matrix, _ = cv2.estimateAffinePartial2D(
        src, template_points(size), method=cv2.RANSAC, ransacReprojThreshold=0.03 * size
    )
    return matrix


def warp_grey(grey: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp a grey frame into the size x size crop.

    When the crop shrinks the face by more than 2x, the covered frame region is first
    reduced with INTER_AREA (warpAffine's bilinear sampling would alias fine texture,
    which the flow would read as motion).
    """
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float32)
        frame_pts = cv2.transform(corners[None], inverse)[0]
        h, w = grey.shape
        x0, y0 = np.clip(np.floor(frame_pts.min(0)).astype(int) - 2, 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(frame_pts.max(0)).astype(int) + 2, 1, [w, h])
        if x1 > x0 and y1 > y0:
            region = grey[y0:y1, x0:x1]
            small_w = max(1, round((x1 - x0) * scale * 1.25))
            small_h = max(1, round((y1 - y0) * scale * 1.25))
            small = cv2.resize(region, (small_w, small_h), interpolation=cv2.INTER_AREA)
            sx, sy = small_w / (x1 - x0), small_h / (y1 - y0)
            # region pixel centres: x_small = (x - x0 + 0.5) * sx - 0.5
            to_small = np.array([[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5]])
            from_small = cv2.invertAffineTransform(to_small)
            matrix = compose(matrix, from_small)
            grey = small
    return cv2.warpAffine(grey, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """(2,3) affine `outer o inner` (apply inner first)."""
    o = np.vstack([outer, [0, 0, 1]])
    i = np.vstack([inner, [0, 0, 1]])
    return (o @ i)[:2]


def align_face(frame: np.ndarray, landmarks: np.ndarray, size: int = 224) -> AlignedFace | None:
    """Similarity-aligned grey face crop from a frame and its 468 frame-pixel landmarks."""
    if size < 32:
        raise UserError(f"face size must be at least 32 px, got {size}")
    matrix = similarity_matrix(landmarks, size)
    if matrix is None:
        return None
    grey = warp_grey(as_grey(frame), matrix, size)
    crop_landmarks = cv2.transform(np.asarray(landmarks, dtype=np.float32)[None], matrix)[0]
    return AlignedFace(grey=grey, landmarks=crop_landmarks.astype(np.float32), matrix=matrix.astype(np.float64))


class FaceLandmarker:
    """Owns one mediapipe FaceMesh graph (no iris refinement).

    static_image_mode=False tracks faces across video frames (faster, steadier);
    True runs the detector on every image (independent photos). `max_faces` is how many
    faces the graph returns; `detect` gives the first.
    """

    def __init__(self, static_image_mode: bool = False, min_detection_confidence: float = 0.5,
                 max_faces: int = 1) -> None:
        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static_image_mode,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=0.5,
        )

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        """(468,2) float32 landmarks in frame pixels, or None when no face is found."""
        return detect_landmarks(bgr, self.mesh)

    def detect_all(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Every face of an RGB uint8 frame, each (468,2) float32 frame pixels."""
        return mesh_landmarks(self.mesh, rgb)

    def close(self) -> None:
        self.mesh.close()

    def __enter__(self) -> FaceLandmarker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# The brief's name for the same wrapper.
FaceMesh = FaceLandmarker

NoticeCallback = Callable[[str], None]
MESH_REACH = 0.1  # FaceMesh alone finds faces from about this x the frame's long side
LARGE_FACE = 0.2  # a face wider than this x the frame's long side is back on the whole-frame path
COUNT_EVERY = 30  # frames between counts of the faces in view while one is tracked
CONFIRM_EVERY = 2  # frames between counts while a changed count waits for confirmation
SEARCH_EVERY = 5  # frames between detector searches of a view with no face


class FaceAligner:
    """Landmarks + similarity alignment of one face per frame of one stream.

    Ordinary faces: FaceMesh on the whole frame (it tracks them from frame to frame),
    exactly as before small faces were handled. When it finds none, the full-range
    detector searches the frame and its tiles and FaceMesh runs on an upscaled crop
    around the face found; that face is then tracked on a crop around its last landmarks
    until it is lost or grows past LARGE_FACE. A view where that search found nothing is
    searched again SEARCH_EVERY frames later (a small face that appears is found within
    that many frames); a lost face at once. Frames too small for search tiles (short side
    < 720 px, unless 1.5 times wider than high: `search_tiles`) only use FaceMesh.

    Several faces: when tracking starts, FaceMesh's own (short-range) detector counts the
    faces, with the full-range search, and the largest is analysed (on a crop when
    FaceMesh took another one), then the same face while it is tracked. When it leaves,
    the largest remaining one is taken and that frame returns None, so no flow is ever
    computed between two people. Faces are recounted every COUNT_EVERY frames; a changed
    count is told once it has been seen 3 times in a row. With static_image_mode=True
    every image is independent: the largest face, no tracking.

    `notices` keeps one-line messages for the user (how many faces are in view and which
    one is analysed, the first small face), each also passed to `on_notice` when set.

    `landmark_filter` (from the weights' FlowSettings; None: off) smooths the analysed
    face's landmarks over time (One Euro, realtime/landmark_filter.py) between FaceMesh and
    the alignment, so the crop, the ROI boxes and the eye masks all use the filtered ones.
    `align(bgr, t_stream)` gives the frame's stream time in seconds; without it frames are
    taken as 1/fps apart. The filter restarts wherever `align` returns None (no face,
    another person) and is never used with static_image_mode (independent images).
    Face tracking itself (which face, where to look next) keeps the raw landmarks.
    """

    def __init__(self, size: int = 224, static_image_mode: bool = False,
                 on_notice: NoticeCallback | None = None,
                 landmark_filter: LandmarkFilter | None = None, fps: float = 30.0) -> None:
        if size < 32:
            raise UserError(f"face size must be at least 32 px, got {size}")
        if not fps > 0:
            raise UserError(f"fps must be > 0, got {fps}")
        self.size = size
        self.fps = fps
        self.filter = (OneEuroLandmarks(landmark_filter) if landmark_filter is not None and not static_image_mode
                       else None)
        self._frames = 0  # align() calls: the clock when no stream time is given
        self.static = static_image_mode
        self.on_notice = on_notice
        self.notices: list[str] = []
        self.landmarker = FaceLandmarker(static_image_mode=static_image_mode)
        # Separate graphs: a tracking FaceMesh keeps state about the images it is given.
        self.crop_mesh = FaceLandmarker(static_image_mode=static_image_mode)
        self.detector = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
        # FaceMesh's own detector model: counts the faces FaceMesh could track.
        self.counter = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
        self.count = FaceCount()
        self.previous: FaceBox | None = None  # the analysed face in the last frame that had one
        self.on_crop = False  # tracking the face on a crop around its last landmarks
        self.searches = 0  # detector searches of a whole frame and its tiles (the costly step)
        self._pinned = False  # on a crop because FaceMesh on the frame took another face
        self._search_wait = 0  # frames until an empty view is searched again
        self._had_face = False
        self._since_count = 0
        self._told_small = False

    def align(self, bgr: np.ndarray, t_stream: float | None = None) -> AlignedFace | None:
        """Aligned face of this frame, or None when no face is found (never guessed) or
        when the analysed face changed to another person on this frame.

        `t_stream`: the frame's time on its stream (s), used by the landmark filter;
        None: (number of frames aligned before this one) / fps."""
        frame = as_bgr(bgr)
        t = self._frames / self.fps if t_stream is None else float(t_stream)
        self._frames += 1
        landmarks = self.landmarks(frame)
        if landmarks is None:
            if self.filter is not None:
                self.filter.reset()  # a chain break: never smooth across it
            return None
        if self.filter is not None:
            landmarks = self.filter(landmarks, t)
        return align_face(frame, landmarks, self.size)

    def landmarks(self, bgr: np.ndarray) -> np.ndarray | None:
        """(468,2) float32 frame-pixel landmarks of the analysed face of a (H,W,3) uint8
        BGR frame, or None (no face, or the analysed face changed on this frame)."""
        if self.static:  # independent images: no face carries over from the last one
            self.previous, self.on_crop, self._had_face, self._search_wait = None, False, False, 0
        found = self._crop_track(bgr) if self.on_crop else None
        if found is None:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            found = self._whole_frame(bgr, rgb)
            if found is None and self._may_search(bgr):
                found = self._search(bgr, rgb)
                # An empty view is searched again SEARCH_EVERY frames later, not on each
                # frame: a 4K search costs ~60 ms, more than a live frame period.
                self._search_wait = 0 if found is not None else SEARCH_EVERY - 1
        had_face, self._had_face = self._had_face, found is not None
        if found is None:
            return None
        landmarks, switched = found
        self.previous = box_of_landmarks(landmarks)
        # A switch right after a frame of the other face breaks the chain here.
        return None if switched and had_face else landmarks

    # -- the three ways to a face ------------------------------------------------------
    def _may_search(self, bgr: np.ndarray) -> bool:
        """Whether this frame gets a detector search. Frames without tiles never do: on
        the whole of such a frame the full-range detector reaches no smaller face than
        FaceMesh."""
        if not search_tiles(bgr.shape[1], bgr.shape[0]):
            return False
        if self._search_wait > 0:
            self._search_wait -= 1
            return False
        return True

    def _whole_frame(self, bgr: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, bool] | None:
        faces = self.landmarker.detect_all(rgb)
        if not faces:
            return None
        self.on_crop = self._pinned = False
        landmarks, box = faces[0], box_of_landmarks(faces[0])
        switched = self._had_face and choose_face([box], self.previous)[1]
        if switched or not self._had_face:
            return self._start(bgr, rgb, landmarks, switched)
        self._maybe_count(rgb, box)
        return landmarks, False

    def _start(self, bgr: np.ndarray, rgb: np.ndarray, landmarks: np.ndarray,
               switched: bool) -> tuple[np.ndarray, bool]:
        """Tracking (re)starts on the whole-frame path: count the faces in view and take
        the largest, or after a gap the face nearest the one analysed before it."""
        tracked = box_of_landmarks(landmarks)
        boxes = self._faces_in_view(rgb, tracked)
        index, left = choose_face(boxes, None if switched else self.previous)
        if switched or (left and len(boxes) > 1):  # one face back after a gap: nothing to say
            self._notice(f"the analysed face left; now analysing {self._which(boxes, index)}")
        self._tell_count(boxes, index, weight=self.count.hold)
        if index != nearest(boxes, tracked):
            # FaceMesh took another face than the one to analyse: follow ours on its crop.
            other = landmarks_on_crop(self.crop_mesh.mesh, bgr, boxes[index])
            if other is not None:
                self.on_crop = self._pinned = True
                return other, switched or left
        return landmarks, switched or left

    def _search(self, bgr: np.ndarray, rgb: np.ndarray) -> tuple[np.ndarray, bool] | None:
        self.searches += 1
        boxes = detect_faces(self.detector, rgb)
        if not boxes:
            return None
        index, switched = choose_face(boxes, self.previous)
        landmarks = landmarks_on_crop(self.crop_mesh.mesh, bgr, boxes[index])
        if landmarks is None:
            return None
        self.on_crop = True
        self._since_count = 0
        if switched and (self._had_face or len(boxes) > 1):
            self._notice(f"the analysed face left; now analysing {self._which(boxes, index)}")
        # The search is a whole look at the frame: its count needs no confirmation.
        self._tell_count(boxes, index, weight=self.count.hold)
        self._tell_small(bgr, box_of_landmarks(landmarks))
        return landmarks, switched

    def _crop_track(self, bgr: np.ndarray) -> tuple[np.ndarray, bool] | None:
        assert self.previous is not None
        landmarks = landmarks_on_crop(self.crop_mesh.mesh, bgr, self.previous)
        box = box_of_landmarks(landmarks) if landmarks is not None else None
        # Lost, or the crop slid onto someone else: look at the whole frame again.
        if landmarks is None or box is None or choose_face([box], self.previous)[1]:
            self.on_crop = self._pinned = False
            return None
        self.on_crop = self._pinned or box.w < LARGE_FACE * max(bgr.shape[:2])
        self._maybe_count(bgr, box, bgr=True)
        return landmarks, False

    # -- counting --------------------------------------------------------------------------
    def _maybe_count(self, image: np.ndarray, tracked: FaceBox, bgr: bool = False) -> None:
        """Count the faces in view every COUNT_EVERY frames (a search costs ~60 ms on a
        4K frame), every CONFIRM_EVERY frames while a new count awaits confirmation."""
        self._since_count += 1
        due = CONFIRM_EVERY if self.count.pending else COUNT_EVERY
        if self._since_count < due:
            return
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if bgr else image
        boxes = self._faces_in_view(rgb, tracked)
        self._tell_count(boxes, nearest(boxes, tracked), weight=1)

    def _faces_in_view(self, rgb: np.ndarray, tracked: FaceBox) -> list[FaceBox]:
        """The faces FaceMesh's own detector and the full-range search see, merged, with
        the tracked face added when both missed it (it is there all the same)."""
        self._since_count = 0
        boxes = merge_boxes(detector_boxes(self.counter, rgb) + detect_faces(self.detector, rgb))
        return boxes if is_listed(tracked, boxes) else [*boxes, tracked]

    # -- notices -------------------------------------------------------------------------
    def _tell_count(self, boxes: list[FaceBox], index: int, weight: int) -> None:
        changed = self.count.observe(len(boxes), weight)
        if changed is None:
            return
        if changed == 1:
            self._notice(f"1 face in view; analysing it ({boxes[index].describe()})")
        else:
            self._notice(f"{changed} faces in view; analysing {self._which(boxes, index)}")

    @staticmethod
    def _which(boxes: list[FaceBox], index: int) -> str:
        if len(boxes) == 1:
            return f"the only face in view ({boxes[index].describe()})"
        largest = max(boxes, key=lambda b: b.size) is boxes[index]
        return f"{'the largest' if largest else 'the one tracked so far'} ({boxes[index].describe()})"

    def _tell_small(self, bgr: np.ndarray, box: FaceBox) -> None:
        """Once per stream, when a face FaceMesh alone would not find is analysed."""
        h, w = bgr.shape[:2]
        if self._told_small or box.w >= MESH_REACH * max(h, w):
            return
        self._told_small = True
        self._notice(f"small face ({box.w:.0f} px wide in a {w}x{h} frame): landmarks from an upscaled crop")

    def _notice(self, message: str) -> None:
        self.notices.append(message)
        if self.on_notice is not None:
            self.on_notice(message)

    def close(self) -> None:
        self.landmarker.close()
        self.crop_mesh.close()
        self.detector.close()
        self.counter.close()

    def __enter__(self) -> FaceAligner:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
