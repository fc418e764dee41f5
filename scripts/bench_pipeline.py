"""Throughput of the tf.data input pipeline, in images per second.

Measures, on this machine, (1) decode only: read + decode PNG/JPEG image and mask, nothing
else, and (2) the training pipeline at the training size with full augmentation
(``AugmentConfig()`` defaults), batched and prefetched exactly as the trainer gets it. Each
measurement runs a warm-up pass, then several timed passes; the median is reported.

The input is a VOC folder (``--voc``), normally made with::

    xray-seg synth data/bench_labelme --num 64 --size 512
    xray-seg convert data/bench_labelme data/bench_voc --labels data/bench_labelme/labels.txt

or, without ``--voc``, a throw-away folder of random 512x512 PNG images and masks.

    python scripts/bench_pipeline.py --voc data/bench_voc --size 512 --batch 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_random_voc(root: Path, n: int, size: int) -> Path:
    """A VOC folder of ``n`` random ``size`` x ``size`` PNG images with blocky masks."""
    import numpy as np
    from PIL import Image

    from xray_seg.conversion.voc import save_label_png, write_class_names, write_split
    from xray_seg.core.layouts import VocLayout

    layout = VocLayout(root)
    layout.images_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    stems = []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        blocks = rng.integers(0, 6, (size // 32, size // 32), dtype=np.uint8)
        Image.fromarray(image).save(layout.images_dir / f"r{i:04d}.png")
        save_label_png(layout.mask_path(f"r{i:04d}"), np.kron(blocks, np.ones((32, 32), np.uint8)))
        stems.append(f"r{i:04d}")
    write_class_names(root, ["_background_", "gun", "knife", "wrench", "pliers", "scissors"])
    write_split(root, "train", stems)
    return root


def timed_passes(make_iterator, images_per_pass: int, passes: int) -> list[float]:
    """Images per second of each pass (the first, warm-up pass is not counted)."""
    rates = []
    for p in range(passes + 1):
        start = time.perf_counter()
        for _ in make_iterator():
            pass
        elapsed = time.perf_counter() - start
        if p > 0:
            rates.append(images_per_pass / elapsed)
    return rates


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voc", type=Path, help="VOC folder (default: random 512x512 PNGs in a temp folder)")
    parser.add_argument("--split", default="train")
    parser.add_argument("--size", type=int, default=512, help="training size (default 512)")
    parser.add_argument("--batch", type=int, default=4, help="batch size (default 4, paper 1)")
    parser.add_argument("--images", type=int, default=64, help="images per timed pass (default 64)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes after the warm-up (default 5)")
    parser.add_argument("--random-images", type=int, default=32, help="images in the random folder (default 32)")
    parser.add_argument("--cache", action="store_true", help="also time the training pipeline with cache=True")
    args = parser.parse_args(argv)

    import tensorflow as tf

    from xray_seg.pipeline.augment import AugmentConfig
    from xray_seg.pipeline.dataset import AUTOTUNE, make_train_dataset
    from xray_seg.pipeline.decoding import decode_mask, decode_rgb
    from xray_seg.pipeline.split_files import scan_split

    tmp = None
    voc = args.voc
    if voc is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench_voc_")
        voc = make_random_voc(Path(tmp.name) / "voc", args.random_images, 512)
    files = scan_split(voc, args.split)
    print(f"dataset: {voc} [{args.split}], {len(files)} images, e.g. {files.sizes[0][0]}x{files.sizes[0][1]}")
    print(f"machine: {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}")

    # decode only: read + decode image and mask, one epoch of the split per pass
    paths = tf.data.Dataset.from_tensor_slices((files.images, files.masks, files.mask_kinds))
    decode_ds = paths.map(
        lambda i, m, k: (decode_rgb(tf.io.read_file(i)), decode_mask(tf.io.read_file(m), k)),
        num_parallel_calls=AUTOTUNE,
    ).prefetch(AUTOTUNE)
    rates = timed_passes(lambda: iter(decode_ds), len(files), args.passes)
    print(
        f"decode only          : {statistics.median(rates):7.1f} images/s  (median of {args.passes}; passes {', '.join(f'{r:.1f}' for r in rates)})"
    )

    steps = max(1, args.images // args.batch)
    variants = [("train, full augment", False)] + ([("train, full augment, cache", True)] if args.cache else [])
    for name, cache in variants:
        ds = make_train_dataset(
            voc,
            args.split,
            image_size=(args.size, args.size),
            batch_size=args.batch,
            augment=AugmentConfig(),
            seed=0,
            cache=cache,
        )
        iterator = iter(ds)

        def one_pass(iterator=iterator):
            for _ in range(steps):
                yield next(iterator)

        rates = timed_passes(one_pass, steps * args.batch, args.passes)
        print(
            f"{name:21s}: {statistics.median(rates):7.1f} images/s  at {args.size}x{args.size}, batch {args.batch}"
            f"  (median of {args.passes}; passes {', '.join(f'{r:.1f}' for r in rates)})"
        )
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
