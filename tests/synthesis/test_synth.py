"""The synthetic Labelme dataset: physics, determinism, schema, polygon footprints, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xray_seg.conversion.labelme_writer import mask_to_polygons
from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.synthesis.scene import CLASS_NAMES, SynthConfig, render_sample, synthesize
from xray_seg.synthesis.xray_physics import MATERIALS, dual_energy, pseudo_colour, transmission

REPO = Path(__file__).resolve().parents[2]
SMALL = dict(size=128, num=6, workers=1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "ds"
    paths = synthesize(out, SynthConfig(seed=3, **SMALL), progress=False)
    return out, paths


def _files(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".png", ".json")}


# ----------------------------------------------------------------------------- physics
def test_overlapping_slabs_multiply_transmissions():
    a = {"steel": np.full((4, 4), 1.5, np.float32)}
    b = {"organic": np.full((4, 4), 40.0, np.float32)}
    both = {**a, **b}
    for energy in ("low", "high"):
        np.testing.assert_allclose(
            transmission(both, energy), transmission(a, energy) * transmission(b, energy), rtol=1e-5
        )
    # two slabs of the same material: thicknesses add
    np.testing.assert_allclose(
        transmission({"glass": 3.0}, "low") * transmission({"glass": 4.0}, "low"),
        transmission({"glass": 7.0}, "low"),
        rtol=1e-5,
    )
    assert float(transmission({"steel": 0.0}, "high")) == pytest.approx(1.0)


def test_low_high_ratio_orders_effective_z():
    ratios = [MATERIALS[m].ratio for m in ("organic", "plastic", "glass", "aluminium", "steel", "copper")]
    assert ratios == sorted(ratios)
    for m in MATERIALS.values():  # the low-energy beam is always absorbed more
        assert m.mu_low > m.mu_high > 0


def test_steel_is_blue_and_darker_organic_is_orange_air_is_white():
    thick = np.full((1, 1), 3.0, np.float32)
    steel = pseudo_colour(*dual_energy({"steel": thick})).astype(int)[0, 0]
    organic = pseudo_colour(*dual_energy({"organic": thick * 5})).astype(int)[0, 0]
    organic_same = pseudo_colour(*dual_energy({"organic": thick})).astype(int)[0, 0]
    air = pseudo_colour(*dual_energy({"organic": thick * 0})).astype(int)[0, 0]
    assert steel[2] > steel[0]  # metal: blue
    assert organic[0] > organic[2]  # organic: orange
    assert steel.sum() < organic_same.sum()  # steel darker at equal thickness
    assert (air >= 250).all()
    thicker = pseudo_colour(*dual_energy({"steel": thick * 2})).astype(int)[0, 0]
    assert thicker.sum() < steel.sum()  # darker where thicker


# ----------------------------------------------------------------------------- geometry
@settings(max_examples=30, deadline=None)
@given(st.integers(8, 40), st.integers(8, 40), st.integers(0, 30), st.integers(0, 30), st.booleans())
def test_mask_to_polygons_round_trips_rings(outer, inner_frac, cx_off, cy_off, hole):
    mask = np.zeros((100, 100), np.uint8)
    centre = (50 + cx_off // 3, 50 + cy_off // 3)
    cv2.circle(mask, centre, outer, 1, -1)
    if hole and outer > 10:
        cv2.circle(mask, centre, max(3, outer * inner_frac // 50), 0, -1)
    polys = mask_to_polygons(mask)
    assert len(polys) == 1  # simply connected: holes are bridged into one ring
    filled = np.zeros_like(mask)
    cv2.fillPoly(filled, [np.round(p).astype(np.int32) for p in polys], 1)
    iou = (filled & mask).sum() / (filled | mask).sum()
    assert iou > 0.9


# ----------------------------------------------------------------------------- samples
def test_polygons_match_rendered_steel_footprint():
    cfg = SynthConfig(size=128, seed=11, threat_prob=1.0)
    checked = 0
    for index in range(6):
        image, shapes, info = render_sample(cfg, index, debug=True)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        truth = info["threat_mask"] > 0
        drawn = np.zeros((128, 128), np.uint8)
        for shape in shapes:
            cv2.fillPoly(drawn, [np.round(np.asarray(shape["points"])).astype(np.int32)], 1)
        iou = (truth & (drawn > 0)).sum() / max((truth | (drawn > 0)).sum(), 1)
        assert iou >= 0.9, (index, iou)
        # the annotated footprint is where steel was rendered
        assert (info["thickness"]["steel"][drawn > 0] > 0).mean() > 0.6
        # and it renders darker than the bag around it
        assert image[drawn > 0].mean() < image[~truth].mean() - 40
        checked += bool(shapes)
    assert checked >= 5


def test_labelme_polygon_rasterisation_agrees():
    from labelme.utils import shape_to_mask

    image, shapes, info = render_sample(SynthConfig(size=128, seed=5, threat_prob=1.0), 0, debug=True)
    mask = np.zeros((128, 128), bool)
    for shape in shapes:
        mask |= shape_to_mask((128, 128), shape["points"], shape["shape_type"])
    truth = info["threat_mask"] > 0
    assert (mask & truth).sum() / (mask | truth).sum() >= 0.9


def test_threat_prob_zero_gives_empty_bags():
    for index in range(3):
        image, shapes = render_sample(SynthConfig(size=96, threat_prob=0.0), index)
        assert shapes == []
        assert image.mean() > 120  # mostly bright: air and light bag


def test_small_threat_prob_sets_threat_size():
    """small_threat_prob=1: every threat spans at most 15 % of the side; 0: the big ones appear."""

    def longest_extent(cfg):
        spans = []
        for index in range(6):
            _, shapes = render_sample(cfg, index)
            spans += [np.ptp(np.asarray(s["points"]), axis=0).max() / cfg.size for s in shapes]
        return spans

    small = longest_extent(SynthConfig(size=128, threat_prob=1.0, small_threat_prob=1.0, hide_prob=0.0))
    large = longest_extent(SynthConfig(size=128, threat_prob=1.0, small_threat_prob=0.0, hide_prob=0.0))
    assert small and max(small) <= 0.16
    assert max(large) > 0.18


def test_probabilities_are_validated_with_the_flag_to_fix():
    for key in ("threat_prob", "hide_prob", "small_threat_prob"):
        with pytest.raises(ConfigError, match=f"--{key.replace('_', '-')}"):
            SynthConfig(**{key: -0.1}).validate()


# ----------------------------------------------------------------------------- dataset
def test_labelme_schema(dataset):
    out, paths = dataset
    assert len(paths) == 6 and all(p.suffix == ".json" for p in paths)
    labels = set()
    for path in paths:
        record = json.loads(path.read_text())
        assert record["version"] == "5.4.1" and set(record["flags"]) == {"hidden", "small", "clean"}
        assert record["flags"]["clean"] == (not record["shapes"])
        assert record["imageData"] is None
        image_file = path.parent / record["imagePath"]
        assert record["imagePath"] == image_file.name and image_file.is_file()
        image = cv2.imread(str(image_file), cv2.IMREAD_UNCHANGED)
        assert image.shape == (record["imageHeight"], record["imageWidth"], 3) == (128, 128, 3)
        for shape in record["shapes"]:
            assert shape["label"] in CLASS_NAMES
            assert shape["shape_type"] == "polygon" and shape["group_id"] is None
            assert shape["flags"] == {} and shape["description"] == ""
            pts = np.asarray(shape["points"], dtype=float)
            assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 3
            assert (pts >= 0).all() and (pts[:, 0] <= 127).all() and (pts[:, 1] <= 127).all()
            labels.add(shape["label"])
    assert labels
    assert (out / "labels.txt").read_text().split() == ["__ignore__", "_background_", *CLASS_NAMES]
    assert (out / "synth_config.yaml").is_file()
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] > 100


def test_labelme_reads_our_files(dataset):
    from labelme._label_file import read_label_file

    _, paths = dataset
    for path in paths:
        data = read_label_file(str(path))
        assert len(data.image_data) > 0


def test_saved_config_round_trips(dataset):
    from xray_seg.core.config import load_config

    out, _ = dataset
    assert load_config(SynthConfig, out / "synth_config.yaml") == SynthConfig(seed=3, **SMALL)


def test_deterministic_per_seed_and_independent_of_workers(dataset, tmp_path):
    out, _ = dataset
    again = tmp_path / "again"
    synthesize(again, SynthConfig(seed=3, size=128, num=6, workers=2), progress=False)
    assert _files(again) == _files(out)
    other = tmp_path / "other"
    synthesize(other, SynthConfig(seed=4, **SMALL), progress=False)
    theirs, ours = _files(other), _files(out)
    assert theirs.keys() == ours.keys()
    assert all(theirs[name] != ours[name] for name in ours if name.endswith(".png"))


def test_embed_image_data(tmp_path):
    import base64

    paths = synthesize(tmp_path / "e", SynthConfig(size=64, num=1, workers=1, embed_image_data=True), progress=False)
    record = json.loads(paths[0].read_text())
    assert base64.b64decode(record["imageData"]) == (paths[0].parent / record["imagePath"]).read_bytes()


def test_refuses_existing_output_and_bad_settings(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        synthesize(tmp_path / "x", SynthConfig(size=64, num=1, workers=1), progress=False)
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError):
        synthesize(tmp_path / "y", SynthConfig(size=64, num=1, clutter="extreme"), progress=False)
    with pytest.raises(ConfigError):
        SynthConfig(threat_prob=1.5).validate()


def test_cli(tmp_path):
    out = tmp_path / "cli"

    def cli(*extra):
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "xray_seg",
                "synth",
                str(out),
                "--num",
                "4",
                "--size",
                "96",
                "--workers",
                "1",
                "--quiet",
                *extra,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = cli()
    assert first.returncode == 0, first.stderr
    assert "images/s" in first.stdout
    assert len(list(out.glob("*.json"))) == 4 and (out / "contact_sheet.png").is_file()
    second = cli()
    assert second.returncode == 2
    assert "already exists" in second.stderr and "--force" in second.stderr and "Traceback" not in second.stderr
    third = cli("--force", "--seed", "1")
    assert third.returncode == 0, third.stderr


# ----------------------------------------------------------------------------- difficulty flags
@pytest.mark.parametrize(
    "settings, expected",
    [
        (dict(threat_prob=0.0), {"hidden": False, "small": False, "clean": True}),
        (dict(threat_prob=1.0, hide_prob=1.0, small_threat_prob=0.0), {"hidden": True, "small": False, "clean": False}),
        (dict(threat_prob=1.0, hide_prob=0.0, small_threat_prob=1.0), {"hidden": False, "small": True, "clean": False}),
        (
            dict(threat_prob=1.0, hide_prob=0.0, small_threat_prob=0.0),
            {"hidden": False, "small": False, "clean": False},
        ),
    ],
)
def test_flags_record_how_hard_each_bag_is(settings, expected):
    for index in range(3):
        _, shapes, info = render_sample(SynthConfig(size=96, seed=2, **settings), index, debug=True)
        assert info["flags"] == expected
        assert bool(shapes) != expected["clean"]


def test_flags_follow_the_drawn_threats_at_default_difficulty():
    """At the defaults every kind of bag occurs, and a small bag has a polygon of at most
    16 % of the side (small threats span 8-15 %)."""
    counts = {"hidden": 0, "small": 0, "clean": 0}
    for index in range(24):
        _, shapes, info = render_sample(SynthConfig(size=96, seed=7), index, debug=True)
        for key, value in info["flags"].items():
            counts[key] += value
        if info["flags"]["small"]:
            sizes = [np.ptp(np.asarray(s["points"]), axis=0).max() / 96 for s in shapes]
            assert min(sizes) <= 0.16
    assert all(counts.values()), counts  # every kind occurs in 24 bags at the defaults
