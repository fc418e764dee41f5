"""The export formats, the optional packages each needs, and the checks made before an
export loads its model (:func:`check_export_target`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from xray_seg.core.errors import ConfigError, XraySegError
from xray_seg.core.fileio import prepare_output_dir
from xray_seg.serving.quantize import INT8_FORMATS, check_calibration

FORMATS = ("savedmodel", "savedmodel_optimized", "tflite", "onnx", "openvino")
DEFAULT_FORMATS = ("savedmodel", "savedmodel_optimized", "tflite")
ONNX_PACKAGES = ("tf2onnx", "onnx")
OPENVINO_PACKAGES = ("openvino",)
INT8_PACKAGES = {"tflite_int8": (), "onnx_int8": ("tf2onnx", "onnx", "onnxruntime")}


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"savedmodel,tflite"`` -> ``("savedmodel", "tflite")``; ``"all"`` = every float format.

    ``openvino`` converts the ONNX model, so it brings ``onnx`` with it (placed before it).
    The int8 formats (:data:`xray_seg.serving.quantize.INT8_FORMATS`) are named explicitly,
    alone or beside ``all``, because they need ``--calibration``.
    """
    if not text:
        return DEFAULT_FORMATS
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if "all" in items:
        at = items.index("all")
        items[at : at + 1] = list(FORMATS)
    known = FORMATS + INT8_FORMATS
    bad = [t for t in items if t not in known]
    if bad or not items:
        raise ConfigError(
            f"unknown export format(s) {bad or text!r}", fix=f"use a comma-separated subset of {','.join(known)}"
        )
    if "openvino" in items and "onnx" not in items:
        items.insert(items.index("openvino"), "onnx")
    return tuple(dict.fromkeys(items))


def missing_onnx_packages() -> list[str]:
    """The Python packages ONNX export needs (Keras 3 ``model.export(format="onnx")``) that are missing."""
    return [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]


def missing_packages(formats) -> list[str]:
    """The Python packages ``formats`` need (ONNX: tf2onnx, onnx; OpenVINO: openvino) that are missing."""
    missing = missing_onnx_packages() if "onnx" in formats else []
    if "openvino" in formats:
        missing += [name for name in OPENVINO_PACKAGES if importlib.util.find_spec(name) is None]
    return missing


def onnx_unavailable_error(missing: list[str]) -> XraySegError:
    what = "OpenVINO export" if missing == ["openvino"] else "ONNX export"
    return XraySegError(
        f"{what} needs the Python package(s) {', '.join(missing)}, which are not installed "
        "(Keras 3 model.export(format='onnx') converts through tf2onnx; OpenVINO IR is converted from the ONNX file)",
        fix=f"install {' and '.join(missing)} in this environment, or leave onnx/openvino out of --format "
        f"(e.g. --format savedmodel,tflite)",
    )


def int8_unavailable_error(fmt: str, missing: list[str]) -> XraySegError:
    return XraySegError(
        f"the {fmt} format needs the Python package(s) {', '.join(missing)}, which are not installed "
        "(it quantises the ONNX model with onnxruntime)",
        fix=f"install {' and '.join(missing)} in this environment, or leave {fmt} out of --format",
    )


def check_export_target(
    out_dir: str | Path, formats=DEFAULT_FORMATS, *, force: bool = False, calibration=None
) -> tuple[str, ...]:
    """The checks made before the (slow) model load: the formats, their packages, the
    calibration folder of int8 formats, an existing ``out_dir``."""
    formats = parse_formats(",".join(formats)) if not isinstance(formats, str) else parse_formats(formats)
    if missing_packages(formats):
        raise onnx_unavailable_error(missing_packages(formats))  # before any work or any output
    for fmt, packages in INT8_PACKAGES.items():
        missing = [name for name in packages if importlib.util.find_spec(name) is None]
        if fmt in formats and missing:
            raise int8_unavailable_error(fmt, missing)
    check_calibration(calibration, formats)
    out_dir = Path(out_dir)
    if not force and out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        prepare_output_dir(out_dir)  # raises OutputExistsError
    return formats
