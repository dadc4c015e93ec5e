"""The math of LGNMNet (layer 1, docs/DESIGN.md): dense flow and its encoding into the
network input (CPU and CUDA, behind one seam: `engines.pair_features`), the landmark
groups it reads, the model, its weights and its scorer backends (torch, ONNX Runtime,
TensorRT, the training-free baseline). Imports only `realtime.common` and `calibration`."""
