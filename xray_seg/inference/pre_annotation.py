"""Pre-annotations: ``xray-seg predict MODEL SCANS --out OUT --labelme``.

A model draws the first polygons and an annotator corrects them in Labelme. For each scan
``<stem>`` this writes ``OUT/<stem>.json``, a Labelme file that labelme (5.x to 7.x; the
tests load it with labelme 6.3.1's ``LabelFile``) opens and edits:

Shapes
    One ``polygon`` per predicted item, labelled with its class name, largest first. An
    item here is a connected component (8-connectivity) of one class of the arg-max class
    map with at least ``min_area`` pixels, as :func:`~xray_seg.inference.alarm_rule.find_items`
    finds them for ``predict``, but without the alarm rule's closing: the polygons trace the
    predicted pixels themselves, not the closed items the alarm decision merges. Smaller
    fragments are dropped.
Outline, holes and the border
    :func:`~xray_seg.conversion.labelme_writer.trace_mask`: the contour through the item's
    boundary pixel centres, simplified by Douglas-Peucker at ``simplify`` pixels (default
    :data:`DEFAULT_SIMPLIFY`), less where that would cost more than 1 % of the item (IoU
    below 0.99 when filled as labelme fills it). A hole is joined to the outline by a
    zero-width bridge, so an item stays one polygon and its hole stays empty
    (:mod:`xray_seg.conversion.labelme_writer` says why this and not a ``_background_``
    shape); every vertex is a pixel centre inside the image, also for items on the border.
Marked unreviewed
    Each shape's ``description`` reads ``pre-annotation from MODEL, confidence 0.93`` (the
    mean probability of its class over the item) and its ``flags`` hold ``{"unreviewed":
    true}``, a tick box in labelme's label dialog; the file's own ``flags`` hold
    ``{"unreviewed": true}`` too, in labelme's Flags panel. An annotator unticks it when done;
    ``xray-seg convert`` lists the files still ticked in ``subsets.json`` ("unreviewed").
The image
    ``imagePath`` is the scan relative to the JSON, ``imageData`` is null and
    ``imageHeight``/``imageWidth`` are the scan's size (after EXIF orientation, as labelme
    reads it). ``copy_images`` copies each scan into OUT (its bytes unchanged) and points
    ``imagePath`` at the copy: OUT is then a self-contained Labelme folder that ``labelme
    OUT`` and ``xray-seg convert OUT VOC`` read as they are. Without it, open the scans with
    ``labelme SCANS --output OUT``; ``convert`` reads images only inside its input folder.

Human work is never overwritten
    Everything is written into OUT, which may not be, contain or lie inside a scan's
    folder (:func:`~xray_seg.core.fileio.prepare_output_dir`; ``force`` replaces only an
    OUT that xray-seg made). A scan with ``<stem>.json`` beside it is already annotated: it
    is skipped and listed, unless ``include_annotated``, which pre-annotates it into OUT too
    and still leaves that file alone.

    Annotators correct the files in OUT itself, so ``force`` checks them first: OUT keeps the
    SHA-256 of every JSON it wrote (:data:`DIGESTS`, a hidden text file that neither labelme
    nor ``convert`` reads), and ``force`` refuses, listing them, while any JSON there was
    changed or added since: replacing OUT would delete an annotator's corrections.

Round trip, measured
    ``xray-seg convert`` (labelme's rasteriser) of untouched pre-annotations gives back the
    predicted class map with fragments under ``min_area`` removed: each item's polygon
    matches it with an IoU of at least 0.99 by construction (checked when it is traced).
    Through ``convert``, on hand-made rings, islands and border items
    (``tests/inference/test_pre_annotation.py``) and on the predictions of a small trained
    model, every item kept at least 0.99 of its pixels; ``scripts/measure_pre_annotation.py``
    prints the figures, which docs/station.md, "Pre-annotations for Labelme", lists with the
    loss the simplification alone would cost.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.conversion.labelme_writer import labelme_record, polygon_shape, trace_mask
from xray_seg.core.errors import ConfigError, OutputExistsError, XraySegError
from xray_seg.core.fileio import (
    has_marker,
    prepare_output_dir,
    read_regular_file,
    write_bytes_atomic,
    write_json_atomic,
)
from xray_seg.core.images import read_image_rgb
from xray_seg.core.window import check_window
from xray_seg.inference.alarm_rule import find_items
from xray_seg.inference.geometry import geometry_for
from xray_seg.inference.loader import load_for_inference, model_folder
from xray_seg.inference.prediction_files import expand_inputs, unique_outputs
from xray_seg.inference.tta import predict_probabilities
from xray_seg.inference.tta_options import TTAOptions

#: Default Douglas-Peucker tolerance of the outlines, in pixels (``--simplify``).
DEFAULT_SIMPLIFY = 0.5
#: The flag (on each shape and on the file) that marks a pre-annotation nobody has reviewed.
UNREVIEWED = "unreviewed"
#: In OUT: ``<sha256>  <stem>.json`` of every file written, so ``--force`` can see corrected ones.
DIGESTS = ".pre-annotation-sha256"


@dataclass
class PreAnnotateReport:
    """What :func:`pre_annotate` did: files written, scans skipped as already annotated,
    scans that failed to read mid-run, shapes written and each item's traced IoU."""

    written: list[Path] = field(default_factory=list)
    annotated: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    shapes: int = 0
    vertices: int = 0
    item_iou: list[float] = field(default_factory=list)


