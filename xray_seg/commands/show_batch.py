"""``xray-seg show-batch``: a PNG of augmented training samples with their masks overlaid."""

from __future__ import annotations

NAME = "show-batch"
HELP = "write a PNG grid of augmented training samples with their masks overlaid"
DESCRIPTION = """\
Draw one batch from the training pipeline (the same augmentation the trainer uses) and
write it as a grid: each sample as the augmented image and the image with its mask
overlaid (VOC colours; ignore = 255 shows as beige), with a legend of the classes.
Use it to check by eye that masks stay aligned with their images.

With --tip every sample also gets 1..--tip-max-threats threats projected by TIP
(Beer-Lambert, pipeline/tip.py), so the composites can be checked by eye.

example:
  xray-seg show-batch data/demo/voc --out grid.png --n 8 --seed 0 --size 256
  xray-seg show-batch data/demo/voc --out tip.png --tip --no-augment
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
    parser.add_argument(
        "--tip", action="store_true", help="threat image projection into every sample (pipeline/tip.py)"
    )
    parser.add_argument("--tip-library", default="", help="VOC folder to cut threats from with --tip (default VOC_DIR)")
    parser.add_argument(
        "--tip-max-threats", type=int, default=2, help="threats per sample with --tip, 1..N (default 2)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def _augment_config(args):
    """The AugmentConfig of the flags: default, none, or either with TIP in every sample."""
    from xray_seg.pipeline.augment import AugmentConfig

    if not args.tip:
        return None if args.no_augment else AugmentConfig()
    tip = {"tip_prob": 1.0, "tip_max_threats": args.tip_max_threats, "tip_library": args.tip_library}
    if not args.no_augment:
        return AugmentConfig(**tip)
    off = {
        "scale_range": (1.0, 1.0),
        "hflip": False,
        "vflip": False,
        "rotate": False,
        "sharpen_prob": 0.0,
        "brightness": 0.0,
        "contrast": 0.0,
        "gamma": (1.0, 1.0),
        "noise_std": 0.0,
    }
    return AugmentConfig(**off, **tip)  # TIP only: fit and pad like --no-augment


def run(args) -> int:
    import numpy as np

    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.fileio import prepare_output_file
    from xray_seg.core.viz import overlay, present_classes, save_grid
    from xray_seg.pipeline.dataset import make_train_dataset, split_size

    # --force never overwrites a dataset file, a folder or a non-regular file
    out = prepare_output_file(args.out, force=args.force, dataset=args.voc_dir, what="output file")
    if args.n < 1 or args.size < 8:
        raise ConfigError("--n must be >= 1 and --size >= 8", fix="e.g. --n 8 --size 256")
    n = min(args.n, split_size(args.voc_dir, args.split))
    ds = make_train_dataset(
        args.voc_dir,
        args.split,
        image_size=(args.size, args.size),
        batch_size=n,
        augment=_augment_config(args),
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
        legend=present_classes(*masks),
        title=f"{args.voc_dir} [{args.split}] seed {args.seed} epoch {args.epoch}, {args.size}x{args.size}"
        + (", no augmentation" if args.no_augment else "")
        + (f", TIP (1..{args.tip_max_threats} threats)" if args.tip else "")
        + "\nbeige = ignore (255): padding and rotated-in corners",
    )
    print(f"wrote {out} ({len(cells)} samples)")
    return 0
