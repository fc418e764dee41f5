"""Shared test set-up: quiet TensorFlow, a fixed seed, the shared/ folder."""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is not beside the checkout")
    return SHARED


@pytest.fixture(scope="session")
def tiny_voc(tmp_path_factory) -> Path:
    """A small real dataset: 12 synthetic 64x64 X-ray bags, converted to VOC (8 train / 4 val)."""
    from xray_seg.conversion.convert import ConvertConfig, convert
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("tiny")
    synthesize(root / "labelme", SynthConfig(size=64, num=12, seed=3, workers=1), progress=False)
    convert(
        root / "labelme",
        root / "voc",
        ConvertConfig(labels=str(root / "labelme" / "labels.txt"), workers=1, val_ratio=0.34),
        progress=False,
    )
    return root / "voc"


# ----------------------------------------------------------------------------- hostile-input helpers


def tree_bytes(*roots) -> dict:
    """``{path: bytes}`` of every file under ``roots`` (files or folders); symlinks as their target text."""
    out = {}
    for root in roots:
        root = Path(root)
        items = [root] if not root.is_dir() else sorted(root.rglob("*"))
        for path in items:
            if path.is_symlink():
                out[str(path)] = ("symlink", os.readlink(path))
            elif path.is_file():
                out[str(path)] = path.read_bytes()
    return out


@pytest.fixture
def snapshot():
    """``snap = snapshot(dir, ...)`` then ``snap.assert_unchanged()``: every input file still there, same bytes."""

    class Snapshot:
        def __init__(self, *roots):
            self.roots = roots
            self.before = tree_bytes(*roots)
            assert self.before, f"nothing to snapshot under {roots}"

        def assert_unchanged(self):
            after = tree_bytes(*self.roots)
            missing = sorted(set(self.before) - set(after))
            changed = sorted(k for k in self.before if k in after and after[k] != self.before[k])
            assert not missing and not changed, f"inputs lost {missing[:5]} or changed {changed[:5]}"

    return Snapshot


@pytest.fixture
def cli(capsys, monkeypatch):
    """``rc, line = cli([...])``: run ``xray_seg.cli.main`` in-process; ``line`` is its one ``error:`` line.

    Asserts that no traceback was printed and that an exit code of 2 comes with exactly
    one ``error:`` line on stderr. Pillow's pixel limit, which every command sets from
    ``XRAY_SEG_MAX_PIXELS``, is restored after the test, so a test's tiny limit cannot leak
    into the next test of the same process.
    """
    from PIL import Image

    from xray_seg.cli import main

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)

    def run(argv):
        capsys.readouterr()
        rc = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        if rc == 2:
            assert len(errors) == 1, err
        return rc, (errors[0] if errors else "")

    return run


@pytest.fixture
def refused(cli, snapshot):
    """``line = refused(argv, *texts, untouched=(paths...), absent=(texts...))``: the CLI exits 2 with
    one ``error:`` line holding every ``texts`` and none of ``absent``, and every file under
    ``untouched`` keeps its bytes."""

    def run(argv, *texts, untouched=(), absent=()):
        snap = snapshot(*untouched) if untouched else None
        rc, line = cli(argv)
        assert rc == 2, (rc, line)
        assert [t for t in texts if t not in line] == [] and [t for t in absent if t in line] == [], line
        if snap is not None:
            snap.assert_unchanged()
        return line

    return run
