"""Issue 28: a section set to a scalar or list, and bad class-weights files, are one line and no run folder."""

from __future__ import annotations

import pytest

TINY = ["--preset", "demo_cpu", "--quiet", "--set", "epochs=1", "--set", "model.width=0.0625"]
TINY += ["--set", "data.image_size=32", "--set", "steps_per_epoch=1", "--set", "data.cache=false"]


@pytest.mark.parametrize(
    ("setting", "fix"),
    [("model=unet", "--set model.name=unet"), ("data=[1,2]", "--set data.")],
)
def test_a_section_set_to_a_value_is_refused(refused, tiny_voc, tmp_path, setting, fix):
    run = tmp_path / "run"
    line = refused(["train", tiny_voc, *TINY, "--set", setting, "--run-dir", run], untouched=[tiny_voc])
    assert not run.exists()
    assert repr(setting.split("=")[0]) in line and fix in line, line
