"""The geometry rule itself (xray_seg.inference.geometry): tile origins, and the numpy (tta) and
TensorFlow (serving graph) implementations agreeing at native resolution and with a scale."""

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xray_seg.inference.geometry import ScanGeometry, axis_origins


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 600), window=st.integers(1, 128), overlap=st.floats(0.0, 0.9))
def test_tiles_cover_every_pixel_and_end_flush(size, window, overlap):
    geometry = ScanGeometry(tile=(window, window), overlap=overlap)
    step = geometry.step[0]
    padded = max(size, window)
    starts = axis_origins(padded, window, step)
    assert starts[0] == 0 and starts[-1] == padded - window
    assert all(0 < b - a <= step for a, b in pairwise(starts))
    covered = np.zeros(padded, bool)
    for s in starts:
        covered[s : s + window] = True
    assert covered.all()


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 400), window=st.integers(1, 96), step=st.integers(1, 96))
def test_graph_tile_starts_equal_numpy(size, window, step):
    tf = pytest.importorskip("tensorflow")
    from xray_seg.serving.signatures import tile_starts

    step = min(step, window)
    padded = max(size, window)
    assert tile_starts(tf.constant(padded), window, step).numpy().tolist() == axis_origins(padded, window, step)


def test_defaults_and_record():
    g = ScanGeometry(tile=256)
    assert g.tile == (256, 256) and g.scale == 1.0 and g.pad_value == 255.0
    assert g.step == (171, 171)  # overlap 1/3, as the sliding window always had
    assert g.blend_sigma == 0.125
    assert g.is_single_tile(256, 256) and not g.is_single_tile(256, 1024)
    assert not ScanGeometry(tile=256, scale=0.5).is_single_tile(256, 256)
    assert g.num_tiles(1024, 3000) == 6 * 18
    assert ScanGeometry.from_dict(g.as_dict()) == g
    old_export = {k: v for k, v in g.as_dict().items() if k not in ("blend_sigma", "blend")}
    assert ScanGeometry.from_dict(old_export).blend_sigma == 0.0  # exports before the blend averaged plainly
    with pytest.raises(ValueError):
        ScanGeometry(tile=64, blend_sigma=-0.1)
    with pytest.raises(ValueError):
        ScanGeometry(tile=64, overlap=1.0)
    with pytest.raises(ValueError):
        ScanGeometry(tile=64, scale=0)


def test_blend_weights_are_the_documented_gaussian():
    g = ScanGeometry(tile=(8, 16))
    weights = g.tile_weights()
    assert weights.shape == (8, 16) and weights.dtype == np.float32

    def gaussian(side):  # the docstring's g(i), sigma = side / 8
        centre = np.arange(side) + 0.5 - side / 2
        return np.exp(-(centre**2) / (2 * (side / 8) ** 2))

    np.testing.assert_allclose(weights, np.outer(gaussian(8), gaussian(16)), rtol=1e-6)
    np.testing.assert_allclose(weights, weights[::-1, ::-1], rtol=1e-6)  # symmetric about the centre
    assert weights[4, 8] > weights[0, 0] > 0  # the centre counts most, a corner least but not zero
    np.testing.assert_array_equal(ScanGeometry(tile=8, blend_sigma=0).tile_weights(), np.ones((8, 8), np.float32))


def test_blend_weights_a_tile_centre_over_a_neighbours_border():
    """Two overlapping tiles that disagree: where one tile's centre meets the other's border,
    the centre's vote wins (the count map would give 50/50 everywhere in the overlap)."""
    from xray_seg.inference.tta import predict_probabilities

    def model(batch):  # class 0 for a tile starting at x = 0, class 1 for the other
        out = np.zeros((*batch.shape[:3], 2), np.float32)
        first = batch[:, 0, 0, 0] == 0
        out[first, ..., 0] = 5.0
        out[~first, ..., 1] = 5.0
        return out

    image = np.full((16, 24, 3), 9, np.float32)
    image[:, 0] = 0  # marks the first tile (x = 0)
    probs = predict_probabilities(model, image, geometry=ScanGeometry(tile=16))  # tiles at x = 0 and 8
    assert probs[8, 9, 0] > 0.5 > probs[8, 14, 0]  # near tile 0's centre tile 0 wins; past it, tile 1
    flat = predict_probabilities(model, image, geometry=ScanGeometry(tile=16, blend_sigma=0))
    np.testing.assert_allclose(flat[:, 8:16, 0], 0.5, atol=1e-6)  # the count map: a tie in the overlap


@pytest.mark.parametrize("blend_sigma", [0.125, 0.0])
@pytest.mark.parametrize("scale", [1.0, 0.5, 1.5])
@pytest.mark.parametrize("shape", [(40, 150), (130, 50), (20, 20), (32, 32)])
def test_serving_graph_equals_numpy_rule(scale, shape, blend_sigma):
    """scan_probabilities (TF ops) == predict_probabilities (numpy), scaling, padding and tiling."""
    tf = pytest.importorskip("tensorflow")
    import keras

    from xray_seg.inference.tta import predict_probabilities
    from xray_seg.serving.signatures import scan_probabilities

    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 127.5, -1),
            keras.layers.Conv2D(8, 5, padding="same", activation="relu"),
            keras.layers.Conv2D(4, 3, padding="same"),
        ]
    )
    geometry = ScanGeometry(tile=(32, 32), scale=scale, blend_sigma=blend_sigma)
    image = np.random.default_rng(1).integers(0, 256, (*shape, 3), dtype=np.uint8)
    want = predict_probabilities(model, image, geometry=geometry)
    got = tf.function(lambda x: scan_probabilities(model, x, geometry, 4, tile_batch=3))(tf.constant(image)).numpy()
    assert got.shape == want.shape == (*shape, 4)
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.999


def test_any_size_model_tiles_with_its_training_size_everywhere(tmp_path):
    """A model trained on crops takes any input size; predict, evaluate's geometry and the
    SavedModel all tile it with the training size (config.yaml data.image_size)."""
    tf = pytest.importorskip("tensorflow")
    import keras
    from PIL import Image

    from xray_seg.core.config import save_config
    from xray_seg.inference.geometry import geometry_for
    from xray_seg.inference.loader import load_for_inference
    from xray_seg.inference.prediction_files import predict_images
    from xray_seg.serving.exporter import export_model
    from xray_seg.training.config import TrainConfig

    keras.utils.set_random_seed(4)
    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(6, 5, padding="same", activation="relu")(keras.layers.Rescaling(1 / 127.5, -1)(inputs))
    keras.Model(inputs, keras.layers.Conv2D(3, 3, padding="same")(hidden)).save(run / "best_model.keras")
    (run / "class_names.txt").write_text("_background_\ngun\nknife\n")
    cfg = TrainConfig()
    cfg.data.image_size = (32, 32)
    save_config(cfg, run / "config.yaml")
    assert geometry_for(load_for_inference(run)) == ScanGeometry(tile=(32, 32))

    image = np.random.default_rng(3).integers(0, 256, (40, 150, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "scan.png")
    predict_images(run, [str(tmp_path / "scan.png")], tmp_path / "pred", progress=False)
    mask = np.asarray(Image.open(tmp_path / "pred" / "scan_mask.png"))
    export_model(run, tmp_path / "export", formats=("savedmodel",), progress=False)
    served = tf.saved_model.load(str(tmp_path / "export" / "savedmodel")).signatures["serving_default"]
    class_map = served(images=tf.constant(image[None]))["class_map"].numpy()[0]
    assert mask.shape == class_map.shape == (40, 150)
    assert np.mean(mask == class_map) >= 0.999
