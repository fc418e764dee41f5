"""Every bundled training preset says what it costs, and the paper recipes say they are GPU recipes."""

from __future__ import annotations

from pathlib import Path

import pytest

import xray_seg

PRESETS = sorted((Path(xray_seg.__file__).parent / "presets").glob("*.yaml"))
GPU_RECIPES = {
    "cwf_xray512",
    "sgd_poly",
    "cyclenet_xray512",
    "ifbfnet_xray512",
    "cyclenet_cityscapes",
    "ifbfnet_cityscapes",
}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_states_its_cost(preset):
    cost = [line for line in preset.read_text(encoding="utf-8").splitlines() if line.startswith("# Cost:")]
    assert len(cost) == 1, f"{preset.name}: one '# Cost:' comment line"
    if preset.stem in GPU_RECIPES:
        assert "GPU recipe" in cost[0]
    else:
        assert "images/s" in cost[0] and "EPYC" in cost[0]


def test_the_cost_table_lists_the_cpu_presets():
    text = (Path(xray_seg.__file__).parents[1] / "docs" / "training.md").read_text(encoding="utf-8")
    table = text.split("What a preset costs", 1)[1].split("measures them on your CPU", 1)[0]
    for name in ("compare_cpu", "demo_cpu", "hard_cpu", "cwf_xray512"):
        assert f"`{name}`" in table
