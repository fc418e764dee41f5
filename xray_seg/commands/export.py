"""``xray-seg export``: SavedModel for inspection stations, TFLite, ONNX (see :mod:`xray_seg.serving.exporter`)."""

from __future__ import annotations

NAME = "export"
HELP = "export a trained model: SavedModel with serving signatures, TFLite variants, ONNX"
DESCRIPTION = """Export a run folder (or a .keras file) for inspection stations.

OUT/savedmodel/ is a SavedModel that plain TensorFlow loads (tf.saved_model.load) with the
signatures serving_default (uint8 images [B,H,W,3], any size), serve_encoded (PNG/JPEG bytes [B]),
model_info and serve_tiles (exact tiles -> probabilities, for hosts that tile); export.json beside saved_model.pb holds class names, palette, input size,
config digest and metrics. OUT/savedmodel_optimized/ has the same signatures around the frozen
network with batch norm folded into the convolutions (faster on CPU). OUT/model_{float32,float16,
int8_dynamic}.tflite take one uint8 image at the model's input size and return probabilities.
ONNX needs tf2onnx and onnx installed; openvino (OUT/openvino/model.xml, converted from the ONNX
model, so it implies onnx) needs openvino. `xray-seg predict --engine` runs any of them.
The full-integer int8 formats tflite_int8 and onnx_int8 are calibrated on tiles of the
train split of --calibration VOC and kept only if their val mIoU is at most 1 point below
the Keras model's; export.json "int8" records each one's latency, accuracy and "accepted".

  xray-seg export runs/demo/run --out runs/demo/export
  xray-seg export model.keras --class-names class_names.txt --out export --format savedmodel
  xray-seg export runs/demo/run --out export --format all,tflite_int8,onnx_int8 --calibration runs/demo/voc
  xray-seg predict runs/demo/export/savedmodel scans/*.png --out predictions/
"""


def add_arguments(parser):
    parser.add_argument("model", help="run folder (with best_model.keras) or a .keras file")
    parser.add_argument(
        "--out", required=True, help="output folder (refused if it exists and is not empty, unless --force)"
    )
    parser.add_argument(
        "--format",
        default="savedmodel,savedmodel_optimized,tflite",
        help="comma-separated subset of savedmodel,savedmodel_optimized,tflite,onnx,openvino,tflite_int8,"
        "onnx_int8; 'all' = the float formats (default: savedmodel,savedmodel_optimized,tflite); the int8 "
        "formats need --calibration",
    )
    parser.add_argument(
        "--calibration",
        help="VOC folder for the int8 formats: tiles of its train split calibrate, its val split gates",
    )
    parser.add_argument(
        "--calibration-tiles", type=int, default=64, help="calibration tiles drawn from the train split (default 64)"
    )
    parser.add_argument(
        "--max-miou-drop",
        type=float,
        default=1.0,
        help="an int8 variant is kept only if its val mIoU is at most this many points below Keras's (default 1)",
    )
    parser.add_argument("--class-names", help="class_names.txt for a bare .keras file (default: the one beside it)")
    parser.add_argument(
        "--input-size", help="HxW the model runs at, only for models built for any size (default: training size)"
    )
    parser.add_argument("--tflite-runs", type=int, default=10, help="timed runs per TFLite variant (default: 10)")
    parser.add_argument("--force", action="store_true", help="replace an existing output folder")


def run(args):
    from xray_seg import Segmenter
    from xray_seg.inference.tta_options import parse_size
    from xray_seg.serving.exporter import summary_lines
    from xray_seg.serving.formats import check_export_target, parse_formats

    formats = parse_formats(args.format)
    input_size = parse_size(args.input_size)
    check_export_target(args.out, formats, force=args.force, calibration=args.calibration)  # before the model load
    calibration = None
    if args.calibration:
        from pathlib import Path

        from xray_seg.serving.quantize import GateSettings

        if args.calibration_tiles < 1:
            from xray_seg.core.errors import ConfigError

            raise ConfigError(f"--calibration-tiles {args.calibration_tiles}", fix="give at least 1 tile (default 64)")
        calibration = GateSettings(
            Path(args.calibration),
            num_tiles=args.calibration_tiles,
            max_drop_points=args.max_miou_drop,
            runs=args.tflite_runs,
        )
    segmenter = Segmenter.load_for_export(args.model, class_names=args.class_names)
    result = segmenter.export(
        args.out,
        formats=formats,
        force=args.force,
        input_size=input_size,
        tflite_runs=args.tflite_runs,
        calibration=calibration,
    )
    for line in summary_lines(result):
        print(line)
    failed = [r.variant for r in result.tflite if r.error] + [v.format for v in result.int8 if v.error]
    return 1 if failed else 0
