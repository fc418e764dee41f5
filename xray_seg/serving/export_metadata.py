"""The ``export.json`` metadata of an export (the keys: :mod:`xray_seg.serving.exporter`)
and the arguments both SavedModels' signatures are built from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import keras
import tensorflow as tf

from xray_seg.core.version import __version__
from xray_seg.core.viz import voc_palette
from xray_seg.inference.alarm_rule import load_rule
from xray_seg.inference.export_file import file_sha256
from xray_seg.serving.export_source import ExportSource

ALARM_DOCS = {  # outputs of serving.alarm_graph.alarm_outputs
    "alarm": "bool [B], the bag alarms for some class (thresholds in model_info / export.json 'alarm')",
    "alarm_per_class": "bool [B, K]",
    "alarm_scores": "float32 [B, K], highest confidence of an item of the class with area >= min_area (0: none)",
}

SIGNATURE_DOCS = {
    "serving_default": {
        "inputs": {"images": "uint8 [B, H, W, 3] RGB, any H and W"},
        "outputs": {
            "class_map": "uint8 [B, H, W]",
            "probabilities": "float32 [B, H, W, K]",
            "class_pixel_counts": "int32 [B, K]",
            "image_sizes": "int32 [B, 2] (H, W)",
            **ALARM_DOCS,
        },
    },
    "serve_encoded": {
        "inputs": {"encoded": "string [B], PNG or JPEG file bytes; sizes may differ"},
        "outputs": {
            "class_map": "uint8 [B, Hmax, Wmax], padding 255",
            "probabilities": "float32 [B, Hmax, Wmax, K], padding 0",
            "class_pixel_counts": "int32 [B, K] (real pixels only)",
            "image_sizes": "int32 [B, 2] (H, W) of each image",
            **ALARM_DOCS,
        },
    },
    "model_info": {
        "inputs": {},
        "outputs": {
            "class_names": "string [K]",
            "input_size": "int32 [2]",
            "num_classes": "int32 []",
            "model_name": "string []",
            "xray_seg_version": "string []",
            "scale": "float32 []",
            "tile_size": "int32 [2]",
            "tile_overlap": "float32 []",
            "tile_step": "int32 [2]",
            "pad_value": "float32 []",
            "alarm_thresholds": "float32 [K]",
            "alarm_min_area": "int32 [K]",
            "alarm_closing": "int32 []",
            "alarm_calibrated": "bool []",
        },
    },
    "serve_tiles": {
        "inputs": {"images": "uint8 [B, th, tw, 3] RGB, exactly the export's tile (geometry.tile)"},
        "outputs": {"probabilities": "float32 [B, th, tw, K], one forward pass: no tiling, class map or alarm"},
    },
}


def build_metadata(source: ExportSource) -> dict:
    """The ``export.json`` dictionary (module docstring)."""
    k = len(source.class_names)
    return {
        "format_version": 1,
        "model_name": source.model_name,
        "class_names": list(source.class_names),
        "num_classes": k,
        "palette": voc_palette(k).tolist(),
        "input_size": list(source.input_size),
        "config_digest": source.config_digest,
        "config_digest_method": source.config_digest_method,
        "metrics": source.metrics,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "xray_seg_version": __version__,
        "source": str(Path(source.model_file).resolve()),
        "source_sha256": file_sha256(source.model_file) if Path(source.model_file).is_file() else None,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "signatures": SIGNATURE_DOCS,
        "geometry": source.geometry.as_dict(),
        "rgba_policy": "alpha composited over white; grey replicated to RGB",
        "alarm": source_alarm(source),
    }


def source_alarm(source: ExportSource) -> dict:
    """The alarm rule to export: the source's, ``RUN/alarm_thresholds.json``, or the defaults."""
    if source.alarm is None:
        source.alarm = load_rule(source.run_dir or source.model_file.parent, source.class_names).to_dict()
    return source.alarm


def endpoint_arguments(source: ExportSource) -> dict:
    """What both SavedModels' signatures are built from (``add_serving_endpoints`` keywords)."""
    return {
        "input_size": source.input_size,
        "class_names": source.class_names,
        "model_name": source.model_name,
        "version": __version__,
        "geometry": source.geometry,
        "alarm": source_alarm(source),
    }
