"""``xray-seg show-batch``: a PNG of augmented training samples with their masks overlaid."""

from __future__ import annotations

from pathlib import Path

NAME = "show-batch"
HELP = "write a PNG grid of augmented training samples with their masks overlaid"
DESCRIPTION = """\
Draw one batch from the training pipeline (the same augmentation the trainer uses) and
write it as a grid: each sample as the augmented image and the image with its mask
overlaid (VOC colours; ignore = 255 shows as beige), with a legend of the classes.
Use it to check by eye that masks stay aligned with their images.

example:
  xray-seg show-batch data/demo/voc --out grid.png --n 8 --seed 0 --size 256
"""

SAMPLES_PER_ROW = 4


def add_arguments(parser) -> None:
    parser.add_argument("voc_dir", metavar="VOC_DIR", help="VOC folder written by `xray-seg convert`")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--split", default="train", help="split to draw from (default train)")
    parser.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", type=int, default=256, help="training size in pixels, square (default 256)")
    parser.add_argument("--epoch", type=int, default=0, help="draw from this epoch of the stream (default 0)")
    parser.add_argument("--no-augment", action="store_true", help="only fit and pad, no augmentation")
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def run(args) -> int:
    import numpy as np

    from xray_seg.pipeline.augment import AugmentConfig
    from xray_seg.pipeline.dataset import make_train_dataset, split_size
    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.errors import ConfigError, OutputExistsError
    from xray_seg.core.viz import overlay, save_grid

    from xray_seg.core.fileio import refuse_dataset_file

    out = Path(args.out)
    refuse_dataset_file(out, args.voc_dir)  # --force must never overwrite a dataset file
    if out.exists() and not args.force:
        raise OutputExistsError("output already exists", path=out, fix="choose another --out or pass --force")
    if args.n < 1 or args.size < 8:
        raise ConfigError("--n must be >= 1 and --size >= 8", fix="e.g. --n 8 --size 256")
    n = min(args.n, split_size(args.voc_dir, args.split))
    ds = make_train_dataset(
        args.voc_dir,
        args.split,
        image_size=(args.size, args.size),
        batch_size=n,
        augment=None if args.no_augment else AugmentConfig(),
        seed=args.seed,
        start_epoch=args.epoch,
        repeat=False,
    )
    images, masks = next(iter(ds))
    images = np.clip(images.numpy() + 0.5, 0, 255).astype(np.uint8)
    masks = masks.numpy()
    cells = [[img, overlay(img, mask)] for img, mask in zip(images, masks)]
    rows = [sum(cells[i : i + SAMPLES_PER_ROW], []) for i in range(0, len(cells), SAMPLES_PER_ROW)]
    per_row = min(len(cells), SAMPLES_PER_ROW)
    save_grid(
        out,
        rows,
        col_titles=["image", "mask overlay"] * per_row,
        class_names=read_class_names(args.voc_dir),
        title=f"{args.voc_dir} [{args.split}] seed {args.seed} epoch {args.epoch}, {args.size}x{args.size}"
        + (", no augmentation" if args.no_augment else "")
        + "\nbeige = ignore (255): padding and rotated-in corners",
    )
    print(f"wrote {out} ({len(cells)} samples)")
    return 0
