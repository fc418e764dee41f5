"""``xray-seg show-batch``: a PNG of augmented training samples with their masks overlaid."""

from __future__ import annotations

from xray_seg.commands._arguments import add_overrides

NAME = "show-batch"
HELP = "write a PNG grid of augmented training samples with their masks overlaid"
DESCRIPTION = """\
Draw one batch from the training pipeline (the same augmentation the trainer uses) and
write it as a grid: each sample as the augmented image and the image with its mask
overlaid (VOC colours; ignore = 255 shows as beige), with a legend of the classes.
Use it to check by eye that masks stay aligned with their images.

With --tip every sample also gets 1..--tip-max-threats threats projected by TIP
(Beer-Lambert, pipeline/tip.py), so the composites can be checked by eye.

With --preset, --run or --set the batch is drawn as `xray-seg train` draws it from that config
(its augmentation, foreground crops, TIP, training crop size and seed; VOC_DIR and --split
replace the config's dataset); without them, the default augmentation at --size.

example:
  xray-seg show-batch data/demo/voc --out grid.png --n 8 --seed 0 --size 256
  xray-seg show-batch data/demo/voc --out tip.png --tip --no-augment
  xray-seg show-batch data/demo/voc --out preset.png --preset demo_cpu
  xray-seg show-batch data/demo/voc --out run.png --run runs/demo/run --set data.augment.rotate=false
"""

SAMPLES_PER_ROW = 4


def add_arguments(parser) -> None:
    parser.add_argument("voc_dir", metavar="VOC_DIR", help="VOC folder written by `xray-seg convert`")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--split", default="train", help="split to draw from (default train)")
    parser.add_argument("--n", type=int, default=8, help="number of samples (default 8)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's, else 0)")
    parser.add_argument(
        "--size", type=int, help="training size in pixels, square (default: the config's crop, else 256)"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--preset", help="draw as `xray-seg train --preset NAME` would (a bundled preset or YAML file)")
    source.add_argument("--run", help="draw as the run folder's config.yaml says (an earlier `xray-seg train`)")
    add_overrides(parser, "override a setting of the preset or run (repeatable), e.g. --set data.augment.rotate=false")
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


def _train_config(args):
    """The TrainConfig of --preset / --run / --set, on VOC_DIR and --split; None without them."""
    if not (args.preset or args.run or args.overrides):
        return None
    import dataclasses

    from xray_seg.core.config import load_config, override_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.trainer import resume_config

    if args.run:
        cfg = override_config(resume_config(args.run), args.overrides)
    else:
        cfg = load_config(TrainConfig, args.preset, args.overrides)
    cfg.data.voc_dir, cfg.data.train_split, cfg.data.cache = str(args.voc_dir), args.split, False
    if args.size is not None:
        cfg.data.image_size, cfg.data.crop_size = [args.size, args.size], []
    if args.seed is not None:
        cfg.seed = args.seed
    if args.no_augment and not args.tip:
        cfg.data.augment = dataclasses.replace(cfg.data.augment, enabled=False)
    elif args.tip or args.no_augment:
        cfg.data.augment = _augment_config(args)
    return cfg


def _draw(args, n: int):
    """``(images, masks, size, seed, what)``: one batch of ``n``, from the config or from the flags."""
    from xray_seg.pipeline.dataset import make_train_dataset
    from xray_seg.training.trainer import make_training_dataset, training_crop

    cfg = _train_config(args)
    if cfg is not None:
        ds = make_training_dataset(cfg, n, start_epoch=args.epoch)
        source = f", preset {args.preset}" if args.preset else f", run {args.run}" if args.run else ", default config"
        what = source + ("" if cfg.data.augment.enabled else ", no augmentation") + _config_notes(cfg)
        size, seed = training_crop(cfg), cfg.seed
    else:
        size, seed = (args.size or 256, args.size or 256), 0 if args.seed is None else args.seed
        ds = make_train_dataset(
            args.voc_dir,
            args.split,
            image_size=size,
            batch_size=n,
            augment=_augment_config(args),
            seed=seed,
            start_epoch=args.epoch,
            repeat=False,
        )
        what = (", no augmentation" if args.no_augment else "") + (
            f", TIP (1..{args.tip_max_threats} threats)" if args.tip else ""
        )
    images, masks = next(iter(ds))
    return images, masks, size, seed, what


def _config_notes(cfg) -> str:
    aug = cfg.data.augment
    notes = [f"foreground crops {aug.foreground_crop_prob:g}"] if aug.foreground_crop_prob else []
    notes += [f"TIP {aug.tip_prob:g} (1..{aug.tip_max_threats} threats)"] if aug.tip_prob else []
    return "".join(", " + note for note in notes)


def run(args) -> int:
    import numpy as np

    from xray_seg.conversion.voc import read_class_names
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.fileio import prepare_output_file
    from xray_seg.core.viz import overlay, present_classes, save_grid
    from xray_seg.pipeline.dataset import split_size

    # --force never overwrites a dataset file, a folder or a non-regular file
    out = prepare_output_file(args.out, force=args.force, dataset=args.voc_dir, what="output file")
    if args.n < 1 or (args.size is not None and args.size < 8):
        raise ConfigError("--n must be >= 1 and --size >= 8", fix="e.g. --n 8 --size 256")
    n = min(args.n, split_size(args.voc_dir, args.split))
    images, masks, size, seed, what = _draw(args, n)
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
        title=f"{args.voc_dir} [{args.split}] seed {seed} epoch {args.epoch}, {size[0]}x{size[1]}"
        + what
        + "\nbeige = ignore (255): padding and rotated-in corners",
    )
    print(f"wrote {out} ({len(cells)} samples, {size[0]}x{size[1]}, seed {seed}{what})")
    return 0