def annotation_beside(scan: Path) -> Path | None:
    """The ``<stem>.json`` beside a scan (an annotator's file), if there is one."""
    path = scan.parent / f"{scan.stem}.json"
    return path if path.exists() else None


def item_shapes(class_map, probs, class_names, *, min_area: int, simplify: float, model: str):
    """The Labelme shapes of one predicted class map (module docstring) and each item's traced IoU."""
    shapes, ious = [], []
    for item in find_items(class_map, probs, class_names, min_area, closing=0, with_masks=True):
        polygons, _, iou = trace_mask(item["mask"], simplify)
        origin = np.asarray(item["bbox"][:2], dtype=np.float64)
        description = f"pre-annotation from {model}, confidence {item['confidence']:.2f}"
        for polygon in polygons:  # one: an 8-connected item has one outer contour
            shapes.append(
                polygon_shape(item["class"], polygon + origin, description=description, flags={UNREVIEWED: True})
            )
        ious.append(iou)
    return shapes, ious


def _check_options(min_area, simplify) -> None:
    if not (isinstance(simplify, (int, float)) and math.isfinite(simplify) and 0 <= simplify <= 100):
        raise ConfigError(f"--simplify {simplify!r} is not a tolerance in pixels", fix="give 0..100, e.g. 1.0")
    if int(min_area) < 1:
        raise ConfigError(f"--min-area {min_area} is below 1 pixel", fix="give a positive number of pixels, e.g. 50")


def _scans_to_do(inputs, include_annotated: bool, report: PreAnnotateReport) -> tuple[list[Path], list[Path]]:
    """``(scans to pre-annotate, folders the output must stay out of)``; every scan read once first,
    so an unreadable one stops the run (one line) before anything is written."""
    paths = unique_outputs(expand_inputs([str(i) for i in inputs]))
    report.annotated = [p for p in paths if annotation_beside(p) is not None]
    todo = paths if include_annotated else [p for p in paths if annotation_beside(p) is None]
    folders = {Path(i) for i in inputs if Path(i).is_dir()} | {p.parent for p in paths}
    for path in todo:
        read_image_rgb(path)  # DatasetError naming the file: corrupt, truncated, too large, not a file
    return todo, [*sorted(folders), *paths]


