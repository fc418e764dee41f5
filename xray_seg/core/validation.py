"""Checks that turn hostile or mistaken input into one clear error, before any work.

Shared by the commands (docs/architecture.md, "Data safety" and "Errors"):

- :func:`max_pixels` / :func:`check_pixels`: the pixel limit on every decoded image
  (converter, training pipeline, ``predict``, both serving signatures). The default is
  :data:`DEFAULT_MAX_PIXELS` (64 M pixels, e.g. 8000 x 8000); raise it with the
  environment variable ``XRAY_SEG_MAX_PIXELS`` or the ``--max-pixels`` option that every
  command takes. An image declaring more pixels is refused from its header, before it
  is decoded, so a 200 KB PNG cannot cost gigabytes of memory.
- :func:`read_regular_file`: inputs are read only from regular files; a FIFO, a device
  (``/dev/zero``) or a symlink to one is refused instead of hanging or reading without
  bound. Symlinks to regular files are followed, also when they leave the input tree
  (the user put them there); ``imagePath`` values that leave it lexically are refused
  by the Labelme reader.
- :func:`bad_stem_reason`: file stems that cannot travel through a VOC dataset (outer
  spaces, control characters, bytes that are not UTF-8).
- :func:`output_name_collisions`: inputs that would write the same output names.
- :func:`validate_train_config` and :func:`resume_changes`: settings checked in one place.
"""

from __future__ import annotations

import math
import os
import stat
import unicodedata
from pathlib import Path

from xray_seg.core.errors import ConfigError, DatasetError

DEFAULT_MAX_PIXELS = 64_000_000
"""Largest image (height x width) any command decodes, unless raised (module docstring)."""
MAX_PIXELS_ENV = "XRAY_SEG_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``$XRAY_SEG_MAX_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"{MAX_PIXELS_ENV}={raw!r} is not a positive number of pixels", fix=f"e.g. {MAX_PIXELS_ENV}=100000000"
        )
    return value


def pixel_limit_error(height: int, width: int, source, limit: int | None = None) -> DatasetError:
    limit = max_pixels() if limit is None else limit
    return DatasetError(
        f"image is {height}x{width} = {height * width / 1e6:.1f} M pixels, over the limit of {limit / 1e6:.1f} M pixels",
        path=source,
        fix=f"shrink or tile the image, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N)",
    )


def bomb_error(exc: Exception, source) -> DatasetError:
    """Our pixel-limit message for Pillow's DecompressionBombError (its text holds the pixel count)."""
    import re

    match = re.search(r"\((\d+) pixels\)", str(exc))
    size = f"{int(match[1]) / 1e6:.1f} M pixels" if match else "too many pixels"
    limit = max_pixels()
    return DatasetError(
        f"image declares {size}, over the limit of {limit / 1e6:.1f} M pixels",
        path=source,
        fix=f"shrink or tile the image, or raise the limit with --max-pixels N (or {MAX_PIXELS_ENV}=N)",
    )


def check_pixels(height: int, width: int, source, limit: int | None = None) -> None:
    """DatasetError naming ``source`` if ``height x width`` exceeds the pixel limit."""
    limit = max_pixels() if limit is None else limit
    if int(height) * int(width) > limit:
        raise pixel_limit_error(int(height), int(width), source, limit)


