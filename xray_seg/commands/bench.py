"""``xray-seg bench``: FPS of a model at batch 1, and the benchmark suites (see docs/benchmarks.md)."""

from __future__ import annotations

NAME = "bench"
HELP = "FPS at batch 1 (model only, end to end), and the models, station, pipeline and train-step suites"
DESCRIPTION = """Measure FPS as in paper 1's Table 3 (median after a warm-up, with the spread).

  xray-seg bench runs/demo/run runs/demo/voc/JPEGImages/ --runs 30
  xray-seg bench export/savedmodel scans/*.png --out bench.json
  xray-seg bench export scans/*.png --engine openvino

--engine times the export folder's model in that engine (see `xray-seg predict --help`).

Suites (options in their groups below; unset ones take the suite's defaults):

  xray-seg bench --suite models --models cwf_deeplabv3plus deeplabv3plus --runs 10
  KERAS_BACKEND=jax xray-seg bench --suite models --backend jax --out bench_gpu.json
  xray-seg bench --suite models --backend both --size 512 --rounds 3 --runs 5
  xray-seg bench --suite station --run runs/demo/run --voc runs/demo/voc --rounds 3
  xray-seg bench --suite pipeline --voc data/bench_voc --size 512 --batch 4
  xray-seg bench --suite pipeline --tip --size 256 --batch 8 --images 96 --passes 3
  xray-seg bench --suite train-step --settings fp32 bf16 --runs 5
  xray-seg bench --suite memory --width 0.0625 --memory-sizes 1000,4000,7900x8000
"""
SUITES = ("fps", "models", "station", "pipeline", "train-step", "memory")
# each suite's defaults for the options the suites share (None on the command line)
DEFAULTS = {
    "fps": {"runs": 30, "warmup": 5},
    "models": {"size": 512, "width": 1.0, "model": None},
    "station": {"width": 1.0, "rounds": 5, "model": "cwf_deeplabv3plus", "out": "bench_station.json"},
    "pipeline": {"size": 512, "batch": 4, "passes": 5},
    "train-step": {"size": 256, "width": 0.25, "batch": 8, "runs": 5, "warmup": 3, "model": "cwf_deeplabv3plus"},
    "memory": {"width": 0.0625, "model": "cwf_deeplabv3plus"},
}
MODELS_BACKEND_DEFAULTS = {"tensorflow": (10, 2), "jax": (20, 3), "both": (5, 2)}  # runs, warmup


def _add_fps(parser) -> None:
    from xray_seg.commands._arguments import add_engine

    group = parser.add_argument_group("fps (the default suite): a model's FPS")
    group.add_argument("model_path", nargs="?", metavar="model", help="run folder, .keras file or SavedModel folder")
    group.add_argument("inputs", nargs="*", help="image files, folders or globs used for the end-to-end figure")
    group.add_argument("--tta", default="", help="test-time augmentation for the end-to-end figure")
    add_engine(group)


def _add_shared(parser) -> None:
    group = parser.add_argument_group("shared by the suites")
    group.add_argument("--suite", choices=SUITES, default="fps", help="what to measure (default: fps)")
    group.add_argument("--runs", type=int, help="timed runs (fps 30, models 10 (jax 20, both 5), train-step 5 blocks)")
    group.add_argument("--warmup", type=int, help="untimed warm-up runs (fps 5, models 2 (jax 3), train-step 3 steps)")
    group.add_argument("--out", help="also write the figures to this JSON file (station: bench_station.json)")
    group.add_argument("--force", action="store_true", help="replace an existing --out file")
    group.add_argument("--model", help="the network of station and train-step (default cwf_deeplabv3plus)")
    group.add_argument("--width", type=float, help="model width (models, station 1.0; train-step 0.25)")
    group.add_argument("--size", type=int, help="square input size (models, pipeline 512; train-step 256)")
    group.add_argument("--batch", type=int, help="batch size (pipeline 4, train-step 8)")
    group.add_argument("--rounds", type=int, help="interleaved rounds (station 5, models --backend both 3)")
    group.add_argument("--voc", help="VOC folder (station: val for accuracy, train for int8; pipeline: the data)")


def _add_models(parser) -> None:
    group = parser.add_argument_group("--suite models")
    group.add_argument("--models", nargs="*", default=[], help="registry names (default: all; jax: paper 1's five)")
    group.add_argument("--backend", choices=["tensorflow", "jax", "both"], default="tensorflow")
    group.add_argument("--num-classes", type=int, default=6)
    group.add_argument("--jit", choices=["both", "on", "off", "all"], default="all", help="tensorflow settings")
    group.add_argument("--matmul-size", type=int, default=2048, help="n of the n x n matmul peak")
    group.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TensorFlow default)")
    group.add_argument("--batch-sizes", default="1,16", help="jax: comma-separated")
    group.add_argument("--dtypes", default="float32,bfloat16", help="jax: comma-separated")
    group.add_argument("--train-batch", type=int, default=16, help="jax: training batch (0: skip)")
    group.add_argument("--train-steps", type=int, default=10, help="jax: timed training steps")


