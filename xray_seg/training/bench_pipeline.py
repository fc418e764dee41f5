"""Throughput of the tf.data input pipeline in images/s: ``xray-seg bench --suite pipeline``.

Measured on this machine, each pass timed after a warm-up pass, the median reported:

1. **decode only**: read + decode the image and mask of every image of the split;
2. **train, full augment**: the training pipeline at ``size`` with ``AugmentConfig()``
   defaults, batched and prefetched as the trainer gets it (``cache``: also with the
   in-memory cache);
3. with ``tip``: the demo preset's augmentation (``presets/demo_cpu.yaml``, cached) without and
   with threat image projection in every sample (``tip_prob=1``, 1..``max_threats`` threats),
   against the demo model's training step (CWF-DeepLabv3+ width 0.25, Adam, OHEM) on a fixed
   batch. The TIP pipeline must stay at least 3x ahead of training (exit status 1 if not).

The input is a VOC folder (``voc``), else ``num`` synthetic bags with ``tip`` or
``random_images`` random 512x512 PNG images with blocky masks without.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.voc import read_class_names, save_label_png, write_class_names, write_split
from xray_seg.core.config import load_config
from xray_seg.core.layouts import VocLayout
from xray_seg.evaluation.timing import cpu_line, time_calls
from xray_seg.models.registry import build_model
from xray_seg.pipeline.augment import AugmentConfig
from xray_seg.pipeline.dataset import AUTOTUNE, make_train_dataset
from xray_seg.pipeline.decoding import decode_mask, decode_rgb
from xray_seg.pipeline.split_files import scan_split
from xray_seg.synthesis.scene import SynthConfig, synthesize
from xray_seg.training.config import TrainConfig
from xray_seg.training.losses import OhemCrossEntropy

TIP_TARGET = 3.0


@dataclass
class PipelineSettings:
    voc: str | None = None
    split: str = "train"
    size: int = 512
    batch: int = 4
    images: int = 64  # images per timed pass of the training pipeline
    passes: int = 5
    random_images: int = 32
    cache: bool = False
    tip: bool = False
    max_threats: int = 2
    num: int = 24  # synthetic bags of the TIP measurement when no voc
    steps: int = 3  # timed training steps of the TIP measurement


def make_random_voc(root: Path, n: int, size: int) -> Path:
    """A VOC folder of ``n`` random ``size`` x ``size`` PNG images with blocky masks."""
    from PIL import Image  # lazy: only for the random folder

    layout = VocLayout(root)
    layout.images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    stems = [f"r{i:04d}" for i in range(n)]
    for stem in stems:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(layout.images_dir / f"{stem}.png")
        blocks = rng.integers(0, 6, (size // 32, size // 32), dtype=np.uint8)
        save_label_png(layout.mask_path(stem), np.kron(blocks, np.ones((32, 32), np.uint8)))
    write_class_names(root, ["_background_", "gun", "knife", "wrench", "pliers", "scissors"])
    write_split(root, "train", stems)
    return root


def synth_voc(root: Path, num: int, size: int) -> Path:
    """``num`` synthetic bags (``xray-seg synth`` defaults) converted to ``root/voc`` (8:2 split)."""
    synthesize(root / "labelme", SynthConfig(size=size, num=num, seed=0, workers=1), progress=False)
    labels = str(root / "labelme" / "labels.txt")
    convert(root / "labelme", root / "voc", ConvertConfig(labels=labels, workers=1, val_ratio=0.2), progress=False)
    return root / "voc"


def rate_line(name: str, images: int, timing, extra: str = "") -> str:
    """``name: N images/s (median of P; passes ...)``: each pass's images/s."""
    rates = [images / t for t in timing.seconds]
    return (
        f"{name:21s}: {images / timing.median_s:7.1f} images/s{extra}  "
        f"(median of {len(rates)}; passes {', '.join(f'{r:.1f}' for r in rates)})"
    )


