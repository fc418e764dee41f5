"""What an export starts from: a run folder, a ``.keras`` file or a loaded model, resolved
by :mod:`xray_seg.inference.loader`, with what is known about it (:class:`ExportSource`:
class names, input size, config digest, metrics at export time)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from xray_seg.core.config import config_digest, load_config
from xray_seg.core.errors import ModelError, XraySegError
from xray_seg.core.layouts import EvalLayout, RunLayout
from xray_seg.inference.geometry import ScanGeometry
from xray_seg.inference.loader import LoadedModel, load_for_inference, read_names_file, resolve_source
from xray_seg.training.config import TrainConfig


@dataclass
class ExportSource:
    """A model to export and what is known about it."""

    model: object  # keras.Model
    model_file: Path
    class_names: list[str]
    model_name: str
    input_size: tuple[int, int]
    run_dir: Path | None = None
    config_digest: str | None = None
    config_digest_method: str | None = None
    metrics: dict | None = None
    alarm: dict | None = None  # AlarmRule.to_dict(); None: RUN/alarm_thresholds.json or the defaults

    @property
    def geometry(self):
        """How scans reach the network (:class:`xray_seg.inference.geometry.ScanGeometry`):
        native resolution, tiles of the training size."""
        return ScanGeometry(tile=self.input_size)


def _config_digest(source) -> tuple[str, str] | tuple[None, None]:
    """Digest of the run's config, from the mapping :func:`resolve_source` parsed (no second read)."""
    if source.config_file is None:
        return None, None
    if source.config is not None:
        try:
            return config_digest(load_config(TrainConfig, None, source.config)), "xray_seg.core.config.config_digest"
        except XraySegError:
            pass
    return hashlib.sha256(source.config_file.read_bytes()).hexdigest(), "sha256(config.yaml)"


def _run_metrics(run_dir: Path) -> dict | None:
    """Metrics at export time: ``eval-val/metrics.json`` if present, else ``checkpoints/state.json``."""
    metrics_file = EvalLayout(RunLayout(run_dir).eval_dir("val")).metrics_json
    if metrics_file.is_file():
        data = json.loads(metrics_file.read_text(encoding="utf-8"))
        keep = ("pa", "mpa", "miou", "iou", "class_pa", "class_names", "absent_class_policy")
        return {"source": str(metrics_file), "split": "val", **{k: data[k] for k in keep if k in data}}
    state_file = RunLayout(run_dir).state_file
    if state_file.is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        return {
            "source": str(state_file),
            "best_val_miou": state.get("best_miou"),
            "best_epoch": state.get("best_epoch"),
        }
    return None


EXPORT_NAMES_FIX = "put class_names.txt beside it or pass --class-names FILE"


def load_export_model(path: str | Path, *, class_names_file: str | Path | None = None):
    """Load a run folder or ``.keras`` file for export (:func:`xray_seg.inference.loader.load_for_inference`).

    ``class_names_file`` gives the names of a ``.keras`` file that carries none; one that
    carries its own (``xray_seg.json``) must agree with it.
    """
    source = resolve_source(path, exportable=True)
    given = read_names_file(class_names_file) if class_names_file else None
    loaded = load_for_inference(source, given, names_fix=EXPORT_NAMES_FIX, names_where=str(class_names_file or ""))
    if given is not None and list(given) != list(loaded.class_names):
        raise ModelError(
            f"the model carries the class names {loaded.class_names}, but {class_names_file} lists {given}",
            path=source.model_path,
            fix="leave --class-names out (the model knows its classes) or give the file it was trained with",
        )
    return loaded


def load_source(path, *, class_names_file: str | Path | None = None, input_size=None) -> ExportSource:
    """Resolve and load a run folder or ``.keras`` file (module docstring), or take a loaded one.

    ``path`` may be a :class:`~xray_seg.inference.loader.LoadedModel` from a ``.keras`` file
    (e.g. a :class:`~xray_seg.segmenter.Segmenter`'s), which is not loaded again.
    """
    if isinstance(path, LoadedModel):
        loaded = path
        if loaded.keras_model is None or loaded.origin is None:
            raise ModelError(
                "an exported SavedModel cannot be exported again",
                path=loaded.source,
                fix="export the run folder or the .keras file it came from",
            )
    else:
        loaded = load_export_model(path, class_names_file=class_names_file)
    source, model_file = loaded.origin, loaded.source
    fixed = loaded.input_size
    if input_size is not None:
        size = (int(input_size[0]), int(input_size[1]))
        if fixed and fixed != size:
            raise ModelError(
                f"the model takes {fixed[0]}x{fixed[1]} inputs, not {size[0]}x{size[1]}",
                path=model_file,
                fix="leave --input-size out for a model with a fixed input size",
            )
    else:
        size = fixed or source.trained_size()
        if size is None:
            raise ModelError(
                "the model accepts any input size and no training image size is known",
                path=model_file,
                fix="pass --input-size HxW (the size the model was trained at)",
            )
    digest, method = _config_digest(source)
    metrics = _run_metrics(source.run_dir) if source.run_dir is not None else None
    return ExportSource(
        loaded.keras_model,
        model_file,
        list(loaded.class_names),
        loaded.name,
        size,
        source.run_dir,
        digest,
        method,
        metrics,
    )
