"""Inference helpers: plain forward, flip/multi-scale TTA, sliding window, fixed-size models."""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xray_seg.core.errors import ConfigError, ModelError
from xray_seg.inference.geometry import axis_origins
from xray_seg.inference.tta import forward_logits, predict_class_map, predict_probabilities, resize_bilinear, softmax

K = 4


def conv_model(kernel=1, input_shape=(None, None, 3), seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Rescaling(1 / 127.5, -1),
            keras.layers.Conv2D(K, kernel, padding="same"),
        ]
    )


def plain(model, image):
    return softmax(model.predict_on_batch(image[None].astype("float32")))[0]


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, size=(40, 56, 3)).astype(np.uint8)


def test_no_tta_equals_plain_forward(image):
    model = conv_model(kernel=3)
    probs = predict_probabilities(model, image)
    assert probs.shape == (40, 56, K) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, plain(model, image), atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    cmap = predict_class_map(model, image)
    assert cmap.dtype == np.uint8 and cmap.shape == (40, 56)
    np.testing.assert_array_equal(cmap, probs.argmax(-1))


def test_flip_tta_feeds_the_mirror_and_flips_back(image):
    seen = []

    def model(batch):
        seen.append(batch.copy())
        return batch[..., :2] / 50.0  # a pointwise "model": flip-equivariant

    probs = predict_probabilities(model, image, flip=True)
    assert len(seen) == 2
    np.testing.assert_array_equal(seen[1][0], seen[0][0][:, ::-1])
    np.testing.assert_allclose(probs, softmax(image[..., :2] / 50.0), atol=1e-6)


def test_flip_tta_on_mirror_symmetric_input_is_symmetric():
    half = np.random.default_rng(1).integers(0, 256, size=(32, 16, 3)).astype(np.uint8)
    image = np.concatenate([half, half[:, ::-1]], axis=1)  # mirror-symmetric
    model = conv_model(kernel=3, seed=3)
    no_flip = predict_probabilities(model, image)
    assert np.abs(no_flip - no_flip[:, ::-1]).max() > 1e-3  # a 3x3 conv is not flip-equivariant
    tta = predict_probabilities(model, image, flip=True)
    np.testing.assert_allclose(tta, tta[:, ::-1], atol=1e-6)
    np.testing.assert_allclose(tta, 0.5 * (no_flip + no_flip[:, ::-1]), atol=1e-6)


def test_multi_scale_averages_resized_probabilities(image):
    model = conv_model(kernel=3)
    got = predict_probabilities(model, image, scales=(0.5, 1.0, 1.5))
    want = np.zeros_like(got)
    for s in (0.5, 1.0, 1.5):
        scaled = resize_bilinear(image, (round(40 * s), round(56 * s)))
        want += resize_bilinear(plain(model, scaled), (40, 56))
    np.testing.assert_allclose(got, want / 3, atol=1e-5)
    # a pointwise model on a flat image gives the same probabilities at every scale
    flat = np.full((30, 30, 3), 120, np.uint8)
    pointwise = conv_model(kernel=1)
    np.testing.assert_allclose(
        predict_probabilities(pointwise, flat, scales=(0.75, 1.25), flip=True), plain(pointwise, flat), atol=1e-6
    )


def test_window_equal_to_image_is_plain_forward(image):
    model = conv_model(kernel=3)
    probs = predict_probabilities(model, image, window=(40, 56))
    np.testing.assert_allclose(probs, plain(model, image), atol=1e-6)


@pytest.mark.parametrize("window,stride", [((16, 24), None), ((16, 16), (5, 7)), (64, None)])
def test_sliding_window_of_translation_equivariant_model_equals_full_forward(image, window, stride):
    model = conv_model(kernel=1)
    probs = predict_probabilities(model, image, window=window, stride=stride, batch_size=3)
    assert probs.shape == (40, 56, K)
    np.testing.assert_allclose(probs, plain(model, image), atol=1e-5)


def test_fixed_size_model_tiles_and_never_squashes(image):
    dynamic = conv_model(kernel=1, seed=5)
    fixed = conv_model(kernel=1, input_shape=(16, 16, 3), seed=6)
    fixed.set_weights(dynamic.get_weights())
    # sliding window with the model's own size reproduces the full-image forward
    np.testing.assert_allclose(predict_probabilities(fixed, image, window=16), plain(dynamic, image), atol=1e-5)
    # no window: the geometry rule tiles with the model's size (never a squash to 16x16)
    np.testing.assert_allclose(predict_probabilities(fixed, image), plain(dynamic, image), atol=1e-5)
    squashed = resize_bilinear(plain(dynamic, resize_bilinear(image, (16, 16))), (40, 56))
    assert np.abs(predict_probabilities(fixed, image) - squashed).max() > 1e-2
    with pytest.raises(ModelError, match="16x16"):
        predict_probabilities(fixed, image, window=(24, 24))
    with pytest.raises(ConfigError, match="stride"):
        predict_probabilities(dynamic, image, window=8, stride=9)


def test_pad_value_only_fills_images_smaller_than_window():
    seen = []

    def model(batch):
        seen.append(batch.copy())
        return np.zeros(batch.shape[:3] + (2,), np.float32)

    small = np.zeros((10, 12, 3), np.uint8)
    probs = predict_probabilities(model, small, window=(16, 16))
    assert probs.shape == (10, 12, 2)
    tile = seen[0][0]
    assert tile.shape == (16, 16, 3)
    assert np.all(tile[10:] == 255) and np.all(tile[:, 12:] == 255) and np.all(tile[:10, :12] == 0)


def test_dict_outputs_and_grey_images():
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, {"aux": keras.layers.Conv2D(2, 1)(inp), "logits": keras.layers.Conv2D(3, 1)(inp)})
    grey = np.random.default_rng(2).integers(0, 256, size=(12, 20)).astype(np.uint8)
    probs = predict_probabilities(model, grey)
    assert probs.shape == (12, 20, 3)
    want = softmax(model.predict_on_batch(np.repeat(grey[None, ..., None], 3, -1).astype("float32"))["logits"])[0]
    np.testing.assert_allclose(probs, want, atol=1e-6)
    with pytest.raises(ModelError):
        forward_logits(lambda b: b[:, ::2], np.zeros((1, 8, 8, 3), np.float32))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(1, 200), window=st.integers(1, 64), stride=st.integers(1, 64))
def test_tile_origins_cover_every_position(size, window, stride):
    stride = min(stride, window)
    padded = max(size, window)
    starts = axis_origins(padded, window, stride)
    covered = np.zeros(padded, bool)
    for s in starts:
        assert s >= 0 and s + window <= padded
        covered[s : s + window] = True
    assert covered.all()
    assert starts == sorted(set(starts))
