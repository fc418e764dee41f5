"""The tf.data pipeline, its file checks, class statistics and the data-stats / show-batch commands."""

import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xray_seg.cli import main
from xray_seg.conversion.stats import compute_class_stats, median_frequency_weights
from xray_seg.conversion.voc import load_label_png, save_label_png, write_class_names, write_split
from xray_seg.core.errors import DatasetError
from xray_seg.core.layouts import VocLayout
from xray_seg.pipeline.augment import AugmentConfig
from xray_seg.pipeline.dataset import dataset_error_from, make_eval_dataset, make_train_dataset, split_size
from xray_seg.pipeline.decoding import decode_mask
from xray_seg.pipeline.split_files import MASK_VOC

NAMES = ["_background_", "gun", "knife"]


def _voc(root, n=6, size=(24, 32), jpeg_every=0):
    """A tiny VOC folder: random images, masks with a box of class 1 and of class 2."""
    layout = VocLayout(root)
    layout.images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    stems = []
    for i in range(n):
        h, w = size
        label = np.zeros((h, w), np.uint8)
        label[2 : 2 + i + 3, 3:12] = 1
        label[12:20, 14 : 20 + i] = 2
        label[0, 0] = 255
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        suffix = ".jpg" if jpeg_every and i % jpeg_every == 0 else ".png"
        Image.fromarray(image).save(layout.images_dir / f"s{i}{suffix}")
        save_label_png(layout.mask_path(f"s{i}"), label)
        stems.append(f"s{i}")
    write_class_names(root, NAMES)
    write_split(root, "train", stems)
    write_split(root, "val", stems[:3])
    return layout


def _batches(ds, k):
    return [tuple(t.numpy() for t in batch) for batch in ds.take(k)]


def _same(a, b):
    return all(np.array_equal(x, y) for pa, pb in zip(a, b) for x, y in zip(pa, pb)) and len(a) == len(b)


def test_train_batches_shapes_dtypes_and_values(tmp_path):
    _voc(tmp_path, jpeg_every=3)
    ds = make_train_dataset(tmp_path, image_size=(32, 40), batch_size=2, seed=0)
    for images, masks in _batches(ds, 4):
        assert images.shape == (2, 32, 40, 3) and images.dtype == np.float32
        assert masks.shape == (2, 32, 40) and masks.dtype == np.uint8
        assert images.min() >= 0.0 and images.max() <= 255.0
        assert set(np.unique(masks)) <= {0, 1, 2, 255}
    assert ds.element_spec[0].shape.as_list() == [2, 32, 40, 3]


def test_same_seed_same_stream_other_seed_other_stream(tmp_path):
    _voc(tmp_path)
    kwargs = dict(image_size=(32, 32), batch_size=2)
    a = _batches(make_train_dataset(tmp_path, seed=5, **kwargs), 4)
    b = _batches(make_train_dataset(tmp_path, seed=5, **kwargs), 4)
    c = _batches(make_train_dataset(tmp_path, seed=6, **kwargs), 4)
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("cache", [False, True])
def test_start_epoch_reproduces_later_epochs(tmp_path, cache):
    _voc(tmp_path, n=5)  # 5 images, batch 2: 2 batches an epoch, one image dropped each epoch
    kwargs = dict(image_size=(24, 24), batch_size=2, seed=3, cache=cache)
    stream = _batches(make_train_dataset(tmp_path, start_epoch=0, **kwargs), 6)
    resumed = _batches(make_train_dataset(tmp_path, start_epoch=1, **kwargs), 4)
    assert _same(stream[2:6], resumed)
    assert not _same(stream[0:2], stream[2:4])  # epochs differ


def test_cache_gives_the_same_stream(tmp_path):
    _voc(tmp_path, jpeg_every=2)
    kwargs = dict(image_size=(24, 24), batch_size=3, seed=1)
    assert _same(
        _batches(make_train_dataset(tmp_path, **kwargs), 4),
        _batches(make_train_dataset(tmp_path, cache=True, **kwargs), 4),
    )


