"""Prediction files: what ``xray-seg predict`` writes for a station to show.

For each input image ``<stem>``, into the output folder:

- ``<stem>_mask.png``: palette class mask (VOC colours; value = class index);
- ``<stem>_overlay.png``: the mask blended over the image, with a legend of the
  classes found;
- ``<stem>.json``: every prohibited item found - one entry per connected component
  (8-connectivity) of a non-background class with at least ``min_area`` pixels:
  class, pixel area, mean confidence (mean softmax probability of that class over
  the component) and bounding box ``[x, y, width, height]``.
- the bag decision (:func:`xray_seg.inference.alarm_rule.decide`, thresholds stored with the
  model: ``export.json`` ``"alarm"`` or ``RUN/alarm_thresholds.json``, else the documented
  defaults): ``alarm`` (bool), ``alarm_classes``, ``alarm_scores`` and each item's ``alarm``;
  the overlay is :func:`xray_seg.inference.overlays.screening_overlay`; the alarmed bags are
  tiled into ``alarmed_contact_sheet.png``; the summary line reads "N bags, M alarmed".

Corrupt or unreadable inputs are reported and skipped; the caller gets the list of
failures (the CLI exits non-zero if any).
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import save_label_png
from xray_seg.core.constants import SCAN_IMAGE_SUFFIXES
from xray_seg.core.errors import DatasetError, XraySegError
from xray_seg.core.file_names import collision_error, output_name_collisions
from xray_seg.core.fileio import atomic_path, prepare_output_dir, write_json_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.window import check_window
from xray_seg.inference.alarm_rule import decide, load_rule
from xray_seg.inference.geometry import geometry_for
from xray_seg.inference.loader import load_for_inference, model_folder
from xray_seg.inference.overlays import contact_sheet, screening_overlay, thumbnail
from xray_seg.inference.strips import class_map_of
from xray_seg.inference.tta import predict_probabilities
from xray_seg.inference.tta_options import TTAOptions


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their images, sorted) and glob patterns -> image paths, in order; a file or
    folder that does not exist is refused (:class:`DatasetError`)."""
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if "\0" in str(item):
            raise DatasetError("the input path contains a NUL byte", path=repr(str(item)), fix="rename the file")
        if p.is_dir():
            paths += sorted(q for q in p.iterdir() if q.suffix.lower() in SCAN_IMAGE_SUFFIXES)
        elif any(ch in item for ch in "*?["):
            paths += sorted(Path(q) for q in glob.glob(item, recursive=True))
        elif not p.exists() and not p.is_symlink():  # refused before any output folder is made
            raise DatasetError("input not found", path=item, fix="check the path of the image file or folder")
        else:
            paths.append(p)
    if not paths:
        raise DatasetError("no input images found", path=", ".join(inputs), fix="give image files, folders or globs")
    return paths


def unique_outputs(paths: list[Path]) -> list[Path]:
    """``paths`` without repeats of one file; DatasetError if two files would share output names.

    Outputs are named after the input's stem, so ``a.png`` and ``a.jpg``, or ``a.png`` in
    two input folders, would overwrite each other's results: they are refused up front,
    listed, before anything is predicted or written.
    """
    seen, unique = set(), []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    collisions = output_name_collisions(unique)
    if collisions:
        raise collision_error(collisions, fix="rename the files, or predict them into separate --out folders")
    return unique


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    items_found: int = 0
    alarmed: list = field(default_factory=list)  # stems of the bags that alarmed
    grey: list = field(default_factory=list)  # single-energy grey scans (all channels equal)


