"""Dataclass configurations with YAML presets and command-line overrides.

A config is a (possibly nested) dataclass. It is resolved in three layers:

1. the dataclass defaults;
2. a YAML preset: a bundled name (``xray_seg/presets/<name>.yaml``) or a path;
3. overrides ``key=value`` or ``section.key=value`` (values are parsed as YAML,
   so ``lr=1e-4``, ``flip=false`` and ``scales=[0.75,1.0]`` all work).

Every run writes the resolved config (``save_config``) beside its outputs, so it
can be reproduced, and :func:`config_digest` identifies it in exported metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from xray_seg.core.errors import ConfigError
from xray_seg.core.fileio import write_text_atomic

PRESET_DIR = Path(__file__).parents[1] / "presets"

T = TypeVar("T")


def available_presets() -> list[str]:
    """Names of the bundled YAML presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def read_preset(preset: str | Path) -> tuple[dict, Path]:
    """Read a preset by bundled name or by path; return (mapping, file)."""
    path = Path(preset)
    if not path.suffix:
        path = PRESET_DIR / f"{preset}.yaml"
    if not path.is_file():
        raise ConfigError(
            "preset not found",
            path=path,
            fix=f"give a YAML file or one of the bundled presets: {', '.join(available_presets())}",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML ({exc})", path=path, fix="correct the YAML syntax") from None
    if not isinstance(data, dict):
        raise ConfigError("a preset must be a mapping of keys to values", path=path, fix="write key: value lines")
    return data, path


def parse_overrides(items: Iterable[str]) -> dict:
    """Turn ``["a.b=1", "c=[1,2]"]`` into a nested mapping ``{"a": {"b": 1}, "c": [1, 2]}``."""
    pairs = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value", fix="write e.g. --set epochs=10")
        key, _, raw = item.partition("=")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        pairs.append((key, value))
    return nest_overrides(pairs)


def nest_overrides(pairs: Iterable[tuple[str, Any]]) -> dict:
    """Turn ``[("a.b", 1), ("a", {"c": 2})]`` (dotted keys, Python values) into ``{"a": {"b": 1, "c": 2}}``.

    A mapping value merges key by key with what the same section already holds. A key set to
    a value keeps it against dotted keys inside it, so that the merge refuses a section set to a value.
    """
    result: dict = {}
    for key, value in pairs:
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break  # a key set to a value keeps it: the merge refuses a section set to a value
        else:
            _set_override(node, parts[-1], value)
    return result


def _set_override(node: dict, last: str, value) -> None:
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        value = nest_overrides([*_flatten(node[last]), *_flatten(value)])
    node[last] = value


def _flatten(mapping: dict, prefix: str = "") -> list[tuple[str, Any]]:
    items = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{prefix}{key}.")
        else:
            items.append((f"{prefix}{key}", value))
    return items


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _number(text: str, kind: type, key: str, source: str):
    try:
        return kind(float(text)) if kind is int and float(text).is_integer() else kind(text)
    except ValueError:
        raise ConfigError(
            f"setting {key!r} needs a number, got {text!r}", path=source, fix=f"write e.g. {key}=1"
        ) from None


def _merge(cls, base, updates: dict, source: str, prefix: str = ""):
    """Return a copy of dataclass ``base`` with ``updates`` applied, checking keys (``prefix``:
    the dotted path of ``base`` for messages)."""
    types = _field_types(cls)
    changes = {}
    for key, value in updates.items():
        if key not in types:
            raise ConfigError(
                f"unknown setting {key!r} for {cls.__name__}",
                path=source,
                fix=f"use one of: {', '.join(sorted(types))}",
            )
        current = getattr(base, key)
        if dataclasses.is_dataclass(current) and not isinstance(value, dict):
            raise _section_error(current, f"{prefix}{key}", value, source)
        if dataclasses.is_dataclass(current):
            value = _merge(type(current), current, value, source, f"{prefix}{key}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            value = {**current, **value}  # free-form mappings (model options) merge key by key
        elif isinstance(value, list) and isinstance(current, tuple):
            value = tuple(value)
        elif isinstance(current, tuple) and isinstance(value, int) and not isinstance(value, bool):
            value = (value, value)  # one number for a size: a square (e.g. data.image_size=64)
        elif isinstance(current, (int, float)) and not isinstance(current, bool) and isinstance(value, str):
            value = _number(value, type(current), key, source)  # YAML reads "1e-3" as a string
        elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__} setting: {exc}", path=source, fix="correct the value") from None


def _setting_text(value) -> str:
    """``value`` as the YAML text of a ``--set key=value``."""
    if isinstance(value, str):
        return value
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def _section_error(section, key: str, value, source: str) -> ConfigError:
    """A section (a dataclass) given a scalar or a list: name the key, and a fix that is a valid command."""
    names = [f.name for f in dataclasses.fields(section)]
    if "name" in names and isinstance(value, str):
        example = f"{key}.name={value}"
    else:
        values = [(n, getattr(section, n)) for n in names]
        shown = [(n, v) for n, v in values if v not in ("", None, (), [], {}) and not dataclasses.is_dataclass(v)]
        name, current = (shown or values)[0]
        example = f"{key}.{name}={_setting_text(current)}"
    listed = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
    return ConfigError(
        f"{key!r} is a section ({listed}), not a value: cannot set it to {_setting_text(value)[:40]}",
        path=source,
        fix=f"set one of its fields, e.g. --set {example}",
    )


def load_config(cls: type[T], preset: str | Path | None = None, overrides: Iterable[str] | dict = ()) -> T:
    """Resolve a config of dataclass type ``cls`` from defaults, a preset and overrides."""
    cfg = cls()
    if preset is not None:
        data, path = read_preset(preset)
        cfg = _merge(cls, cfg, data, str(path))
    updates = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    return override_config(cfg, updates) if updates else cfg


def override_config(cfg: T, overrides: Iterable[str] | dict) -> T:
    """A copy of the config ``cfg`` with overrides (``key=value`` strings or a nested mapping)
    applied by the one merge rule of :func:`load_config`: sections merge key by key,
    free-form mappings (model options, lr multipliers) too, and unknown keys are refused."""
    updates = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    return _merge(type(cfg), cfg, updates, "command-line override")


def config_to_dict(cfg) -> dict:
    """A plain mapping (tuples as lists) suitable for YAML or JSON."""

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(dataclasses.asdict(cfg))


def save_config(cfg, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    write_text_atomic(path, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def config_digest(cfg) -> str:
    """A short stable digest of the resolved config (sha256 of canonical JSON)."""
    canonical = json.dumps(config_to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
