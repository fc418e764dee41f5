"""``xray-seg train``: train a model on a VOC dataset (see :mod:`xray_seg.training.trainer`)."""

from __future__ import annotations

import time
from pathlib import Path

from xray_seg.commands._arguments import add_overrides

NAME = "train"
DEFAULT_PRESET = "cwf_xray512"
HELP = "train a segmentation model on a VOC dataset (Mirrored/MultiWorker strategies)"
DESCRIPTION = """Train a model on a VOC folder written by `xray-seg convert`.

Presets: cwf_xray512 (paper 1), demo_cpu (small, minutes on a CPU), sgd_poly (SGD recipe),
or a YAML file. Any setting can be overridden with --set section.key=value, e.g.
  xray-seg train data/demo/voc --preset demo_cpu --set optim.lr=3e-4 --set data.augment.rotate=false

Strategy: all visible GPUs with MirroredStrategy (--devices 0,1 to choose); --cpu-replicas N
splits the CPU into N replicas; with TF_CONFIG set, MultiWorkerMirroredStrategy.
--resume continues a run exactly (weights, optimizer, epoch, data stream). It takes the run's
saved config.yaml; only --epochs may change (grow). Any other setting given with --resume
(dataset, --preset, --model, --lr, --batch-size, --set ...) that differs from the saved one
is refused, naming it, because the run would no longer be exact: start a new run instead.

--init SOURCE starts a new run (epoch 1, fresh optimizer) from a model: a run folder (its best
weights; RUN:last for the last epoch's), a .keras file, a .weights.h5 file (with --init-classes)
or preset:NAME (`xray-seg models --presets`). Weights are copied by layer path and shape, the
classifier rows by class name; RUN/init_report.json lists what was loaded. Unless --model or
--set model.name/model.width is given, the model and width are the source's.
"""


def add_arguments(parser):
    parser.add_argument("voc_dir", nargs="?", help="VOC dataset folder (not needed with --resume)")
    parser.add_argument("--preset", help="bundled preset name or YAML file (default: cwf_xray512)")
    parser.add_argument("--run-dir", help="output run folder (default: runs/<model>-<time>)")
    parser.add_argument("--model", help="model name (see `xray-seg models`)")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--batch-size", type=int, help="batch size per replica")
    parser.add_argument("--lr", type=float, help="base learning rate")
    add_overrides(parser, "override any config setting (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir exactly")
    parser.add_argument(
        "--init", metavar="SOURCE", help="start from a model: RUN, RUN:last, .keras, .weights.h5, preset:NAME"
    )
    parser.add_argument(
        "--init-classes", metavar="FILE", help="class names of an --init source that names none (.weights.h5)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing run folder")
    parser.add_argument("--devices", help="GPU indices for MirroredStrategy, e.g. 0,1,2,3")
    parser.add_argument("--cpu-replicas", type=int, default=1, help="split the CPU into N logical replicas")
    parser.add_argument("--mixed-precision", choices=["mixed_float16", "mixed_bfloat16"], help="mixed precision policy")
    parser.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA")
    parser.add_argument("--sync-bn", action="store_true", help="synchronised batch norm across replicas")
    parser.add_argument(
        "--stop-after-epochs",
        type=int,
        help="end this session after N epochs (schedule unchanged); continue later with --resume",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def build_config(args):
    """The config to train: preset and flags, or with --resume the run's saved config with the
    flags applied (:func:`~xray_seg.training.trainer.train` refuses one that differs from it)."""
    from xray_seg.core.config import load_config
    from xray_seg.training.config import TrainConfig

    if args.resume:
        return _requested_config(args)
    return load_config(TrainConfig, args.preset or DEFAULT_PRESET, _overrides(args))


def _overrides(args) -> list[str]:
    overrides = list(args.overrides)
    flag_settings = {
        "data.voc_dir": args.voc_dir,
        "model.name": args.model,
        "epochs": args.epochs,
        "data.batch_size": args.batch_size,
        "optim.lr": args.lr,
        "mixed_precision": args.mixed_precision,
    }
    overrides += [f"{k}={v}" for k, v in flag_settings.items() if v is not None]
    if args.jit_compile:
        overrides.append("jit_compile=true")
    if args.sync_bn:
        overrides.append("sync_bn=true")
    return overrides


def _requested_config(args):
    """The config a --resume asks for: the saved one with the given preset/flags applied."""
    from xray_seg.core.config import load_config, override_config
    from xray_seg.training.config import TrainConfig
    from xray_seg.training.trainer import resume_config

    if args.preset is not None:
        return load_config(TrainConfig, args.preset, _overrides(args))
    return override_config(resume_config(args.run_dir), _overrides(args))


def run(args):
    from xray_seg.core.errors import ConfigError
    from xray_seg.training.trainer import train

    if args.resume and not args.run_dir:
        raise ConfigError("--resume needs --run-dir", fix="give the run folder to continue")
    if args.resume and (args.init or args.init_classes):
        raise ConfigError(
            "--init starts a new run from a model, --resume continues this run from its own checkpoint",
            path=args.run_dir,
            fix="give one of them: --resume to continue, or --init with a new --run-dir",
        )
    cfg = build_config(args)
    if args.init_classes and not args.init:
        raise ConfigError("--init-classes names the classes of an --init source", fix="give --init SOURCE too")
    if args.init:
        cfg = _init_config(cfg, args)
    run_dir = Path(args.run_dir or f"runs/{cfg.model.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    result = train(
        cfg,
        run_dir,
        resume=args.resume,
        force=args.force,
        devices=args.devices,
        cpu_replicas=args.cpu_replicas,
        verbose=0 if args.quiet else 1,
        stop_after_epochs=args.stop_after_epochs,
    )
    print(
        f"done: best val mIoU {result.best_miou:.4f} at epoch {result.best_epoch}; "
        f"{result.train_images_per_sec:.1f} train images/s; {result.seconds:.0f} s; run folder {result.run_dir}"
    )
    return 0


def _init_config(cfg, args):
    """``cfg`` starting from ``--init``; the source's model and width unless the command gives them."""
    from dataclasses import replace

    from xray_seg.training.init_source import adopt_source_architecture, resolve_init_source

    cfg = replace(cfg, init=args.init, init_classes=args.init_classes or "", init_sha256="")
    given = args.model is not None or any(
        o.split("=")[0].strip() in ("model.name", "model.width") for o in args.overrides
    )
    if given:
        return cfg
    adopted = adopt_source_architecture(cfg, resolve_init_source(cfg.init, cfg.init_classes))
    if (adopted.model.name, adopted.model.width) != (cfg.model.name, cfg.model.width):
        print(f"model from --init {args.init}: {adopted.model.name} width {adopted.model.width:g}")
    return adopted
