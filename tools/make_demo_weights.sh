#!/usr/bin/env bash
# Reproduce the demo weights engines/weights/demo_ME.safetensors and demo_MaE.safetensors
# and their quality table. SYNTHETIC data only (lgnm-synth, 30 fps, the two bundled faces
# astronaut + grace_hopper): demo weights for synthetic faces, not for real use. Real use
# means training on CAS(ME)^2 / SAMM-LV with lgnm-train (see engines/weights/README.md).
#
# Seeded end to end (synth seed 2, train seed 0, held-out synth seed 1001). Torch CPU
# kernels are not bit-deterministic across machines/thread counts, so a rerun gives
# weights of the same quality, not the same bytes. About 25-40 min on 2 busy CPU cores.
# Usage: tools/make_demo_weights.sh [WORK_DIR]   (inside the project venv)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-/tmp/lgnm-demo-weights}"
mkdir -p "$WORK"

# 1. Training videos: 10 x 45 s at 30 fps, faces used in turn, distractors on.
lgnm-synth --out "$WORK/synth30_train" --videos 20 --fps 30 --duration 45 \
  --faces astronaut grace_hopper --seed 2

# 2. Both types, in two parallel processes (one torch thread each; each type is seeded on
#    its own); 3 of the 20 videos held out for early stopping (frame F1, every 2nd frame)
#    and for the fixed-threshold post-processing grid search. fp16 storage. --max-minutes
#    caps each model on a 2-core machine; on a faster one more epochs fit, so results may
#    differ a little.
for TYPE in ME MaE; do
  lgnm-train --dataset synth --data "$WORK/synth30_train" --type "$TYPE" \
    --out engines/weights --prefix demo_ --cache "$WORK/cache" \
    --epochs 12 --max-minutes 28 --batch 64 --lr 1e-3 --optimizer adam --folds none \
    --val-frac 0.15 --val-metric frame --val-stride 2 --neg-every 6 --max-neg 6000 \
    --seed 0 --device cpu --threads 1 &
done
wait

# 3. Quality table on held-out synthetic videos (new seeds, mirrored/recoloured faces).
python -m tools.quality --weights engines/weights/demo_ME.safetensors \
  engines/weights/demo_MaE.safetensors --work "$WORK/quality" --videos 6 --seed 1001
# 4. The same held out by seed only (the two training photos): the appearance gap.
python -m tools.quality --weights engines/weights/demo_ME.safetensors \
  engines/weights/demo_MaE.safetensors --work "$WORK/quality" --videos 4 --seed 1001 \
  --faces astronaut grace_hopper