def decode_only(voc, s: PipelineSettings) -> str:
    import tensorflow as tf  # lazy: TensorFlow

    files = scan_split(voc, s.split)
    paths = tf.data.Dataset.from_tensor_slices((files.images, files.masks, files.mask_kinds))
    ds = paths.map(
        lambda i, m, k: (decode_rgb(tf.io.read_file(i)), decode_mask(tf.io.read_file(m), k)),
        num_parallel_calls=AUTOTUNE,
    ).prefetch(AUTOTUNE)
    timing = time_calls(lambda i: [None for _ in ds], s.passes, 1)
    return rate_line("decode only", len(files), timing)


def train_pipeline(voc, s: PipelineSettings, augment, *, cache: bool, batches: int, warmup: int = 1):
    """Timing of ``batches`` batches of the training pipeline per pass, from one running iterator."""
    ds = make_train_dataset(
        voc, s.split, image_size=(s.size, s.size), batch_size=s.batch, augment=augment, seed=0, cache=cache
    )
    iterator = iter(ds)
    return time_calls(lambda i: [next(iterator) for _ in range(batches)], s.passes, warmup)


def train_step_rate(num_classes: int, s: PipelineSettings) -> float:
    """Images/s of the demo model's training step on a fixed batch (median of ``steps`` steps)."""
    import keras  # lazy: TensorFlow

    keras.utils.set_random_seed(0)
    model = build_model("cwf_deeplabv3plus", num_classes, (s.size, s.size, 3), width=0.25)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=OhemCrossEntropy(thresh=0.7, min_kept=32768))
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (s.batch, s.size, s.size, 3)).astype("float32")
    labels = rng.integers(0, num_classes, (s.batch, s.size, s.size)).astype("int32")
    return s.batch / time_calls(lambda i: model.train_on_batch(images, labels), s.steps, 2).median_s


def tip_lines(voc, s: PipelineSettings) -> tuple[list[str], int]:
    """The demo augmentation without and with TIP against the training step, and the 3x check."""
    demo = load_config(TrainConfig, "demo_cpu").data.augment
    tip = dataclasses.replace(demo, tip_prob=1.0, tip_max_threats=s.max_threats)
    batches = max(1, s.images // s.batch)
    images = batches * s.batch
    plain = images / train_pipeline(voc, s, demo, cache=True, batches=batches).median_s
    with_tip = images / train_pipeline(voc, s, tip, cache=True, batches=batches).median_s
    train = train_step_rate(len(read_class_names(voc)), s)
    ratio = with_tip / train
    return [
        f"pipeline without TIP: {plain:7.1f} images/s (demo augmentation, cached, {s.size}x{s.size}, batch {s.batch})",
        f"pipeline with TIP   : {with_tip:7.1f} images/s (every sample, 1..{s.max_threats} threats)",
        f"training (demo model): {train:6.1f} images/s",
        f"TIP pipeline / training = {ratio:.1f}x (need >= {TIP_TARGET:g}x): {'ok' if ratio >= TIP_TARGET else 'TOO SLOW'}",
    ], int(ratio < TIP_TARGET)


def measure_pipeline(voc, s: PipelineSettings) -> int:
    import tensorflow as tf  # lazy: TensorFlow

    files = scan_split(voc, s.split)
    print(f"dataset: {voc} [{s.split}], {len(files)} images, e.g. {files.sizes[0][0]}x{files.sizes[0][1]}")
    print(f"machine: {cpu_line()}; TensorFlow {tf.__version__}")
    print(decode_only(voc, s), flush=True)
    batches = max(1, s.images // s.batch)
    for name, cache in [("train, full augment", False)] + ([("train, full augment, cache", True)] * s.cache):
        timing = train_pipeline(voc, s, AugmentConfig(), cache=cache, batches=batches)
        print(rate_line(name, batches * s.batch, timing, f"  at {s.size}x{s.size}, batch {s.batch}"), flush=True)
    if not s.tip:
        return 0
    lines, status = tip_lines(voc, s)
    print("\n".join(lines))
    return status


def bench_pipeline(s: PipelineSettings) -> int:
    """Measure on ``s.voc``, or on a throw-away folder (module docstring); the exit status of the TIP check."""
    if s.voc:
        return measure_pipeline(Path(s.voc), s)
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        if s.tip:
            voc = synth_voc(Path(tmp), s.num, s.size)
        else:
            voc = make_random_voc(Path(tmp) / "voc", s.random_images, 512)
        return measure_pipeline(voc, s)
