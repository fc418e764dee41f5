"""Convert annotations into the VOC layout (``xray-seg convert``), like ``labelme2voc.py``.

The input is a Labelme folder (default), a COCO instance JSON (``source="coco"``, PIDray)
or a folder of PIXray JSON files (``source="pixray"``); a reader per source
(:mod:`xray_seg.conversion.records`) turns each annotated image into the same record, and
everything below applies to all three alike.

The output is the layout of :mod:`xray_seg.conversion.voc` (what labelme's
``examples/semantic_segmentation/labelme2voc.py`` writes), plus ``convert_config.yaml``
(the resolved settings) and ``convert_report.txt`` (the summary), and
``SegmentationObject/`` (instance ids, :mod:`xray_seg.conversion.instances`) unless
``objects=False``. Masks and ``.npy``
arrays are identical to labelme2voc's (a conformance test checks this on labelme's own
example); reading and rasterising are in :mod:`xray_seg.conversion.labelme`.

How a run goes
    1. Read the labels file: an optional ``__ignore__`` line, then ``_background_``
       (index 0), then one class a line (1..K-1). ``__ignore__`` is always -1 in the
       ``.npy`` and 255 in the PNG. ``class_names.txt`` lists the classes without it.
       With ``classes`` (``--classes gun,knife``) no labels file is read: the classes are
       ``_background_`` then those names (matched to the source's labels ignoring case,
       so ``gun`` keeps PIDray's ``Gun``), and every other label is drawn as background
       (``others="background"``) or ignore (``others="ignore"``), without a warning.
    2. List ``*.json`` in the input folder (``recursive=True``: also in sub-folders).
       None is a whole-run error (exit code 2).
    3. Scan every JSON (in parallel) for its labels and image reference. With
       ``unknown="error"`` (default) any label missing from the labels file stops the run
       before anything is written, listing every unknown label and the files using it.
       ``"skip"`` drops such shapes and ``"background"`` draws them as 0, each with a
       warning naming the file.
    4. Duplicates fail every file concerned (the run goes on with the rest):
       two JSON files whose stems are equal ignoring case (``a/x.json`` and ``b/x.json``
       in a recursive run, or ``x.json``/``X.json``) would write the same outputs, and
       two JSON files that annotate the same image file would put one picture in both
       train and val.
    5. Convert each file in a worker process: read and validate, rasterise, write the
       image, the palette PNG and optionally the ``.npy`` and the visualisation, each
       atomically (temporary file, then rename). A bad file fails alone with a message
       naming it; the others go on.
    6. Write the seeded split of the converted stems, the subsets and the report. The
       exit code is 0, or 1 if any file failed.

Subsets
    Labelme's image-level ``flags`` (``{"hidden": true, "small": false, ...}``: what an
    annotator ticks in Labelme's Flags panel; ``xray-seg synth`` writes ``hidden``,
    ``small`` and ``clean``) become ``subsets.json`` in the output: for every flag name any
    converted file declares, the sorted stems whose flag is true (an empty list when it is
    false everywhere). Any flag name works, not only synth's; one JSON file rather than a
    list per flag in ``ImageSets/Segmentation/``, because flag names are free text (a
    flag may be called ``train`` or hold a slash) and one file is one atomic write. It is
    rebuilt from the scan of every input on each run, ``--resume`` included, so an edited
    flag shows up there; inputs without flags (COCO, PIXray, older Labelme) write none.
    ``xray-seg evaluate --subset NAME`` scores the intersection of a split and a subset.

Image formats (``image_format``)
    * ``png`` (default): lossless PNG of the decoded 8-bit RGB image, the exact pixels
      the model trains on. X-ray images carry fine wires and edges that JPEG blurs.
    * ``jpeg``: what labelme2voc writes (Pillow's default quality 75). Lossy.
    * ``copy``: the original bytes (also lossless, and keeps 16-bit data), when they are
      a PNG or JPEG the pipeline decodes to the same pixels; otherwise (alpha, EXIF
      rotation, other formats) a PNG is written and a warning says why.

Safety
    An existing output folder is refused unless ``force`` (delete and start again) or
    ``resume`` (keep it; convert only stems with any output missing; the settings that
    shape the outputs must match the earlier run). Inputs are only ever opened for
    reading. An interrupted run leaves no partial or temporary files (a temporary file is
    renamed into place only when complete, and leftovers of a killed worker are swept).

Split
    The stems of all complete outputs are sorted and shuffled with ``numpy``'s
    ``default_rng(seed)``; the first ``round(n * val_ratio)`` go to val (at least one
    each to train and val when there are two or more stems and ``0 < val_ratio < 1``).
    Paper 1 splits 7:3, hence ``val_ratio=0.3``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from xray_seg.conversion.instances import shapes_to_instances
from xray_seg.conversion.labelme import (
    BACKGROUND_NAME,
    IGNORE_NAME,
    shapes_to_label,
)
from xray_seg.conversion.records import SOURCES, Item, Reader, Scan, make_reader
from xray_seg.conversion.resume import fingerprint, read_fingerprints, resumed_split, write_fingerprints
from xray_seg.conversion.voc import save_label_png, write_class_names, write_split
from xray_seg.core.config import config_to_dict
from xray_seg.core.constants import IGNORE_LABEL, VOC_IMAGE_SUFFIXES
from xray_seg.core.errors import ConfigError, DatasetError, OutputExistsError, XraySegError
from xray_seg.core.file_names import bad_stem_reason
from xray_seg.core.fileio import atomic_path, prepare_output_dir, read_lines, write_text_atomic
from xray_seg.core.layouts import VocLayout
from xray_seg.core.processes import start_method
from xray_seg.core.viz import overlay

IMAGE_FORMATS = ("png", "jpeg", "copy")
UNKNOWN_MODES = ("error", "skip", "background")
CONFIG_FILE = "convert_config.yaml"
REPORT_FILE = "convert_report.txt"
# Settings that change what the outputs contain: a resumed run must use the same ones.
_RESUME_KEYS = ("image_format", "unknown", "class_names", "source", "others", "objects")
# What an earlier run that predates a key used (so resuming it compares equal).
_RESUME_DEFAULTS = {"source": "labelme", "others": "background", "objects": False}
OTHERS_MODES = ("background", "ignore")


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
            JSON file's folder).
        classes: keep only these classes (in this order) instead of reading ``labels``.
        others: with ``classes``, draw every other label as ``background`` or ``ignore``.
        objects: also write ``SegmentationObject/<stem>.png`` (instance ids).
        resplit: with ``resume``, redo the whole train/val split (by default every earlier
            assignment is kept and only new stems are split; :mod:`xray_seg.conversion.resume`).
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


@dataclass(frozen=True)
class FileFailure:
    """A file that was not converted, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileWarning:
    """Something about a converted file the user should know (e.g. clipped points)."""

    path: str
    message: str