def test_one_epoch_without_shuffle_or_augment_is_the_data(tmp_path):
    layout = _voc(tmp_path, n=4)
    ds = make_train_dataset(
        tmp_path, image_size=(24, 32), batch_size=3, augment=None, shuffle=False, repeat=False, drop_remainder=False
    )
    batches = _batches(ds, 10)
    assert [b[0].shape[0] for b in batches] == [3, 1]
    masks = np.concatenate([b[1] for b in batches])
    for i in range(4):
        np.testing.assert_array_equal(masks[i], load_label_png(layout.mask_path(f"s{i}")))
        np.testing.assert_allclose(
            batches[i // 3][0][i % 3], np.asarray(Image.open(layout.images_dir / f"s{i}.png")), atol=1e-3
        )


def test_shards_split_the_files(tmp_path):
    _voc(tmp_path, n=6)
    seen = []
    for index in range(2):
        ds = make_train_dataset(
            tmp_path,
            image_size=(24, 32),
            batch_size=1,
            augment=None,
            shuffle=False,
            repeat=False,
            input_context=(2, index),
        )
        seen.append([b[0][0] for b in _batches(ds, 10)])
    assert len(seen[0]) == len(seen[1]) == 3
    assert not any(np.array_equal(a, b) for a in seen[0] for b in seen[1])


def test_partial_batches_do_not_straddle_epochs(tmp_path):
    _voc(tmp_path, n=5)
    ds = make_train_dataset(tmp_path, image_size=(24, 24), batch_size=2, drop_remainder=False)
    assert [b[0].shape[0] for b in _batches(ds, 6)] == [2, 2, 1, 2, 2, 1]


def test_eval_dataset_original_and_resized(tmp_path):
    layout = _voc(tmp_path, jpeg_every=2)
    original = _batches(make_eval_dataset(tmp_path, "val"), 10)
    assert len(original) == 3 == split_size(tmp_path, "val")
    image, mask = original[1]
    assert image.shape == (1, 24, 32, 3) and image.dtype == np.float32 and mask.dtype == np.uint8
    np.testing.assert_array_equal(mask[0], load_label_png(layout.mask_path("s1")))
    resized = _batches(make_eval_dataset(tmp_path, "val", image_size=(48, 64), batch_size=2), 10)
    assert [b[0].shape for b in resized] == [(2, 48, 64, 3), (1, 48, 64, 3)]
    np.testing.assert_array_equal(resized[0][1][1][::2, ::2], mask[0])  # nearest, 2x


def test_palette_mask_decodes_to_indices_for_all_256_labels(tmp_path):
    label = np.arange(256, dtype=np.uint8).reshape(16, 16)
    save_label_png(tmp_path / "m.png", label)
    decoded = decode_mask(tf.io.read_file(str(tmp_path / "m.png")), MASK_VOC).numpy()
    np.testing.assert_array_equal(decoded, label)


def test_greyscale_masks_are_read_as_labels(tmp_path):
    layout = _voc(tmp_path, n=2)
    grey = np.zeros((24, 32), np.uint8)
    grey[5:10, 5:10] = 2
    Image.fromarray(grey, mode="L").save(layout.mask_path("s0"))
    mask = _batches(make_eval_dataset(tmp_path, "train"), 1)[0][1][0]
    np.testing.assert_array_equal(mask, grey)


def _corrupt(layout, what):
    mask = layout.mask_path("s1")
    image = layout.images_dir / "s1.png"
    if what == "missing image":
        image.unlink()
        return layout.images_dir
    if what == "missing mask":
        mask.unlink()
        return mask
    if what == "truncated image":
        image.write_bytes(image.read_bytes()[:-40])
        return image
    if what == "bit flip in mask":
        data = bytearray(mask.read_bytes())
        data[len(data) // 2] ^= 0x10
        mask.write_bytes(bytes(data))
        return mask
    if what == "text as image":
        image.write_text("not an image")
        return image
    if what == "RGB mask":
        Image.new("RGB", (32, 24)).save(mask)
        return mask
    if what == "size mismatch":
        save_label_png(mask, np.zeros((10, 10), np.uint8))
        return mask
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "missing image",
        "missing mask",
        "truncated image",
        "bit flip in mask",
        "text as image",
        "RGB mask",
        "size mismatch",
    ],
)
def test_bad_file_gives_dataset_error_naming_it(tmp_path, what):
    layout = _voc(tmp_path, n=3)
    path = _corrupt(layout, what)
    for build in (
        lambda: make_train_dataset(tmp_path, image_size=(24, 24), batch_size=1),
        lambda: make_eval_dataset(tmp_path, "train"),
    ):
        with pytest.raises(DatasetError) as err:
            build()
        assert str(path) in err.value.message


