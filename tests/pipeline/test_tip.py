"""Threat image projection: library, pixel-exact alignment, Beer-Lambert values, ignore
regions, determinism and resume in the pipeline, show-batch --tip, the `tip` command."""

import hashlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from xray_seg.cli import main
from xray_seg.conversion.voc import (
    VocLayout,
    load_label_png,
    save_label_png,
    write_class_names,
    write_split,
)
from xray_seg.core.errors import OutputExistsError
from xray_seg.pipeline.augment import AugmentConfig
from xray_seg.pipeline.dataset import make_train_dataset
from xray_seg.pipeline.tip import (
    PackedLibrary,
    TipConfig,
    build_library,
    instance_masks,
    project_threats,
)

THREAT_RGB = np.array([100, 150, 200], np.uint8)


def _scan(size=40, clean=False):
    """A white scan with an L-shaped threat of class 1 and a 6x6 threat of class 2."""
    image = np.full((size, size, 3), 255, np.uint8)
    label = np.zeros((size, size), np.uint8)
    if not clean:
        label[5:15, 5:9] = 1
        label[11:15, 9:16] = 1
        label[25:31, 25:31] = 2
        image[label == 1] = THREAT_RGB
        image[label == 2] = [50, 60, 70]
    return image, label


def _voc(root, n=4, clean_from=2, size=40):
    layout = VocLayout(root)
    layout.images_dir.mkdir(parents=True)
    stems = []
    for i in range(n):
        image, label = _scan(size, clean=i >= clean_from)
        Image.fromarray(image).save(layout.images_dir / f"s{i}.png")
        save_label_png(layout.mask_path(f"s{i}"), label)
        stems.append(f"s{i}")
    write_class_names(root, ["_background_", "gun", "knife"])
    write_split(root, "train", stems)
    return root


def _library(tmp_path):
    return PackedLibrary(build_library(_voc(tmp_path / "lib", n=1, clean_from=1), progress=False))


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_library_instances_and_transmission(tmp_path):
    library = build_library(_voc(tmp_path / "voc", n=2, clean_from=1), progress=False)
    assert sorted(inst.label for inst in library) == [1, 2]
    gun = next(inst for inst in library if inst.label == 1)
    assert gun.mask.shape == (10, 11) and gun.mask.sum() == 40 + 28  # cropped to the box of the L
    t = gun.transmission
    np.testing.assert_allclose(t[gun.mask], np.broadcast_to(THREAT_RGB / 255.0, (68, 3)), rtol=1e-6)
    assert np.all(t[~gun.mask] == 1.0)  # only the threat itself attenuates


def test_object_masks_split_touching_instances():
    label = np.zeros((10, 10), np.uint8)
    label[2:8, 2:8] = 1
    objects = np.zeros_like(label)
    objects[2:8, 2:5], objects[2:8, 5:8] = 1, 2
    assert len(instance_masks(label, None, min_pixels=1)) == 1  # one connected component
    found = instance_masks(label, objects, min_pixels=1)
    assert [(c, m.sum()) for c, m in found] == [(1, 18), (1, 18)]


def test_identity_pose_is_pixel_exact_beer_lambert(tmp_path):
    library = _library(tmp_path)
    grey = 128.0
    config = TipConfig(prob=1.0, max_threats=1, scale_range=(1.0, 1.0), rotate=False, flip=False)
    image = tf.fill([48, 48, 3], grey)
    mask = tf.zeros([48, 48], tf.uint8)
    whole = 0
    for k in range(12):
        out, labels = (x.numpy() for x in project_threats(image, mask, tf.constant([7, k], tf.int64), library, config))
        changed = np.any(out != grey, axis=-1)
        assert changed.any()
        np.testing.assert_array_equal(changed, labels != 0)  # changed pixels == projected mask
        cls = int(labels.max())
        expected_rgb = THREAT_RGB if cls == 1 else np.array([50, 60, 70])
        # Beer-Lambert on a grey bag: I_out = grey * T, T = I_threat / 255
        np.testing.assert_allclose(
            out[changed], np.broadcast_to(grey * expected_rgb / 255.0, out[changed].shape), rtol=1e-6
        )
        rows, cols = np.nonzero(labels)
        if cls == 1 and rows.max() - rows.min() == 9 and cols.max() - cols.min() == 10:
            ref = np.zeros((10, 11), bool)  # the L, unrotated and whole
            ref[0:10, 0:4], ref[6:10, 4:11] = True, True
            np.testing.assert_array_equal(labels[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] == 1, ref)
            whole += 1
    assert whole > 0  # at least one L landed whole, and matched the library's shape pixel for pixel


