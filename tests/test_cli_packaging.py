"""Packaging (issue 29): every third-party import is declared, and the ONNX and OpenVINO extras are named."""

from __future__ import annotations

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(line.split(">")[0].split("=")[0].split("<")[0].strip().lower())
    return names


def test_scipy_is_declared_and_pinned():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    assert "scipy" in _requirements(cfg["options"]["install_requires"])
    assert "scipy" in _requirements((ROOT / "requirements.txt").read_text())


def test_onnx_and_openvino_extras_are_named():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert {"tf2onnx", "onnx", "onnxruntime"} <= _requirements(extras["onnx"])
    assert {"openvino", "tf2onnx", "onnx"} <= _requirements(extras["openvino"])
