"""FaceMesh landmark groups the pre-processing reads (indices into the 468 points).

The authors detect 106 landmarks with FaceX-Zoo; mediapipe's FaceMesh (bundled in the
0.10.21 wheel, works offline) gives 468. The groups the pre-processing needs are mapped
below. LEFT/RIGHT are the sides as seen in the image (viewer's left), as in the 106-point
scheme; mediapipe's own FACEMESH_LEFT_* names the subject's left, i.e. our RIGHT_*.

| group       | 106-point (FaceX-Zoo / JD)          | mediapipe 468 indices                       |
| ----------- | ----------------------------------- | ------------------------------------------- |
| LEFT_BROW   | 33-37 upper + 64-67 lower           | 70 63 105 66 107 (upper), 55 65 52 53 46    |
| RIGHT_BROW  | 38-42 upper + 68-71 lower           | 336 296 334 293 300 (upper), 276 283 282 295 285 |
| LEFT_EYE    | 52-57 + 72-73 (contour)             | 33 246 161 160 159 158 157 173 133 155 154 153 145 144 163 7 |
| RIGHT_EYE   | 58-63 + 75-76 (contour)             | 362 398 384 385 386 387 388 466 263 249 390 373 374 380 381 382 |
| NOSE_TIP    | 46 (tip) with 47-51 below it        | 1 (tip), 4, 5, 195 (ridge above), 2 (below) |
| MOUTH       | 84-95 (outer lips)                  | 61 185 40 39 37 0 267 269 270 409 291 375 321 405 314 17 84 181 91 146 |

Eye polygons are ordered around the contour (fillPoly-ready); lower eyelids are the
second half of each eye polygon (LEFT_LOWER_LID, RIGHT_LOWER_LID).
"""

from __future__ import annotations

import numpy as np

N_LANDMARKS = 468  # FaceMesh points per face

LEFT_BROW = np.array([70, 63, 105, 66, 107, 55, 65, 52, 53, 46], dtype=np.int32)
RIGHT_BROW = np.array([336, 296, 334, 293, 300, 276, 283, 282, 295, 285], dtype=np.int32)
LEFT_EYE = np.array([33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7], dtype=np.int32)
RIGHT_EYE = np.array([362, 398, 384, 385, 386, 387, 388, 466, 263, 249, 390, 373, 374, 380, 381, 382], dtype=np.int32)
LEFT_LOWER_LID = LEFT_EYE[8:]
RIGHT_LOWER_LID = RIGHT_EYE[8:]
NOSE_TIP = np.array([1, 4, 5, 195, 2], dtype=np.int32)
MOUTH = np.array([61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146], dtype=np.int32)