def test_random_pose_keeps_mask_and_pixels_aligned(tmp_path):
    library = _library(tmp_path)
    config = TipConfig(prob=1.0, max_threats=3, scale_range=(0.6, 1.8))
    image = tf.fill([64, 64, 3], 200.0)
    mask = tf.zeros([64, 64], tf.uint8)
    for k in range(8):
        out, labels = (x.numpy() for x in project_threats(image, mask, tf.constant([1, k], tf.int64), library, config))
        changed = np.any(out != 200.0, axis=-1)
        np.testing.assert_array_equal(changed, labels != 0)
        assert np.all(out[changed] < 200.0)  # transmissions < 1 only attenuate


def test_transmissions_multiply_over_bag_content(tmp_path):
    library = _library(tmp_path)
    config = TipConfig(prob=1.0, max_threats=1, scale_range=(1.0, 1.0), rotate=False, flip=False)
    ramp = np.tile(np.linspace(20, 230, 48, dtype=np.float32)[None, :, None], (48, 1, 3))
    mask = np.zeros((48, 48), np.uint8)
    mask[:, :6] = 3  # a bag item of another class: overwritten where a threat lands on it
    out, labels = (
        x.numpy()
        for x in project_threats(tf.constant(ramp), tf.constant(mask), tf.constant([3, 3], tf.int64), library, config)
    )
    placed = labels != mask
    assert placed.any()
    ratio = out[placed] / ramp[placed]
    assert {tuple(np.round(r * 255, 3)) for r in ratio} <= {(100.0, 150.0, 200.0), (50.0, 60.0, 70.0)}
    np.testing.assert_array_equal(out[~placed], ramp[~placed])


def test_ignore_pixels_are_never_projected_onto(tmp_path):
    library = _library(tmp_path)
    config = TipConfig(prob=1.0, max_threats=3, scale_range=(1.5, 2.5))
    image = np.full((40, 40, 3), 150.0, np.float32)
    mask = np.zeros((40, 40), np.uint8)
    mask[:, 20:] = 255
    hit = 0
    for k in range(6):
        out, labels = (
            x.numpy()
            for x in project_threats(
                tf.constant(image), tf.constant(mask), tf.constant([5, k], tf.int64), library, config
            )
        )
        assert np.all(labels[:, 20:] == 255) and np.all(out[:, 20:] == 150.0)
        hit += int((labels[:, :20] != 0).sum())
    assert hit > 0


def test_air_is_not_bag_and_prob_zero_is_identity(tmp_path):
    library = _library(tmp_path)
    air = tf.fill([32, 32, 3], 255.0)
    out, labels = project_threats(
        air, tf.zeros([32, 32], tf.uint8), tf.constant([0, 0], tf.int64), library, TipConfig()
    )
    assert np.all(labels.numpy() == 0) and np.all(out.numpy() == 255.0)  # no bag pixel: nothing projected
    grey = tf.fill([32, 32, 3], 90.0)
    out, labels = project_threats(
        grey, tf.zeros([32, 32], tf.uint8), tf.constant([0, 0], tf.int64), library, TipConfig(prob=0.0)
    )
    assert np.all(labels.numpy() == 0) and np.all(out.numpy() == 90.0)


def _stream(voc, augment, start_epoch=0, batches=4):
    ds = make_train_dataset(voc, image_size=(32, 32), batch_size=2, augment=augment, seed=11, start_epoch=start_epoch)
    return [(i.numpy(), m.numpy()) for i, m in ds.take(batches)]


