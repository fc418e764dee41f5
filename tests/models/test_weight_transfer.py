"""Weights by layer path and shape, classifier rows by class name (models/weight_transfer.py)."""

import numpy as np
import pytest
from _model_files import randomise

from xray_seg.core.errors import ModelError
from xray_seg.models.registry import build_model
from xray_seg.models.weight_transfer import (
    check_class_names,
    class_axes,
    class_mapping,
    model_weights,
    transfer_weights,
)

BISENET = {"width": 0.0625}  # four auxiliary heads besides the main one
IMAGE = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")


def outputs(model):
    out = model(IMAGE, training=False)
    return {k: np.asarray(v) for k, v in out.items()} if isinstance(out, dict) else {"logits": np.asarray(out)}


def test_class_mapping_keeps_background_and_maps_by_name():
    assert class_mapping(["bg", "gun", "knife"], ["_background_", "knife", "battery"]) == [0, 2, None]
    assert class_mapping(["bg", "gun"], ["bg", "gun"]) == [0, 1]
    with pytest.raises(ModelError, match="repeat: gun"):
        check_class_names(["bg", "gun", "gun"], "names.txt")


def test_same_classes_copy_every_tensor_and_give_the_same_logits():
    source = build_model("cwf_deeplabv3plus", 6, (64, 64, 3), width=0.0625)
    randomise(source, 1)
    target = build_model("cwf_deeplabv3plus", 6, (None, None, 3), width=0.0625)
    report = transfer_weights(model_weights(source), target)
    assert report.counts() == {
        "loaded": len(source.weights),
        "mapped": 0,
        "skipped": 0,
        "new": 0,
        "unused": 0,
        "target_tensors": len(source.weights),
    }
    np.testing.assert_array_equal(outputs(target)["logits"], outputs(source)["logits"])


def test_class_remap_on_every_head_keeps_kept_rows_and_leaves_new_rows_fresh():
    """Same class count, other names and order: the classifier tensors (main and the four
    auxiliary heads of BiSeNet V2) are found by shape against a K+1 build, not by name."""
    src_names = ["_background_", "gun", "knife", "pliers"]
    dst_names = ["background", "knife", "battery", "gun"]
    source = build_model("bisenetv2", 4, (64, 64, 3), aux=True, **BISENET)
    randomise(source, 2)
    target = build_model("bisenetv2", 4, (64, 64, 3), aux=True, **BISENET)
    probe = build_model("bisenetv2", 5, (64, 64, 3), aux=True, **BISENET)
    axes = class_axes(target, probe)
    assert sorted(axes) == sorted(
        f"{head}/classifier/{kind}"
        for head in ("head", "aux_head", "aux2_head", "aux3_head", "aux4_head")
        for kind in ("kernel", "bias")
    )
    fresh = model_weights(target)
    mapping = class_mapping(src_names, dst_names)
    report = transfer_weights(model_weights(source), target, mapping=mapping, axes=axes)
    assert sorted(report.mapped) == sorted(axes) and not report.skipped and not report.new

    after, before = model_weights(target), model_weights(source)
    for path in axes:
        np.testing.assert_array_equal(after[path][..., [0, 1, 3]], before[path][..., [0, 2, 1]])  # bg, knife, gun
        np.testing.assert_array_equal(after[path][..., 2], fresh[path][..., 2])  # battery: fresh
    got, want = outputs(target), outputs(source)
    for head in got:  # every head: the kept classes' logits are the source's
        np.testing.assert_allclose(got[head][..., [0, 1, 3]], want[head][..., [0, 2, 1]], rtol=0, atol=1e-5)
        assert not np.allclose(got[head][..., 2], want[head][..., 3], atol=1e-3)  # battery is not pliers


def test_partial_match_table_names_loaded_skipped_new_and_unused():
    """A source without auxiliary heads and one more class: the aux heads are new, the main
    classifier's rows are mapped, a dropped class is left out."""
    source = build_model("bisenetv2", 5, (64, 64, 3), aux=False, **BISENET)
    randomise(source, 3)
    target = build_model("bisenetv2", 4, (64, 64, 3), aux=True, **BISENET)
    axes = class_axes(target, build_model("bisenetv2", 5, (64, 64, 3), aux=True, **BISENET))
    weights = model_weights(source)
    weights["head/conv/bn/gamma"] = np.ones(3, "float32")  # a tensor of another shape: skipped
    weights["extra/kernel"] = np.ones(2, "float32")  # one the target lacks: unused
    mapping = class_mapping(["bg", "a", "b", "c", "d"], ["bg", "a", "c", "e"])
    report = transfer_weights(weights, target, mapping=mapping, axes=axes)
    counts = report.counts()
    assert report.mapped == ["head/classifier/kernel", "head/classifier/bias"]
    assert [s["name"] for s in report.skipped] == ["head/conv/bn/gamma"]
    assert report.skipped[0]["source_shape"] == [3] and report.unused == ["extra/kernel"]
    assert all(name.startswith("aux") for name in report.new) and counts["new"] == len(report.new) > 0
    assert counts["loaded"] + counts["mapped"] + counts["skipped"] + counts["new"] == counts["target_tensors"]
    assert counts["target_tensors"] == len([v for v in target.weights if "seed_generator" not in v.path])
    table = report.table()
    for kind in ("loaded", "mapped", "skipped", "new", "unused"):
        assert f"  {kind} " in table
    assert f"new      {counts['new']:6d}" in table and "head/conv/bn/gamma" in table
    assert 0.5 < report.matched_share < 1.0
