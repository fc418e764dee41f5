"""``train --init SOURCE``: the model a run starts from (docs/training.md, "Start from a model").

SOURCE is one of:

- a run folder ``RUN``: its best weights (``checkpoints/best.weights.h5``, every head,
  auxiliary ones included), built from the run's ``config.yaml`` and ``class_names.txt``;
  ``RUN:last`` takes ``checkpoints/last.weights.h5`` instead, ``RUN:best`` is the default
  spelled out. A run folder without checkpoints but with ``best_model.keras`` gives that file;
- a ``.keras`` file (class names from its ``xray_seg.json`` entry, else ``class_names.txt``
  beside it, else ``--init-classes``);
- a ``.weights.h5`` file: inside a run's ``checkpoints/`` it is read as that run's; any other
  carries no architecture and no class names, so it is read as this run's architecture with
  the classes of ``--init-classes FILE`` (required: a weights file's rows cannot be named
  otherwise, and guessing "the dataset's classes" would map rows silently wrong);
- ``preset:NAME``, a pretrained preset (:mod:`xray_seg.core.pretrained_presets`), checked
  against its manifest's SHA-256 first.

:func:`resolve_init_source` reads what describes the source and refuses a bad one before the
run folder exists; :func:`initialise_from_source` copies the weights into the model just built
(:mod:`xray_seg.models.weight_transfer`), prints the table and writes ``RUN/init_report.json``.
A run started so begins at epoch 1 with a fresh optimizer; it is not ``--resume``.
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from xray_seg.conversion.voc import read_class_names
from xray_seg.core.errors import ModelError
from xray_seg.core.fileio import file_sha256, read_lines, write_json_atomic
from xray_seg.core.layouts import RunLayout
from xray_seg.core.model_metadata import read_model_metadata
from xray_seg.core.pretrained_presets import PREFIX, find_preset, verified_model_file
from xray_seg.inference.loader import load_keras_model
from xray_seg.models.registry import build_model
from xray_seg.models.weight_transfer import (
    MIN_MATCH,
    TransferReport,
    check_class_names,
    class_axes,
    class_mapping,
    model_weights,
    transfer_weights,
)

FIX = "give a run folder (RUN or RUN:last), a .keras file, a .weights.h5 file or preset:NAME"
CHECKPOINTS = {"best": "best_weights", "last": "last_weights"}
INIT_REPORT = "init_report.json"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


@dataclass
class InitSource:
    """A resolved ``--init`` source: the file read, its digest, what it is and its classes."""

    spelling: str  # as given
    kind: str  # "run" (a run's weights file), "keras", "weights" (plain .weights.h5) or "preset"
    file: Path  # the file the weights come from
    sha256: str
    class_names: list[str]
    model_name: str | None = None  # None: not stated by the source
    width: float | None = None
    run_model: dict | None = None  # kind "run": the run's model section, to build it
    image_size: tuple | None = None  # kind "run": the run's data.image_size, to build it

    def describe(self) -> str:
        model = self.model_name or "a model of unstated architecture"
        width = f" width {self.width:g}" if self.width is not None else ""
        return f"{self.spelling} ({model}{width}, {len(self.class_names)} classes)"


def resolve_init_source(spelling: str, classes_file: str = "") -> InitSource:
    """Find the file ``spelling`` names and read its classes and architecture (module docstring)."""
    if spelling.startswith(PREFIX):
        preset = find_preset(spelling)
        file = verified_model_file(preset)
        names = check_class_names(preset.class_names, file.parent / "manifest.json")
        _refuse_classes_file(classes_file, spelling)
        return InitSource(spelling, "preset", file, file_sha256(file), names, preset.model, preset.width)
    path, checkpoint = _split_checkpoint(spelling)
    if not path.exists():
        raise ModelError("the --init source is not found", path=path, fix=FIX)
    if path.is_dir():
        return _run_source(spelling, path, checkpoint, classes_file)
    if path.name.endswith(".weights.h5"):
        if not _is_hdf5(path):
            raise ModelError("not an HDF5 weights file", path=path, fix=FIX)
        run = path.parent.parent
        if path.parent.name == "checkpoints" and (run / "config.yaml").is_file():
            return _run_weights(spelling, run, path, classes_file)
        if not classes_file:
            raise ModelError(
                "a .weights.h5 file names no classes",
                path=path,
                fix="pass --init-classes FILE (its class_names.txt, background first), or give its run folder",
            )
        names = check_class_names(_names_file(classes_file), classes_file)
        return InitSource(spelling, "weights", path, file_sha256(path), names)
    if path.suffix == ".keras":
        return _keras_source(spelling, path, classes_file)
    raise ModelError("not a model the --init option reads", path=path, fix=FIX)


def _split_checkpoint(spelling: str) -> tuple[Path, str]:
    """``RUN:last`` -> (RUN, "last"); a path that exists as given is taken whole."""
    base, _, which = spelling.rpartition(":")
    if which in CHECKPOINTS and base and not Path(spelling).exists() and Path(base).is_dir():
        return Path(base), which
    return Path(spelling), "best"


def _run_source(spelling: str, run: Path, checkpoint: str, classes_file: str) -> InitSource:
    layout = RunLayout(run)
    if not layout.config_file.is_file() or not layout.class_names_file.is_file():
        raise ModelError("not a run folder (no config.yaml or class_names.txt)", path=run, fix=FIX)
    weights = getattr(layout, CHECKPOINTS[checkpoint])
    if not weights.is_file() and checkpoint == "best" and layout.best_model.is_file():
        return _keras_source(spelling, layout.best_model, classes_file)
    if not weights.is_file():
        raise ModelError(
            f"the run has no checkpoints/{weights.name} (no epoch finished?)",
            path=run,
            fix="give a run that trained at least one epoch, or its best_model.keras",
        )
    return _run_weights(spelling, run, weights, classes_file)


def _run_weights(spelling: str, run: Path, weights: Path, classes_file: str) -> InitSource:
    _refuse_classes_file(classes_file, spelling)
    layout = RunLayout(run)
    model = _yaml_section(layout.config_file, "model")
    if not isinstance(model.get("name"), str):
        raise ModelError("the run's config.yaml names no model", path=layout.config_file, fix=FIX)
    names = check_class_names(_names_file(layout.class_names_file), layout.class_names_file)
    width = float(model.get("width", 1.0))
    size = _yaml_section(layout.config_file, "data").get("image_size")
    size = tuple(int(v) for v in size) if isinstance(size, list) and len(size) == 2 else None
    return InitSource(spelling, "run", weights, file_sha256(weights), names, model["name"], width, model, size)


def _keras_source(spelling: str, path: Path, classes_file: str) -> InitSource:
    if not _is_keras_archive(path):
        raise ModelError("not a Keras model file (no zip archive with a config.json)", path=path, fix=FIX)
    meta = read_model_metadata(path) or {}
    beside = path.parent / "class_names.txt"
    if meta.get("class_names"):
        _refuse_classes_file(classes_file, spelling)
        names, where = meta["class_names"], path
    elif classes_file:
        names, where = _names_file(classes_file), classes_file
    elif beside.is_file():
        names, where = _names_file(beside), beside
    else:
        raise ModelError("the .keras file names no classes", path=path, fix="pass --init-classes FILE")
    config = path.parent / "config.yaml"
    width = _yaml_section(config, "model").get("width") if config.is_file() else None
    width = float(width) if isinstance(width, (int, float)) else None
    names = check_class_names(list(names), where)
    return InitSource(spelling, "keras", path, file_sha256(path), names, meta.get("model_name"), width)


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == HDF5_SIGNATURE


def _is_keras_archive(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _refuse_classes_file(classes_file: str, spelling: str) -> None:
    if classes_file:
        raise ModelError(
            "--init-classes is for a source that names no classes, and this one names its own",
            path=classes_file,
            fix=f"drop --init-classes (the classes of {spelling} are used, mapped by name)",
        )


def _names_file(path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise ModelError("class names file not found", path=path, fix="one class per line, background first")
    try:
        return read_lines(path)
    except UnicodeDecodeError:
        raise ModelError("class names file is not UTF-8 text", path=path, fix="one class per line") from None


def _yaml_section(path: Path, key: str) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelError(f"unreadable YAML ({str(exc)[:80]})", path=path, fix=FIX) from None
    section = data.get(key) if isinstance(data, dict) else None
    return section if isinstance(section, dict) else {}


# ------------------------------------------------------------------ checks before the run folder


def prepare_init(cfg) -> tuple[InitSource, object]:
    """Resolve ``cfg.init`` and check it against the run before its folder exists: class names
    unique on both sides, the same architecture and width where the source states them, and the
    digest ``cfg.init_sha256`` when the config gives one. Returns ``(source, cfg)`` with the
    config recording the file read (absolute; ``preset:NAME`` as given) and its digest."""
    source = resolve_init_source(cfg.init, cfg.init_classes)
    if cfg.data.voc_dir:  # without one, the run folder's own check names the missing dataset
        check_class_names(read_class_names(cfg.data.voc_dir), Path(cfg.data.voc_dir) / "class_names.txt")
    same_model = source.model_name in (None, cfg.model.name)
    same_width = source.width is None or abs(source.width - float(cfg.model.width)) < 1e-9
    if not (same_model and same_width):
        raise ModelError(
            f"--init copies weights between models of one architecture: the source is {source.describe()}, "
            f"this run builds {cfg.model.name} width {cfg.model.width:g}",
            path=source.file,
            fix=f"train with --model {source.model_name or cfg.model.name} --set model.width={source.width or cfg.model.width:g}, "
            "or drop --init",
        )
    if cfg.init_sha256 and cfg.init_sha256 != source.sha256:
        raise ModelError(
            f"the --init source changed: SHA-256 {source.sha256[:16]}..., the config says {cfg.init_sha256[:16]}...",
            path=source.file,
            fix="clear init_sha256 (--set init_sha256=) to start from the file as it is now",
        )
    recorded = source.spelling if source.kind == "preset" else str(source.file.resolve())
    return source, dataclasses.replace(cfg, init=recorded, init_sha256=source.sha256)


def adopt_source_architecture(cfg, source: InitSource):
    """``cfg`` with ``model.name`` and ``model.width`` taken from the source where it states them
    (the command line does this when neither ``--model`` nor a ``model.name``/``model.width``
    setting was given)."""
    model = dataclasses.replace(
        cfg.model,
        name=source.model_name or cfg.model.name,
        width=source.width if source.width is not None else cfg.model.width,
    )
    return dataclasses.replace(cfg, model=model)


# ------------------------------------------------------------------ the weights


def load_source_weights(source: InitSource, cfg) -> dict:
    """``{path: value}`` of the source's weights: a ``.keras`` file loaded as a model, a weights
    file loaded into the architecture that wrote it (the run's, or this run's)."""
    if source.kind in ("keras", "preset"):
        return model_weights(load_keras_model(source.file))
    spec = source.run_model or {"name": cfg.model.name, "width": cfg.model.width, "aux": cfg.model.aux}
    options = dict(spec.get("options") or {}) if source.run_model else dict(cfg.model.options)
    auxes = [bool(spec.get("aux", False))] + ([] if source.run_model else [not spec.get("aux", False)])
    height, width = source.image_size or tuple(cfg.data.image_size)
    problem = ""
    for aux in auxes:  # a plain weights file may or may not hold auxiliary heads
        try:
            model = build_model(
                spec["name"], len(source.class_names), (height, width, 3), width=spec["width"], aux=aux, **options
            )
            model.load_weights(source.file)
            return model_weights(model)
        except ModelError:
            continue
        except Exception as exc:  # Keras raises ValueError, OSError, KeyError... for a file that does not fit
            problem = str(exc).splitlines()[0][:160]
    raise ModelError(
        f"the weights do not fit {spec['name']} width {float(spec['width']):g} with {len(source.class_names)} classes "
        f"({problem}): another architecture or width, or not a weights file",
        path=source.file,
        fix="give the source's run folder, or train the architecture that wrote it (--model, --set model.width=...)",
    )


def initialise_from_source(model, cfg, source: InitSource, class_names: list[str], run_dir: Path, *, verbose=1):
    """Copy the source's weights into ``model`` (just built, before any step), print the table
    and write ``RUN/init_report.json``; refuse a source matching under :data:`MIN_MATCH`."""
    weights = load_source_weights(source, cfg)
    mapping = axes = None
    if source.class_names != class_names:
        mapping = class_mapping(source.class_names, class_names)
        axes = class_axes(model, _build_like(cfg, len(class_names) + 1, model.input_shape[1:]))
    report = transfer_weights(weights, model, mapping=mapping, axes=axes)
    target = f"{cfg.model.name} width {cfg.model.width:g} ({len(class_names)} classes)"
    if report.matched_share < MIN_MATCH:
        raise ModelError(
            f"--init source {source.describe()} matches only {len(report.loaded) + len(report.mapped)} of the "
            f"{report.total} tensors of {target} by path and shape: another architecture or width",
            path=source.file,
            fix="start from a model of this architecture and width, or drop --init",
        )
    doc = init_report(source, report, class_names, target)
    write_json_atomic(Path(run_dir) / INIT_REPORT, doc)
    if verbose:
        print(f"init: {source.describe()} -> {target}, SHA-256 {source.sha256[:12]}")
        print(report.table())
        if mapping is not None:
            print("classes: " + class_lines(doc["classes"]))
    return report


def _build_like(cfg, num_classes: int, input_shape):
    """The run's architecture with another class count (to find the classifier tensors)."""
    model = cfg.model
    return build_model(model.name, num_classes, input_shape, width=model.width, aux=model.aux, **model.options)


