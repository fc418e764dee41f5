"""``xray-seg demo``: the main job on the embedded synthetic dataset (see :mod:`xray_seg.demo`)."""

from __future__ import annotations

NAME = "demo"
HELP = "synthesise, convert, train, evaluate, export and predict on the embedded synthetic data"
DESCRIPTION = """Run the whole path data takes on the embedded synthetic X-ray dataset:
synth -> convert -> train (CWF-DeepLabv3+, preset demo_cpu) -> evaluate -> export -> predict.
The output folder (default runs/demo) belongs to the demo and is replaced on every run."""


def add_arguments(parser):
    parser.add_argument("--out", default="runs/demo", help="demo folder, replaced on every run (default: runs/demo)")
    parser.add_argument("--num-images", type=int, default=600, help="synthetic images (default: 600)")
    parser.add_argument("--size", type=int, default=256, help="synthetic image size (default: 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threat-prob", type=float, default=1.0,
                        help="probability that a bag holds a threat (default: 1; synth uses 0.85)")
    parser.add_argument("--clutter", choices=("low", "medium", "high"), default="low",
                        help="bag clutter of the synthetic data (default: low; `xray-seg synth` uses medium)")
    parser.add_argument("--hide-prob", type=float, default=0.0,
                        help="probability that a threat is hidden under clutter (default: 0; synth uses 0.33)")
    parser.add_argument("--small-threat-prob", type=float, default=0.0,
                        help="probability that a threat is small (default: 0; synth uses 0.125)")
    parser.add_argument("--preset", default="demo_cpu", help="training preset (default: demo_cpu)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting, e.g. --set epochs=2")


def run(args):
    from xray_seg.demo import DemoConfig, run_demo

    run_demo(DemoConfig(
        out=args.out, num_images=args.num_images, image_size=args.size, seed=args.seed,
        threat_prob=args.threat_prob, clutter=args.clutter, hide_prob=args.hide_prob,
        small_threat_prob=args.small_threat_prob, preset=args.preset, overrides=args.overrides,
    ))
    return 0
