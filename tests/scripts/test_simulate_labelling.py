"""``scripts/simulate_labelling.py``: the stated goals computed from round records, the table,
and bad options refused before anything is written. (A smoke run trains five models, minutes
on 2 cores, so the pipeline itself is run by hand: the command is in the script's docstring;
the review of pre-annotations is tested in tests/evaluation/test_pre_annotation_review.py.)"""

from __future__ import annotations

import importlib.util

import pytest

from tests.scripts.conftest import REPO

SCRIPT = "simulate_labelling.py"  # in scripts/


@pytest.fixture(scope="module")
def sim():
    spec = importlib.util.spec_from_file_location("simulate_labelling", REPO / "scripts" / SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def record(strategy, seed, k, miou, accepted, true_items=10):
    pick = {
        "scans": 5,
        "true_items": true_items,
        "accepted": accepted,
        "predicted": 12,
        "deleted": 12 - accepted,
        "vertices": 100 - 10 * accepted,
        "scratch_vertices": 100,
        "accepted_share": accepted / true_items,
        "deleted_share": (12 - accepted) / 12,
        "saved_share": accepted / 10,
    }
    return {
        "strategy": strategy,
        "seed": seed,
        "round": k,
        "labelled": 50 * (k + 1),
        "miou": miou,
        "pd_at_pfa5": 0.5,
        "pick": pick,
    }


def test_goals_from_round_records(sim):
    curves = {"random": [0.30, 0.40, 0.50, 0.56, 0.60], "uncertainty": [0.30, 0.45, 0.55, 0.61, 0.63]}
    records = [
        record(s, seed, k, m + 0.01 * (seed - 0.5), accepted=7 if s == "uncertainty" and k >= 2 else 6)
        for seed in (0, 1)
        for s, curve in curves.items()
        for k, m in enumerate(curve)
    ]
    verdict = sim.goals(records, rounds=4)
    assert verdict["random_last_miou"] == pytest.approx(0.60)
    unc, rnd = verdict["strategies"]["uncertainty"], verdict["strategies"]["random"]
    assert (unc["reaches_random_last_at_round"], unc["saves_a_round"]) == (3, True)
    assert (rnd["reaches_random_last_at_round"], rnd["saves_a_round"]) == (4, None)
    assert (unc["accepted_share_from_round_2"], unc["accepts_70"]) == (pytest.approx(0.7), True)
    assert (rnd["accepted_share_from_round_2"], rnd["accepts_70"]) == (pytest.approx(0.6), False)

    late = [
        dict(r, miou=r["miou"] - 0.05) if r["strategy"] == "uncertainty" and r["round"] == 3 else r for r in records
    ]
    assert sim.goals(late, rounds=4)["strategies"]["uncertainty"]["saves_a_round"] is False

    settings = {"pool": 1000, "val": 100, "size": 128, "seed": 0, "start": 50, "rounds": 4, "add": 50}
    settings.update(preset="demo_cpu", steps=300, width=0.25, no_init=False, set=[], min_area=12)
    text = sim.markdown(records, {**settings, "strategies": list(curves)}, verdict, "a CPU")
    assert "| uncertainty | mean | 3 | 200 | 61.00 | 50.00 | 70.0 | 41.7 | 70.0 | 60 / 200 |" in text
    assert "- uncertainty: reaches it at round 3 (a round earlier: holds)" in text


@pytest.mark.parametrize(
    "options",
    [
        ["--strategies", "uncertainty"],
        ["--strategies", "random,best"],
        ["--pool", "100", "--rounds", "3", "--add", "40"],
    ],
)
def test_bad_options_refused_before_writing(sim, tmp_path, capsys, options):
    with pytest.raises(SystemExit) as exc:
        sim.main(["--out", str(tmp_path / "sim"), *options])
    assert exc.value.code == 2 and "error:" in capsys.readouterr().err
    assert not (tmp_path / "sim").exists()
