"""``xray-seg compare``: one protocol for every model, mean ± std tables, resume, errors."""

import json
import math

import numpy as np
import pytest
import yaml

from xray_seg.cli import main

MODELS = "cwf_deeplabv3plus,unet"
TINY = [
    "model.width=0.125",
    "data.image_size=[64,64]",
    "data.batch_size=4",
    "epochs=2",
    "steps_per_epoch=1",
    "data.cache=false",
]


def compare_args(voc, out, *extra):
    sets = [item for s in TINY for item in ("--set", s)]
    return [
        "compare",
        "--data",
        str(voc),
        "--out",
        str(out),
        "--models",
        MODELS,
        "--preset",
        "compare_cpu",
        "--fps-runs",
        "2",
        "--grid-images",
        "2",
        "--quiet",
        *sets,
        *extra,
    ]


@pytest.fixture(scope="module")
def compared(tiny_voc, tmp_path_factory):
    """One real comparison: 2 tiny models x 2 seeds, 2 one-step epochs each."""
    out = tmp_path_factory.mktemp("compare") / "out"
    assert main(compare_args(tiny_voc, out, "--seeds", "2")) == 0
    return out


def record(miou, mpa, iou, class_pa, fps=10.0):
    return {
        "miou": miou,
        "mpa": mpa,
        "pa": 0.9,
        "fps": fps,
        "params_m": 1.5,
        "gflops": 0.25,
        "iou": iou,
        "class_pa": class_pa,
        "class_names": ["_background_", "gun"],
    }


def test_aggregate_hand_made_numbers():
    from xray_seg.training.compare_report import aggregate, format_mean_std, table2_rows, table3_rows

    stats = aggregate(
        {
            "unet": [
                record(0.5, 0.6, [0.9, 0.1], [0.95, 0.2], fps=8.0),
                record(0.7, 0.8, [0.9, float("nan")], [0.97, None], fps=12.0),
            ],
            "bisenetv2": [record(0.4, 0.5, [0.8, 0.0], [0.9, 0.1])],
        }
    )
    miou = stats["table3"]["unet"]["miou"]
    assert miou["mean"] == pytest.approx(0.6) and miou["n"] == 2
    assert miou["std"] == pytest.approx(math.sqrt(0.02))  # sample std of 0.5, 0.7
    assert stats["table3"]["unet"]["fps"]["mean"] == pytest.approx(10.0)
    assert stats["table3"]["unet"]["params_m"]["std"] == 0.0
    gun = stats["table2"]["unet"]["gun"]
    assert gun["iou"] == {"mean": pytest.approx(0.1), "std": None, "n": 1, "values": [0.1, None]}
    assert gun["pa"]["mean"] == pytest.approx(0.2) and gun["pa"]["n"] == 1
    assert stats["table3"]["bisenetv2"]["miou"]["std"] is None  # one seed: no std
    assert format_mean_std(miou) == "60.00 ± 14.14"
    assert format_mean_std(stats["table3"]["bisenetv2"]["miou"]) == "40.00"
    assert format_mean_std({"mean": None, "std": None}) == "n/a"
    rows = table3_rows(stats["table3"])
    assert rows[0][:3] == ["UNet", "60.00 ± 14.14", "70.00 ± 14.14"] and rows[1][0] == "BiSeNetV2"
    assert rows[0][4] == "10.00 ± 2.83"
    assert table2_rows(stats["table2"], stats["class_names"], "iou")[1] == ["Gun", "10.00", "0.00"]


def test_claim_difference_seed_by_seed():
    from xray_seg.training.compare_report import paired_difference, seed_section

    def runs(*pairs):
        return [{**record(m, 0.5, [0.9, 0.1], [0.9, 0.1]), "seed": s} for s, m in pairs]

    results = {
        "cwf_deeplabv3plus": runs((1, 0.62), (0, 0.60)),  # listed out of seed order on purpose
        "deeplabv3plus": runs((0, 0.57), (1, 0.61)),
        "unet": runs((0, 0.40)),
    }
    diff = paired_difference(results)
    assert diff["seeds"] == [0, 1] and diff["per_seed"] == pytest.approx([0.03, 0.01])
    assert diff["mean"] == pytest.approx(0.02) and diff["std"] == pytest.approx(math.sqrt(0.0002))
    assert diff["seed_std"]["deeplabv3plus"] == pytest.approx(np.std([0.57, 0.61], ddof=1))
    assert diff["sign"] == "ahead in every seed"
    md = seed_section(results)
    assert "| CWF-DeepLabv3+ | 60.00 | 62.00 | 61.00 | 1.41 |" in md
    assert "| UNet | 40.00 | - | 40.00 | - |" in md
    assert "CWF-DeepLabv3+ minus DeepLabv3+: +2.00 pp mIoU on average over seeds 0, 1 (per seed +3.00, +1.00)" in md
    results["deeplabv3plus"] = runs((0, 0.57), (1, 0.63))
    assert paired_difference(results)["sign"] == "ahead in some seeds and behind in others"
    assert paired_difference({"cwf_deeplabv3plus": results["cwf_deeplabv3plus"]}) is None