def predict_images(
    model_path: str | Path,
    inputs: list[str],
    out_dir: str | Path,
    *,
    min_area: int = 50,
    tta=None,
    force: bool = False,
    progress: bool = True,
) -> PredictReport:
    """Predict every input image and write mask, overlay and items JSON (module docstring)."""
    from tqdm import tqdm

    paths = unique_outputs(expand_inputs(inputs))
    input_dirs = [Path(i) for i in inputs if Path(i).is_dir()]
    prepare_output_dir(
        out_dir, force=force, inputs=[*input_dirs, *paths], may_lie_inside=[model_folder(model_path)], dry_run=True
    )
    loaded = load_for_inference(model_path)
    rule = load_rule(model_path, loaded.class_names)
    sheet = []
    geometry = geometry_for(loaded)  # docs/architecture.md, "Geometry: how a scan reaches the network"
    # A SavedModel tiles at its training size inside the graph; a --window must match it, as
    # a Keras model with a fixed input size requires.
    fixed = loaded.input_size or (loaded.trained_size if loaded.keras_model is None else None)
    check_window(tta.window if tta is not None else None, fixed, loaded.source)
    out_dir = prepare_output_dir(
        out_dir, force=force, inputs=[*input_dirs, *paths], may_lie_inside=[model_folder(model_path)], owner="predict"
    )
    tta = tta or TTAOptions()
    report = PredictReport()
    for path in tqdm(paths, desc="predict", unit="img", disable=not progress):
        try:
            if not path.exists():  # a FIFO or device is refused by name when read
                raise DatasetError("file not found", path=path, fix="check the path")
            image = read_image_rgb(path)
        except XraySegError as exc:
            report.failures.append((str(path), exc.message))
            continue
        if is_grey(image):
            report.grey.append(str(path))
        probs = predict_probabilities(
            loaded.logits_fn, image, input_size=loaded.input_size, geometry=geometry, **tta.as_kwargs()
        )
        class_map = class_map_of(probs)
        decision = decide(class_map, probs, rule, min_area=min_area)
        del probs  # the largest array: gone before the overlay is drawn (docs/station.md, "Memory")
        report.items_found += len(decision["items"])
        picture = _write_prediction(out_dir, path, image, class_map, decision, loaded, rule)
        if decision["alarm"]:
            report.alarmed.append(path.stem)
            sheet.append((path.stem, thumbnail(picture)))  # a thumbnail, not every alarmed scan whole
        del image, class_map, picture
        report.written.append(out_dir / f"{path.stem}.json")
    contact_sheet(out_dir / "alarmed_contact_sheet.png", sheet)
    _print_summary(report, rule, out_dir, str(loaded.source))
    return report


def is_grey(image: np.ndarray) -> bool:
    """True for a single-energy grey scan: a 1-channel file, decoded to three equal channels."""
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]))


def grey_warning(count: int, model_name: str) -> str:
    """The one line for a run that met grey scans. The export does not record the training
    looks, so the line says what the shipped models were trained on and how to tell."""
    return (
        f"warning: {count} scan(s) are single-energy grey; {model_name} was trained on dual-energy colour "
        "scans unless its training data were grey: check the predictions"
    )


def _print_summary(report: PredictReport, rule, out_dir: Path, model_name: str) -> None:
    for _path, reason in report.failures:
        print(f"skipped {reason}")
    if report.grey:
        print(grey_warning(len(report.grey), model_name), file=sys.stderr)
    state = "calibrated" if rule.calibrated else "uncalibrated default"
    print(f"{len(report.written)} bags, {len(report.alarmed)} alarmed ({state} thresholds)")
    print(
        f"predicted {len(report.written)} image(s), {report.items_found} item(s) found, "
        f"{len(report.failures)} failed; outputs in {out_dir}"
    )


def _write_prediction(out_dir: Path, path: Path, image, class_map, decision: dict, loaded, rule) -> np.ndarray:
    """``<stem>_mask.png``, ``<stem>_overlay.png`` and ``<stem>.json`` of one scan; returns the overlay."""
    from PIL import Image

    save_label_png(out_dir / f"{path.stem}_mask.png", class_map)
    picture = screening_overlay(image, class_map, decision["items"], loaded.class_names)
    with atomic_path(out_dir / f"{path.stem}_overlay.png") as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    write_json_atomic(
        out_dir / f"{path.stem}.json",
        {
            "image": str(path),
            "height": int(image.shape[0]),
            "width": int(image.shape[1]),
            "model": str(loaded.source),
            "alarm": decision["alarm"],
            "alarm_classes": decision["alarm_classes"],
            "alarm_scores": {n: float(v) for n, v in zip(loaded.class_names[1:], decision["scores"][1:])},
            "alarm_rule": {
                "calibrated": rule.calibrated,
                "thresholds": rule.thresholds,
                "min_area": rule.min_area,
                "closing": rule.closing,
            },
            "items": decision["items"],
        },
    )
    return picture
