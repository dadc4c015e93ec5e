#!/usr/bin/env bash
# The project's GPU check: one command on a machine with an NVIDIA GPU (torch with CUDA,
# CuPy and nvcc present; TensorRT may be absent) that runs the GPU tests, the CUDA flow's
# agreement with the CPU reference, the scorer and flow speeds and an end-to-end replay
# with --backend cuda --flow cuda against the CPU path, and prints one table (< 8 min).
#
#   bash tools/gpu_wheels.sh      # beforehand, where the package index is reachable:
#                                 # .whl/ holds what the GPU image lacks (git ignores it)
#   bash tools/gpu_check.sh       # on the GPU machine (the device tool: carry [".whl"])
#
# Results: the table on stdout; logs and gpu_check.json under $OUT (device tool) or
# /tmp/lgnm-gpu-check. Exit 0 when every check that ran passed, 1 otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
WORK=${OUT:-/tmp/lgnm-gpu-check}
SITE=/tmp/lgnm-site
mkdir -p "$WORK"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
if compgen -G ".whl/*.whl" >/dev/null; then
  # --no-deps: the image's own torch, CuPy and numpy stay; .whl holds only what it lacks
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" .whl/*.whl >"$WORK/install.log" 2>&1 || echo "warning: wheel install failed, see $WORK/install.log"
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" -m tools.gpu_check --work "$WORK" "$@"