def test_outputs_tables_and_protocol(compared, tiny_voc):
    for name in ["compare.md", "compare.json", "compare_bars.png", "compare_predictions.png", "protocol.yaml"]:
        assert (compared / name).is_file() and (compared / name).stat().st_size > 0, name
    doc = json.loads((compared / "compare.json").read_text())
    assert list(doc["table3"]) == MODELS.split(",")
    runs = {
        m: [json.loads((compared / "runs" / m / f"seed{s}" / "compare_result.json").read_text()) for s in (0, 1)]
        for m in MODELS.split(",")
    }
    md = (compared / "compare.md").read_text()
    for model, per_seed in runs.items():
        mious = [r["miou"] for r in per_seed]
        stat = doc["table3"][model]["miou"]
        assert stat["mean"] == pytest.approx(np.mean(mious)) and stat["std"] == pytest.approx(np.std(mious, ddof=1))
        assert f"{100 * np.mean(mious):.2f} ± {100 * np.std(mious, ddof=1):.2f}" in md
        assert doc["table3"][model]["params_m"]["mean"] > 0 and doc["table3"][model]["gflops"]["mean"] > 0
        gun = doc["class_names"].index("gun")
        assert doc["table2"][model]["gun"]["iou"]["values"] == [r["iou"][gun] for r in per_seed]
    assert "Table 3" in md and "Table 2: per-class IoU" in md and "Table 2: per-class PA" in md
    assert "## mIoU (%) per seed on val" in md and doc["claim_difference"] is None  # no DeepLabv3+ here
    assert doc["per_seed_miou"]["unet"]["1"] == runs["unet"][1]["miou"]

    protocol = yaml.safe_load((compared / "protocol.yaml").read_text())
    assert protocol["seeds"] == [0, 1] and protocol["dataset"]["val_images"] == 4
    assert protocol["train_config"]["model"]["width"] == 0.125 and protocol["train_config"]["epochs"] == 2
    configs = {
        (m, s): yaml.safe_load((compared / "runs" / m / f"seed{s}" / "config.yaml").read_text())
        for m in MODELS.split(",")
        for s in (0, 1)
    }
    for (model, seed), cfg in configs.items():  # one protocol: only the model and the seed differ
        assert cfg["model"].pop("name") == model and cfg.pop("seed") == seed
        assert cfg == configs[("cwf_deeplabv3plus", 0)]


def test_resume_skips_finished_runs_and_continues_interrupted_ones(compared, tiny_voc, monkeypatch):
    import xray_seg.training.compare as compare_module

    results = {
        (m, s): compared / "runs" / m / f"seed{s}" / "compare_result.json" for m in MODELS.split(",") for s in (0, 1)
    }
    before = {k: p.stat().st_mtime_ns for k, p in results.items()}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(compare_module, "train", no_training)
    assert main(compare_args(tiny_voc, compared, "--seeds", "2", "--resume")) == 0
    assert {k: p.stat().st_mtime_ns for k, p in results.items()} == before

    # Simulate an interruption after epoch 1 of (unet, seed 1): no result, state at 1 of 2 epochs.
    run = compared / "runs" / "unet" / "seed1"
    results[("unet", 1)].unlink()
    state = json.loads((run / "checkpoints" / "state.json").read_text())
    (run / "checkpoints" / "state.json").write_text(json.dumps({**state, "epochs_done": 1}))
    from xray_seg.training.trainer import train as real_train

    calls = []

    def recording_train(cfg, run_dir, **kwargs):
        calls.append((run_dir, kwargs))
        return real_train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(compare_module, "train", recording_train)
    assert main(compare_args(tiny_voc, compared, "--seeds", "2", "--resume")) == 0
    assert [(path, kw["resume"]) for path, kw in calls] == [(run, True)]
    assert json.loads((run / "checkpoints" / "state.json").read_text())["epochs_done"] == 2
    assert results[("unet", 1)].is_file()
    assert all(results[k].stat().st_mtime_ns == before[k] for k in results if k != ("unet", 1))


