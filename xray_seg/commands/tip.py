"""``xray-seg tip``: write threat-image-projection composites to a new VOC folder."""

from __future__ import annotations

from pathlib import Path

NAME = "tip"
HELP = "project threats from labelled scans into bags and write the composites as a new VOC folder"
DESCRIPTION = """\
Threat image projection (TIP, see xray_seg/pipeline/tip.py): cut every labelled threat
out of LIBRARY_VOC (its --library-split), then project 1..--max-threats of them into each
bag with the Beer-Lambert rule (I_out = I_bag * T_threat), at a random pose, scale and
position inside the bag. Bags are the scans of a VOC folder (--bags VOC_DIR, its --split;
default LIBRARY_VOC itself) or a folder of unlabelled clean images (--bags IMAGE_DIR: all
background). The output is a new VOC folder (PNG images, palette masks, class_names.txt,
ImageSets/Segmentation/train.txt) written to a temporary folder and renamed into place,
so an interrupted run leaves nothing behind. Inputs are never modified; an existing
--out is refused unless --force. The same seed gives the same composites.

example:
  xray-seg tip data/demo/voc --bags data/clean_bags --out data/tip_voc --copies 2 --seed 0
"""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def add_arguments(parser) -> None:
    parser.add_argument("library", metavar="LIBRARY_VOC", help="VOC folder with labelled threats")
    parser.add_argument("--out", required=True, help="new VOC folder to write")
    parser.add_argument("--bags", default="", help="VOC folder or folder of clean images to project into (default LIBRARY_VOC)")
    parser.add_argument("--split", default="train", help="split of a VOC --bags folder (default train)")
    parser.add_argument("--library-split", default="train", help="split of LIBRARY_VOC to cut threats from (default train)")
    parser.add_argument("--copies", type=int, default=1, help="composites per bag (default 1)")
    parser.add_argument("--max-threats", type=int, default=2, help="threats per composite, 1..N uniform (default 2)")
    parser.add_argument("--scale", type=float, nargs=2, default=(0.8, 1.25), metavar=("LOW", "HIGH"), help="threat scale range")
    parser.add_argument("--air", choices=("white", "estimate"), default="white", help="air intensity of the library scans")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out (never an input)")


def _bags(source: Path, split: str):
    """``[(stem, image path, mask path or None)]`` of a VOC folder's split or an image folder."""
    from xray_seg.conversion.voc import VocLayout, read_split
    from xray_seg.core.errors import DatasetError

    layout = VocLayout(source)
    if layout.class_names_file.is_file():
        return [(stem, layout.image_path(stem), layout.mask_path(stem)) for stem in read_split(source, split)]
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if source.is_dir() else []
    if not images:
        raise DatasetError("no VOC folder and no images here", path=source, fix="give a VOC folder or a folder of .png/.jpg bags")
    return [(p.stem, p, None) for p in images]


def _check_paths(out: Path, inputs: list[Path], force: bool) -> None:
    from xray_seg.core.errors import ConfigError, OutputExistsError

    resolved = out.resolve()
    for source in inputs:
        source = source.resolve()
        if resolved == source or source in resolved.parents or resolved in source.parents:
            raise ConfigError("--out overlaps an input folder", path=out, fix="write the composites to a new folder outside the inputs")
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise OutputExistsError("output already exists", path=out, fix="choose another --out, or pass --force to replace it")


def run(args) -> int:
    import os
    import shutil
    import tempfile

    import numpy as np
    import tensorflow as tf
    from PIL import Image
    from tqdm import tqdm

    from xray_seg.conversion.voc import (
        VocLayout,
        load_label_png,
        read_class_names,
        save_label_png,
        write_class_names,
        write_split,
    )
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.fileio import atomic_path
    from xray_seg.pipeline.tip import (
        PackedLibrary,
        TipConfig,
        build_library,
        project_threats,
    )

    library_dir, out = Path(args.library), Path(args.out)
    bags_dir = Path(args.bags) if args.bags else library_dir
    if args.copies < 1 or args.max_threats < 1 or not 0 < args.scale[0] <= args.scale[1]:
        raise ConfigError("need --copies >= 1, --max-threats >= 1 and 0 < --scale LOW <= HIGH", fix="e.g. --copies 2 --max-threats 2 --scale 0.8 1.25")
    _check_paths(out, [library_dir, bags_dir], args.force)
    class_names = read_class_names(library_dir)
    bags = _bags(bags_dir, args.split)
    packed = PackedLibrary(build_library(library_dir, args.library_split, air=args.air))
    config = TipConfig(prob=1.0, max_threats=args.max_threats, scale_range=tuple(args.scale))
    project = tf.function(lambda image, mask, seed: project_threats(image, mask, seed, packed, config), reduce_retracing=True)

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        layout, stems = VocLayout(staging), []
        for number, (stem, image_path, mask_path) in enumerate(tqdm(bags, desc="tip", unit="bag")):
            with Image.open(image_path) as img:
                image = np.asarray(img.convert("RGB"))
            mask = load_label_png(mask_path) if mask_path is not None else np.zeros(image.shape[:2], np.uint8)
            for copy in range(args.copies):
                seed = tf.constant([args.seed, number * args.copies + copy], tf.int64)
                composite, labels = project(image, mask, seed)
                name = f"{stem}_tip{copy}"
                pixels = np.clip(np.round(composite.numpy()), 0, 255).astype(np.uint8)
                layout.images_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(layout.images_dir / f"{name}.png") as tmp:
                    Image.fromarray(pixels).save(tmp, format="PNG")
                save_label_png(layout.mask_path(name), labels.numpy())
                stems.append(name)
        write_class_names(staging, class_names)
        write_split(staging, "train", stems)
        os.chmod(staging, 0o777 & ~_umask())
        if out.exists():  # --force, checked above: replace only after the new folder is complete
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    print(f"wrote {len(stems)} composites ({packed.count} threats in the library) to {out}")
    return 0


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask
