"""CycleGAN augmentation (Zhu et al. 2017; paper 1, §4.2): networks, training, resume, translation.

Tiny on purpose: 32-48 px images, ngf 8, one or two residual blocks.
"""

import json

import numpy as np
import pytest

from xray_seg.cli import main
from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.labelme import read_labelme
from xray_seg.core.errors import DatasetError
from xray_seg.synthesis.cyclegan.config import CycleGANConfig
from xray_seg.synthesis.cyclegan.images import load_domain
from xray_seg.synthesis.cyclegan.layers import ReflectionPad2D, instance_norm
from xray_seg.synthesis.cyclegan.models import build_discriminator, build_generator, receptive_field
from xray_seg.synthesis.scene import SynthConfig, synthesize

TINY = dict(size=32, ngf=8, ndf=8, num_blocks=1, steps_per_epoch=3, pool_size=2, seed=1)


def _images(n, h=40, w=44, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, h, w, 3)).astype(np.float32)


def _smooth_images(n, size, seed):
    """Low-frequency colour patterns: images a tiny generator can learn to reconstruct."""
    import cv2

    coarse = np.random.default_rng(seed).uniform(0, 255, (n, 4, 4, 3)).astype(np.float32)
    return np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in coarse]).clip(0, 255)


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    """Photo-style Labelme folder (domain A, 50 px: not a multiple of 4) and X-ray images (domain B)."""
    root = tmp_path_factory.mktemp("gan")
    synthesize(
        root / "photo", SynthConfig(size=50, num=3, seed=4, threat_prob=1.0, workers=1, style="photo"), progress=False
    )
    synthesize(root / "xray", SynthConfig(size=40, num=3, seed=5, workers=1), progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_run(domains, tmp_path_factory):
    """A CycleGAN run of 2 epochs, stopped after the first: ``(run_dir, result, config)``."""
    from xray_seg.synthesis.cyclegan.trainer import train_cyclegan

    run_dir = tmp_path_factory.mktemp("run") / "cyclegan"
    config = CycleGANConfig(a_dir=str(domains / "photo"), b_dir=str(domains / "xray"), epochs=2, **TINY)
    result = train_cyclegan(config, run_dir, stop_after_epochs=1, progress=False)
    return run_dir, result, config


# ----------------------------------------------------------------------------- networks
def test_generator_keeps_the_image_size_and_pixel_range(tmp_path):
    import keras

    generator = build_generator(ngf=8, num_blocks=2)
    x = _images(2, 36, 44)
    y = np.asarray(generator(x))
    assert y.shape == x.shape
    assert y.min() >= 0.0 and y.max() <= 255.0
    path = tmp_path / "g.keras"
    generator.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    np.testing.assert_allclose(np.asarray(reloaded(x)), y, atol=1e-4)


def test_reflection_pad_mirrors_without_repeating_the_edge():
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 4, 1)
    y = np.asarray(ReflectionPad2D(1)(x))[0, :, :, 0]
    assert y.shape == (5, 6)
    np.testing.assert_array_equal(y[1, :], [1, 0, 1, 2, 3, 2])
    assert ReflectionPad2D.from_config(ReflectionPad2D(3).get_config()).padding == 3


def test_patchgan_shapes_and_70_pixel_receptive_field():
    import tensorflow as tf

    assert receptive_field(build_discriminator(ndf=64)) == 70
    assert receptive_field(build_discriminator(ndf=8, num_layers=2)) == 34
    disc = build_discriminator(ndf=8)
    assert disc(_images(2, 64, 64)).shape == (2, 6, 6, 1)
    assert disc(_images(1, 256, 256)).shape == (1, 30, 30, 1)  # as the authors' 256 px model
    # empirically: the input pixels one output logit depends on (instance norm off, as it couples all pixels)
    plain = build_discriminator(ndf=8, use_norm=False)
    x = tf.constant(_images(1, 128, 128))
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = plain(x)[0, 7, 7, 0]
    seen = np.abs(tape.gradient(logit, x).numpy()[0]).sum(axis=-1) > 0
    rows, cols = np.nonzero(seen)
    assert rows.max() - rows.min() + 1 == 70
    assert cols.max() - cols.min() + 1 == 70


