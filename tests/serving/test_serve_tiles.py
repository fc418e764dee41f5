"""``serve_tiles``: exact tiles to probabilities without serving_default's alarm, in both
SavedModels, the same numbers as serving_default's one-tile path, a clear error for any other
shape, and used by the savedmodel engine and ``predict``'s loader, with exports written before
it (no ``serve_tiles``) still served through ``serving_default``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")


def _tiles(n=3, seed=5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def savedmodel(station_export):
    return tf.saved_model.load(str(station_export[1] / "savedmodel"))


@pytest.fixture(scope="module")
def older_export(station_export, savedmodel, tmp_path_factory):
    """The station export's SavedModel saved again with only the signatures exports had before
    ``serve_tiles`` (serving_default, serve_encoded, model_info), its export.json beside it."""
    _, out, _ = station_export
    loaded = savedmodel
    root = tmp_path_factory.mktemp("older") / "export"
    older = root / "savedmodel"
    names = ("serving_default", "serve_encoded", "model_info")
    tf.saved_model.save(loaded, str(older), signatures={name: loaded.signatures[name] for name in names})
    shutil.copy(out / "savedmodel" / "export.json", older / "export.json")
    assert set(tf.saved_model.load(str(older)).signatures) == set(names)
    return root


@pytest.mark.parametrize("variant", ["savedmodel", "savedmodel_optimized"])
def test_serve_tiles_equals_serving_default_on_one_tile(station_export, variant):
    _, out, _ = station_export
    loaded = tf.saved_model.load(str(out / variant))
    serve_tiles = loaded.signatures["serve_tiles"]
    spec = serve_tiles.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 64, 64, 3] and spec.dtype == tf.uint8
    assert set(serve_tiles.structured_outputs) == {"probabilities"}
    tiles = _tiles()
    got = serve_tiles(images=tf.constant(tiles))["probabilities"].numpy()
    ref = loaded.signatures["serving_default"](images=tf.constant(tiles))["probabilities"].numpy()
    assert got.shape == (3, 64, 64, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(1, 64, 96, 3), (64, 64, 3), (1, 64, 64, 1), (0, 64, 64, 3)])
def test_serve_tiles_names_the_tile_size_for_any_other_shape(savedmodel, shape):
    serve_tiles = savedmodel.signatures["serve_tiles"]
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        serve_tiles(images=tf.zeros(shape, tf.uint8))
    message = caught.value.message
    assert "serve_tiles takes uint8 tiles [batch, 64, 64, 3] (this export tiles scans at 64x64; batch >= 1)" in message
    assert "got shape] [" + " ".join(str(d) for d in shape) + "]" in message


def test_export_metadata_lists_serve_tiles(station_export):
    import json

    meta = json.loads((station_export[1] / "savedmodel" / "export.json").read_text())
    assert set(meta["signatures"]["serve_tiles"]["outputs"]) == {"probabilities"}


def test_savedmodel_engine_uses_serve_tiles_and_older_exports_serving_default(station_export, older_export):
    from xray_seg.serving.engines import load_engine

    _, out, _ = station_export
    current = load_engine(out, "savedmodel")
    older = load_engine(older_export, "savedmodel")
    assert current.signature == "serve_tiles" and older.signature == "serving_default"
    tiles = _tiles(2, seed=8)
    np.testing.assert_allclose(current.probabilities(tiles), older.probabilities(tiles), atol=1e-6, rtol=0)


class _Recorded:
    """A loaded signature that records its name in ``calls`` each time it runs."""

    def __init__(self, name, fn, calls):
        self.name, self.fn, self.calls = name, fn, calls
        self.structured_input_signature = fn.structured_input_signature
        self.structured_outputs = fn.structured_outputs

    def __call__(self, **inputs):
        self.calls.append((self.name, tuple(inputs["images"].shape)))
        return self.fn(**inputs)


def _recording_loader(monkeypatch, loaded, calls, drop=()):
    """``load_savedmodel`` as the loader sees it: the SavedModel ``loaded``, its signatures
    recorded, those in ``drop`` left out (an export written before them)."""
    from types import SimpleNamespace

    import xray_seg.inference.loader as loader

    kept = {k: _Recorded(k, fn, calls) for k, fn in loaded.signatures.items() if k not in drop}
    monkeypatch.setattr(loader, "load_savedmodel", lambda folder: SimpleNamespace(signatures=kept))


def test_predict_loader_feeds_exact_tiles_to_serve_tiles(station_export, savedmodel, monkeypatch):
    """``load_for_inference(EXPORT/savedmodel)`` as ``predict`` runs it: a long scan tiled on the
    host goes to serve_tiles; batches that are not exact tiles (an explicit window) still go to
    serving_default, which tiles them; an export without serve_tiles gives the same numbers
    through serving_default."""
    from xray_seg.inference.loader import load_for_inference
    from xray_seg.inference.tta import predict_probabilities

    folder = station_export[1] / "savedmodel"
    scan = np.random.default_rng(11).integers(0, 256, (64, 160, 3), dtype=np.uint8)
    calls, older_calls = [], []
    _recording_loader(monkeypatch, savedmodel, calls)
    current = load_for_inference(folder)
    got = predict_probabilities(current.logits_fn, scan, geometry=current.geometry)
    assert calls and {name for name, _ in calls} == {"serve_tiles"}
    assert all(shape[1:] == (64, 64, 3) for _, shape in calls)

    _recording_loader(monkeypatch, savedmodel, older_calls, drop=("serve_tiles",))
    older = load_for_inference(folder)
    ref = predict_probabilities(older.logits_fn, scan, geometry=older.geometry)
    assert older_calls and {name for name, _ in older_calls} == {"serving_default"}
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)

    del calls[:]
    window = predict_probabilities(current.logits_fn, scan, window=(64, 96), geometry=current.geometry)
    assert {name for name, _ in calls} == {"serving_default"} and window.shape == (64, 160, 3)
    np.testing.assert_allclose(window.sum(-1), 1.0, atol=1e-4)
