#!/usr/bin/env bash
# Reproduces engines/weights/baseline_ME.safetensors and baseline_MaE.safetensors: the
# training-free flow-magnitude baseline (engines/baseline.py) at 30 fps, K 6 and 18 like
# the demo pair. No training: the measure's two numbers and the post-processing are fitted
# on labelled synthetic validation videos (seed 3003; not the held-out seed 1001 of
# tools.quality, nor the demo weights' training seeds 3/4 or validation seeds 2002-2005).
# About 5 min (30 fps) and 13 min (200 fps) on two CPU cores (synthesis, FaceMesh, flow; then the grid search).
set -euo pipefail
WORK=${WORK:-/tmp/lgnm-baseline}
lgnm-synth --out "$WORK/val30_seed3003" --videos 6 --fps 30 --duration 40 \
  --faces astronaut grace_hopper --seed 3003 --jitter
python -m tools.make_baseline_weights --data "$WORK/val30_seed3003" --out engines/weights \
  --work "$WORK/mk30" --cache "$WORK/cache_val30" --interval-rule peaks
# 200 fps (SAMM-like): K 40 and 146 like demo200_*, validation seed 3004 (4 x 20 s)
lgnm-synth --out "$WORK/val200_seed3004" --videos 4 --fps 200 --duration 20 \
  --faces astronaut grace_hopper --seed 3004 --jitter
python -m tools.make_baseline_weights --data "$WORK/val200_seed3004" --out engines/weights \
  --like engines/weights/demo200_ME.safetensors engines/weights/demo200_MaE.safetensors \
  --prefix baseline200_ --work "$WORK/mk200" --cache "$WORK/cache_val200" --interval-rule peaks