def _add_station(parser) -> None:
    group = parser.add_argument_group("--suite station")
    group.add_argument("--classes", type=int, default=6)
    group.add_argument("--tile", type=int, default=512, help="tile size of the latency model")
    group.add_argument("--sizes", default="512,1024x3000", help="scan sizes HxW (N = NxN), comma-separated")
    group.add_argument("--engines", default="all", help="comma-separated subset of the station engines")
    group.add_argument("--scan-engines", default="all", help="the engines that also run the sizes after the first")
    group.add_argument("--run", help="trained run folder for accuracy (e.g. runs/demo/run)")
    group.add_argument("--export", help="an export of --run with every engine's file (default: exported here)")
    group.add_argument("--calibration-tiles", type=int, default=64, help="int8 calibration tiles, trained model")
    group.add_argument("--latency-calibration-tiles", type=int, default=16, help="... of the random-weight model")
    group.add_argument("--peak-sizes", default="512,1024,2048,4096", help="n of the n x n matmuls of the peak")
    group.add_argument("--keep", help="keep the exports in this folder (default: a temporary one)")


def _add_pipeline(parser) -> None:
    group = parser.add_argument_group("--suite pipeline")
    group.add_argument("--split", default="train")
    group.add_argument("--images", type=int, default=64, help="images per timed pass")
    group.add_argument("--passes", type=int, help="timed passes after the warm-up (default 5)")
    group.add_argument("--random-images", type=int, default=32, help="images of the random folder (no --voc)")
    group.add_argument("--cache", action="store_true", help="also time the training pipeline with cache=True")
    group.add_argument("--tip", action="store_true", help="also TIP against the training step (3x target)")
    group.add_argument("--max-threats", type=int, default=2)
    group.add_argument("--num", type=int, default=24, help="synthetic bags of --tip without --voc")
    group.add_argument("--steps", type=int, help="timed training steps (pipeline --tip 3; train-step: per block 5)")


