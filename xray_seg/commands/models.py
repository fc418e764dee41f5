"""``xray-seg models``: list the registered models with parameters and FLOPs."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list the registered models with parameter counts and GFLOPs"
DESCRIPTION = """\
List every registered segmentation model (the names `xray-seg train --model` accepts),
with its parameter count and its compute for one image at the given size (512x512 by
default, the papers' input), built at full width.

--presets lists the pretrained presets instead (`xray-seg train VOC --init preset:NAME`,
`xray_seg.Segmenter.from_preset(NAME)`): name, model, width, classes, val mIoU, file size.

GMACs are multiply-accumulates of the convolutions/matmuls (what papers usually print
as "FLOPs"); GFLOPs = 2 x GMACs. Counted on the traced TensorFlow graph, batch 1.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int, default=512, help="square input size in pixels (default 512)")
    parser.add_argument("--num-classes", type=int, default=6, help="classes incl. background (default 6, paper 1)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1.0 = paper size)")
    parser.add_argument("--names-only", action="store_true", help="only list names and descriptions (instant)")
    parser.add_argument(
        "--presets", action="store_true", help="list the pretrained presets (`train --init preset:NAME`) instead"
    )
    parser.add_argument("models", nargs="*", help="only these models (default: all)")


def run(args) -> int:
    from xray_seg.core.errors import ConfigError
    from xray_seg.models.registry import available_models

    if args.presets:
        return _print_presets()
    specs = available_models()
    if args.models:
        known = {s.name: s for s in specs}
        unknown = [m for m in args.models if m not in known]
        if unknown:
            raise ConfigError(f"unknown model(s): {', '.join(unknown)}", fix=f"use one of: {', '.join(known)}")
        specs = [known[m] for m in args.models]
    if args.size < 32 or args.num_classes < 1 or args.width <= 0:
        raise ConfigError("--size must be >= 32, --num-classes >= 1, --width > 0", fix="pass sensible values")

    if args.names_only:
        for spec in specs:
            print(f"{spec.name:28s} {spec.description}  [{spec.paper}]")
        return 0

    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    from tqdm import tqdm

    from xray_seg.evaluation.flops import count_flops, count_params
    from xray_seg.models.registry import build_model

    shape = (args.size, args.size, 3)
    rows = []
    for spec in tqdm(specs, desc="building models", unit="model", leave=False):
        model = build_model(spec.name, args.num_classes, shape, width=args.width)
        trainable, frozen = count_params(model)
        flops = count_flops(model, shape)
        rows.append((spec, trainable + frozen, flops))
        del model
        keras.backend.clear_session()

    print(
        f"{'model':28s} {'params (M)':>10s} {'GMACs':>8s} {'GFLOPs':>8s}  description  [paper]   @ {args.size}x{args.size}"
    )
    for spec, params, flops in rows:
        print(
            f"{spec.name:28s} {params / 1e6:10.2f} {flops.gmacs:8.3f} {flops.gflops:8.3f}  {spec.description}  [{spec.paper}]"
        )
    return 0


def _print_presets() -> int:
    """The pretrained presets as a table (their manifests; nothing is loaded or hashed)."""
    from xray_seg.core.pretrained_presets import list_presets, preset_folders

    presets = list_presets()
    if not presets:
        print(f"no pretrained presets found (searched {', '.join(str(p) for p in preset_folders())})")
        return 0
    print(f"{'name':24s} {'model':28s} {'width':>6s} {'classes':>7s} {'val mIoU':>8s} {'size':>8s}  description")
    for p in presets:
        miou = f"{p.val_miou:.4f}" if p.val_miou is not None else "-"
        size = f"{p.model_file.stat().st_size / 1e6:.1f} MB" if p.model_file.is_file() else "missing"
        print(
            f"{p.name:24s} {p.model:28s} {p.width:6g} {len(p.class_names):7d} {miou:>8s} {size:>8s}  "
            f"{p.manifest.get('description', '')}"
        )
    return 0
