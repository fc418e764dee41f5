"""Convert annotations into the VOC layout (``xray-seg convert``), like ``labelme2voc.py``.

The input is a Labelme folder (default), a COCO instance JSON (``source="coco"``, PIDray)
or a folder of PIXray JSON files (``source="pixray"``); a reader per source
(:mod:`xray_seg.conversion.sources`) turns each annotated image into the same record, and
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
    A seeded shuffle of the converted stems (``val_ratio``, ``seed``; paper 1 splits 7:3,
    hence ``val_ratio=0.3``), kept on ``--resume``: :mod:`xray_seg.conversion.splits`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import yaml

from xray_seg.conversion.checks import (
    check_declared_classes,
    check_found_classes,
    check_paths,
    duplicates,
    overlap_rule,
)
from xray_seg.conversion.job import Job, Result, convert_one
from xray_seg.conversion.labels import class_subset, read_labels, unknown_label_error
from xray_seg.conversion.pool import make_pool, map_items, resolve_workers
from xray_seg.conversion.report import REPORT_FILE, ConvertReport, FileFailure, FileWarning
from xray_seg.conversion.resume import (
    check_resume,
    fingerprint,
    outputs_complete,
    read_fingerprints,
    write_fingerprints,
)
from xray_seg.conversion.settings import CONFIG_FILE, ConvertConfig, check_config, resolved_settings
from xray_seg.conversion.sources import make_reader
from xray_seg.conversion.splits import write_splits, write_subsets_of
from xray_seg.conversion.voc import write_class_names
from xray_seg.core.fileio import prepare_output_dir, sweep_temp_files, write_text_atomic
from xray_seg.core.layouts import VocLayout


def _check_run(labelme_dir: Path, voc_dir: Path, config: ConvertConfig, progress):
    """Everything checked before any work, so a bad run fails before writing: the settings,
    the labels, the input against the output, the items, and the output (refused unless
    ``--force``, or ``--resume`` with the same settings). Returns ``(labels_file,
    class_names, label_to_index, reader, items, workers, settings)``."""
    check_config(config)
    labels_file = None if config.classes else Path(config.labels)
    class_names, label_to_index = class_subset(config.classes) if config.classes else read_labels(labels_file)
    reader = make_reader(config.source, labelme_dir, images=config.images, recursive=config.recursive)
    check_paths(reader.input_paths, voc_dir, labels_file, config)
    files = reader.items(progress=sys.stderr.isatty() if progress is None else progress)
    check_declared_classes(reader, config)
    workers = min(resolve_workers(config.workers), len(files))
    settings = resolved_settings(config, labelme_dir, class_names, workers)
    if config.resume and voc_dir.exists() and any(voc_dir.iterdir()):
        check_resume(voc_dir, settings)
    elif not config.force and voc_dir.exists() and any(voc_dir.iterdir()):
        prepare_output_dir(voc_dir, resume_flag="--resume")  # raises OutputExistsError before any work
    return labels_file, class_names, label_to_index, reader, files, workers, settings


def _scan_all(pool, reader, files, config: ConvertConfig, label_to_index, labels_file, progress):
    """Scan every item (labels, image) before anything is written: ``(scans, duplicate)``,
    where ``duplicate`` gives the failure reason of items that would collide. Unknown labels
    stop the whole run here with ``--unknown error`` (the default)."""
    scans = sorted(
        map_items(pool if reader.parallel_scan else None, reader.scan, files, "scan", progress), key=lambda s: s.key
    )
    check_found_classes(reader, config, scans)
    if config.unknown == "error" and not config.classes:
        error = unknown_label_error(scans, set(label_to_index), labels_file)
        if error is not None:
            raise error
    return scans, duplicates(files, scans)


def _open_output(voc_dir: Path, reader, labels_file, config: ConvertConfig, class_names, settings) -> None:
    """Create (or, with ``--force``, replace our own) output folder, sweep our temporary
    files, and write ``class_names.txt`` and the resolved settings."""
    rule = overlap_rule(reader.input_paths, labels_file, config)
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


def _record(result: Result, report, done: list[str]) -> None:
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
        elif config.resume and recorded.get(f.stem) == prints[f.stem] and outputs_complete(layout, f.stem, config):
            done.append(f.stem)
        else:
            jobs.append(
                Job(
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
    pool = make_pool(workers)
    report = ConvertReport(voc_dir=str(voc_dir), total=len(files), workers=workers)
    report.warnings += [FileWarning(path, message) for path, message in reader.input_warnings()]
    try:
        scans, duplicate = _scan_all(pool, reader, files, config, label_to_index, labels_file, progress)
        _open_output(voc_dir, reader, labels_file, config, class_names, settings)
        owned = True

        jobs, done, prints, flags = _plan_jobs(files, scans, duplicate, reader, voc_dir, label_to_index, config, report)
        report.skipped = len(done)
        for result in map_items(pool, convert_one, jobs, "convert", progress):
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
        write_fingerprints(voc_dir, {stem: prints[stem] for stem in done if stem in prints})
        write_splits(voc_dir, done, config, report)
        write_subsets_of(voc_dir, done, flags, report)
    report.seconds = time.perf_counter() - started
    write_text_atomic(voc_dir / REPORT_FILE, report.summary(max_lines=None) + "\n")
    return report


__all__ = ["ConvertConfig", "ConvertReport", "convert"]