def read_regular_file(path: str | Path, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is a regular file (symlinks followed), else DatasetError.

    Opened non-blocking, so a FIFO cannot hang the call; devices are refused from fstat.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DatasetError(f"{what} not found", path=path, fix="check the path") from None
    except ValueError:
        raise DatasetError(
            f"the {what} path contains a NUL byte", path=repr(str(path)), fix="rename the file"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = (
                "a FIFO"
                if stat.S_ISFIFO(info.st_mode)
                else "a device"
                if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
                else "a folder"
                if stat.S_ISDIR(info.st_mode)
                else "not a regular file"
            )
            raise DatasetError(
                f"{what} is {kind}; only regular files are read", path=path, fix="point at a regular image file"
            )
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            return f.read()
    finally:
        if fd >= 0:
            os.close(fd)


def bad_stem_reason(stem: str) -> str | None:
    """Why a file stem cannot be a VOC stem (one line per ``ImageSets`` entry), or None."""
    try:
        stem.encode("utf-8")
    except UnicodeEncodeError:
        return f"file name {stem.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8, so it cannot be listed in the split files"
    if stem != stem.strip():
        return f"file name {stem!r} starts or ends with spaces, which the split files cannot keep"
    if any(unicodedata.category(ch) == "Cc" for ch in stem):
        return f"file name {stem!r} holds a control character (newline, tab...), which the split files cannot keep"
    return None


def output_name_collisions(paths, key=lambda p: Path(p).stem) -> dict[str, list[Path]]:
    """Groups of distinct inputs that would write the same output names (compared ignoring case)."""
    groups: dict[str, list[Path]] = {}
    for path in paths:
        groups.setdefault(key(path).casefold(), []).append(Path(path))
    return {name: group for name, group in groups.items() if len(group) > 1}


def collision_error(collisions: dict[str, list[Path]], fix: str) -> DatasetError:
    shown = "; ".join(", ".join(str(p) for p in group) for group in list(collisions.values())[:10])
    more = f" and {len(collisions) - 10} more group(s)" if len(collisions) > 10 else ""
    return DatasetError(
        f"{sum(len(g) for g in collisions.values())} inputs would write the same output names "
        f"(stems compared ignoring case): {shown}{more}; nothing was written",
        fix=fix,
    )


def check_window(window, network_size, source) -> None:
    """A sliding window must equal the size a fixed-size network runs at (Keras or SavedModel alike).

    A SavedModel would otherwise resize every tile to its network size silently, while a
    Keras run folder refuses the same window: both are refused the same way here.
    """
    if window is None or network_size is None:
        return
    window, network_size = tuple(int(v) for v in window), tuple(int(v) for v in network_size)
    if window != network_size:
        raise ConfigError(
            f"the model runs at {network_size[0]}x{network_size[1]} but the sliding window is {window[0]}x{window[1]}",
            path=source,
            fix=f"use --window {network_size[0]}x{network_size[1]}, or leave --window out",
        )


# ----------------------------------------------------------------------------- settings


def _positive_int(value, key: str, problems: list[str], minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{key}={value!r} must be an integer >= {minimum}")


def _number(value, key: str, problems: list[str], *, low=None, high=None, low_open=False, high_open=False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{key}={value!r} must be a finite number")
        return
    if low is not None and (value <= low if low_open else value < low):
        problems.append(f"{key}={value!r} must be {'>' if low_open else '>='} {low}")
    if high is not None and (value >= high if high_open else value > high):
        problems.append(f"{key}={value!r} must be {'<' if high_open else '<='} {high}")


def _size(value, key: str, problems: list[str], *, allow_empty: bool = False) -> None:
    if allow_empty and value in ((), [], None):
        return
    if (
        not isinstance(value, (tuple, list))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        problems.append(
            f"{key}={value!r} must be a size [height, width] (or one number for a square) of positive integers"
        )


def validate_train_config(cfg) -> None:
    """Raise one ConfigError listing every invalid training setting (before any work)."""
    problems: list[str] = []
    _positive_int(cfg.epochs, "epochs", problems)
    _positive_int(cfg.steps_per_epoch, "steps_per_epoch", problems, minimum=0)
    _positive_int(cfg.val_every, "val_every", problems)
    _positive_int(cfg.num_val_images, "num_val_images", problems, minimum=0)
    _positive_int(cfg.data.batch_size, "data.batch_size", problems)
    _size(cfg.data.image_size, "data.image_size", problems)
    _size(cfg.data.crop_size, "data.crop_size", problems, allow_empty=True)
    if not problems and cfg.data.crop_size and any(c > s for c, s in zip(cfg.data.crop_size, cfg.data.image_size)):
        problems.append(
            f"data.crop_size={list(cfg.data.crop_size)} is larger than data.image_size={list(cfg.data.image_size)}"
        )
    if not problems and cfg.data.image_size[0] * cfg.data.image_size[1] > max_pixels():
        h, w = cfg.data.image_size
        problems.append(f"data.image_size={h}x{w} is over the pixel limit of {max_pixels() / 1e6:.1f} M pixels")
    _number(cfg.model.width, "model.width", problems, low=0, low_open=True)
    _number(cfg.optim.lr, "optim.lr", problems, low=0)  # 0 freezes the weights (a dry run); negative ascends the loss
    _number(cfg.optim.momentum, "optim.momentum", problems, low=0, high=1, high_open=True)
    _number(cfg.optim.weight_decay, "optim.weight_decay", problems, low=0)
    _number(cfg.optim.power, "optim.power", problems, low=0)
    _number(cfg.optim.warmup_epochs, "optim.warmup_epochs", problems, low=0)
    _number(cfg.optim.clipnorm, "optim.clipnorm", problems, low=0)
    _positive_int(cfg.optim.reference_batch, "optim.reference_batch", problems, minimum=0)
    if cfg.optim.optimizer not in ("adam", "adamw", "sgd"):
        problems.append(f"optim.optimizer={cfg.optim.optimizer!r} must be adam, adamw or sgd")
    if cfg.optim.schedule not in ("constant", "poly"):
        problems.append(f"optim.schedule={cfg.optim.schedule!r} must be constant or poly")
    from xray_seg.training.losses import LOSSES

    terms = [part.strip() for part in str(cfg.loss.type).split("+")]
    if not terms or any(term not in LOSSES for term in terms):
        problems.append(f"loss.type={cfg.loss.type!r} must be one of {', '.join(LOSSES)} or a sum such as ce+dice")
    _number(cfg.loss.ohem_thresh, "loss.ohem_thresh", problems, low=0, high=1, low_open=True)
    _positive_int(cfg.loss.ohem_min_kept, "loss.ohem_min_kept", problems, minimum=0)
    _number(cfg.loss.aux_weight, "loss.aux_weight", problems, low=0)
    if problems:
        raise ConfigError(
            "invalid setting(s): " + "; ".join(problems),
            fix="correct them in the preset or the --set/flag values",
        )


def _flatten(mapping: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and name not in ("model.options", "optim.lr_multipliers"):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def resume_changes(saved, requested) -> list[str]:
    """Settings of ``requested`` that differ from the ``saved`` run config (``epochs`` may only grow).

    Paths (``data.voc_dir``) are compared resolved. Each entry reads ``key: saved -> requested``.
    """
    from xray_seg.core.config import config_to_dict

    before, after = _flatten(config_to_dict(saved)), _flatten(config_to_dict(requested))
    changes = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key == "data.voc_dir" and old and new and os.path.realpath(str(old)) == os.path.realpath(str(new)):
            continue
        if key == "epochs" and isinstance(old, int) and isinstance(new, int) and new >= old:
            continue
        if old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes
