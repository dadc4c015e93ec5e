"""Building blocks of the synthetic long face video generator (`tools/synth.py`).

faces: photo + landmarks + background compositing; actions: AU deformation fields;
timeline: event schedule with exact truth; distractors: blinks, head motion, light;
render: per-frame composition of all of these.
"""