@dataclass
class ConvertReport:
    """What a conversion did.

    Args:
        voc_dir: the output folder.
        total: items found (JSON files; for COCO, entries of ``images``).
        converted: files converted in this run.
        skipped: files whose outputs were already complete (``resume``).
        failures: one :class:`FileFailure` per file not converted.
        warnings: :class:`FileWarning` s of converted files.
        train, val: stems in each split.
        seconds: wall time of the conversion.
        workers: worker processes used.
    """

    voc_dir: str
    total: int = 0
    converted: int = 0
    skipped: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    warnings: list[FileWarning] = field(default_factory=list)
    train: int = 0
    val: int = 0
    seconds: float = 0.0
    workers: int = 1
    subsets: dict = field(default_factory=dict)  # flag name -> converted stems with it set

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def exit_code(self) -> int:
        """0 if every file converted (or was already done), 1 if any failed."""
        return 1 if self.failures else 0

    def summary(self, max_lines: int | None = 50) -> str:
        """Counts, then every failure with its reason, then the warnings.

        ``max_lines`` caps each list (None: no cap); the report file has them all.
        """

        def capped(items: list[str]) -> list[str]:
            if max_lines is None or len(items) <= max_lines:
                return items
            return items[:max_lines] + [f"  ... and {len(items) - max_lines} more (see {REPORT_FILE})"]

        lines = [
            f"converted {self.converted}, failed {self.failed}"
            + (f", already done {self.skipped}" if self.skipped else "")
            + f" of {self.total} file(s) into {self.voc_dir}"
            + f" (train {self.train}, val {self.val}; {self.seconds:.1f} s, {self.workers} worker(s))"
        ]
        if self.subsets:
            lines.append("subsets (image flags): " + ", ".join(f"{k} {v}" for k, v in self.subsets.items()))
        if self.failures:
            lines.append(f"failed ({self.failed}):")
            lines += capped([f"  {f.path}: {f.reason}" for f in self.failures])
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += capped([f"  {w.path}: {w.message}" for w in self.warnings])
        return "\n".join(lines)