def test_truncated_jpeg_is_named(tmp_path):
    layout = _voc(tmp_path, n=2, jpeg_every=1)
    path = layout.images_dir / "s1.jpg"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DatasetError, match="s1.jpg"):
        make_eval_dataset(tmp_path, "train")


def test_label_outside_classes_fails_naming_the_mask(tmp_path):
    layout = _voc(tmp_path, n=2)
    bad = np.zeros((24, 32), np.uint8)
    bad[3, 3] = 7
    save_label_png(layout.mask_path("s1"), bad)
    with pytest.raises(DatasetError, match=r"s1.png: mask has label value\(s\) 7 outside 0..2"):
        make_eval_dataset(tmp_path, "train")  # up front, before any TF op


def test_label_changed_after_the_check_fails_naming_the_mask(tmp_path):
    layout = _voc(tmp_path, n=2)
    ds = make_eval_dataset(tmp_path, "train")  # checked while the masks were good
    bad = np.zeros((24, 32), np.uint8)
    bad[3, 3] = 7
    save_label_png(layout.mask_path("s1"), bad)
    with pytest.raises(tf.errors.InvalidArgumentError) as err:
        _batches(ds, 2)
    error = dataset_error_from(err.value)
    assert isinstance(error, DatasetError) and error.path == str(layout.mask_path("s1"))
    assert "outside 0..2" in error.message


def test_class_stats_and_median_frequency_weights(tmp_path):
    layout = VocLayout(tmp_path)
    layout.images_dir.mkdir(parents=True)
    a = np.zeros((10, 10), np.uint8)
    a[:2] = 1  # 20 px of class 1
    a[9, 9] = 255  # one ignore pixel
    b = np.zeros((10, 10), np.uint8)
    b[:5] = 1  # 50 px of class 1
    b[5:] = 3  # 50 px of class 3; class 2 absent
    for stem, label in (("a", a), ("b", b)):
        save_label_png(layout.mask_path(stem), label)
    write_class_names(tmp_path, ["_background_", "x", "y", "z"])
    write_split(tmp_path, "train", ["a", "b"])
    stats = compute_class_stats(tmp_path, "train", progress=False)
    assert stats.pixels.tolist() == [79, 70, 0, 50]
    assert stats.images.tolist() == [1, 2, 0, 1]
    assert stats.pixels_of_images.tolist() == [99, 199, 0, 100]
    assert stats.ignore_pixels == 1
    freq = np.array([79 / 99, 70 / 199, 0.0, 50 / 100])
    np.testing.assert_allclose(stats.frequency, freq)
    median = np.median(freq[[0, 1, 3]])
    np.testing.assert_allclose(
        median_frequency_weights(stats), [median / freq[0], median / freq[1], 0.0, median / freq[3]]
    )

    out = tmp_path / "w.json"
    assert main(["data-stats", str(tmp_path), "--weights-out", str(out)]) == 0
    doc = json.loads(out.read_text())
    np.testing.assert_allclose(doc["class_weights"], median_frequency_weights(stats), rtol=1e-5)
    assert doc["class_names"] == ["_background_", "x", "y", "z"]
    assert main(["data-stats", str(tmp_path), "--weights-out", str(out)]) == 2  # refuses overwrite


def test_data_stats_names_mask_with_unknown_label(tmp_path, capsys):
    layout = _voc(tmp_path, n=2)
    bad = np.zeros((24, 32), np.uint8)
    bad[0, 0] = 9
    save_label_png(layout.mask_path("s0"), bad)
    assert main(["data-stats", str(tmp_path)]) == 2
    assert str(layout.mask_path("s0")) in capsys.readouterr().err


