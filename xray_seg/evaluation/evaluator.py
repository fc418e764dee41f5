"""Evaluation on a VOC split: ``xray-seg evaluate`` (paper 1 section 4.3, eqs. 4-7).

One confusion matrix is accumulated over the whole split at each image's original
resolution (never averaged per batch); scans reach the network by the one geometry rule
(docs/architecture.md, "Geometry: how a scan reaches the network": native resolution,
tiles of the training size, never squashed; ``metrics.json`` records it as ``geometry``), then PA, per-class PA, mPA, per-class IoU and
mIoU follow from it (:func:`xray_seg.evaluation.metrics.segmentation_scores`). Test-time
augmentation and sliding windows come from :mod:`xray_seg.inference.tta`.

Outputs (``OUT_DIR``): ``metrics.json``, ``report.md``, ``confusion_matrix.png`` and the
paper-format tables printed to the terminal; the screening figures (object AP, PD / PFA,
ROC) add ``screening.json``, ``roc.json``, ``roc.png`` and ``report.html``
(:mod:`xray_seg.evaluation.screening_eval`), at the model's stored alarm thresholds. FPS here is images per second of the
whole prediction (model plus TTA and resizing), decode excluded; ``xray-seg bench``
measures model-only and end-to-end FPS at batch 1.

Subsets (:mod:`xray_seg.evaluation.subsets`): with ``subset`` the pixel metrics cover the
split's images in that subset, PD its threat bags and PFA all threat-free bags of the split;
without it, a VOC folder with ``subsets.json`` adds a table of ``all`` and each subset
(mIoU, per-class IoU, PD at PFA 5 %) to the terminal, ``report.md`` and ``metrics.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.conversion.voc import load_label_png, read_class_names, read_split
from xray_seg.core.errors import ConfigError
from xray_seg.core.fileio import prepare_output_dir, write_text_atomic
from xray_seg.core.images import read_image_rgb
from xray_seg.core.layouts import VocLayout
from xray_seg.evaluation.metrics import confusion_matrix, segmentation_scores
from xray_seg.evaluation.report import (
    format_paper_tables,
    plot_confusion_matrix,
    write_markdown_report,
    write_metrics_json,
)
from xray_seg.evaluation.screening_eval import ScreeningEvaluation, format_screening
from xray_seg.evaluation.subsets import RULE, bag_selection, format_subset_table, select_subset, subset_table
from xray_seg.inference.alarm_rule import load_rule
from xray_seg.inference.geometry import geometry_for
from xray_seg.inference.loader import load_for_inference, model_folder
from xray_seg.inference.tta import predict_probabilities
from xray_seg.inference.tta_options import TTAOptions


@dataclass
class EvalResult:
    scores: dict
    fps: float
    num_images: int
    out_dir: Path | None
    extra: dict = field(default_factory=dict)
    screening: object = None  # ScreeningEvaluation: bag scores for calibration


def _geometry_record(loaded, tta: TTAOptions):
    """How scans reached the network (docs/architecture.md, "Geometry: how a scan reaches the network")."""
    if tta.window:
        return {"rule": "explicit sliding window", "tile": list(tta.window)}

    geometry = geometry_for(loaded)
    if geometry is not None:
        return geometry.as_dict()
    if loaded.keras_model is None:
        return "inside the SavedModel (its export.json geometry)"
    return "whole image at native resolution (the model takes any input size; no training size known)"


def _load_matching(model_path, names, voc_dir):
    """The model, loaded for inference; ConfigError if its classes are not the dataset's."""
    loaded = load_for_inference(model_path, names)
    if list(loaded.class_names) != list(names):
        raise ConfigError(
            f"the model's classes {loaded.class_names} differ from the dataset's {names}",
            path=voc_dir,
            fix="evaluate on a dataset converted with the same labels.txt",
        )
    return loaded