def test_instance_norm_gives_zero_mean_unit_std_per_sample_and_channel():
    x = _images(3, 16, 20) * np.array([0.1, 1.0, 3.0], np.float32) + np.array(
        [[[[5.0]]], [[[-40.0]]], [[[200.0]]]], np.float32
    )
    y = np.asarray(instance_norm()(x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(y.std(axis=(1, 2)), 1.0, atol=1e-2)


# ----------------------------------------------------------------------------- training
def test_a_few_steps_reduce_the_cycle_loss():
    from xray_seg.synthesis.cyclegan.trainer import CycleGAN

    gan = CycleGAN(CycleGANConfig(lr=2e-3, **TINY).resolved())
    a, b = _smooth_images(2, 32, seed=1), _smooth_images(2, 32, seed=2)
    before = float(gan.generator_losses(a, b)[0]["cycle"])
    for _ in range(20):
        _, fake_a, fake_b = gan.generator_step(a, b)
        gan.discriminator_step(a, b, fake_a, fake_b)
    after = float(gan.generator_losses(a, b)[0]["cycle"])
    assert after < 0.8 * before


def test_learning_rate_is_constant_then_decays_linearly():
    cfg = CycleGANConfig(epochs=200).resolved()
    assert cfg.decay_epochs == 100 and cfg.num_blocks == 9 and cfg.load_size == 286
    assert cfg.lr_factor(0) == cfg.lr_factor(99) == 1.0
    assert cfg.lr_factor(100) == pytest.approx(100 / 101)
    assert cfg.lr_factor(199) == pytest.approx(1 / 101)
    assert CycleGANConfig(size=128).resolved().num_blocks == 6


def test_run_folder_holds_config_samples_generators_and_checkpoint(tiny_run):
    run_dir, result, config = tiny_run
    assert result.epochs_done == 1
    for name in (
        "config.yaml",
        "history.csv",
        "samples/epoch_001.png",
        "generator_a2b.keras",
        "generator_b2a.keras",
        "checkpoints/state.json",
        "checkpoints/optimizers.npz",
        "checkpoints/pools.npz",
        "checkpoints/g_ab.weights.h5",
    ):
        assert (run_dir / name).is_file(), name
    saved = (run_dir / "config.yaml").read_text()
    assert "lambda_cycle: 10.0" in saved and "num_blocks: 1" in saved


def test_resume_restores_the_checkpoint_and_continues(tiny_run):
    from xray_seg.synthesis.cyclegan.trainer import CycleGAN, load_run_config, read_run_state, train_cyclegan

    run_dir, result, _ = tiny_run
    assert read_run_state(run_dir)["epochs_done"] == 1
    restored = CycleGAN(load_run_config(run_dir))
    restored.load(run_dir / "checkpoints")
    for key, model in result.gan.networks().items():
        for saved, loaded in zip(model.weights, restored.networks()[key].weights):
            np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded), err_msg=key)
    for saved, loaded in zip(result.gan.opt_g.variables, restored.opt_g.variables):
        np.testing.assert_array_equal(np.asarray(saved), np.asarray(loaded))
    assert int(restored.opt_g.iterations) == TINY["steps_per_epoch"]

    again = train_cyclegan(CycleGANConfig(), run_dir, resume=True, progress=False)
    assert again.epochs_done == 2
    assert [row["epoch"] for row in again.history] == [1, 2]
    assert again.history[0] == result.history[0]
    assert again.history[1]["lr"] == pytest.approx(1e-4)  # epoch 2 of 2: decayed
    assert int(again.gan.opt_g.iterations) == 2 * TINY["steps_per_epoch"]
    assert read_run_state(run_dir)["epochs_done"] == 2


def test_existing_run_folder_is_refused_without_resume_or_force(tiny_run, domains, capsys):
    run_dir, _, _ = tiny_run
    code = main(
        ["cyclegan", "train", "--a", str(domains / "photo"), "--b", str(domains / "xray"), "--run-dir", str(run_dir)]
    )
    assert code == 2
    assert "run folder already exists" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad input
