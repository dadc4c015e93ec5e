#!/usr/bin/env bash
# Fetch into .whl/ the wheels the GPU image lacks (tools/gpu_check.sh installs them
# there with --no-deps): Python 3.12, manylinux x86_64. The image holds torch, CuPy,
# numpy 2, OpenCV (headless), scipy, scikit-image, pandas, matplotlib, rich, onnx,
# onnxruntime, safetensors, pytest and hypothesis (device tool, KINDS.md).
# PyAV (35 MB) is left out: the device tool carries at most 64 MiB with the repository,
# and the GPU check replays frame folders, which need no FFmpeg.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  mediapipe==0.10.21 "protobuf>=4.25.3,<5" pyzmq openpyxl et-xmlfile jsonschema \
  jsonschema-specifications referencing rpds-py pympi-ling
du -sh .whl