def evaluate(
    model_path: str | Path,
    voc_dir: str | Path,
    *,
    split: str = "val",
    subset: str | None = None,
    tta: TTAOptions | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> EvalResult:
    """Evaluate a run folder, ``.keras`` file or SavedModel on ``split`` of ``voc_dir``.

    ``subset`` names a subset of ``subsets.json`` (module docstring); ``limit`` takes the
    first images of the split before the subset is selected.
    """
    tta = tta or TTAOptions()
    names = read_class_names(voc_dir)
    loaded = _load_matching(model_path, names, voc_dir)
    if out_dir is not None:
        out_dir = prepare_output_dir(
            out_dir, force=force, inputs=[voc_dir], may_lie_inside=[model_folder(model_path)], owner="evaluate"
        )
    stems, members = read_split(voc_dir, split)[:limit], None
    if subset is not None:
        stems, members = select_subset(voc_dir, split, stems, subset)
    screening = ScreeningEvaluation(Path(voc_dir), load_rule(model_path, names))
    per_image, predict_seconds = _accumulate(
        loaded, voc_dir, stems, tta, screening, desc=f"evaluate {split}", progress=progress
    )
    scores, screening_summary, table = _score(voc_dir, names, per_image, screening, members)
    fps = len(stems) / predict_seconds if predict_seconds > 0 else float("nan")
    extra = {
        "model": str(loaded.source),
        "model_name": loaded.name,
        "dataset": str(voc_dir),
        "split": split,
        **({"subset": subset, "subset_rule": RULE} if subset is not None else {}),
        "images": len(stems) if members is None else len(members),
        "tta_scales": list(tta.scales),
        "tta_flip": tta.flip,
        "window": list(tta.window) if tta.window else None,
        "geometry": _geometry_record(loaded, tta),
        "fps_note": "images/s of prediction incl. TTA, decode excluded",
    }
    print(format_paper_tables(scores, names, fps=fps))
    print(format_screening(screening_summary, dataset=voc_dir, split=split))
    if table:
        print("\nSubsets (image flags of the annotations)\n" + format_subset_table(table, names))
    title = f"{loaded.name} on {split}" + (f", subset {subset}" if subset is not None else "")
    if out_dir is not None:
        _write_outputs(out_dir, scores, names, fps, extra, screening, screening_summary, title, table)
    extra["screening"] = screening_summary
    extra["subsets"] = table
    return EvalResult(scores, fps, extra["images"], out_dir, extra, screening)


def _score(voc_dir, names, per_image: dict, screening, members: set | None):
    """``(pixel scores, screening summary, subset table)``: over every image, or with
    ``members`` by the subset rule (:mod:`xray_seg.evaluation.subsets`)."""
    k = len(names)
    if members is None:
        cm = sum(per_image.values(), np.zeros((k, k), np.int64))
        return segmentation_scores(cm, names), screening.summary(), subset_table(voc_dir, per_image, screening, names)
    cm = sum((per_image[s] for s in members), np.zeros((k, k), np.int64))
    return segmentation_scores(cm, names), screening.summary(keep=bag_selection(screening, members)), {}


def _accumulate(loaded, voc_dir, stems, tta: TTAOptions, screening, *, desc: str, progress: bool):
    """The confusion matrix of every image of ``stems`` (summed over the split or a subset,
    paper 1 eqs. 4-7: never averaged per batch), the screening record of each bag, and the
    seconds spent predicting."""
    geometry = geometry_for(loaded)  # docs/architecture.md, "Geometry: how a scan reaches the network"

    def predict(image):
        return predict_probabilities(
            loaded.logits_fn, image, input_size=loaded.input_size, geometry=geometry, **tta.as_kwargs()
        )

    return accumulate_split(predict, voc_dir, stems, len(loaded.class_names), screening, desc=desc, progress=progress)


def accumulate_split(predict, voc_dir, stems, k: int, screening, *, desc: str = "evaluate", progress: bool = False):
    """``({stem: confusion matrix}, seconds predicting)`` of ``predict(image) -> probabilities
    [H, W, K]`` over ``stems`` of ``voc_dir``, each bag also added to ``screening`` (a
    :class:`~xray_seg.evaluation.screening_eval.ScreeningEvaluation`, or None). Sum the
    matrices for the split's (or a subset's) one confusion matrix."""
    from tqdm import tqdm

    layout = VocLayout(voc_dir)
    per_image = {}
    predict_seconds = 0.0
    for stem in tqdm(stems, desc=desc, unit="img", disable=not progress):
        image = read_image_rgb(layout.image_path(stem))
        truth = load_label_png(layout.mask_path(stem))
        start = time.perf_counter()
        probs = predict(image)
        predict_seconds += time.perf_counter() - start
        per_image[stem] = confusion_matrix(truth, probs.argmax(axis=-1), k)
        if screening is not None:
            screening.add(stem, image, truth, probs)
    return per_image, predict_seconds


def _write_outputs(out_dir: Path, scores, names, fps, extra, screening, screening_summary, title: str, table) -> None:
    """``metrics.json``, ``report.md`` (with its screening and subset sections), the
    confusion-matrix PNG and the screening files (``screening.json``, ``roc.json``,
    ``roc.png``, ``report.html``)."""
    write_metrics_json(
        out_dir / "metrics.json", scores, names, fps=fps, **extra, **({"subsets": table} if table else {})
    )
    write_markdown_report(
        out_dir / "report.md", scores, names, model_name=extra["model_name"], split=extra["split"], fps=fps, extra=extra
    )
    plot_confusion_matrix(out_dir / "confusion_matrix.png", np.asarray(scores["confusion_matrix"]), names)
    screening.write(out_dir, screening_summary, pixel_scores=scores, title=title, split=extra["split"])
    md = (out_dir / "report.md").read_text(encoding="utf-8")
    write_text_atomic(
        out_dir / "report.md",
        md
        + "\n## Screening (objects, bags, PD at PFA)\n\n```\n"
        + format_screening(screening_summary, dataset=extra["dataset"], split=extra["split"])
        + "\n```\n\nROC: `roc.png`, `roc.json`; "
        "everything: `screening.json`, `report.html`.\n"
        + (f"\n## Subsets (image flags)\n\n{format_subset_table(table, names, markdown=True)}\n" if table else ""),
    )
    print(
        f"wrote {out_dir}/metrics.json, report.md, confusion_matrix.png, screening.json, roc.json, roc.png, report.html"
    )