def test_corrupt_image_is_reported_by_name_and_skipped_and_synth_contact_sheet_ignored(domains, tmp_path):
    folder = tmp_path / "b"
    folder.mkdir()
    for png in sorted((domains / "xray").glob("xray_*.png"))[:2]:
        (folder / png.name).write_bytes(png.read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (folder / "contact_sheet.png").write_bytes((domains / "xray" / "contact_sheet.png").read_bytes())
    warnings = []
    images = load_domain(folder, 36, name="B", warn=warnings.append)
    assert len(images) == 2 and min(images[0].shape[:2]) == 36
    assert len(warnings) == 1 and "broken.png" in warnings[0] and "skipped" in warnings[0]


def test_empty_domain_folder_is_a_clear_error(domains, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no usable image"):
        load_domain(tmp_path / "empty", 36, name="A")
    run_dir = tmp_path / "run"
    code = main(
        ["cyclegan", "train", "--a", str(tmp_path / "empty"), "--b", str(domains / "xray"), "--run-dir", str(run_dir)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "empty" in err and "domain A has no usable image" in err
    assert not run_dir.exists()  # no half-made run folder left behind


# ----------------------------------------------------------------------------- translation
def test_translation_keeps_shapes_and_size_and_converts(tiny_run, domains, tmp_path):
    run_dir, _, _ = tiny_run
    out = tmp_path / "photo2xray"
    assert (
        main(
            [
                "cyclegan",
                "translate",
                "--run-dir",
                str(run_dir),
                "--labelme-dir",
                str(domains / "photo"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    sources = sorted((domains / "photo").glob("*.json"))
    assert sorted(p.name for p in out.glob("*.json")) == [p.name for p in sources]
    for source in sources:
        before, after = json.loads(source.read_text()), json.loads((out / source.name).read_text())
        assert after["shapes"] == before["shapes"]
        assert (after["imageHeight"], after["imageWidth"]) == (before["imageHeight"], before["imageWidth"]) == (50, 50)
        assert after["imagePath"] == f"{source.stem}.png" and after["imageData"] is None
        record = read_labelme(out / source.name, out)
        original = read_labelme(source, domains / "photo")
        assert record.image.shape == (50, 50, 3)
        assert not np.array_equal(record.image, original.image)
    report = convert(out, tmp_path / "voc", ConvertConfig(labels=str(out / "labels.txt"), workers=1), progress=False)
    assert report.failed == 0
    assert len(list((tmp_path / "voc" / "SegmentationClass").glob("*.png"))) == len(sources)


def test_translation_embeds_image_data_when_the_input_did(tiny_run, tmp_path):
    import base64

    from xray_seg.synthesis.cyclegan.translate import translate_labelme_dir

    run_dir, _, _ = tiny_run
    synthesize(
        tmp_path / "in",
        SynthConfig(size=36, num=2, seed=6, workers=1, style="photo", embed_image_data=True),
        progress=False,
    )
    (tmp_path / "in" / "bad.json").write_text("{ not json")
    report = translate_labelme_dir(run_dir, tmp_path / "in", tmp_path / "out", progress=False)
    assert len(report.translated) == 2 and report.exit_code == 1
    assert "bad.json" in report.summary()
    for path in report.translated:
        data = json.loads(path.read_text())
        assert base64.b64decode(data["imageData"]) == (tmp_path / "out" / data["imagePath"]).read_bytes()


# ----------------------------------------------------------------------------- synth --style photo
def test_synth_photo_is_valid_labelme_with_the_xray_geometry_and_converts(tmp_path):
    assert (
        main(
            [
                "synth",
                str(tmp_path / "photo"),
                "--style",
                "photo",
                "--size",
                "64",
                "--num",
                "4",
                "--seed",
                "2",
                "--threat-prob",
                "1",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    synthesize(tmp_path / "xray", SynthConfig(size=64, num=4, seed=2, threat_prob=1.0, workers=1), progress=False)
    for i in range(4):
        photo = json.loads((tmp_path / "photo" / f"photo_{i:05d}.json").read_text())
        xray = json.loads((tmp_path / "xray" / f"xray_{i:05d}.json").read_text())
        assert photo["shapes"] == xray["shapes"] and photo["shapes"]
        assert photo["imagePath"] == f"photo_{i:05d}.png"
        image = read_labelme(tmp_path / "photo" / f"photo_{i:05d}.json", tmp_path / "photo").image
        # a photo: opaque, coloured surface, not the near-white air of a scan
        assert image.shape == (64, 64, 3) and np.median(image) < 250
    report = convert(
        tmp_path / "photo",
        tmp_path / "voc",
        ConvertConfig(labels=str(tmp_path / "photo" / "labels.txt"), workers=1),
        progress=False,
    )
    assert report.failed == 0
