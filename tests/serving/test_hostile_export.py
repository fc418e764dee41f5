"""Hostile input to `xray-seg export` and the serving signatures (issue 16).

Export: an output folder overlapping the run is refused whatever --force says, and the
files honour the umask. Signatures: the pixel limit inside the graph (a clear
InvalidArgumentError, before decoding), an empty ``serve_encoded`` batch, and the
window check of a SavedModel agreeing with the Keras run folder's.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

CLASS_NAMES = ["_background_", "gun", "knife"]


def _run_folder(folder: Path) -> Path:
    import keras

    folder.mkdir(parents=True)
    inputs = keras.Input((32, 32, 3))
    keras.Model(inputs, keras.layers.Conv2D(len(CLASS_NAMES), 1)(inputs)).save(folder / "best_model.keras")
    (folder / "class_names.txt").write_text("\n".join(CLASS_NAMES) + "\n")
    return folder


def png_declaring(height: int, width: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """runs/x exported (SavedModel only) under umask 022."""
    from xray_seg.cli import main

    base = tmp_path_factory.mktemp("hostile_export")
    run = _run_folder(base / "runs" / "x")
    old = os.umask(0o022)
    try:
        assert main(["export", str(run), "--out", str(base / "export"), "--format", "savedmodel"]) == 0
    finally:
        os.umask(old)
    return run, base / "export"


@pytest.mark.parametrize("where", ["parent", "same"])
def test_output_containing_the_run_is_refused_even_with_force(exported, cli, snapshot, where):
    run, _ = exported
    (run.parent / "voc").mkdir(exist_ok=True)
    (run.parent / "voc" / "class_names.txt").write_text("_background_\n")
    snap = snapshot(run.parent)
    out = run.parent if where == "parent" else run
    rc, line = cli(["export", run, "--out", out, "--force", "--format", "savedmodel"])
    assert rc == 2 and ("contains the input" in line or "is the input" in line)
    snap.assert_unchanged()


def test_force_never_deletes_a_foreign_folder(exported, tmp_path, cli, snapshot):
    run, _ = exported
    foreign = tmp_path / "station"
    foreign.mkdir()
    (foreign / "site.conf").write_text("keep me")
    snap = snapshot(foreign, run)
    rc, line = cli(["export", run, "--out", foreign, "--force", "--format", "savedmodel"])
    assert rc == 2 and "did not create" in line
    snap.assert_unchanged()


def test_export_files_honour_the_umask(exported):
    _, out = exported
    for name in ["manifest.json", "savedmodel/export.json", "savedmodel/saved_model.pb", ".xray-seg-output"]:
        assert oct((out / name).stat().st_mode & 0o777) == "0o644", name
    for folder in [out, out / "savedmodel"]:
        assert oct(folder.stat().st_mode & 0o777) == "0o755", folder


def test_saved_model_window_check_agrees_with_keras(exported, tmp_path, cli):
    run, out = exported
    Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(tmp_path / "scan.png")
    for model in (run, out / "savedmodel"):
        rc, line = cli(
            ["predict", model, tmp_path / "scan.png", "--out", tmp_path / f"p{len(str(model))}", "--window", "16"]
        )
        assert rc == 2 and "32x32" in line and "16x16" in line, (model, line)


def test_signatures_refuse_images_over_the_limit_before_decoding(exported):
    _, out = exported
    loaded = tf.saved_model.load(str(out / "savedmodel"))
    encoded = loaded.signatures["serve_encoded"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="limit of 64000000"):
        encoded(encoded=tf.constant([png_declaring(9000, 9000)]))
    result = encoded(encoded=tf.constant([], tf.string))  # an empty batch, as serving_default takes one
    assert result["class_map"].shape[0] == 0 and result["class_pixel_counts"].shape == (0, len(CLASS_NAMES))
    default = loaded.signatures["serving_default"]
    assert default(images=tf.zeros([0, 32, 32, 3], tf.uint8))["class_map"].shape[0] == 0


def test_limit_helpers_in_a_plain_graph():
    """The helpers another serving graph can call: a small limit is enforced exactly."""
    from xray_seg.serving.graph_decode import decode_rgb_checked
    from xray_seg.serving.limits import assert_images_within_limit, encoded_image_size

    buf = io.BytesIO()
    Image.fromarray(np.zeros((30, 20, 3), np.uint8)).save(buf, format="JPEG")
    jpeg = buf.getvalue()
    assert encoded_image_size(tf.constant(jpeg)).numpy().tolist() == [30, 20]
    assert encoded_image_size(tf.constant(png_declaring(7, 9))).numpy().tolist() == [7, 9]
    assert decode_rgb_checked(tf.constant(jpeg), 600).shape == (30, 20, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="limit of 599"):
        decode_rgb_checked(tf.constant(jpeg), 599)
    with pytest.raises(tf.errors.InvalidArgumentError, match="limit of 100 pixels"):
        assert_images_within_limit(tf.zeros([1, 11, 10, 3], tf.uint8), 100)
