"""Argument groups several subcommands share, defined once (the ``_`` keeps it out of the CLI's
command list, see :mod:`xray_seg.cli`)."""

from __future__ import annotations


def add_overrides(parser, help_text: str = "override a config setting (repeatable), e.g. --set epochs=2") -> None:
    """``--set KEY=VALUE`` (repeatable) into ``args.overrides``, applied over the preset; each key is
    checked against :class:`~xray_seg.training.config.TrainConfig` while the command line is read,
    before TensorFlow loads (:func:`check_override`)."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help_text, type=check_override
    )


def check_override(item: str) -> str:
    """``item`` if it is ``key=value`` with a ``key`` of ``TrainConfig`` (dotted into its sections),
    else an ``argparse.ArgumentTypeError`` naming the closest key, as a ``--set`` that works."""
    import argparse
    import dataclasses
    import difflib

    from xray_seg.training.config import TrainConfig

    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{item!r} is not KEY=VALUE; write e.g. --set epochs=10")
    node, done = TrainConfig(), []
    for part in key.strip().split("."):
        if not dataclasses.is_dataclass(node):
            break  # a free-form mapping (model.options): any key
        names = [f.name for f in dataclasses.fields(node)]
        if part not in names:
            where = ".".join(done) or "TrainConfig"
            close = difflib.get_close_matches(part, names, n=1)
            fix = f"did you mean --set {'.'.join([*done, close[0]])}={value}?" if close else ""
            raise argparse.ArgumentTypeError(
                f"unknown setting {key!r} ({where} has: {', '.join(names)}){'; ' + fix if fix else ''}"
            )
        node = getattr(node, part)
        done.append(part)
    return item


def add_model_and_split(parser, model_help: str, verb: str) -> None:
    """The positional ``model`` and ``voc_dir`` and ``--split`` (default val) of the commands
    that run a model over one split of a VOC folder (``evaluate``, ``calibrate``)."""
    parser.add_argument("model", help=model_help)
    parser.add_argument("voc_dir", help="VOC dataset folder")
    parser.add_argument("--split", default="val", help=f"split to {verb} (default: val)")


def check_limit(limit) -> None:
    """``--limit N`` of ``evaluate`` and ``calibrate``: at least one image (0 would score or
    calibrate on nothing and still write a report or a "calibrated" rule)."""
    if limit is not None and limit < 1:
        from xray_seg.core.errors import ConfigError

        raise ConfigError(f"--limit {limit} leaves no image", fix="give --limit 1 or more, or leave it out for all")


def add_bag_difficulty(parser, defaults, synth_defaults=None) -> None:
    """The four options that set how hard synthetic bags are (``SynthConfig`` fields):
    ``--threat-prob``, ``--clutter``, ``--hide-prob``, ``--small-threat-prob``. ``defaults``
    holds their defaults; ``synth_defaults``, when given, is named in each help text (the
    demo's defaults differ from ``xray-seg synth``'s)."""
    from xray_seg.synthesis.scene import CLUTTER_LEVELS

    def note(name):
        return f"; `xray-seg synth` uses {getattr(synth_defaults, name):g}" if synth_defaults else ""

    parser.add_argument(
        "--threat-prob",
        type=float,
        default=defaults.threat_prob,
        help=f"probability that a bag holds at least one threat (default {defaults.threat_prob:g}{note('threat_prob')})",
    )
    parser.add_argument(
        "--clutter",
        choices=CLUTTER_LEVELS,
        default=defaults.clutter,
        help=f"bag clutter (default {defaults.clutter}"
        + (f"; `xray-seg synth` uses {synth_defaults.clutter}" if synth_defaults else "")
        + ")",
    )
    parser.add_argument(
        "--hide-prob",
        type=float,
        default=defaults.hide_prob,
        help=f"probability that a threat is hidden under a laptop, clothes, ... (default {defaults.hide_prob:.2f}"
        f"{note('hide_prob')})",
    )
    parser.add_argument(
        "--small-threat-prob",
        type=float,
        default=defaults.small_threat_prob,
        help=f"probability that a threat is small, 8-15%% of the side (default {defaults.small_threat_prob:g}"
        f"{note('small_threat_prob')})",
    )


def add_engine(parser) -> None:
    """``--engine`` and ``--variant``: run an export folder's model in a station engine
    (:mod:`xray_seg.serving.engines`; docs/station.md, "Engines")."""
    from xray_seg.serving.engines import ENGINES

    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="run the export folder's model in this engine (default: the SavedModel or Keras model given, as is)",
    )
    parser.add_argument(
        "--variant",
        help="which file of the engine: tflite float32 (default), float16, int8_dynamic or a file name; "
        "onnx/openvino model_<variant>.onnx (default model.onnx)",
    )
