"""``scripts/lowlabel_tip.py``: a smoke run at a tiny budget; the arms' data and recipe are
what the docstring says, and ``--resume`` trains nothing."""

from __future__ import annotations

import json

import pytest

SCRIPT = "lowlabel_tip.py"  # in scripts/


def test_smoke_run_and_resume(tmp_path, run):
    pytest.importorskip("tensorflow")
    from xray_seg.conversion.voc import read_split, read_subsets

    out = tmp_path / "ll"
    tiny = ["--labelled", "4", "--clean", "6", "--val", "5", "--size", "48", "--steps", "2"]
    tiny += ["--steps-per-epoch", "1", "--width", "0.0625", "--set", "data.batch_size=2", "--seeds", "1", "--quiet"]
    proc = run("--out", str(out), *tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plain, tip = out / "data" / "labelled" / "voc", out / "data" / "labelled_clean_tip" / "voc"
    assert read_split(plain, "val") == read_split(tip, "val") == [f"xray_{i:05d}" for i in range(100000, 100005)]
    assert read_split(plain, "train") == [f"xray_{i:05d}" for i in range(4)]
    assert read_split(tip, "train") == [f"xray_{i:05d}" for i in range(10)]
    assert set(read_subsets(tip)["clean"]) >= {f"xray_{i:05d}" for i in range(4, 10)}
    configs = {
        arm: json.loads((out / "runs" / f"{arm}_seed0" / "lowlabel_result.json").read_text())
        for arm in ("labelled", "labelled_clean_tip")
    }
    assert all(c["val_images"] == 5 for c in configs.values())
    import yaml

    tip_prob = {
        arm: yaml.safe_load((out / "runs" / f"{arm}_seed0" / "config.yaml").read_text())["data"]["augment"]["tip_prob"]
        for arm in configs
    }
    assert tip_prob == {"labelled": 0.0, "labelled_clean_tip": 0.5}
    text = (out / "lowlabel.md").read_text()
    assert "| labelled | 0 |" in text and "| labelled+clean_tip | 0 |" in text and "CPU: " in text
    assert f"{100 * configs['labelled']['miou']:.2f}" in text

    again = run("--out", str(out), *tiny, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished earlier, kept") == 2
