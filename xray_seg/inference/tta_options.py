"""Test-time augmentation options: ``--tta``, ``--window`` and ``--stride`` as the CLI and
:class:`xray_seg.Segmenter` take them, for :func:`xray_seg.inference.tta.predict_probabilities`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from xray_seg.core.errors import ConfigError
from xray_seg.inference.geometry import size_pair


@dataclass
class TTAOptions:
    """Test-time augmentation and tiling for :func:`xray_seg.inference.tta.predict_probabilities`."""

    scales: tuple = (1.0,)
    flip: bool = False
    window: tuple | None = None
    stride: tuple | None = None

    def as_kwargs(self) -> dict:
        return dict(scales=self.scales, flip=self.flip, window=self.window, stride=self.stride)


def parse_tta(spec: str | None) -> tuple[tuple[float, ...], bool]:
    """Parse ``"flip,scales=0.75,1,1.25"`` into ``((0.75, 1.0, 1.25), True)``."""
    scales: list[float] = []
    flip = False
    in_scales = False
    for token in (spec or "").split(","):
        token = token.strip()
        if not token:
            continue
        if token == "flip":
            flip, in_scales = True, False
        elif token.startswith("scales="):
            in_scales = True
            token = token.split("=", 1)[1]
            if token:
                scales.append(_tta_scale(token))
        elif in_scales:
            scales.append(_tta_scale(token))
        else:
            raise ConfigError(f"bad --tta item {token!r}", fix="write e.g. --tta flip,scales=0.75,1,1.25")
    return tuple(scales) or (1.0,), flip


def _tta_scale(token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value <= 8):  # also refuses nan and inf
        raise ConfigError(
            f"bad --tta scale {token!r}: scales are positive numbers up to 8",
            fix="write e.g. --tta flip,scales=0.75,1,1.25",
        )
    return value


def parse_size(text, what: str = "size") -> tuple[int, int] | None:
    """``"512"`` -> (512, 512); ``"512x1024"`` -> (512, 1024); None stays None.

    An int or ``(h, w)`` is checked by :func:`~xray_seg.inference.geometry.size_pair`.
    """
    if text is None or text == "":
        return None
    if not isinstance(text, str):
        return size_pair(text, what)
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"bad size {text!r}", fix="write e.g. 512 or 512x1024") from None
    if len(size) > 2 or any(v < 1 for v in size):
        raise ConfigError(f"bad size {text!r}: one or two positive integers", fix="write e.g. 512 or 512x1024")
    return (size[0], size[0]) if len(size) == 1 else size[:2]


def tta_options(tta=None, window=None, stride=None):
    """A :class:`TTAOptions` from None, TTAOptions or a spec string.

    A spec is the CLI's ``--tta`` text, with commas or spaces between items:
    ``"flip,scales=0.75,1,1.25"`` or ``"scales=0.75,1,1.25 flip"``. ``window`` and ``stride``
    (an int, ``(h, w)`` or ``"512x1024"``) set the sliding window when given.
    """
    if tta is None:
        options = TTAOptions()
    elif isinstance(tta, TTAOptions):
        options = replace(tta)
    elif isinstance(tta, str):
        scales, flip = parse_tta(",".join(tta.split()))
        options = TTAOptions(scales=scales, flip=flip)
    else:
        raise TypeError(
            f"tta must be None, a TTAOptions or a string such as 'flip,scales=0.75,1', not {type(tta).__name__}"
        )
    if window is not None:
        options.window = parse_size(window, "window")
    if stride is not None:
        options.stride = parse_size(stride, "stride")
    return options