def _add_train_step(parser) -> None:
    group = parser.add_argument_group("--suite train-step")
    group.add_argument("--settings", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16", "xla", "bf16+xla"])
    group.add_argument("--loss", choices=["ohem", "ce"], default="ohem")
    group.add_argument("--preset", nargs="*", default=[], help="time these presets' model, size, batch and loss")
    group.add_argument("--isa", nargs="*", default=["native"], help="oneDNN ISA caps: native, avx2, avx512_core, ...")
    group.add_argument("--bn", choices=["fused", "keras", "both"], default="fused", help="batch norm kernel")
    group.add_argument("--option", action="append", default=[], metavar="KEY=YAML", help="model builder option")


def _add_memory(parser) -> None:
    group = parser.add_argument_group("--suite memory (also --model, --width, --classes, --tile, --keep)")
    group.add_argument("--memory-sizes", default="1000,4000,7900x8000", help="scan sizes HxW (N = NxN)")
    group.add_argument(
        "--routes",
        default="keras,savedmodel,tflite,serving_default",
        help="comma-separated subset: keras (predict RUN), savedmodel (predict EXPORT/savedmodel), "
        "tflite (predict EXPORT --engine tflite), serving_default (plain TensorFlow, the whole scan)",
    )
    group.add_argument("--rss-cap", type=float, default=12.0, help="GB: a process past it is killed and reported")


def add_arguments(parser):
    _add_fps(parser)
    _add_shared(parser)
    _add_models(parser)
    _add_station(parser)
    _add_pipeline(parser)
    _add_train_step(parser)
    _add_memory(parser)


def _filled(args):
    for key, value in DEFAULTS[args.suite].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def _check_out(args) -> None:
    """Refuse an ``--out`` given on the command line before any work (docs/data_safety.md, Output files):
    it may not be, contain or lie inside a model, an image or a dataset given here, and an existing
    file is replaced only with ``--force``. The figures are then written atomically."""
    if not args.out:
        return
    from xray_seg.core.fileio import prepare_output_file

    inputs = [getattr(args, key, None) for key in ("model_path", "voc", "run", "export")]
    if args.inputs:
        from xray_seg.inference.prediction_files import expand_inputs

        inputs += [*args.inputs, *expand_inputs(args.inputs)]
    prepare_output_file(args.out, force=args.force, inputs=inputs, what="--out file")


def run(args):
    from xray_seg.core.errors import ConfigError

    _check_out(args)
    args = _filled(args)
    if args.suite == "fps":
        if not args.model_path or not args.inputs:
            raise ConfigError(
                "xray-seg bench needs a model and inputs", fix="xray-seg bench MODEL SCANS... (or --suite)"
            )
        return _run_fps(args)
    suites = {"models": _run_models, "station": _run_station, "pipeline": _run_pipeline}
    suites.update({"train-step": _run_train_step, "memory": _run_memory})
    return suites[args.suite](args)


def _run_fps(args):
    from xray_seg import Segmenter
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.inference.prediction_files import expand_inputs
    from xray_seg.inference.tta_options import tta_options

    paths = expand_inputs(args.inputs)
    result = Segmenter.load(args.model_path, engine=args.engine, variant=args.variant).benchmark(
        paths, runs=args.runs, warmup=args.warmup, tta=tta_options(args.tta)
    )
    if args.out:
        write_json_atomic(args.out, result)
    return 0


def _run_models(args):
    from xray_seg.evaluation.bench_backends import ModelsSettings, bench_both, bench_jax

    runs, warmup = MODELS_BACKEND_DEFAULTS[args.backend]
    settings = ModelsSettings(
        models=args.models, size=args.size, width=args.width, num_classes=args.num_classes,
        runs=args.runs or runs, warmup=warmup if args.warmup is None else args.warmup, backend=args.backend,
        jit=args.jit, matmul_size=args.matmul_size, threads=args.threads,
        batch_sizes=[int(b) for b in args.batch_sizes.split(",")], dtypes=args.dtypes.split(","),
        train_batch=args.train_batch, train_steps=args.train_steps, rounds=args.rounds or 3, out=args.out,
    )  # fmt: skip
    if args.backend == "jax":
        return bench_jax(settings)
    if args.backend == "both":
        return bench_both(settings)
    from xray_seg.evaluation.bench_models import bench_models

    return bench_models(settings)


def _size(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _run_station(args):
    from xray_seg.core.errors import ConfigError
    from xray_seg.serving.bench_station import ENGINE_SPECS, StationSettings, bench_station

    engines = list(ENGINE_SPECS) if args.engines == "all" else [e.strip() for e in args.engines.split(",")]
    bad = [e for e in engines if e not in ENGINE_SPECS]
    if bad:
        raise ConfigError(f"unknown engine(s) {bad}", fix=f"use a subset of {','.join(ENGINE_SPECS)}")
    settings = StationSettings(
        model=args.model, width=args.width, classes=args.classes, tile=args.tile,
        sizes=[_size(z) for z in args.sizes.split(",") if z.strip()], rounds=args.rounds, engines=engines,
        scan_engines=None if args.scan_engines == "all" else [e.strip() for e in args.scan_engines.split(",")],
        run=args.run, voc=args.voc, export=args.export, calibration_tiles=args.calibration_tiles,
        latency_calibration_tiles=args.latency_calibration_tiles,
        peak_sizes=[int(n) for n in args.peak_sizes.split(",")], out=args.out, keep=args.keep,
    )  # fmt: skip
    bench_station(settings)
    return 0


def _run_pipeline(args):
    from xray_seg.training.bench_pipeline import PipelineSettings, bench_pipeline

    settings = PipelineSettings(
        voc=args.voc, split=args.split, size=args.size, batch=args.batch, images=args.images, passes=args.passes,
        random_images=args.random_images, cache=args.cache, tip=args.tip, max_threats=args.max_threats,
        num=args.num, steps=args.steps or 3,
    )  # fmt: skip
    return bench_pipeline(settings)


def _run_train_step(args):
    from xray_seg.training.bench_train_step import TrainStepSettings, bench_train_step

    settings = TrainStepSettings(
        settings=args.settings, model=args.model, width=args.width, size=args.size, batch=args.batch,
        loss=args.loss, presets=args.preset, isa=args.isa, bn=args.bn, options=args.option,
        steps=args.steps or 5, runs=args.runs, warmup=args.warmup,
    )  # fmt: skip
    return bench_train_step(settings)


def _run_memory(args):
    from xray_seg.core.errors import ConfigError
    from xray_seg.core.fileio import write_json_atomic
    from xray_seg.serving.bench_memory import ROUTES, MemorySettings, bench_memory

    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not routes or any(r not in ROUTES for r in routes):
        raise ConfigError(f"--routes {args.routes!r}: unknown route", fix=f"use a subset of {','.join(ROUTES)}")
    settings = MemorySettings(
        model=args.model, width=args.width, classes=args.classes, tile=args.tile, routes=routes,
        sizes=[_size(z) for z in args.memory_sizes.split(",") if z.strip()], rss_cap_gb=args.rss_cap, keep=args.keep,
    )  # fmt: skip
    rows = bench_memory(settings)
    if args.out:
        write_json_atomic(args.out, {"settings": vars(settings), "rows": rows})
    return 0
