"""The synthetic long face video generator (`generate.py`): the built-in demo of
`lgnm-live --replay demo` and the engine of `lgnm-synth` (tools/synth.py, its CLI).

faces: photo + landmarks + background compositing; actions: AU deformation fields;
timeline: event schedule with exact truth; distractors: blinks, head motion, light;
real_motion: real landmark tracks driving a face; render: per-frame composition of all
of these; layouts: the CAS(ME)^2 / SAMM-LV / CAS(ME)^3 folder layouts and workbooks.
"""
