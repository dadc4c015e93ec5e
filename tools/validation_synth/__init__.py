"""Independent validation generator: synthetic facial-expression videos with exact truth.

Written apart from the training generator (realtime/synthesis): other faces, another
renderer (piecewise-affine mesh warp of real photos over a Delaunay triangulation of the
468 FaceMesh landmarks), other action shapes (FACS-like action units with gated Gaussian
falloff) and other temporal profiles (asymmetric rise / hold / decay). Negatives (head
motion from real landmark tracks, blinks, gaze shifts, lighting, sensor noise, encoding)
carry no truth.

Modules, one job each:
- faces.py    face photos (bundled public-domain portraits, mahotas' demo photo, user files)
- mesh.py     triangulation, barycentric raster, backward warp
- actions.py  action units as landmark displacement fields (IOD units, face frame)
- profiles.py temporal profiles, event schedule, truth frames
- nuisance.py motion that is not an expression (real head motion, blinks, gaze, light, noise)
- render.py   one video: compose, warp, write mp4
- cli.py      command line
"""
