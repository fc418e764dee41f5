"""Scanner looks of ``synth``: one scene, several scanners; masks exact, only pixel values change."""

import json

import cv2
import numpy as np
import pytest

from xray_seg.core.errors import ConfigError
from xray_seg.synthesis.scanners import DEFAULT_LOOK, LOOK_NAMES, look_of, parse_looks
from xray_seg.synthesis.scene import SynthConfig, render_sample, synthesize


def _darkness(image: np.ndarray) -> np.ndarray:
    return 255.0 - image.astype(np.float32).mean(axis=2)


def test_three_looks_exist_and_default_is_today():
    assert len(LOOK_NAMES) >= 3 and {"dual_energy_a", "dual_energy_b", "grey"} <= set(LOOK_NAMES)
    assert SynthConfig().scanner == DEFAULT_LOOK
    config = SynthConfig(size=64, seed=1, threat_prob=1.0)
    image, shapes, info = render_sample(config, 0, debug=True)
    again, shapes_again = render_sample(config, 0, look=DEFAULT_LOOK)
    assert np.array_equal(image, again) and shapes == shapes_again
    assert set(info["flags"]) == {"hidden", "small", "clean"}  # no look flag for the default look


@pytest.mark.parametrize("index", [0, 1])
def test_same_scene_in_every_look_keeps_masks_and_moves_no_pixel(index):
    config = SynthConfig(size=96, seed=11, threat_prob=1.0)
    renders = {look: render_sample(config, index, debug=True, look=look) for look in LOOK_NAMES}
    base_image, base_shapes, base_info = renders[DEFAULT_LOOK]
    threat = base_info["threat_mask"] > 0
    assert threat.sum() > 30
    for look, (image, shapes, info) in renders.items():
        assert info["look"] == look and image.shape == (96, 96, 3) and image.dtype == np.uint8
        assert shapes == base_shapes
        assert np.array_equal(info["threat_mask"], base_info["threat_mask"])
        for name, thickness in base_info["thickness"].items():
            assert np.array_equal(info["thickness"][name], thickness)
        if look == DEFAULT_LOOK:
            continue
        assert not np.array_equal(image, base_image)
        # the same structure at the same place: no shift between the looks' darkness maps
        (dx, dy), _ = cv2.phaseCorrelate(_darkness(base_image), _darkness(image))
        assert abs(dx) < 0.5 and abs(dy) < 0.5, (look, dx, dy)
        # threats are darker than the air around the bag in every look
        air = base_info["thickness"]["organic"] + base_info["thickness"]["steel"] == 0
        assert _darkness(image)[threat].mean() > _darkness(image)[air].mean() + 30
    # the threats' colour differs between the two dual-energy ramps (another vendor's palette)
    a, b = (renders[look][0][threat].astype(np.float32).mean(axis=0) for look in ("dual_energy_a", "dual_energy_b"))
    assert np.abs(a - b).max() > 10, (a, b)
    grey = renders["grey"][0]
    assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])


def test_dual_energy_b_has_line_artefacts_in_open_air():
    """Row stripes (one gain per detector row) show as rows of differing mean in an empty belt."""
    config = SynthConfig(size=64, width=256, seed=2, threat_prob=0.0)
    _, _, info = render_sample(config, 0, debug=True)
    air_columns = np.all(sum(info["thickness"].values()) == 0, axis=0)
    assert air_columns.sum() > 64
    spread = {}
    for look in ("dual_energy_a", "dual_energy_b"):
        image = render_sample(config, 0, look=look)[0].astype(np.float32).mean(axis=2)[:, air_columns]
        spread[look] = image.mean(axis=1).std()
    assert spread["dual_energy_b"] > 2 * spread["dual_energy_a"], spread


def test_mixed_draws_a_recorded_look_per_bag_and_leaves_the_bags_alone(tmp_path):
    mixed = SynthConfig(size=64, num=12, seed=5, workers=1, scanner="mixed")
    paths = synthesize(tmp_path / "mixed", mixed, progress=False)
    seen = set()
    for index, path in enumerate(paths):
        record = json.loads(path.read_text())
        look = look_of("mixed", 5, index)
        seen.add(look)
        assert {k: v for k, v in record["flags"].items() if k.startswith("scanner_")} == {
            f"scanner_{name}": name == look for name in LOOK_NAMES
        }
        single = render_sample(SynthConfig(size=64, seed=5, scanner=look), index)
        assert record["shapes"] == single[1]
        png = cv2.imread(str(path.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert png.ndim == (2 if look == "grey" else 3)  # single energy: a one-channel PNG
        stored = cv2.cvtColor(png, cv2.COLOR_GRAY2RGB if png.ndim == 2 else cv2.COLOR_BGR2RGB)
        assert np.array_equal(stored, single[0])
    assert seen == set(LOOK_NAMES)
    assert parse_looks("grey,dual_energy_b") == ("grey", "dual_energy_b")
    assert {look_of("grey,dual_energy_b", 5, i) for i in range(12)} == {"grey", "dual_energy_b"}


def test_grey_bags_convert_to_three_channel_images(tmp_path):
    from xray_seg import convert
    from xray_seg.core.images import read_image_rgb

    synthesize(tmp_path / "lm", SynthConfig(size=64, num=4, seed=0, workers=1, scanner="grey"), progress=False)
    convert(tmp_path / "lm", tmp_path / "voc", tmp_path / "lm" / "labels.txt", progress=False)
    images = sorted((tmp_path / "voc" / "JPEGImages").iterdir())
    assert len(images) == 4
    rgb = read_image_rgb(images[0])
    assert rgb.shape == (64, 64, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])
    subsets = json.loads((tmp_path / "voc" / "subsets.json").read_text())["subsets"]
    assert len(subsets["scanner_grey"]) == 4


def test_bad_scanner_is_refused(tmp_path, refused):
    with pytest.raises(ConfigError, match="scanner"):
        SynthConfig(scanner="vendor_x").validate()
    with pytest.raises(ConfigError, match="photo"):
        SynthConfig(style="photo", scanner="grey").validate()
    line = refused(["synth", tmp_path / "out", "--scanner", "grey,nope", "--num", "1"], "nope", "dual_energy_b")
    assert "mixed" in line
    assert not (tmp_path / "out").exists()
