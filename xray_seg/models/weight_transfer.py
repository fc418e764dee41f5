"""Weights copied from one model into another by layer path and shape, classes mapped by name.

What ``xray-seg train --init SOURCE`` does to the model it has just built (docs/training.md,
"Start from a model"), in the spirit of mmsegmentation's ``load_from`` and keras-hub's
``from_preset``. Every tensor (Keras variable) of the target model is looked up in the source
by its **path** (``decoder_conv2/point_bn/moving_mean``: layer names, which the builders fix),
never by its position in a list:

- **loaded**: the source has the path with the same shape: copied whole (batch-norm
  statistics included);
- **mapped**: a classifier tensor (main head and auxiliary heads) when the class names
  differ: its class rows are copied by class name (:func:`class_mapping`); a class the source
  does not know keeps the target's fresh initialisation, a class the target drops is left out;
- **skipped**: the source has the path with another shape (kept fresh);
- **new**: the source lacks the path (kept fresh), e.g. auxiliary heads the source never had;
- **unused**: source tensors the target has no path for.

Which tensors are classifier tensors is not guessed from names: they are the tensors whose
shape follows the number of classes, found by building the same architecture with one class
more (:func:`class_axes`). Their class axis is the axis whose size changed (the last one for
every builder today).

Plain Python and numpy on ``keras.Variable``; no TensorFlow (layers and models stay
backend-neutral, docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xray_seg.core.errors import ModelError

MIN_MATCH = 0.5
"""Below this share of the target's tensors matched (loaded or mapped), the source is taken for
another architecture or width and refused: a real fine-tuning source matches nearly all of them."""

RNG_STATE = "seed_generator_state"  # dropout's random-generator state: not a weight


def model_weights(model) -> dict[str, np.ndarray]:
    """``{path: value}`` of every weight of ``model`` (trainable and batch-norm statistics),
    without the random-generator states of dropout layers."""
    return {v.path: np.asarray(v.numpy()) for v in model.weights if RNG_STATE not in v.path}


def check_class_names(names: list[str], where) -> list[str]:
    """``names`` if they are unique and non-empty; else a ModelError naming ``where``."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated or not names or not all(isinstance(n, str) and n for n in names):
        problem = f"class names repeat: {', '.join(repeated)}" if repeated else "class names must be non-empty"
        raise ModelError(
            problem + "; classes are matched by name, so each must appear once",
            path=where,
            fix="list each class once (background first)",
        )
    return list(names)


def class_mapping(source_names: list[str], target_names: list[str]) -> list[int | None]:
    """For each target class, the source class index it takes its classifier row from, or None.

    Index 0 (background) always maps to index 0, whatever each side calls it; the other classes
    map by exact name. A source class absent from the target is dropped.

    Example:
        >>> class_mapping(["_background_", "gun", "knife", "pliers"], ["background", "knife", "battery", "gun"])
        [0, 2, None, 1]
    """
    index = {name: i for i, name in enumerate(source_names) if i > 0}
    return [0 if t == 0 else index.get(name) for t, name in enumerate(target_names)]


def class_axes(model, probe) -> dict[str, tuple[int, ...]]:
    """``{path: axes}`` of the tensors whose shape follows the number of classes: those whose
    shape differs between ``model`` (K classes) and ``probe`` (the same architecture, K + 1)."""
    shapes = {v.path: tuple(v.shape) for v in probe.weights}
    out = {}
    for v in model.weights:
        other = shapes.get(v.path)
        if other is not None and len(other) == len(v.shape) and other != tuple(v.shape):
            out[v.path] = tuple(i for i, (a, b) in enumerate(zip(v.shape, other)) if a != b)
    return out


