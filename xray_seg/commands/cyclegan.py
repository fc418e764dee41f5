"""``xray-seg cyclegan train|translate``: photo -> X-ray domain transfer (paper 1, §4.2)."""

from __future__ import annotations

import argparse

NAME = "cyclegan"
HELP = "CycleGAN augmentation: learn photo -> X-ray style, translate a Labelme folder"
DESCRIPTION = """\
Paper 1 (section 4.2) enlarges its rare threat classes by translating ordinary photos of
prohibited items into X-ray security image style with CycleGAN (Zhu et al. 2017).

  xray-seg cyclegan train --a PHOTOS_DIR --b XRAY_DIR --run-dir R [--epochs N] [--size PX]
      learns the two mappings from two unpaired image folders (no labels needed);
      writes checkpoints, sample grids and the generators to R. --resume continues R.
  xray-seg cyclegan translate --run-dir R --labelme-dir IN --out OUT
      translates every image of a Labelme folder into X-ray style and writes a new
      Labelme folder with the same shapes; feed it to `xray-seg convert`.

`xray-seg synth --style photo` writes a labelled photo folder to try it with.
"""


def add_arguments(parser) -> None:
    from xray_seg.synthesis.cyclegan.config import CycleGANConfig

    d = CycleGANConfig()
    sub = parser.add_subparsers(dest="cyclegan_command", metavar="{train,translate}")
    sub.required = True
    train = sub.add_parser(
        "train",
        help="train a CycleGAN on two unpaired image folders",
        description="Train a CycleGAN (Zhu et al. 2017) between photos (A) and X-ray scans (B). Defaults are the "
        "paper's (ngf/ndf 64, 9 residual blocks at 256 px and 6 below, 200 epochs with linear decay over the "
        "last 100, lr 2e-4, lambda 10, identity 0.5, pool 50). For a CPU try --size 128 --ngf 8 --ndf 16 --blocks 4.",
    )
    train.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    train.add_argument("--a", dest="a_dir", help="folder of domain-A images (photos of items)")
    train.add_argument("--b", dest="b_dir", help="folder of domain-B images (X-ray scans)")
    train.add_argument("--run-dir", required=True, help="run folder (refused if it exists, unless --resume or --force)")
    train.add_argument("--epochs", type=int, help=f"total epochs (default {d.epochs}; half constant, half decaying)")
    train.add_argument(
        "--decay-epochs", type=int, help="epochs of linear learning-rate decay (default: half of --epochs)"
    )
    train.add_argument("--size", type=int, help=f"square crop side in pixels, a multiple of 4 (default {d.size})")
    train.add_argument("--load-size", type=int, help="shorter side before cropping (default size*286/256)")
    train.add_argument("--steps-per-epoch", type=int, help="steps per epoch (default: the larger folder's size)")
    train.add_argument("--batch-size", type=int, help=f"images per step (default {d.batch_size})")
    train.add_argument("--ngf", type=int, help=f"generator width (default {d.ngf})")
    train.add_argument("--ndf", type=int, help=f"discriminator width (default {d.ndf})")
    train.add_argument(
        "--blocks", dest="num_blocks", type=int, help="generator residual blocks (default 9 at >= 256 px, else 6)"
    )
    train.add_argument("--lr", type=float, help=f"Adam learning rate (default {d.lr})")
    train.add_argument("--lambda-cycle", type=float, help=f"cycle-consistency weight (default {d.lambda_cycle})")
    train.add_argument(
        "--lambda-identity", type=float, help=f"identity weight relative to lambda-cycle (default {d.lambda_identity})"
    )
    train.add_argument("--pool-size", type=int, help=f"image pool size (default {d.pool_size})")
    train.add_argument("--seed", type=int, help=f"random seed (default {d.seed})")
    train.add_argument("--stop-after-epochs", type=int, help="end this session after N epochs; continue with --resume")
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its last checkpoint")
    mode.add_argument("--force", action="store_true", help="replace an existing --run-dir")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    translate = sub.add_parser(
        "translate",
        help="translate a Labelme folder into X-ray style, keeping its shapes",
        description="Apply a trained G_AB to every image of a Labelme folder at its own size and write a new "
        "Labelme folder: same shapes and image size, imagePath pointing at the translated PNG.",
    )
    translate.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    translate.add_argument("--run-dir", required=True, help="a run folder of `xray-seg cyclegan train`")
    translate.add_argument(
        "--labelme-dir", required=True, help="Labelme folder to translate (e.g. from synth --style photo)"
    )
    translate.add_argument("--out", required=True, help="output Labelme folder (refused if it exists, unless --force)")
    translate.add_argument("--direction", choices=["a2b", "b2a"], default="a2b", help="a2b: photo -> X-ray (default)")
    translate.add_argument("--force", action="store_true", help="replace an existing output folder")
    translate.add_argument("--quiet", action="store_true", help="no progress bar")


_TRAIN_KEYS = (
    "a_dir",
    "b_dir",
    "epochs",
    "decay_epochs",
    "size",
    "load_size",
    "steps_per_epoch",
    "batch_size",
    "ngf",
    "ndf",
    "num_blocks",
    "lr",
    "lambda_cycle",
    "lambda_identity",
    "pool_size",
    "seed",
)


def run(args) -> int:
    if args.cyclegan_command == "train":
        return _train(args)
    return _translate(args)


def _train(args) -> int:
    from xray_seg.core.config import load_config
    from xray_seg.core.errors import ConfigError
    from xray_seg.synthesis.cyclegan.config import CycleGANConfig
    from xray_seg.synthesis.cyclegan.trainer import train_cyclegan

    overrides = {key: getattr(args, key) for key in _TRAIN_KEYS if getattr(args, key) is not None}
    if args.resume:
        ignored = sorted(set(overrides) - {"epochs"})
        if ignored:
            raise ConfigError(
                f"--resume takes its settings from the run folder; got {', '.join(ignored)}",
                fix="drop those flags (only --epochs may change on --resume)",
            )
    elif not (args.a_dir and args.b_dir):
        raise ConfigError("cyclegan train needs --a PHOTOS_DIR and --b XRAY_DIR", fix="give both image folders")
    config = load_config(CycleGANConfig, None, overrides)
    result = train_cyclegan(
        config,
        args.run_dir,
        resume=args.resume,
        force=args.force,
        epochs=args.epochs if args.resume else None,
        stop_after_epochs=args.stop_after_epochs,
        progress=not args.quiet,
    )
    print(f"{result.epochs_done} epochs done in {args.run_dir} ({result.seconds:.0f} s this session)")
    if result.history:
        last = result.history[-1]
        print(
            f"last epoch: cycle {last['cycle']:.4f}, generator {last['g_adv']:.4f}, "
            f"discriminators {last['d_a'] + last['d_b']:.4f}; samples in {args.run_dir}/samples/"
        )
    return 0


def _translate(args) -> int:
    from xray_seg.synthesis.cyclegan.translate import translate_labelme_dir

    report = translate_labelme_dir(
        args.run_dir, args.labelme_dir, args.out, direction=args.direction, force=args.force, progress=not args.quiet
    )
    print(report.summary())
    return report.exit_code
