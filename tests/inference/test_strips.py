"""Long scans in strips (xray_seg.inference.strips): the same numbers as one whole-scan sum, and
peak memory of ``predict`` under its documented formula."""

import numpy as np
import pytest

from xray_seg.inference.geometry import ScanGeometry, axis_origins
from xray_seg.inference.strips import class_map_of, cut_tiles, predict_memory_bytes, strip_ranges
from xray_seg.inference.tta import predict_probabilities, softmax


class PixelModel:
    """A deterministic 'network' of 4 classes whose logits depend on each tile's pixels and on
    the position inside the tile, so overlapping tiles disagree and the blend matters."""

    def __init__(self):
        rng = np.random.default_rng(0)
        self.mix = rng.normal(size=(3, 4)).astype(np.float32) / 64.0

    def __call__(self, batch):
        batch = np.asarray(batch, np.float32)
        h, w = batch.shape[1:3]
        ramp = (np.arange(h)[:, None, None] / h - np.arange(w)[None, :, None] / w).astype(np.float32)
        return batch @ self.mix + ramp * np.float32([1.0, -1.0, 0.5, 0.0])


def whole_scan(model, image, geometry: ScanGeometry, batch_size: int = 4) -> np.ndarray:
    """The geometry rule summed over the whole padded scan at once (as before strips)."""
    h, w = image.shape[:2]
    wh, ww = geometry.tile
    weights = geometry.tile_weights()[..., None]
    image = np.pad(image.astype(np.float32), ((0, max(wh - h, 0)), (0, max(ww - w, 0)), (0, 0)), constant_values=255)
    H, W = image.shape[:2]
    origins = [(y, x) for y in axis_origins(H, wh, geometry.step[0]) for x in axis_origins(W, ww, geometry.step[1])]
    if len(origins) == 1:
        weights = np.ones_like(weights)
    total, count = None, np.zeros((H, W, 1), np.float32)
    for i in range(0, len(origins), batch_size):
        chunk = origins[i : i + batch_size]
        probs = softmax(model(np.stack([image[y : y + wh, x : x + ww] for y, x in chunk])))
        total = np.zeros((H, W, probs.shape[-1]), np.float32) if total is None else total
        for (y, x), p in zip(chunk, probs):
            total[y : y + wh, x : x + ww] += p * weights
            count[y : y + wh, x : x + ww] += weights
    return (total / count)[:h, :w]


@pytest.mark.parametrize(
    "shape, tile",
    [((96, 2000), (32, 48)), ((2000, 96), (48, 32)), ((20, 30), (32, 48)), ((32, 48), (32, 48)), ((97, 333), (17, 29))],
)
def test_strips_equal_the_whole_scan_sum(shape, tile):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    geometry = ScanGeometry(tile=tile)
    model = PixelModel()
    expected = whole_scan(model, image, geometry)
    got = predict_probabilities(model, image, geometry=geometry, input_size=tile)
    assert got.dtype == np.float32 and got.shape == (*shape, 4)
    np.testing.assert_array_equal(got, expected)  # to the bit, not within a tolerance
    np.testing.assert_array_equal(class_map_of(got, rows=7), expected.argmax(-1).astype(np.uint8))
    # a float32 scan of the same pixels gives the same numbers as the uint8 one
    np.testing.assert_array_equal(
        predict_probabilities(model, image.astype(np.float32), geometry=geometry, input_size=tile), expected
    )


def test_keras_model_strips_equal_the_whole_scan_sum():
    keras = pytest.importorskip("keras")
    from xray_seg.models.registry import build_model

    model = build_model("unet", num_classes=3, input_shape=(None, None, 3), width=0.0625)
    image = np.random.default_rng(2).integers(0, 256, size=(96, 2000, 3), dtype=np.uint8)
    geometry = ScanGeometry(tile=(32, 64))
    forward = keras.Model(model.inputs, model.outputs)
    got = predict_probabilities(forward, image, geometry=geometry)
    expected = whole_scan(lambda b: np.asarray(forward.predict_on_batch(b)), image, geometry)
    np.testing.assert_array_equal(class_map_of(got), expected.argmax(-1).astype(np.uint8))
    np.testing.assert_array_equal(got, expected)


def test_cut_tiles_pads_with_air_and_strip_ranges_cover():
    image = np.zeros((5, 7, 3), np.uint8)
    tiles = cut_tiles(image, [(0, 0), (2, 4)], (4, 4), 255.0)
    assert tiles.shape == (2, 4, 4, 3) and tiles.dtype == np.float32
    assert (tiles[0] == 0).all() and (tiles[1, :3, :3] == 0).all() and (tiles[1, 3] == 255).all()
    assert strip_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]


def test_memory_formula_grows_with_pixels_and_classes():
    small = predict_memory_bytes(1000, 1000, 6)
    assert predict_memory_bytes(2000, 1000, 6) - small == (4 * 6 + 14) * 1000 * 1000
    assert predict_memory_bytes(1000, 1000, 7) - small == 4 * 1000 * 1000
    assert predict_memory_bytes(1000, 1000, 6, base=0) == (4 * 6 + 14) * 1000 * 1000


def test_predict_memory_grows_by_the_formula_per_pixel(tmp_path):
    """``xray-seg predict`` in fresh processes on a 0.25 and a 4 M pixel scan: the extra peak RSS per
    extra pixel stays within the formula's bytes per pixel (4K + 14), with a margin for the
    allocator; whole-scan float copies (before strips: over 100 bytes a pixel) would fail it."""
    keras = pytest.importorskip("keras")
    from PIL import Image

    from xray_seg.core.config import save_config
    from xray_seg.inference.strips import BYTES_PER_SCAN_PIXEL
    from xray_seg.serving.bench_memory import run_measured, synthetic_scan
    from xray_seg.training.config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    inputs = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(keras.layers.Rescaling(1 / 127.5, -1)(inputs))
    keras.Model(inputs, keras.layers.Conv2D(3, 1)(hidden)).save(run / "best_model.keras")
    (run / "class_names.txt").write_text("_background_\ngun\nknife\n")
    cfg = TrainConfig()
    cfg.data.image_size = (256, 256)
    save_config(cfg, run / "config.yaml")
    peaks = {}
    for side in (500, 2000):
        Image.fromarray(synthetic_scan(side, side)).save(tmp_path / f"scan{side}.png", compress_level=1)
        command = ["xray_seg", "predict", str(run), str(tmp_path / f"scan{side}.png")]
        result = run_measured([*command, "--out", str(tmp_path / f"out{side}")], 8 << 30, tmp_path / f"{side}.log")
        assert result["returncode"] == 0, result["error"]
        peaks[side] = result["peak_rss"]
    per_pixel = (peaks[2000] - peaks[500]) / (2000**2 - 500**2)
    assert per_pixel <= 1.5 * (4 * 3 + BYTES_PER_SCAN_PIXEL), f"{per_pixel:.1f} bytes per extra pixel"


def test_bench_memory_refuses_an_unknown_route(refused):
    refused(["bench", "--suite", "memory", "--routes", "keras,onnx"], "unknown route", "tflite,serving_default")
