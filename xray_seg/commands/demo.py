"""``xray-seg demo``: the main job on the embedded synthetic dataset (see :mod:`xray_seg.demo`)."""

from __future__ import annotations

from xray_seg.commands._arguments import add_bag_difficulty, add_overrides

NAME = "demo"
HELP = "synthesise, convert, train, evaluate, export and predict on the embedded synthetic data"
DESCRIPTION = """Run the whole path data takes on the embedded synthetic X-ray dataset:
synth -> convert -> train (CWF-DeepLabv3+, preset demo_cpu) -> evaluate -> export -> predict.
The output folder (default runs/demo) belongs to the demo and is replaced on every run; a
folder the demo did not make is refused (never deleted), and every option is checked first."""


def add_arguments(parser):
    from xray_seg.demo import DemoConfig
    from xray_seg.synthesis.scene import SynthConfig

    d, synth = DemoConfig(), SynthConfig()
    parser.add_argument("--out", default=d.out, help=f"demo folder, replaced on every run (default: {d.out})")
    parser.add_argument(
        "--num-images", type=int, default=d.num_images, help=f"synthetic images (default: {d.num_images})"
    )
    parser.add_argument(
        "--size", type=int, default=d.image_size, help=f"synthetic image size (default: {d.image_size})"
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    add_bag_difficulty(parser, d, synth)
    parser.add_argument(
        "--clean-val-bags",
        type=int,
        default=d.clean_val_bags,
        help=f"threat-free bags added to val only, to measure false alarms (default: {d.clean_val_bags}; 0: none)",
    )
    parser.add_argument("--preset", default=d.preset, help=f"training preset (default: {d.preset})")
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace --out even if another xray-seg command made it (a folder xray-seg did not make is never deleted)",
    )
    add_overrides(parser, "override a training setting, e.g. --set epochs=2")


def run(args):
    from xray_seg.demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            out=args.out,
            num_images=args.num_images,
            image_size=args.size,
            seed=args.seed,
            threat_prob=args.threat_prob,
            clean_val_bags=args.clean_val_bags,
            clutter=args.clutter,
            hide_prob=args.hide_prob,
            small_threat_prob=args.small_threat_prob,
            preset=args.preset,
            overrides=args.overrides,
            force=args.force,
        )
    )
    return 0