def init_report(source: InitSource, report: TransferReport, class_names: list[str], target: str) -> dict:
    """The ``init_report.json`` document: the source and its digest, the counts and the names of
    the tensors of each kind, and the class mapping."""
    mapping = report.mapping or list(range(len(class_names)))
    rows = [
        {"index": t, "name": name, "source_index": s, "source_name": None if s is None else source.class_names[s]}
        for t, (name, s) in enumerate(zip(class_names, mapping))
    ]
    kept = {s for s in mapping if s is not None}
    return {
        "source": source.spelling,
        "kind": source.kind,
        "file": str(source.file.resolve()),
        "sha256": source.sha256,
        "source_model": {"name": source.model_name, "width": source.width, "class_names": source.class_names},
        "target_model": target,
        "counts": report.counts(),
        "min_match": MIN_MATCH,
        "loaded": report.loaded,
        "mapped": report.mapped,
        "skipped": report.skipped,
        "new": report.new,
        "unused": report.unused,
        "classes": {
            "by_name": report.mapping is not None,
            "mapping": rows,
            "new": [r["name"] for r in rows if r["source_index"] is None],
            "dropped": [n for i, n in enumerate(source.class_names) if i not in kept],
        },
    }


def class_lines(classes: dict) -> str:
    """The class mapping in one line: ``gun <- gun, battery (new); dropped: scissors``."""
    parts = [
        f"{r['name']} <- {r['source_name']}" if r["source_index"] is not None else f"{r['name']} (new)"
        for r in classes["mapping"]
    ]
    dropped = f"; dropped: {', '.join(classes['dropped'])}" if classes["dropped"] else ""
    return ", ".join(parts) + dropped
