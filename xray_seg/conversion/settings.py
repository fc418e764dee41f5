"""The settings of one conversion (:class:`ConvertConfig`), checked and resolved as
``convert_config.yaml`` records them (:mod:`xray_seg.conversion.convert`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xray_seg.conversion.sources import SOURCES
from xray_seg.core.config import config_to_dict
from xray_seg.core.errors import ConfigError

IMAGE_FORMATS = ("png", "jpeg", "copy")
UNKNOWN_MODES = ("error", "skip", "background")
OTHERS_MODES = ("background", "ignore")
CONFIG_FILE = "convert_config.yaml"


@dataclass
class ConvertConfig:
    """Settings of one conversion (also written to ``convert_config.yaml``).

    Args:
        labels: the labels file (``__ignore__``, ``_background_``, then one class a line).
        image_format: ``png`` (lossless, default), ``jpeg`` (labelme2voc) or ``copy``.
        val_ratio: fraction of images in the val split (paper 1: 7:3 -> 0.3).
        seed: seed of the split.
        unknown: what to do with a label not in the labels file: ``error`` (stop before
            converting and list them all), ``skip`` the shape, or draw it as ``background``.
        workers: worker processes; 0 means one per CPU core.
        npy: also write ``SegmentationClassNpy/<stem>.npy`` (int32, -1 = ignore).
        vis: also write ``SegmentationClassVisualization/<stem>.jpg`` overlays.
        force: delete an existing output folder and start again.
        resume: keep an existing output folder and convert only missing outputs.
        recursive: also read JSON files in sub-folders of the input folder.
        source: ``labelme`` (a folder), ``coco`` (one instance JSON) or ``pixray`` (a folder).
        images: COCO/PIXray: the folder image file names are relative to (default: the
            JSON file's folder). Labelme: a second folder an ``imagePath`` may lead into,
            besides the input folder (the scans that ``predict --labelme`` pre-annotated).
        classes: keep only these classes (in this order) instead of reading ``labels``.
        others: with ``classes``, draw every other label as ``background`` or ``ignore``.
        objects: also write ``SegmentationObject/<stem>.png`` (instance ids).
        resplit: with ``resume``, redo the whole train/val split (by default every earlier
            assignment is kept and only new stems are split; :mod:`xray_seg.conversion.splits`).
        val_stems: stems that always go to val, whatever ``val_ratio`` says (``--val-list``),
            e.g. threat-free bags set aside to measure the false-alarm rate; the other stems
            are split by ``val_ratio`` and ``seed`` exactly as without them, so adding such a
            set never moves an image between train and val. On ``--resume`` a new list may add
            new stems to val; a listed stem that an earlier run put in train is refused (it
            would evaluate on training images).
    """

    labels: str = "labels.txt"
    image_format: str = "png"
    val_ratio: float = 0.3
    seed: int = 0
    unknown: str = "error"
    workers: int = 0
    npy: bool = False
    vis: bool = False
    force: bool = False
    resume: bool = False
    recursive: bool = False
    source: str = "labelme"
    images: str | None = None
    classes: list[str] | None = None
    others: str = "background"
    objects: bool = True
    resplit: bool = False
    val_stems: list[str] | None = None


def check_config(config: ConvertConfig) -> None:
    """ConfigError for a setting outside its choices or contradicting another."""
    if config.image_format not in IMAGE_FORMATS:
        raise ConfigError(f"image_format {config.image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    if config.unknown not in UNKNOWN_MODES:
        raise ConfigError(f"unknown={config.unknown!r} is not one of {', '.join(UNKNOWN_MODES)}")
    if not 0 <= config.val_ratio < 1:
        raise ConfigError(f"val_ratio={config.val_ratio} must be in [0, 1)", fix="e.g. --val-ratio 0.3 for 7:3")
    if config.resplit and not config.resume:
        raise ConfigError("--resplit only applies with --resume", fix="add --resume, or drop --resplit")
    if config.force and config.resume:
        raise ConfigError("--force and --resume contradict each other", fix="give one of them")
    if config.workers < 0:
        raise ConfigError(f"workers={config.workers} must be >= 0 (0 = all cores)")
    if config.source not in SOURCES:
        raise ConfigError(f"source={config.source!r} is not one of {', '.join(SOURCES)}")
    if config.others not in OTHERS_MODES:
        raise ConfigError(f"others={config.others!r} is not one of {', '.join(OTHERS_MODES)}")


def resolved_settings(config: ConvertConfig, labelme_dir: Path, class_names: list[str], workers: int) -> dict:
    """The settings as ``convert_config.yaml`` records them (paths resolved, the class names)."""
    settings = config_to_dict(config)
    settings["labels"] = None if config.classes else str(Path(config.labels).resolve())
    settings["workers"] = workers
    settings["labelme_dir"] = str(labelme_dir.resolve())
    if config.images:
        settings["images"] = str(Path(config.images).resolve())
    if config.classes:
        settings["classes"] = list(config.classes)
    settings["class_names"] = list(class_names)
    return settings


__all__ = [
    "CONFIG_FILE",
    "IMAGE_FORMATS",
    "OTHERS_MODES",
    "UNKNOWN_MODES",
    "ConvertConfig",
    "check_config",
    "resolved_settings",
]
