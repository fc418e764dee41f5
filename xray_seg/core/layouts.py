"""The file names of the project's three folders, defined once (docs/architecture.md).

- :class:`VocLayout`: a VOC dataset, as ``labelme2voc.py`` and ``xray-seg convert`` write it
  and every later stage reads it.
- :class:`RunLayout`: a training run folder (``xray-seg train --run-dir``), and what
  ``evaluate`` writes into it.
- :class:`ExportLayout`: an export folder (``xray-seg export``), as a station reads it.

Each layout is a frozen dataclass over the folder's root; its properties are paths, so a
file name is spelled in one place only::

    VOC_DIR/
      JPEGImages/<stem>.jpg|.png          the images (PNG when converted losslessly)
      SegmentationClass/<stem>.png        palette ("P") PNG, value = class index, 255 = ignore
      SegmentationObject/<stem>.png       palette PNG of instance ids: 0 background, 1..N objects, 255 = ignore
      SegmentationClassNpy/<stem>.npy     optional int32 labels, -1 = ignore (labelme's convention)
      SegmentationClassVisualization/     optional overlays for people
      class_names.txt                     one name a line: _background_, then the classes
      ImageSets/Segmentation/{train,val,trainval}.txt
      subsets.json                        optional: {"subsets": {flag: [stems]}} from the annotations' image flags

    RUN_DIR/
      config.yaml  class_names.txt  best_model.keras  history.csv  training_curves.png
      checkpoints/{last,best}.weights.h5  checkpoints/state.json  checkpoints/rng_state.npz
      logs/                               TensorBoard
      eval-<split>/{metrics.json,report.md,confusion_matrix.png,screening.json,roc.json,roc.png,report.html}
      eval-<split>-<subset>/              the same for `evaluate --subset`
      alarm_thresholds.json               from `xray-seg calibrate`

    EXPORT_DIR/
      savedmodel/ (with export.json)  savedmodel_optimized/  model_<variant>.tflite  model.onnx
      openvino/model.xml  manifest.json
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xray_seg.core.constants import VOC_IMAGE_SUFFIXES
from xray_seg.core.errors import DatasetError

CLASS_NAMES_FILE = "class_names.txt"
CONFIG_FILE = "config.yaml"
HISTORY_FILE = "history.csv"
CHECKPOINTS_DIR = "checkpoints"
STATE_FILE = "state.json"


def _under(*parts: str) -> property:
    """A read-only path attribute ``root / parts...`` (so each layout reads as a table of names)."""
    return property(lambda self: self.root.joinpath(*parts))


class _Rooted:
    """A layout over one folder: ``root`` is made a :class:`~pathlib.Path`."""

    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))


@dataclass(frozen=True)
class VocLayout(_Rooted):
    """Paths of a VOC dataset rooted at ``root``."""

    root: Path
    images_dir = _under("JPEGImages")
    masks_dir = _under("SegmentationClass")
    objects_dir = _under("SegmentationObject")
    npy_dir = _under("SegmentationClassNpy")
    vis_dir = _under("SegmentationClassVisualization")
    class_names_file = _under(CLASS_NAMES_FILE)
    splits_dir = _under("ImageSets", "Segmentation")
    subsets_file = _under("subsets.json")

    def split_file(self, split: str) -> Path:
        return self.splits_dir / f"{split}.txt"

    def mask_path(self, stem: str) -> Path:
        return self.masks_dir / f"{stem}.png"

    def object_path(self, stem: str) -> Path:
        return self.objects_dir / f"{stem}.png"

    def image_path(self, stem: str) -> Path:
        """The image file of ``stem`` (any of .png/.jpg/.jpeg); DatasetError if none."""
        for suffix in VOC_IMAGE_SUFFIXES:
            candidate = self.images_dir / f"{stem}{suffix}"
            if candidate.is_file():
                return candidate
        raise DatasetError(
            f"no image for {stem!r} in JPEGImages/",
            path=self.images_dir,
            fix="re-run `xray-seg convert`, or remove the stem from the split list",
        )


@dataclass(frozen=True)
class RunLayout(_Rooted):
    """Paths of a training run folder rooted at ``root`` (see the module docstring)."""

    root: Path
    config_file = _under(CONFIG_FILE)
    class_names_file = _under(CLASS_NAMES_FILE)
    best_model = _under("best_model.keras")
    history_csv = _under(HISTORY_FILE)
    training_curves = _under("training_curves.png")
    logs_dir = _under("logs")
    checkpoints_dir = _under(CHECKPOINTS_DIR)
    state_file = _under(CHECKPOINTS_DIR, STATE_FILE)
    last_weights = _under(CHECKPOINTS_DIR, "last.weights.h5")
    best_weights = _under(CHECKPOINTS_DIR, "best.weights.h5")
    rng_state = _under(CHECKPOINTS_DIR, "rng_state.npz")

    def eval_dir(self, split: str = "val") -> Path:
        """Where ``evaluate`` writes its :class:`EvalLayout` for ``split`` inside the run."""
        return self.root / f"eval-{split}"


@dataclass(frozen=True)
class EvalLayout(_Rooted):
    """Paths of an ``evaluate --out`` folder (``RUN_DIR/eval-val`` in a run)."""

    root: Path
    metrics_json = _under("metrics.json")
    report_md = _under("report.md")
    confusion_matrix_png = _under("confusion_matrix.png")


@dataclass(frozen=True)
class ExportLayout(_Rooted):
    """Paths of an export folder rooted at ``root`` (see the module docstring)."""

    root: Path
    savedmodel_dir = _under("savedmodel")
    savedmodel_partial = _under(".savedmodel.partial")  # written here, then renamed into place
    optimized_dir = _under("savedmodel_optimized")  # frozen, batch norm folded (serving/optimize.py)
    optimized_partial = _under(".savedmodel_optimized.partial")
    openvino_dir = _under("openvino")  # OpenVINO IR model.xml + model.bin
    manifest = _under("manifest.json")
    onnx_model = _under("model.onnx")

    def tflite_model(self, variant: str) -> Path:
        return self.root / f"model_{variant}.tflite"

    @staticmethod
    def metadata_file(savedmodel_dir: str | Path) -> Path:
        """``export.json`` inside a SavedModel folder (class names, input size, thresholds)."""
        return Path(savedmodel_dir) / "export.json"

    @staticmethod
    def is_savedmodel(path: str | Path) -> bool:
        """Whether ``path`` is a SavedModel folder (it holds ``saved_model.pb``)."""
        return (Path(path) / "saved_model.pb").is_file()