# ----------------------------------------------------------------------- labels


def read_labels(path: str | Path) -> tuple[list[str], dict[str, int]]:
    """Read a labels file; return ``(class_names, label_to_index)``.

    ``class_names`` starts with ``_background_`` (index 0); ``label_to_index`` also maps
    ``__ignore__`` to -1.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            "labels file not found", path=path, fix="pass --labels with __ignore__, _background_ and one class a line"
        )
    names = read_lines(path, encoding="utf-8-sig")
    if names and names[0] == IGNORE_NAME:
        names = names[1:]
    if not names or names[0] != BACKGROUND_NAME:
        raise ConfigError(
            f"the first class must be {BACKGROUND_NAME} (after an optional {IGNORE_NAME} line)",
            path=path,
            fix=f"start the file with {IGNORE_NAME} and {BACKGROUND_NAME}, as labelme2voc expects",
        )
    seen = set()
    for name in names:
        if name == IGNORE_NAME:
            raise ConfigError(
                f"{IGNORE_NAME} may only be the first line (it is not a class)",
                path=path,
                fix=f"move {IGNORE_NAME} to line 1, before {BACKGROUND_NAME}",
            )
        if name in seen:
            raise ConfigError(f"label {name!r} appears twice", path=path, fix="list every class once")
        seen.add(name)
    if len(names) > 255:
        raise ConfigError(
            f"{len(names)} classes; a VOC PNG holds at most 255 (0..254)", path=path, fix="use fewer classes"
        )
    label_to_index = {IGNORE_NAME: -1, **{name: i for i, name in enumerate(names)}}
    return names, label_to_index


def class_subset(classes: Iterable[str]) -> tuple[list[str], dict[str, int]]:
    """``(class_names, label_to_index)`` for ``--classes`` (no labels file)."""
    names = [BACKGROUND_NAME]
    for raw in classes:
        name = raw.strip()
        if not name or name in (IGNORE_NAME, BACKGROUND_NAME) or name.casefold() in {n.casefold() for n in names}:
            raise ConfigError(
                f"--classes: {raw!r} is empty, reserved or given twice",
                fix="list each class once, e.g. --classes gun,knife",
            )
        names.append(name)
    if len(names) < 2 or len(names) > 255:
        raise ConfigError(f"--classes gives {len(names) - 1} classes; between 1 and 254 are possible")
    return names, {IGNORE_NAME: -1, **{name: i for i, name in enumerate(names)}}


# ------------------------------------------------------------------ per-file job


@dataclass(frozen=True)
class _Job:
    item: Item
    reader: Reader
    voc_dir: Path
    label_to_index: Mapping[str, int]
    unknown: str
    image_format: str
    npy: bool
    vis: bool
    others: str | None = None  # with --classes: what every other label becomes
    objects: bool = False


@dataclass(frozen=True)
class _Result:
    json_path: str
    stem: str
    ok: bool
    reason: str = ""
    warnings: tuple[str, ...] = ()


def _save_image(path: Path, rgb: np.ndarray, fmt: str) -> None:
    """Write an RGB image as JPEG (Pillow's default quality 75, as labelme2voc) or PNG.

    PNG goes through OpenCV's encoder at its default (fast) compression: on 512 x 512
    X-ray images it is about 6x faster than Pillow's default level 6 for files about 9 %
    larger, and the conversion is dominated by this encode.
    """
    if fmt == "JPEG":
        from PIL import Image

        with atomic_path(path) as tmp:
            Image.fromarray(rgb).save(tmp, format="JPEG")
        return
    import cv2

    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"OpenCV could not encode {path.name} as PNG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())


def _write_npy(path: Path, label: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.save(tmp, label.astype(np.int32))


def _resolve_labels(job: _Job, shapes, warnings: list[str]):
    """``(shapes, label -> index)`` after ``--classes``/``--others`` or ``--unknown`` dealt with
    labels the labels file does not list (warnings appended); DatasetError for ``error``."""
    unknown = sorted({s.label for s in shapes} - set(job.label_to_index))
    mapping = job.label_to_index
    if unknown and job.others is not None:  # --classes: matched ignoring case, the rest are "others"
        folded = {name.casefold(): i for name, i in job.label_to_index.items() if i > 0}
        other = 0 if job.others == "background" else -1
        mapping = {**mapping, **{u: folded.get(u.strip().casefold(), other) for u in unknown}}
    elif unknown:
        listed = ", ".join(repr(u) for u in unknown)
        if job.unknown == "skip":
            shapes = [s for s in shapes if s.label in mapping]
            warnings.append(f"skipped the shapes with unknown label(s) {listed}")
        elif job.unknown == "background":
            mapping = {**mapping, **{u: 0 for u in unknown}}
            warnings.append(f"drew the shapes with unknown label(s) {listed} as background")
        else:
            raise DatasetError(f"unknown label(s) {listed}", path=job.item.key, fix="add them to the labels file")
    return shapes, mapping


def _write_image(layout: VocLayout, stem: str, record, image_format: str, warnings: list[str]) -> None:
    """``JPEGImages/<stem>``: a lossless PNG, labelme2voc's JPEG, or the original bytes (``copy``)."""
    if image_format == "copy":
        why_not = record.copyable
        if why_not is None:
            suffix = ".png" if record.image_format == "PNG" else ".jpg"
            with atomic_path(layout.images_dir / f"{stem}{suffix}") as tmp:
                tmp.write_bytes(record.image_bytes)
        else:
            warnings.append(f"image not copied ({why_not}); wrote a lossless PNG instead")
            _save_image(layout.images_dir / f"{stem}.png", record.image, "PNG")
    elif image_format == "jpeg":
        _save_image(layout.images_dir / f"{stem}.jpg", record.image, "JPEG")
    else:
        _save_image(layout.images_dir / f"{stem}.png", record.image, "PNG")


def _convert_one(job: _Job) -> _Result:
    """Convert one item (a JSON file, a COCO image); never raises for a bad one (returns the reason)."""
    from PIL import Image

    warnings: list[str] = []
    key, stem = job.item.key, job.item.stem
    try:
        record = job.reader.read(job.item)
        warnings += record.warnings
        shapes, mapping = _resolve_labels(job, record.shapes, warnings)
        label = shapes_to_label(shapes, record.image.shape, mapping)
        instances = None
        if job.objects:
            try:
                instances = shapes_to_instances(shapes, record.image.shape, mapping)
            except ValueError as exc:
                raise DatasetError(str(exc), path=key, fix="convert with --no-object, or split the image") from None

        layout = VocLayout(job.voc_dir)
        _write_image(layout, stem, record, job.image_format, warnings)
        if job.npy:
            _write_npy(layout.npy_dir / f"{stem}.npy", label)
        if job.vis:
            mask = np.where(label < 0, IGNORE_LABEL, label).astype(np.uint8)
            with atomic_path(layout.vis_dir / f"{stem}.jpg") as tmp:
                Image.fromarray(overlay(record.image, mask)).save(tmp, format="JPEG", quality=90)
        if instances is not None:
            save_label_png(layout.object_path(stem), instances)
        # The class PNG is written last: its presence marks a finished stem.
        save_label_png(layout.mask_path(stem), label)
    except XraySegError as exc:
        reason = exc.problem if exc.path == key else exc.message
        if exc.fix and exc.path == key:
            reason = f"{reason.rstrip('.')}. Fix: {exc.fix}"
        return _Result(key, stem, False, reason, tuple(warnings))
    except Exception as exc:  # one bad file must not stop the run; say what happened
        return _Result(key, stem, False, f"{type(exc).__name__}: {exc}", tuple(warnings))
    return _Result(key, stem, True, "", tuple(warnings))


def _worker_init() -> None:
    # The parent handles Ctrl-C: it cancels the queued files; running ones finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# --------------------------------------------------------------------- the run


def resolve_workers(workers: int) -> int:
    """``workers`` or, for 0, the CPU cores this process may use."""
    if workers and workers > 0:
        return int(workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def list_labelme_files(labelme_dir: str | Path, recursive: bool = False) -> list[Path]:
    """The ``*.json`` files of the input folder, sorted (DatasetError if none)."""
    root = Path(labelme_dir)
    if not root.is_dir():
        raise DatasetError(
            "input folder not found", path=root, fix="point at the folder holding the Labelme .json files"
        )
    pattern = "**/*.json" if recursive else "*.json"
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise DatasetError(
            "no Labelme .json files found" + ("" if recursive else " (sub-folders not searched)"),
            path=root,
            fix="point at the folder holding the .json files" + ("" if recursive else ", or pass --recursive"),
        )
    return files


def split_stems(stems: Iterable[str], val_ratio: float, seed: int) -> tuple[list[str], list[str]]:
    """A seeded train/val split of ``stems`` (see the module docstring); both sorted."""
    stems = sorted(stems)
    n = len(stems)
    n_val = int(round(n * val_ratio))
    if n >= 2 and 0 < val_ratio < 1:
        n_val = min(max(n_val, 1), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    val = sorted(stems[i] for i in order[:n_val])
    val_set = set(val)
    return [s for s in stems if s not in val_set], val


def _check_config(config: ConvertConfig) -> None:
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


def _overlap_rule(inputs: list[Path], labels: Path | None, config: ConvertConfig) -> dict:
    """The inputs the output may not be, contain or lie inside, whatever ``--force`` says
    (:func:`xray_seg.core.fileio.refuse_overlap`). A COCO images folder is read only by the
    file names in the JSON, so the output may sit inside it (it may still not contain it)."""
    nested_ok = [p for p in inputs if p.is_dir()] if config.source == "coco" else []
    return {"inputs": [*inputs, *([labels] if labels is not None else [])], "may_lie_inside": nested_ok}


def _check_paths(inputs: list[Path], voc_dir: Path, labels: Path | None, config: ConvertConfig) -> None:
    """Refuse an output that overlaps an input (:func:`_overlap_rule`) before any work."""
    from xray_seg.core.fileio import refuse_overlap

    rule = _overlap_rule(inputs, labels, config)
    refuse_overlap(
        voc_dir, [p for p in rule["inputs"] if p not in rule["may_lie_inside"]], may_lie_inside=rule["may_lie_inside"]
    )


def _check_declared_classes(reader: Reader, config: ConvertConfig) -> None:
    """``--classes`` names a source that declares its categories (COCO) must know; catches typos."""
    declared = reader.declared_labels()
    if not config.classes or declared is None:
        return
    folded = {d.strip().casefold() for d in declared}
    missing = [c for c in config.classes if c.strip().casefold() not in folded]
    if missing:
        raise ConfigError(
            f"--classes {', '.join(missing)} not among the categories of the input ({', '.join(sorted(declared))})",
            path=getattr(reader, "json_path", reader.root),
            fix="spell the classes as the categories are named",
        )


def _unknown_label_error(scans: list[Scan], known: set[str], labels_file: Path) -> DatasetError | None:
    users: dict[str, list[str]] = defaultdict(list)
    for scan in scans:
        for label in sorted(set(scan.labels) - known):
            users[label].append(scan.key)
    if not users:
        return None
    parts = []
    for label in sorted(users):
        files = users[label]
        shown = ", ".join(files[:10]) + (f" and {len(files) - 10} more" if len(files) > 10 else "")
        parts.append(f"{label!r} in {shown}")
    return DatasetError(
        f"{len(users)} unknown label(s), nothing converted: " + "; ".join(parts),
        path=labels_file,
        fix="add them to the labels file, or pass --unknown skip (drop those shapes) or --unknown background",
    )


def _duplicates(items: list[Item], scans: list[Scan]) -> dict[str, str]:
    """Failure reason per item key for duplicate stems and shared images."""
    reasons: dict[str, str] = {}
    for f in items:
        bad = bad_stem_reason(f.stem)
        if bad:
            reasons[f.key] = f"{bad}. Fix: rename the file (and its image)"
    by_stem: dict[str, list[Item]] = defaultdict(list)
    for f in items:
        by_stem[f.stem.lower()].append(f)
    for group in by_stem.values():
        if len(group) > 1:
            for f in group:
                others = ", ".join(g.key for g in group if g is not f)
                reasons[f.key] = (
                    f"duplicate stem {f.stem!r}: {others} would write the same outputs "
                    "(stems are compared ignoring case). Fix: rename one of them"
                )
    by_image: dict[str, list[str]] = defaultdict(list)
    for scan in scans:
        if scan.image is not None and scan.error is None:
            by_image[scan.image].append(scan.key)
    for image, group in by_image.items():
        if len(group) > 1:
            for f in group:
                others = ", ".join(g for g in group if g != f)
                reasons.setdefault(
                    f,
                    f"annotates the same image {image} as {others}; one picture would count twice "
                    "(and could land in both train and val). Fix: keep one annotation",
                )
    return reasons


def _outputs_complete(layout: VocLayout, stem: str, config: ConvertConfig) -> bool:
    if not layout.mask_path(stem).is_file():
        return False
    if not any((layout.images_dir / f"{stem}{s}").is_file() for s in VOC_IMAGE_SUFFIXES):
        return False
    if config.npy and not (layout.npy_dir / f"{stem}.npy").is_file():
        return False
    if config.vis and not (layout.vis_dir / f"{stem}.jpg").is_file():
        return False
    if config.objects and not layout.object_path(stem).is_file():
        return False
    return True


def sweep_temp_files(voc_dir: str | Path) -> int:
    """Delete temporary files left by an interrupted write; return the count.

    Only names of :func:`xray_seg.core.fileio.atomic_path`'s exact form
    (``.<name>.<random>.tmp<suffixes>``) are removed, never a converted stem that starts
    with a dot, such as ``.tmpscan.png``.
    """
    from xray_seg.core.fileio import sweep_temp_files as sweep

    return sweep(voc_dir)


def _resolved_settings(config: ConvertConfig, labelme_dir: Path, class_names: list[str], workers: int) -> dict:
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


def _check_resume(voc_dir: Path, settings: dict) -> None:
    path = voc_dir / CONFIG_FILE
    if not path.is_file():
        raise OutputExistsError(
            f"--resume needs a folder written by `xray-seg convert` ({CONFIG_FILE} is missing)",
            path=voc_dir,
            fix="choose another output, or pass --force to replace it",
        )
    try:
        before = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        before = {}
    changed = [k for k in _RESUME_KEYS if before.get(k, _RESUME_DEFAULTS.get(k)) != settings.get(k)]
    split_changed = [k for k in ("val_ratio", "seed") if k in before and before.get(k) != settings.get(k)]
    if split_changed and not settings.get("resplit"):
        raise ConfigError(
            f"--resume with a different split ({', '.join(f'{k} {before[k]} -> {settings[k]}' for k in split_changed)}); "
            "the earlier train/val assignment is kept on --resume",
            path=path,
            fix="resume with the same --val-ratio and --seed, or pass --resplit to redo the whole split",
        )
    if changed:
        raise ConfigError(
            f"--resume with different settings ({', '.join(changed)}) than the earlier run",
            path=path,
            fix="resume with the same settings, or pass --force to start again",
        )


def _map(pool, fn, items: list, desc: str, progress: bool | None) -> Iterator:
    """Results of ``fn`` over ``items`` (in completion order with a pool), with a tqdm bar."""
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    from tqdm import tqdm

    show = sys.stderr.isatty() if progress is None else progress
    # No tqdm object at all when hidden: even a disabled one starts a monitor thread,
    # which would make later conversions in this process avoid the fast fork start.
    bar = tqdm(total=len(items), desc=desc, unit="file", file=sys.stderr) if show else None
    try:
        if pool is None:
            for item in items:
                yield fn(item)
                if bar is not None:
                    bar.update()
            return
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
                if bar is not None:
                    bar.update()
        except BrokenProcessPool as exc:
            raise XraySegError(
                f"the worker processes stopped unexpectedly ({exc})",
                fix="run again with --workers 1 (in a script, call convert() under `if __name__ == '__main__':`)",
            ) from None
    finally:
        if bar is not None:
            bar.close()


def _check_run(labelme_dir: Path, voc_dir: Path, config: ConvertConfig, progress):
    """Everything checked before any work, so a bad run fails before writing: the settings,
    the labels, the input against the output, the items, and the output (refused unless
    ``--force``, or ``--resume`` with the same settings). Returns ``(labels_file,
    class_names, label_to_index, reader, items, workers, settings)``."""
    _check_config(config)
    labels_file = None if config.classes else Path(config.labels)
    class_names, label_to_index = class_subset(config.classes) if config.classes else read_labels(labels_file)
    reader = make_reader(config.source, labelme_dir, images=config.images, recursive=config.recursive)
    _check_paths(reader.input_paths, voc_dir, labels_file, config)
    files = reader.items(progress=sys.stderr.isatty() if progress is None else progress)
    _check_declared_classes(reader, config)
    workers = min(resolve_workers(config.workers), len(files))
    settings = _resolved_settings(config, labelme_dir, class_names, workers)
    if config.resume and voc_dir.exists() and any(voc_dir.iterdir()):
        _check_resume(voc_dir, settings)
    elif not config.force and voc_dir.exists() and any(voc_dir.iterdir()):
        prepare_output_dir(voc_dir, resume_flag="--resume")  # raises OutputExistsError before any work
    return labels_file, class_names, label_to_index, reader, files, workers, settings


def _scan_all(pool, reader, files, config: ConvertConfig, label_to_index, labels_file, progress):
    """Scan every item (labels, image) before anything is written: ``(scans, duplicate)``,
    where ``duplicate`` gives the failure reason of items that would collide. Unknown labels
    stop the whole run here with ``--unknown error`` (the default)."""
    scans = sorted(
        _map(pool if reader.parallel_scan else None, reader.scan, files, "scan", progress), key=lambda s: s.key
    )
    if config.unknown == "error" and not config.classes:
        error = _unknown_label_error(scans, set(label_to_index), labels_file)
        if error is not None:
            raise error
    return scans, _duplicates(files, scans)


def _open_output(voc_dir: Path, reader, labels_file, config: ConvertConfig, class_names, settings) -> None:
    """Create (or, with ``--force``, replace our own) output folder, sweep our temporary
    files, and write ``class_names.txt`` and the resolved settings."""
    rule = _overlap_rule(reader.input_paths, labels_file, config)
    prepare_output_dir(
        voc_dir,
        force=config.force,
        resume=config.resume,
        owner="convert",
        resume_flag="--resume",
        inputs=[p for p in rule["inputs"] if p not in rule["may_lie_inside"]],
        may_lie_inside=rule["may_lie_inside"],
    )
    sweep_temp_files(voc_dir)
    write_class_names(voc_dir, class_names)
    write_text_atomic(voc_dir / CONFIG_FILE, yaml.safe_dump(settings, sort_keys=False, allow_unicode=True))


def _make_pool(workers: int):
    """A process pool of ``workers`` (None for one: convert in this process)."""
    if workers <= 1:
        return None
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=mp.get_context(start_method()), initializer=_worker_init)


def _record(result: _Result, report, done: list[str]) -> None:
    """Add one item's result to the report (and its stem to ``done`` when converted)."""
    report.warnings += [FileWarning(result.json_path, w) for w in result.warnings]
    if result.ok:
        report.converted += 1
        done.append(result.stem)
    else:
        report.failures.append(FileFailure(result.json_path, result.reason))


def _plan_jobs(files, scans, duplicate, reader, voc_dir: Path, label_to_index, config: ConvertConfig, report):
    """``(jobs, done, prints, flags)``: the items to convert, the stems ``--resume`` keeps
    (outputs complete and inputs unchanged), each stem's input fingerprint (size and mtime
    of the JSON file and its image; for COCO the image; :mod:`xray_seg.conversion.resume`)
    and each stem's image flags (the subsets)."""
    layout = VocLayout(voc_dir)
    others = config.others if config.classes else None
    images = {scan.key: scan.image for scan in scans}
    prints = {f.stem: fingerprint(f.key, images.get(f.key)) for f in files}
    by_key = {scan.key: dict(scan.flags) for scan in scans}
    flags = {f.stem: by_key.get(f.key, {}) for f in files}
    recorded = read_fingerprints(voc_dir) if config.resume else {}
    jobs, done = [], []
    for f in files:
        if f.key in duplicate:
            report.failures.append(FileFailure(f.key, duplicate[f.key]))
        elif config.resume and recorded.get(f.stem) == prints[f.stem] and _outputs_complete(layout, f.stem, config):
            done.append(f.stem)
        else:
            jobs.append(
                _Job(
                    f,
                    reader,
                    voc_dir,
                    label_to_index,
                    config.unknown,
                    config.image_format,
                    config.npy,
                    config.vis,
                    others,
                    config.objects,
                )
            )
    return jobs, done, prints, flags


def _write_subsets(voc_dir: Path, done: list[str], flags: dict, report) -> None:
    """``subsets.json`` from the converted stems' image flags (module docstring, "Subsets");
    nothing when no stem has a flag and no earlier run wrote the file."""
    from xray_seg.conversion.voc import write_subsets

    names = sorted({name for stem in done for name in flags.get(stem, {})})
    if not names and not VocLayout(voc_dir).subsets_file.exists():
        return
    subsets = {name: [stem for stem in done if flags.get(stem, {}).get(name) is True] for name in names}
    write_subsets(voc_dir, subsets)
    report.subsets = {name: len(stems) for name, stems in subsets.items()}


def _refuse_val_stems_in_train(voc_dir: Path, fixed_val: set[str]) -> None:
    """ConfigError if ``--val-list`` names a stem that an earlier run of ``voc_dir`` trained on."""
    from xray_seg.conversion.resume import previous_split

    trained = sorted(stem for stem, split in previous_split(voc_dir).items() if split == "train" and stem in fixed_val)
    if trained:
        raise ConfigError(
            f"--val-list names {len(trained)} stem(s) already in train ({', '.join(trained[:3])}"
            f"{', ...' if len(trained) > 3 else ''}); moving them to val would evaluate on training images",
            path=VocLayout(voc_dir).split_file("train"),
            fix="drop them from the list, or pass --resplit to redo the whole split",
        )


def _write_splits(voc_dir: Path, done: list[str], prints: dict, config: ConvertConfig, report) -> None:
    """The fingerprints and the train/val/trainval lists of every converted stem; ``--resume``
    keeps the earlier assignment and splits only new stems unless ``--resplit``."""
    write_fingerprints(voc_dir, {stem: prints[stem] for stem in done if stem in prints})
    fixed_val = set(config.val_stems or ())
    free = [stem for stem in done if stem not in fixed_val]
    if config.resume and not config.resplit:
        _refuse_val_stems_in_train(voc_dir, fixed_val)
        train, val = resumed_split(voc_dir, free, config.val_ratio, config.seed)
    else:
        train, val = split_stems(free, config.val_ratio, config.seed)
    val = sorted(val + [stem for stem in done if stem in fixed_val])
    write_split(voc_dir, "train", train)
    write_split(voc_dir, "val", val)
    write_split(voc_dir, "trainval", sorted(done))
    report.train, report.val = len(train), len(val)


def convert(
    labelme_dir: str | Path, voc_dir: str | Path, config: ConvertConfig, *, progress: bool | None = None
) -> ConvertReport:
    """Convert a Labelme folder (or a COCO JSON, a PIXray folder) into a VOC folder (module docstring).

    Args:
        labelme_dir: the folder with the ``.json`` files (and their images); for
            ``config.source == "coco"`` the COCO instance JSON file.
        voc_dir: the output folder.
        config: a :class:`ConvertConfig`.
        progress: show tqdm bars (None: only on a terminal).

    Returns:
        A :class:`ConvertReport`; ``report.exit_code`` is 1 if any file failed.

    Raises:
        XraySegError: for a whole-run problem (no input files, unknown labels with
            ``unknown="error"``, an existing output without force/resume, bad settings);
            nothing is converted then.
    """
    started = time.perf_counter()
    labelme_dir, voc_dir = Path(labelme_dir), Path(voc_dir)
    labels_file, class_names, label_to_index, reader, files, workers, settings = _check_run(
        labelme_dir, voc_dir, config, progress
    )
    interrupted = False
    owned = False  # temporary files are swept only from a folder this run prepared
    pool = _make_pool(workers)
    report = ConvertReport(voc_dir=str(voc_dir), total=len(files), workers=workers)
    report.warnings += [FileWarning(path, message) for path, message in reader.input_warnings()]
    try:
        scans, duplicate = _scan_all(pool, reader, files, config, label_to_index, labels_file, progress)
        _open_output(voc_dir, reader, labels_file, config, class_names, settings)
        owned = True

        jobs, done, prints, flags = _plan_jobs(files, scans, duplicate, reader, voc_dir, label_to_index, config, report)
        report.skipped = len(done)
        for result in _map(pool, _convert_one, jobs, "convert", progress):
            _record(result, report, done)
    except BaseException:
        interrupted = True
        raise
    finally:
        if pool is not None:
            # Workers ignore Ctrl-C; on an interrupt the queued files are cancelled and the
            # running ones finish their (atomic) writes before the pool exits.
            pool.shutdown(wait=True, cancel_futures=interrupted)
        if owned:
            sweep_temp_files(voc_dir)

    report.failures.sort(key=lambda f: f.path)
    report.warnings.sort(key=lambda w: w.path)
    if done:
        _write_splits(voc_dir, done, prints, config, report)
        _write_subsets(voc_dir, done, flags, report)
    report.seconds = time.perf_counter() - started
    write_text_atomic(voc_dir / REPORT_FILE, report.summary(max_lines=None) + "\n")
    return report


__all__ = [
    "ConvertConfig",
    "ConvertReport",
    "FileFailure",
    "FileWarning",
    "convert",
    "list_labelme_files",
    "read_labels",
    "resolve_workers",
    "split_stems",
    "sweep_temp_files",
]