@dataclass
class TransferReport:
    """What :func:`transfer_weights` did, tensor by tensor (module docstring for the kinds)."""

    loaded: list[str] = field(default_factory=list)
    mapped: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"name", "source_shape", "target_shape"}
    new: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    mapping: list[int | None] | None = None  # target class -> source class, when names differ

    @property
    def total(self) -> int:
        return len(self.loaded) + len(self.mapped) + len(self.skipped) + len(self.new)

    @property
    def matched_share(self) -> float:
        return (len(self.loaded) + len(self.mapped)) / max(1, self.total)

    def counts(self) -> dict:
        return {
            "loaded": len(self.loaded),
            "mapped": len(self.mapped),
            "skipped": len(self.skipped),
            "new": len(self.new),
            "unused": len(self.unused),
            "target_tensors": self.total,
        }

    def table(self) -> str:
        """A compact table: one row per kind, its count and the first names."""
        rows = [
            ("loaded", self.loaded, "same path and shape"),
            ("mapped", self.mapped, "classifier rows by class name"),
            ("skipped", [s["name"] for s in self.skipped], "shape differs: kept fresh"),
            ("new", self.new, "not in the source: kept fresh"),
            ("unused", self.unused, "in the source only"),
        ]
        lines = [f"  {'tensors':8s} {'count':>6s}  examples"]
        for kind, names, what in rows:
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            lines.append(f"  {kind:8s} {len(names):6d}  {what}{': ' + shown if names else ''}")
        return "\n".join(lines)


def transfer_weights(
    source: dict[str, np.ndarray],
    target,
    *,
    mapping: list[int | None] | None = None,
    axes: dict[str, tuple[int, ...]] | None = None,
) -> TransferReport:
    """Copy ``source`` (``{path: value}``) into the Keras model ``target`` by path and shape.

    ``mapping`` (from :func:`class_mapping`) and ``axes`` (from :func:`class_axes`) are given
    when the class names differ: the tensors in ``axes`` then take their class rows by name
    instead of being copied whole. Returns the :class:`TransferReport`; nothing is checked
    against :data:`MIN_MATCH` here (the caller names the models in its refusal).
    """
    report = TransferReport(mapping=mapping)
    axes = axes or {}
    seen = set()
    for variable in target.weights:
        path = variable.path
        if RNG_STATE in path:
            continue
        seen.add(path)
        value = source.get(path)
        shape = tuple(variable.shape)
        if value is None:
            report.new.append(path)
        elif mapping is not None and path in axes:
            mapped = _mapped_rows(value, np.asarray(variable.numpy()), axes[path], mapping)
            if mapped is None:
                report.skipped.append(_skip(path, value.shape, shape))
            else:
                variable.assign(mapped)
                report.mapped.append(path)
        elif tuple(value.shape) == shape:
            variable.assign(value)
            report.loaded.append(path)
        else:
            report.skipped.append(_skip(path, value.shape, shape))
    report.unused = sorted(set(source) - seen)
    return report


def _skip(path: str, source_shape, target_shape) -> dict:
    return {"name": path, "source_shape": list(source_shape), "target_shape": list(target_shape)}


def _mapped_rows(value: np.ndarray, fresh: np.ndarray, axes, mapping) -> np.ndarray | None:
    """``fresh`` with the kept classes' rows taken from ``value`` along each class axis; None
    when the two differ elsewhere than on the class axes (another width)."""
    others = [i for i in range(fresh.ndim) if i not in axes]
    if value.ndim != fresh.ndim or any(value.shape[i] != fresh.shape[i] for i in others):
        return None
    if any(value.shape[a] <= max([s for s in mapping if s is not None], default=0) for a in axes):
        return None
    kept = [t for t, s in enumerate(mapping) if s is not None]
    target_index = [np.arange(n) if i not in axes else np.array(kept) for i, n in enumerate(fresh.shape)]
    source_index = [
        np.arange(n) if i not in axes else np.array([mapping[t] for t in kept]) for i, n in enumerate(fresh.shape)
    ]
    out = fresh.copy()
    out[np.ix_(*target_index)] = value[np.ix_(*source_index)]
    return out
