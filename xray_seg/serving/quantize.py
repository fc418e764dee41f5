"""Full-integer int8 engines, calibrated on training tiles and accepted only if they keep accuracy.

``xray-seg export RUN --out OUT --format ...,tflite_int8,onnx_int8 --calibration VOC`` writes,
beside the float files of :mod:`xray_seg.serving.exporter` (for a station: docs/station.md,
"int8 engines: full-integer, kept only if accurate"):

- ``tflite_int8`` -> ``model_int8.tflite``: TFLite full-integer, int8 weights and activations
  (``TFLITE_BUILTINS_INT8`` only), uint8 pixels in, float32 probabilities out;
- ``onnx_int8`` -> ``model_int8.onnx``: ONNX Runtime static quantisation of ``model.onnx``,
  QDQ, int8 weights per channel, int8 activations, float32 pixels in, logits out.

Both are one-tile networks tiled by the export's geometry rule and loaded with
:func:`xray_seg.serving.engines.load_engine` (variant ``int8``; OpenVINO reads
``model_int8.onnx``).

**Calibration** (:func:`calibration_tiles`): ``num`` tiles (default 64) from the *training*
split, seeded: the images are shuffled, each gives one tile under the geometry rule (padded
with air), going round again when there are fewer images than tiles. Activation ranges are the
min/max over these tiles.

**The gate** (:func:`export_int8`): each engine runs on the *validation* split by the geometry
rule (:func:`xray_seg.evaluation.engine_eval.engine_accuracy`) beside the Keras model and is
accepted only if its val mIoU is at most ``max_drop_points`` (1) below the Keras model's. A
rejected variant's file is deleted and ``export.json`` ``"int8"`` records it with
``"accepted": false, "file": null``, beside the calibration, the gate, the Keras figures and
each variant's median one-tile latency, mIoU, delta, PD at PFA 5 % (None without threat-free
val bags) and ``accepted``.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from xray_seg.conversion.voc import read_class_names, read_split
from xray_seg.core.errors import ConfigError
from xray_seg.core.fileio import atomic_path, write_bytes_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.layouts import ExportLayout, VocLayout
from xray_seg.evaluation.engine_eval import compare_with, engine_accuracy
from xray_seg.evaluation.timing import median_ms
from xray_seg.inference.alarm_rule import AlarmRule
from xray_seg.inference.tta import resize_bilinear, softmax
from xray_seg.serving.engines import load_engine
from xray_seg.serving.tflite import fixed_size_function

INT8_FORMATS = ("tflite_int8", "onnx_int8")
#: format -> (engine, variant) of :func:`xray_seg.serving.engines.load_engine`
INT8_ENGINES = {"tflite_int8": ("tflite", "int8"), "onnx_int8": ("onnx", "int8")}
MAX_DROP_POINTS = 1.0
DEFAULT_CALIBRATION_TILES = 64
CALIBRATION_SPLIT = "train"
GATE_SPLIT = "val"


def int8_file(out_dir, fmt: str) -> Path:
    """The file a int8 format writes in the export folder ``out_dir``."""
    layout = ExportLayout(out_dir)
    return layout.tflite_model("int8") if fmt == "tflite_int8" else layout.root / "model_int8.onnx"


def check_calibration(voc_dir, formats) -> Path | None:
    """The calibration VOC folder, checked before any work: int8 formats need one with train and val splits."""
    wanted = [f for f in formats if f in INT8_FORMATS]
    if not wanted:
        return None
    if voc_dir is None:
        raise ConfigError(
            f"the int8 format(s) {', '.join(wanted)} need calibration data",
            fix="pass --calibration VOC (a VOC folder: tiles of its train split calibrate, its val split gates)",
        )
    voc_dir = Path(voc_dir)
    read_class_names(voc_dir)  # raises a DatasetError naming the file when it is not a VOC folder
    for split in (CALIBRATION_SPLIT, GATE_SPLIT):
        if not read_split(voc_dir, split):
            raise ConfigError(
                f"the {split} split of the calibration folder is empty",
                path=voc_dir,
                fix="give a VOC folder with images in ImageSets/Segmentation/train.txt and val.txt",
            )
    return voc_dir


def calibration_tiles(
    voc_dir, geometry, *, num: int = DEFAULT_CALIBRATION_TILES, seed: int = 0, split=CALIBRATION_SPLIT
):
    """``num`` uint8 tiles ``[num, h0, w0, 3]`` from ``split`` of ``voc_dir`` (module docstring)."""
    stems = read_split(voc_dir, split)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(stems))
    h0, w0 = geometry.tile
    tiles = []
    for i in range(int(num)):
        image = read_image_rgb(VocLayout(voc_dir).image_path(stems[order[i % len(order)]]))
        h, w = geometry.scaled_size(*image.shape[:2])
        if (h, w) != image.shape[:2]:
            image = np.clip(np.rint(resize_bilinear(image, (h, w))), 0, 255).astype(np.uint8)
        ph, pw = geometry.padded_size(h, w)
        pad = int(geometry.pad_value)
        image = np.pad(image, ((0, ph - h), (0, pw - w), (0, 0)), constant_values=pad)
        origins = geometry.tile_origins(h, w)
        y, x = origins[int(rng.integers(len(origins)))]
        tiles.append(image[y : y + h0, x : x + w0])
    return np.stack(tiles).astype(np.uint8)


def tflite_full_int8(model, input_size, tiles: np.ndarray) -> bytes:
    """A full-integer TFLite flatbuffer of ``model`` calibrated on ``tiles`` (uint8 in, float32 out).

    The graph is :func:`xray_seg.serving.tflite.fixed_size_function` (uint8 pixels ->
    softmax), with every op in ``TFLITE_BUILTINS_INT8``: a conversion error is raised if
    any op has no int8 kernel, never a silent float fallback.
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed_size_function(model, input_size)])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

    def representative():
        for tile in tiles:
            yield [tile[None].astype(np.uint8)]

    converter.representative_dataset = representative
    return converter.convert()


