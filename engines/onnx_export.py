"""LGNMNet weights -> ONNX graph computing P(expression), for ONNX Runtime and TensorRT.

Graph: input "roi" (N,3,112,112) float32 with a dynamic batch, output "p_expression" (N,).
The weights' metadata (and the sha256 of the weights file) is copied into the model's
metadata_props so that an ONNX file alone says what it scores and with which features.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import onnx
import torch

from engines.lgnmnet import ExpressionProbability
from engines.weights import file_sha256, load_weights
from realtime.common.errors import OneLineParser, UserError, cli_entry, text_arg

INPUT_NAME = "roi"
OUTPUT_NAME = "p_expression"
OPSET = 17


def export_onnx_bytes(weights: str | Path, opset: int = OPSET) -> bytes:
    """Serialised ONNX model for `weights` (checked with onnx.checker)."""
    weights = Path(weights)
    if opset < 17:
        raise UserError(f"--opset: must be >= 17 (the opsets TensorRT 10 parses and this project tests), got {opset}")
    net, meta = load_weights(weights)
    model = ExpressionProbability(net).eval()
    dummy = torch.zeros(1, 3, meta.roi_size, meta.roi_size)
    buf = io.BytesIO()
    # The TorchScript exporter (dynamo=False): it needs no onnxscript and gives a plain,
    # TensorRT-friendly graph for this all-convolutional network. Its deprecation warning
    # is silenced because the choice is deliberate (onnxscript is not a dependency).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX export")
        torch.onnx.export(  # a file-like `f` is documented; the stub wants a path
            model, (dummy,), buf, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],  # type: ignore[arg-type]
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    props = {
        "lgnm": json.dumps(meta.to_dict(), sort_keys=True),
        "weights_sha256": file_sha256(weights),
        "weights_file": weights.name,
    }
    onnx.helper.set_model_props(proto, props)
    proto.doc_string = f"LGNMNet {meta.type} P(expression), K={meta.k} at {meta.fps} fps"
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def export_onnx(weights: str | Path, out: str | Path, opset: int = OPSET) -> Path:
    """Export `weights` to an ONNX file at `out`."""
    data = export_onnx_bytes(weights, opset)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    return out


def onnx_metadata(path: str | Path) -> dict[str, str]:
    """metadata_props of an ONNX file as a dict."""
    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


@cli_entry
def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="lgnm-export-onnx", description="Export LGNMNet weights to ONNX "
                                 "(input (N,3,112,112) float32, output (N,) P(expression))")
    ap.add_argument("--weights", required=True, type=text_arg, help="LGNMNet .safetensors weights file")
    ap.add_argument("--out", required=True, type=text_arg, help="ONNX file to write")
    ap.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default {OPSET})")
    args = ap.parse_args(argv)
    print(export_onnx(args.weights, args.out, args.opset))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