def test_run_stage_reads_progress(tmp_path):
    from xray_seg.training.compare import RESULT_FILE, run_stage

    run = tmp_path / "run"
    assert run_stage(run, 3) == "train"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.weights.h5").write_bytes(b"x")
    (run / "checkpoints" / "state.json").write_text('{"epochs_done": 2}')
    assert run_stage(run, 3) == "resume"
    (run / "checkpoints" / "state.json").write_text('{"epochs_done": 3}')
    (run / "best_model.keras").write_bytes(b"x")
    assert run_stage(run, 3) == "evaluate"
    (run / "checkpoints" / "state.json").write_text("{trunc")
    assert run_stage(run, 3) == "train"
    (run / RESULT_FILE).write_text("{}")
    assert run_stage(run, 3) == "done"


def test_unknown_model_lists_valid_names(tiny_voc, tmp_path, capsys):
    rc = main(["compare", "--data", str(tiny_voc), "--out", str(tmp_path / "out"), "--models", "unet,segformer"])
    err = capsys.readouterr().err
    assert rc == 2 and "segformer" in err and "cwf_deeplabv3plus" in err and "bisenetv2" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_missing_dataset_names_path_and_fix(tmp_path, capsys):
    rc = main(["compare", "--data", str(tmp_path / "no_voc"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and str(tmp_path / "no_voc") in err and "xray-seg convert" in err
    assert not (tmp_path / "out").exists()


def test_refuses_existing_output_and_changed_protocol(tiny_voc, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(compare_args(tiny_voc, out)) == 2
    assert "already exists" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
    assert main(compare_args(tiny_voc, out, "--resume")) == 2  # not a comparison folder
    assert "protocol.yaml" in capsys.readouterr().err

    from xray_seg.training.compare import CompareSettings, base_config, check_dataset, protocol_document

    settings = CompareSettings(str(tiny_voc), str(tmp_path / "cmp"), models=("unet",), overrides=tuple(TINY))
    (tmp_path / "cmp").mkdir()
    (tmp_path / "cmp" / "protocol.yaml").write_text(
        yaml.safe_dump(protocol_document(settings, base_config(settings), check_dataset(tiny_voc)))
    )
    assert main(compare_args(tiny_voc, tmp_path / "cmp", "--resume", "--set", "epochs=3")) == 2
    assert "differs" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["protocol.yaml"]


def test_reserved_settings_and_pretrained_weights_refused(tiny_voc, tmp_path, capsys):
    assert main(compare_args(tiny_voc, tmp_path / "a", "--set", "seed=3")) == 2
    assert "--seeds" in capsys.readouterr().err
    assert main(compare_args(tiny_voc, tmp_path / "b", "--set", "model.options.weights=/x.h5")) == 2
    assert "scratch" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_force_replaces_output_before_training(tiny_voc, tmp_path, monkeypatch):
    import xray_seg.training.compare as compare_module
    from xray_seg.core.fileio import prepare_output_dir
    from xray_seg.training.compare import CompareSettings, compare

    out = prepare_output_dir(tmp_path / "out", owner="compare")  # --force replaces only folders xray-seg made
    (out / "old.txt").write_text("old")
    trained = []

    def stop_training(cfg, run_dir, **kwargs):
        trained.append((cfg.model.name, cfg.seed, run_dir))
        raise RuntimeError("stop here")

    monkeypatch.setattr(compare_module, "train", stop_training)
    settings = CompareSettings(str(tiny_voc), str(out), models=("unet",), overrides=tuple(TINY))
    with pytest.raises(RuntimeError, match="stop here"):
        compare(settings, force=True, verbose=0)
    assert not (out / "old.txt").exists() and (out / "protocol.yaml").is_file()
    assert trained == [("unet", 0, out / "runs" / "unet" / "seed0")]
