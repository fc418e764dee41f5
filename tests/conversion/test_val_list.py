"""``convert --val-list`` / ``ConvertConfig.val_stems``: stems that always go to val, the rest
split exactly as without them (conversion/convert.py); and the demo's threat-free val bags."""

from __future__ import annotations

import pytest
from _helpers import write_labels
from test_convert_subsets import add_item, run

from xray_seg.conversion.splits import split_stems
from xray_seg.conversion.voc import read_split, read_subsets
from xray_seg.core.errors import ConfigError


@pytest.fixture
def labels(tmp_path):
    return write_labels(tmp_path, "knife")


def test_listed_stems_go_to_val_and_the_rest_split_as_before(tmp_path, labels):
    stems = [f"bag_{i:02d}" for i in range(20)]
    extra = [f"clean_{i}" for i in range(4)]
    for stem in stems + extra:
        add_item(tmp_path / "lm", stem, None)
    run(tmp_path / "lm", tmp_path / "voc", labels, val_stems=extra + ["not_converted"])
    train, val = read_split(tmp_path / "voc", "train"), read_split(tmp_path / "voc", "val")
    expected_train, expected_val = split_stems(stems, 0.3, 0)
    assert train == expected_train
    assert val == sorted(expected_val + extra)
    assert "not_converted" not in val


def test_resume_adds_new_listed_stems_to_val_and_keeps_every_earlier_assignment(tmp_path, labels):
    for i in range(10):
        add_item(tmp_path / "lm", f"bag_{i}", None)
    run(tmp_path / "lm", tmp_path / "voc", labels)
    train_before, val_before = read_split(tmp_path / "voc", "train"), read_split(tmp_path / "voc", "val")
    for i in range(3):
        add_item(tmp_path / "lm", f"clean_{i}", None)
    run(tmp_path / "lm", tmp_path / "voc", labels, resume=True, val_stems=["clean_0", "clean_1", "clean_2"])
    assert read_split(tmp_path / "voc", "train") == train_before
    assert read_split(tmp_path / "voc", "val") == sorted(val_before + ["clean_0", "clean_1", "clean_2"])


def test_resume_refuses_to_move_a_training_image_to_val(tmp_path, labels):
    for i in range(10):
        add_item(tmp_path / "lm", f"bag_{i}", None)
    run(tmp_path / "lm", tmp_path / "voc", labels)
    trained = read_split(tmp_path / "voc", "train")[0]
    split_file = tmp_path / "voc" / "ImageSets" / "Segmentation" / "train.txt"
    before = split_file.read_bytes()
    with pytest.raises(ConfigError, match=f"already in train \\({trained}"):
        run(tmp_path / "lm", tmp_path / "voc", labels, resume=True, val_stems=[trained])
    assert split_file.read_bytes() == before


def test_cli_val_list_file(tmp_path, labels, cli):
    for i in range(10):
        add_item(tmp_path / "lm", f"bag_{i}", None)
    (tmp_path / "keep.txt").write_text("bag_0\nbag_1\n\n")
    args = ["convert", str(tmp_path / "lm"), str(tmp_path / "voc"), "--labels", str(labels), "--quiet"]
    rc, _ = cli([*args, "--val-list", str(tmp_path / "keep.txt")])
    assert rc == 0
    assert {"bag_0", "bag_1"} <= set(read_split(tmp_path / "voc", "val"))
    rc, line = cli([*args, "--force", "--val-list", str(tmp_path / "missing.txt")])
    assert rc == 2 and "missing.txt" in line and "--val-list" in line


def test_demo_bags_add_threat_free_bags_to_val_only(tmp_path):
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.demo import DemoConfig, synthesize_demo_bags

    cfg = DemoConfig(num_images=12, image_size=64, clean_val_bags=4)
    clean = synthesize_demo_bags(cfg, tmp_path / "lm")
    assert clean == [f"xray_{i:05d}" for i in range(12, 16)]
    assert (tmp_path / "lm" / "synth_config_clean_val.yaml").is_file()
    config = ConvertConfig(labels=str(tmp_path / "lm" / "labels.txt"), workers=1, val_stems=clean)
    convert(tmp_path / "lm", tmp_path / "voc", config, progress=False)
    voc = tmp_path / "voc"
    assert set(read_subsets(voc)["clean"]) == set(clean)  # every threat bag holds a threat
    assert set(clean) <= set(read_split(voc, "val")) and set(clean).isdisjoint(read_split(voc, "train"))
    train, val = split_stems([f"xray_{i:05d}" for i in range(12)], 0.3, 0)
    assert read_split(voc, "train") == train and sorted(set(read_split(voc, "val")) - set(clean)) == val
