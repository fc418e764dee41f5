"""Config resolution, safe file output, the CLI error contract and the no-TF guard."""

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from xray_seg.core.config import config_digest, load_config, parse_overrides, save_config
from xray_seg.core.errors import ConfigError, OutputExistsError
from xray_seg.core.fileio import OUTPUT_MARKER, atomic_path, prepare_output_dir, write_text_atomic

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Inner:
    rate: float = 0.1
    scales: tuple = (0.5, 2.0)


@dataclasses.dataclass
class Outer:
    name: str = "a"
    epochs: int = 3
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_preset_then_overrides(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("epochs: 7\ninner:\n  rate: 1\n")
    cfg = load_config(Outer, preset, ["inner.scales=[0.75,1.25]", "name=b"])
    assert cfg.epochs == 7 and cfg.name == "b"
    assert cfg.inner.rate == 1.0 and isinstance(cfg.inner.rate, float)
    assert cfg.inner.scales == (0.75, 1.25)


def test_unknown_key_names_file_and_valid_keys(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("epoch: 7\n")
    with pytest.raises(ConfigError) as err:
        load_config(Outer, preset)
    assert str(preset) in err.value.message and "epochs" in err.value.message


def test_bad_override_syntax():
    with pytest.raises(ConfigError):
        parse_overrides(["epochs"])


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(Outer, None, ["epochs=9"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(Outer, tmp_path / "config.yaml") == cfg
    assert config_digest(cfg) == config_digest(load_config(Outer, tmp_path / "config.yaml"))
    assert config_digest(cfg) != config_digest(Outer())


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("partial")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_prepare_output_dir_refuses_then_forces(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        prepare_output_dir(out)
    assert prepare_output_dir(out, resume=True) == out and (out / "keep.txt").exists()
    with pytest.raises(OutputExistsError, match="did not create"):  # a foreign folder: never deleted
        prepare_output_dir(out, force=True)
    assert (out / "keep.txt").read_text() == "x"
    ours = prepare_output_dir(tmp_path / "ours")
    (ours / "result.txt").write_text("y")
    prepare_output_dir(ours, force=True)  # a folder xray-seg made (marker) may be replaced
    assert [p.name for p in ours.iterdir()] == [OUTPUT_MARKER]


def test_cli_version_and_user_error_exit_code(tmp_path):
    ok = subprocess.run([sys.executable, "-m", "xray_seg", "--version"], capture_output=True, text=True)
    assert ok.returncode == 0 and "xray-seg" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "xray_seg"], capture_output=True, text=True)
    assert bad.returncode == 2


@pytest.mark.parametrize("package", ["layers", "models"])
def test_layers_and_models_do_not_import_tensorflow(package):
    """docs/architecture.md: keras.ops only inside layers and models, so JAX/PyTorch backends work
    (TensorFlow's fused kernels are reached lazily through xray_seg.core.tf_kernels)."""
    offenders = []
    for path in (REPO / "xray_seg" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "tensorflow"]
        # TensorFlow-only kernels (xray_seg.core.tf_kernels) only behind a backend check, never at import
        tree = ast.parse(path.read_text())
        offenders += [
            f"{path.name}: module-level {node.module}"
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module == "xray_seg.core.tf_kernels"
        ]
    assert offenders == []


def test_numbers_in_scientific_notation_are_numbers():
    cfg = load_config(Outer, None, ["inner.rate=1e-3", "epochs=5"])
    assert cfg.inner.rate == pytest.approx(1e-3) and isinstance(cfg.inner.rate, float)
    with pytest.raises(ConfigError):
        load_config(Outer, None, ["epochs=many"])