def pre_annotate(
    model,
    inputs,
    out_dir,
    *,
    min_area: int = 50,
    simplify: float = DEFAULT_SIMPLIFY,
    tta: TTAOptions | None = None,
    force: bool = False,
    include_annotated: bool = False,
    copy_images: bool = False,
    progress: bool = True,
) -> PreAnnotateReport:
    """Write a Labelme pre-annotation of every scan into ``out_dir`` (module docstring).

    ``model``: a path ``predict`` takes or an already loaded model (a station engine's
    included). Raises :class:`~xray_seg.core.errors.XraySegError` (one line, nothing
    written) for an unreadable scan, an output folder inside a scan's folder, a model
    without class names, or an existing output without ``force``.
    """
    from tqdm import tqdm

    _check_options(min_area, simplify)
    report = PreAnnotateReport()
    todo, guarded = _scans_to_do(inputs, include_annotated, report)
    owner = dict(inputs=guarded, may_lie_inside=[model_folder(model)], owner="predict")
    prepare_output_dir(out_dir, force=force, dry_run=True, **owner)
    _refuse_corrected(Path(out_dir))
    loaded = load_for_inference(model)  # ModelError: no class names, unreadable model
    tta = tta or TTAOptions()
    fixed = loaded.input_size or (loaded.trained_size if loaded.keras_model is None else None)
    check_window(tta.window, fixed, loaded.source)
    out_dir = prepare_output_dir(out_dir, force=force, **owner)
    for path in tqdm(todo, desc="pre-annotate", unit="scan", disable=not progress):
        try:
            image = read_image_rgb(path)
        except XraySegError as exc:  # changed since the check: skipped, as predict does
            report.failures.append((str(path), exc.message))
            continue
        probs = predict_probabilities(
            loaded.logits_fn, image, input_size=loaded.input_size, geometry=geometry_for(loaded), **tta.as_kwargs()
        )
        class_map = np.asarray(probs).argmax(axis=-1).astype(np.uint8)
        shapes, ious = item_shapes(
            class_map, probs, loaded.class_names, min_area=min_area, simplify=simplify, model=str(loaded.source)
        )
        _write_one(out_dir, path, image.shape, shapes, copy_images)
        report.written.append(out_dir / f"{path.stem}.json")
        _record_digest(out_dir, report.written[-1])
        report.shapes += len(shapes)
        report.vertices += sum(len(s["points"]) for s in shapes)
        report.item_iou += ious
    _print_summary(report, out_dir, simplify, include_annotated)
    return report


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_digest(out_dir: Path, json_path: Path) -> None:
    """Append ``<sha256>  <name>`` to :data:`DIGESTS` (a line per file, so an interrupted run keeps its record)."""
    with open(out_dir / DIGESTS, "a", encoding="utf-8") as f:
        f.write(f"{_sha256(json_path)}  {json_path.name}\n")


def _refuse_corrected(out_dir: Path) -> None:
    """Refuse to replace an OUT whose Labelme files were changed or added since they were written."""
    if not (out_dir.is_dir() and has_marker(out_dir)):
        return  # a new OUT, or one prepare_output_dir refuses on its own
    try:
        lines = (out_dir / DIGESTS).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    written = dict(reversed(line.split("  ", 1)) for line in lines if "  " in line)
    changed = sorted(p.name for p in out_dir.glob("*.json") if written.get(p.name) != _sha256(p))
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise OutputExistsError(
            f"{len(changed)} Labelme file(s) were corrected or added since they were pre-annotated "
            f"({shown}); --force would delete that work",
            path=out_dir,
            fix="convert or move them first, or choose another --out",
        )


def _write_one(out_dir: Path, scan: Path, shape, shapes: list[dict], copy_images: bool) -> None:
    """``OUT/<stem>.json`` (and the scan's copy with ``copy_images``), each written atomically."""
    if copy_images:
        write_bytes_atomic(out_dir / scan.name, read_regular_file(scan, "image"))
        image_path = scan.name
    else:
        image_path = Path(os.path.relpath(os.path.abspath(scan), os.path.abspath(out_dir))).as_posix()
    record = labelme_record(shapes, image_path=image_path, height=shape[0], width=shape[1], flags={UNREVIEWED: True})
    write_json_atomic(out_dir / f"{scan.stem}.json", record)


def _print_summary(report: PreAnnotateReport, out_dir: Path, simplify: float, include_annotated: bool) -> None:
    for path, reason in report.failures:
        print(f"skipped {path}: {reason}")
    if report.annotated:
        names = ", ".join(str(p) for p in report.annotated[:10])
        more = f" and {len(report.annotated) - 10} more" if len(report.annotated) > 10 else ""
        if include_annotated:
            print(f"{len(report.annotated)} scan(s) already annotated, pre-annotated into OUT only: {names}{more}")
        else:
            print(
                f"skipped {len(report.annotated)} scan(s) already annotated (<stem>.json beside them): "
                f"{names}{more}; pass --include-annotated to pre-annotate them too (into OUT only)"
            )
    worst = f", worst item IoU {min(report.item_iou):.3f}" if report.item_iou else ""
    print(
        f"pre-annotated {len(report.written)} scan(s): {report.shapes} polygon(s), {report.vertices} vertices "
        f"(simplified by at most {simplify:g} px{worst}), {len(report.failures)} failed; outputs in {out_dir}"
    )
