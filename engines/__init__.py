"""The LGNMNet model and its backends (torch, ONNX Runtime, TensorRT)."""
