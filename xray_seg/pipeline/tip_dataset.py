"""Offline threat image projection: composites written to disk as a new VOC folder (``xray-seg tip``).

The projection itself is :mod:`xray_seg.pipeline.tip` (Beer-Lambert, ``I_out = I_bag *
T_threat``); this module lists the bags, checks the paths, and writes the composites
to a temporary folder that is renamed into place, so an interrupted run leaves nothing
behind and inputs are never touched (docs/architecture.md, data safety).

Output guard (:func:`xray_seg.core.fileio.prepare_output_dir`, as for every other command):
``--out`` may not overlap an input; an existing one is replaced only with ``--force`` and
only if xray-seg made it (it holds the ``.xray-seg-output`` marker, which the composites'
folder gets too); a user's folder or file is never deleted. The new folder is swapped in
only once complete (:func:`xray_seg.core.fileio.swap_into_place`).

Bags and library scans are read by the one image reader
(:func:`xray_seg.core.images.read_image_rgb`: regular files only, so a FIFO is refused, not
waited on; a corrupt file is one line naming it). 16-bit scans keep their high byte
(``v >> 8``), a linear scaling, so transmissions ``I / I_air`` and the Beer-Lambert product
stay right (reading them as 8-bit clipped every grey level above 255 to white).
"""

from __future__ import annotations

from pathlib import Path

from xray_seg.conversion.voc import (
    VocLayout,
    load_label_png,
    read_class_names,
    read_split,
    save_label_png,
    write_class_names,
    write_split,
)
from xray_seg.core.constants import VOC_IMAGE_SUFFIXES
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.fileio import atomic_path, current_umask, prepare_output_dir, swap_into_place, write_marker
from xray_seg.core.images import read_image_rgb
from xray_seg.pipeline.tip import PackedLibrary, TipConfig, build_library, check_mask_size, project_threats


def _bags(source: Path, split: str):
    """``[(stem, image path, mask path or None)]`` of a VOC folder's split or an image folder."""

    layout = VocLayout(source)
    if layout.class_names_file.is_file():
        return [(stem, layout.image_path(stem), layout.mask_path(stem)) for stem in read_split(source, split)]
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in VOC_IMAGE_SUFFIXES) if source.is_dir() else []
    if not images:
        raise DatasetError(
            "no VOC folder and no images here", path=source, fix="give a VOC folder or a folder of .png/.jpg bags"
        )
    return [(p.stem, p, None) for p in images]


def write_tip_dataset(
    library_dir,
    out,
    *,
    bags=None,
    split="train",
    library_split="train",
    copies=1,
    max_threats=2,
    scale=(0.8, 1.25),
    air="white",
    seed=0,
    force=False,
    progress=True,
) -> tuple[int, int]:
    """Project threats of ``library_dir`` into each bag and write a VOC folder at ``out``.

    Returns ``(composites written, threats in the library)``. ``bags`` is a VOC folder (its
    ``split``) or a folder of clean images (all background); default ``library_dir``.
    """
    import os
    import shutil
    import tempfile

    import tensorflow as tf

    library_dir, out = Path(library_dir), Path(out)
    bags_dir = Path(bags) if bags else library_dir
    if copies < 1 or max_threats < 1 or not 0 < scale[0] <= scale[1]:
        raise ConfigError(
            "need --copies >= 1, --max-threats >= 1 and 0 < --scale LOW <= HIGH",
            fix="e.g. --copies 2 --max-threats 2 --scale 0.8 1.25",
        )
    prepare_output_dir(out, force=force, inputs=[library_dir, bags_dir], owner="tip", dry_run=True)
    class_names = read_class_names(library_dir)
    bag_list = _bags(bags_dir, split)
    packed = PackedLibrary(build_library(library_dir, library_split, air=air))
    config = TipConfig(prob=1.0, max_threats=max_threats, scale_range=tuple(scale))
    project = tf.function(
        lambda image, mask, seed: project_threats(image, mask, seed, packed, config), reduce_retracing=True
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        stems = _write_composites(staging, bag_list, project, copies=copies, seed=seed, progress=progress)
        write_class_names(staging, class_names)
        write_split(staging, "train", stems)
        write_marker(staging, "tip")
        os.chmod(staging, 0o777 & ~current_umask())
        # checked again just before the swap: the folder may have changed during the run
        prepare_output_dir(out, force=force, inputs=[library_dir, bags_dir], owner="tip", dry_run=True)
        swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(stems), packed.count


def _write_composites(staging: Path, bag_list, project, *, copies: int, seed: int, progress: bool) -> list[str]:
    """Write ``copies`` composites of every bag into the VOC folder ``staging``; their stems."""
    import numpy as np
    import tensorflow as tf
    from PIL import Image
    from tqdm import tqdm

    layout, stems = VocLayout(staging), []
    for number, (stem, image_path, mask_path) in enumerate(
        tqdm(bag_list, desc="tip", unit="bag", disable=not progress)
    ):
        image = read_image_rgb(image_path)
        mask = load_label_png(mask_path) if mask_path is not None else np.zeros(image.shape[:2], np.uint8)
        check_mask_size(mask, image, mask_path)
        for copy in range(copies):
            element_seed = tf.constant([seed, number * copies + copy], tf.int64)
            composite, labels = project(image, mask, element_seed)
            name = f"{stem}_tip{copy}"
            pixels = np.clip(np.round(composite.numpy()), 0, 255).astype(np.uint8)
            layout.images_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(layout.images_dir / f"{name}.png") as tmp:
                Image.fromarray(pixels).save(tmp, format="PNG")
            save_label_png(layout.mask_path(name), labels.numpy())
            stems.append(name)
    return stems