class _TileReader:
    """ONNX Runtime's calibration data reader (``get_next``/``rewind``) over float32 tiles."""

    def __init__(self, input_name: str, tiles: np.ndarray):
        self.input_name = input_name
        self.tiles = np.asarray(tiles, dtype=np.float32)
        self.index = 0

    def get_next(self):
        if self.index >= len(self.tiles):
            return None
        self.index += 1
        return {self.input_name: self.tiles[self.index - 1 : self.index]}

    def rewind(self):
        self.index = 0


def onnx_static_int8(float_onnx, out_path, tiles: np.ndarray) -> Path:
    """``out_path``: ONNX Runtime static QDQ int8 quantisation of ``float_onnx`` calibrated on ``tiles``.

    ``quant_pre_process`` first (without symbolic shape inference, which the batch dimension
    of a Keras export defeats), then ``quantize_static``: QDQ format, int8 weights per
    channel and int8 activations (S8S8, ONNX Runtime's recommended QDQ setting on x86),
    min/max calibration.
    """
    import onnxruntime as ort  # lazy: optional package, only for onnx_int8
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = ort.InferenceSession(str(float_onnx), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".quant-") as work:
        pre = Path(work) / "pre.onnx"
        quant_pre_process(str(float_onnx), str(pre), skip_symbolic_shape=True)
        with atomic_path(out_path) as tmp:
            quantize_static(
                str(pre),
                str(tmp),
                _TileReader(input_name, tiles),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    return out_path


@dataclass
class Int8Variant:
    """What the gate measured for one int8 format (the ``export.json`` ``int8.variants`` entry)."""

    format: str
    engine: str
    variant: str
    file: str | None = None
    accepted: bool = False
    size_bytes: int | None = None
    latency_ms: float | None = None  # median, one tile, batch 1, CPU
    accuracy: dict = field(default_factory=dict)  # engine_eval.compare_with(...)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    def summary_line(self, max_drop: float) -> str:
        """The one line ``xray-seg export`` prints about this variant."""
        if self.error:
            return f"{self.format:<12} FAILED: {self.error.splitlines()[0][:300]}"
        acc = self.accuracy
        pd = acc.get("pd_at_pfa_5")
        figures = (
            f"val mIoU {acc['miou']:.4f} vs Keras {acc['keras_miou']:.4f} ({acc['miou_delta_points']:+.2f} points), "
            f"PD@PFA5% {'n/a (no clean val bags)' if pd is None else f'{pd:.3f}'}, {self.latency_ms:.1f} ms/tile"
        )
        if self.accepted:
            return f"{self.format:<12} accepted: {self.file}  {figures}"
        return f"{self.format:<12} REJECTED (drop > {max_drop:g} point), not written: {figures}"


def _measure(engine, tiles, runs: int) -> float:

    tile = tiles[:1]
    return median_ms(lambda: engine.probabilities(tile), warmup=2, runs=max(1, runs))


def _build(fmt: str, source, out_dir: Path, tiles, float_onnx) -> Path:
    """Write the int8 file of ``fmt`` into ``out_dir`` and return its path."""
    path = int8_file(out_dir, fmt)
    if fmt == "tflite_int8":
        write_bytes_atomic(path, tflite_full_int8(source.model, source.input_size, tiles))
    else:
        onnx_static_int8(float_onnx(), path, tiles)
    return path


@dataclass
class GateSettings:
    """How the int8 variants are calibrated and gated (module docstring)."""

    voc_dir: Path
    num_tiles: int = DEFAULT_CALIBRATION_TILES
    seed: int = 0
    max_drop_points: float = MAX_DROP_POINTS
    runs: int = 10
    keep_rejected: bool = False  # xray-seg bench --suite station measures every variant
    limit: int | None = None  # only the first val images (tests)

    def as_dict(self) -> dict:
        return {
            "voc": str(Path(self.voc_dir).resolve()),
            "split": CALIBRATION_SPLIT,
            "tiles": int(self.num_tiles),
            "seed": int(self.seed),
            "method": "min/max over the calibration tiles",
        }


def _gate_one(fmt, source, out_dir, tiles, float_onnx, settings, reference, rule) -> Int8Variant:

    engine_name, variant = INT8_ENGINES[fmt]
    result = Int8Variant(fmt, engine_name, variant)
    try:
        path = _build(fmt, source, out_dir, tiles, float_onnx)
        result.size_bytes = path.stat().st_size
        engine = load_engine(path, engine_name, probe=False)  # the file it has just written
        scores = engine_accuracy(engine, settings.voc_dir, geometry=source.geometry, rule=rule, limit=settings.limit)
        result.accuracy = compare_with(scores, reference)
        result.latency_ms = _measure(engine, tiles, settings.runs)
        result.accepted = result.accuracy["miou_delta_points"] >= -settings.max_drop_points
        result.file = path.name
        if not result.accepted and not settings.keep_rejected:
            del engine
            path.unlink()
            result.file = None
    except Exception as exc:  # record the exact error and go on with the other variants
        result.error = f"{type(exc).__name__}: {exc}"
        int8_file(out_dir, fmt).unlink(missing_ok=True)
    return result


def keras_reference(source, settings: GateSettings, rule, tiles) -> dict:
    """The Keras model's val figures and one-tile latency, against which the int8 engines are gated."""
    model = source.model
    scores = engine_accuracy(model, settings.voc_dir, geometry=source.geometry, rule=rule, limit=settings.limit)
    tile = tiles[:1].astype(np.float32)
    latency = median_ms(lambda: softmax(model.predict_on_batch(tile)), warmup=2, runs=max(1, settings.runs))
    return {**scores, "latency_ms": latency}


def export_int8(source, out_dir, formats, settings: GateSettings, *, float_onnx=None, progress=None):
    """Calibrate, write and gate each int8 format of ``formats`` (module docstring).

    Returns ``(entry, variants)``: the ``export.json`` ``"int8"`` entry and the
    :class:`Int8Variant` of each format.

    ``float_onnx``: a function returning the float ``model.onnx`` path to quantise
    (:func:`xray_seg.serving.onnx_export.export_onnx`), called only for ``onnx_int8``.
    """
    out_dir = Path(out_dir)
    wanted = [f for f in formats if f in INT8_FORMATS]
    rule = AlarmRule.from_dict(source.alarm) if source.alarm else None
    if progress:
        progress("int8 calibration tiles")
    tiles = calibration_tiles(settings.voc_dir, source.geometry, num=settings.num_tiles, seed=settings.seed)
    if progress:
        progress("int8 gate: keras on val")
    reference = keras_reference(source, settings, rule, tiles)
    variants = {}
    for fmt in wanted:
        if progress:
            progress(f"int8 {fmt}")
        variants[fmt] = _gate_one(fmt, source, out_dir, tiles, float_onnx, settings, reference, rule)
    entry = {
        "calibration": settings.as_dict(),
        "gate": {
            "split": GATE_SPLIT,
            "images": reference["images"],
            "max_miou_drop_points": settings.max_drop_points,
            "rule": "accepted when the val mIoU is at most max_miou_drop_points below the Keras model's, "
            "both by the geometry rule; a rejected variant's file is not kept",
        },
        "keras": reference,
        "variants": {fmt: v.as_dict() for fmt, v in variants.items()},
        "cpu_threads": os.cpu_count(),
    }
    return entry, list(variants.values())
