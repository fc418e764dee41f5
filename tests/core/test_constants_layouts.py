"""One definition of each shared thing (issue 15, part 2): constants, folder layouts, logits.

The layouts pin the on-disk names every stage and every user script relies on; the
guards fail when a module defines its own ignore label, image magic or ``"logits"``
unwrapping again instead of importing the shared one.
"""

import ast
from pathlib import Path

import numpy as np
import pytest

from xray_seg.core.constants import IGNORE_LABEL, JPEG_MAGIC, PNG_MAGIC, SCAN_IMAGE_SUFFIXES, VOC_IMAGE_SUFFIXES
from xray_seg.core.errors import DatasetError, ModelError
from xray_seg.core.layouts import EvalLayout, ExportLayout, RunLayout, VocLayout
from xray_seg.models.outputs import MAIN_OUTPUT, logits_of

PACKAGE = Path(__file__).resolve().parents[2] / "xray_seg"


def test_constants_values():
    assert IGNORE_LABEL == 255
    assert PNG_MAGIC == b"\x89PNG\r\n\x1a\n" and JPEG_MAGIC == b"\xff\xd8\xff"
    assert set(VOC_IMAGE_SUFFIXES) <= set(SCAN_IMAGE_SUFFIXES)


def test_run_layout_names(tmp_path):
    run = RunLayout(str(tmp_path))
    assert run.root == tmp_path
    rel = {
        name: getattr(run, name).relative_to(tmp_path).as_posix()
        for name in (
            "config_file",
            "class_names_file",
            "best_model",
            "history_csv",
            "training_curves",
            "logs_dir",
            "checkpoints_dir",
            "state_file",
            "last_weights",
            "best_weights",
            "rng_state",
        )
    }
    assert rel == {
        "config_file": "config.yaml",
        "class_names_file": "class_names.txt",
        "best_model": "best_model.keras",
        "history_csv": "history.csv",
        "training_curves": "training_curves.png",
        "logs_dir": "logs",
        "checkpoints_dir": "checkpoints",
        "state_file": "checkpoints/state.json",
        "last_weights": "checkpoints/last.weights.h5",
        "best_weights": "checkpoints/best.weights.h5",
        "rng_state": "checkpoints/rng_state.npz",
    }
    evaluation = EvalLayout(run.eval_dir("val"))
    assert evaluation.metrics_json == tmp_path / "eval-val" / "metrics.json"
    assert evaluation.report_md.name == "report.md" and evaluation.confusion_matrix_png.name == "confusion_matrix.png"


def test_export_layout_names(tmp_path):
    export = ExportLayout(tmp_path)
    assert export.savedmodel_dir == tmp_path / "savedmodel"
    assert export.manifest == tmp_path / "manifest.json"
    assert export.onnx_model == tmp_path / "model.onnx"
    assert export.tflite_model("float16") == tmp_path / "model_float16.tflite"
    assert ExportLayout.metadata_file(export.savedmodel_dir) == tmp_path / "savedmodel" / "export.json"
    assert not ExportLayout.is_savedmodel(export.savedmodel_dir)
    export.savedmodel_dir.mkdir()
    (export.savedmodel_dir / "saved_model.pb").write_bytes(b"")
    assert ExportLayout.is_savedmodel(export.savedmodel_dir)


def test_voc_layout_finds_images_by_suffix(tmp_path):
    voc = VocLayout(tmp_path)
    voc.images_dir.mkdir()
    (voc.images_dir / "a.jpg").write_bytes(b"")
    assert voc.image_path("a") == tmp_path / "JPEGImages" / "a.jpg"
    assert voc.split_file("val") == tmp_path / "ImageSets" / "Segmentation" / "val.txt"
    assert voc.mask_path("a") == tmp_path / "SegmentationClass" / "a.png"
    with pytest.raises(DatasetError, match="no image for 'b'"):
        voc.image_path("b")


def test_layouts_are_frozen_values(tmp_path):
    assert RunLayout(tmp_path) == RunLayout(str(tmp_path))
    with pytest.raises(AttributeError):
        RunLayout(tmp_path).root = tmp_path / "other"


def test_logits_of():
    main, aux = np.zeros((1, 2, 2, 3)), np.ones((1, 2, 2, 3))
    assert logits_of(main) is main
    assert logits_of({MAIN_OUTPUT: main, "aux": aux}) is main
    assert logits_of({"probabilities": aux}) is aux  # one output under another name
    with pytest.raises(ModelError, match="none is called 'logits'"):
        logits_of({"a": main, "b": aux})


def _nodes_outside(home: Path):
    """Every AST node of the package's modules except ``home``, with its file."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path != home:
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                yield path, node


def test_no_second_definition_of_the_shared_constants():
    for path, node in _nodes_outside(PACKAGE / "core" / "constants.py"):
        if not isinstance(node, ast.Assign):
            continue
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if isinstance(node.value, ast.Constant):
            value = node.value.value
            is_label = type(value) is int and value == 255  # (a pixel value 255.0 is "white", another meaning)
            assert not (is_label and any("IGNORE" in n or "CLASS" in n for n in names)), (path, names)
            assert value not in (PNG_MAGIC, JPEG_MAGIC), (path, names)
        if isinstance(node.value, ast.Tuple):
            assert not any(n.endswith("SUFFIXES") for n in names), (path, names)


def test_logits_are_unwrapped_in_one_place():
    for path, node in _nodes_outside(PACKAGE / "models" / "outputs.py"):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            assert node.slice.value != MAIN_OUTPUT, f"{path}:{node.lineno}: use xray_seg.models.outputs.logits_of"