def test_pipeline_tip_is_seeded_resumable_and_off_by_default(tmp_path):
    voc = _voc(tmp_path / "voc", n=4, clean_from=2)
    for scan in (VocLayout(voc).images_dir).iterdir():  # grey bags, so TIP has somewhere to project
        pixels = np.asarray(Image.open(scan)).copy()
        pixels[pixels == 255] = 180
        Image.fromarray(pixels).save(scan)
    tip = AugmentConfig(tip_prob=1.0, tip_max_threats=2)
    first = _stream(voc, tip)
    again = _stream(voc, tip)
    resumed = _stream(voc, tip, start_epoch=1, batches=2)
    for (a, m), (b, n) in zip(first, again):
        np.testing.assert_array_equal(a, b) and np.testing.assert_array_equal(m, n)
    for (a, m), (b, n) in zip(first[2:], resumed):  # 2 batches per epoch: epoch 1 = batches 2, 3
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)
    plain = _stream(voc, AugmentConfig())
    off = _stream(voc, AugmentConfig(tip_prob=0.0, tip_max_threats=3))
    for (a, m), (b, n) in zip(plain, off):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(m, n)
    # clean bags (s2, s3 have no threat) get threats under TIP: more foreground than without
    fg_tip = sum(int(((m > 0) & (m < 255)).sum()) for _, m in first)
    fg_plain = sum(int(((m > 0) & (m < 255)).sum()) for _, m in plain)
    assert fg_tip > fg_plain


def test_show_batch_tip_flag(tmp_path, capsys):
    voc = _voc(tmp_path / "voc")
    out = tmp_path / "tip.png"
    assert main(["show-batch", str(voc), "--out", str(out), "--n", "2", "--size", "32", "--tip", "--no-augment"]) == 0
    assert out.stat().st_size > 0 and "TIP" not in capsys.readouterr().err


def test_tip_command_writes_voc_and_is_safe(tmp_path, capsys):
    lib = _voc(tmp_path / "lib", n=2, clean_from=1)
    bags = tmp_path / "clean"
    bags.mkdir()
    for i in range(3):
        Image.fromarray(np.full((36, 44, 3), 170, np.uint8)).save(bags / f"bag{i}.png")
    before = (_digest(lib), _digest(bags))
    out = tmp_path / "out"
    argv = ["tip", str(lib), "--bags", str(bags), "--out", str(out), "--copies", "2", "--seed", "4"]
    assert main(argv) == 0
    stems = (out / "ImageSets/Segmentation/train.txt").read_text().split()
    assert len(stems) == 6 and (out / "class_names.txt").read_text().split()[1] == "gun"
    for stem in stems:
        image = np.asarray(Image.open(out / "JPEGImages" / f"{stem}.png"))
        label = load_label_png(out / "SegmentationClass" / f"{stem}.png")
        assert image.shape == (36, 44, 3) and label.any()
        np.testing.assert_array_equal(np.any(image != 170, axis=-1), label != 0)
    first = _digest(out)
    assert main(argv) == 2 and "already exists" in capsys.readouterr().err  # refused, exit 2
    assert main(argv + ["--force"]) == 0 and _digest(out) == first  # same seed, same composites
    assert main(["tip", str(lib), "--out", str(lib / "inside"), "--force"]) == 2  # never writes into an input
    assert "lies inside the input" in capsys.readouterr().err
    with pytest.raises(OutputExistsError):
        main(["--debug", "tip", str(lib), "--bags", str(bags), "--out", str(out)])
    assert (_digest(lib), _digest(bags)) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_estimated_air_sets_the_transmission(tmp_path):
    # a scan whose air is grey 240 (an under-exposed scanner): T = I / 240, not I / 255
    voc = _voc(tmp_path / "voc", n=1, clean_from=1)
    path = VocLayout(voc).image_path("s0")
    pixels = np.asarray(Image.open(path)).copy()
    pixels[pixels == 255] = 240
    Image.fromarray(pixels).save(path)
    gun = next(i for i in build_library(voc, air="estimate", progress=False) if i.label == 1)
    np.testing.assert_allclose(gun.air, [240, 240, 240])
    np.testing.assert_allclose(gun.transmission[gun.mask][0], THREAT_RGB / 240.0, rtol=1e-6)
    white = next(i for i in build_library(voc, progress=False) if i.label == 1)
    np.testing.assert_allclose(white.transmission[white.mask][0], THREAT_RGB / 255.0, rtol=1e-6)