def test_show_batch_writes_png_and_refuses_overwrite(tmp_path, capsys):
    _voc(tmp_path / "voc", n=4)
    out = tmp_path / "grid.png"
    args = ["show-batch", str(tmp_path / "voc"), "--out", str(out), "--n", "4", "--size", "32"]
    assert main(args) == 0
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size[0] > 200
    before = out.read_bytes()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err and out.read_bytes() == before
    assert main(args + ["--force", "--seed", "1"]) == 0


def _spy_training_dataset(monkeypatch) -> list:
    """The TrainConfigs show-batch hands to the trainer's own dataset function."""
    from xray_seg.training import trainer

    seen, real = [], trainer.make_training_dataset
    monkeypatch.setattr(trainer, "make_training_dataset", lambda cfg, n, **kw: seen.append(cfg) or real(cfg, n, **kw))
    return seen


def test_show_batch_draws_as_the_preset_trains(tmp_path, capsys, monkeypatch):
    """--preset: the preset's augmentation (hard_cpu: foreground crops 0.5, TIP 0.5), with --set on top."""
    _voc(tmp_path / "voc", n=4)
    seen = _spy_training_dataset(monkeypatch)
    args = ["show-batch", str(tmp_path / "voc"), "--out", str(tmp_path / "hard.png"), "--n", "2", "--size", "32"]
    assert main([*args, "--preset", "hard_cpu", "--set", "data.augment.tip_prob=0"]) == 0
    (cfg,) = seen
    assert cfg.data.voc_dir == str(tmp_path / "voc") and cfg.data.augment.foreground_crop_prob == 0.5
    assert cfg.data.augment.tip_prob == 0  # the --set over the preset
    assert "32x32, seed 0, preset hard_cpu, foreground crops 0.5)" in capsys.readouterr().out
    assert (tmp_path / "hard.png").is_file()


def test_show_batch_draws_as_the_run_trained(tmp_path, capsys, monkeypatch):
    """--run: the run's config.yaml, its seed and training crop included."""
    from xray_seg.core.config import load_config, save_config
    from xray_seg.training.config import TrainConfig

    _voc(tmp_path / "voc", n=4)
    (tmp_path / "run").mkdir()
    cfg = load_config(
        TrainConfig, "demo_cpu", ["seed=7", "data.image_size=[24,32]", "data.augment.foreground_crop_prob=1"]
    )
    save_config(cfg, tmp_path / "run" / "config.yaml")
    seen = _spy_training_dataset(monkeypatch)
    out = tmp_path / "run.png"
    assert (
        main(["show-batch", str(tmp_path / "voc"), "--out", str(out), "--n", "2", "--run", str(tmp_path / "run")]) == 0
    )
    assert seen[0].seed == 7 and seen[0].data.augment.foreground_crop_prob == 1
    assert f"24x32, seed 7, run {tmp_path / 'run'}, foreground crops 1)" in capsys.readouterr().out
    assert out.is_file()


def test_default_augment_config_runs_in_the_pipeline(tmp_path):
    _voc(tmp_path, n=4)
    cfg = AugmentConfig(noise_std=0.0, brightness=0.0)
    ((images, masks),) = _batches(make_train_dataset(tmp_path, image_size=(32, 32), batch_size=4, augment=cfg), 1)
    assert images.shape == (4, 32, 32, 3) and set(np.unique(masks)) <= {0, 1, 2, 255}


def test_crop_size_cuts_crops_at_the_image_scale(tmp_path):
    """Without augmentation, a crop_size crop is the top-left corner of the image at image_size."""
    layout = _voc(tmp_path, n=3)
    ds = make_train_dataset(
        tmp_path, image_size=(24, 32), crop_size=(16, 20), batch_size=3, augment=None, shuffle=False, repeat=False
    )
    images, masks = _batches(ds, 1)[0]
    assert images.shape == (3, 16, 20, 3)
    for i in range(3):
        np.testing.assert_array_equal(masks[i], load_label_png(layout.mask_path(f"s{i}"))[:16, :20])
        np.testing.assert_allclose(
            images[i], np.asarray(Image.open(layout.images_dir / f"s{i}.png"))[:16, :20], atol=1e-3
        )
