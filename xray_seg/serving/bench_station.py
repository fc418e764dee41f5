"""The station engines side by side: ``xray-seg bench --suite station``.

In one run, on this CPU (named with its vector extensions):

- **Latency**: ``model`` at ``width`` with **random weights** (latency does not depend on
  them), built at the tile size and exported once (the int8 files by
  :mod:`xray_seg.serving.quantize` from tiles of ``voc``'s train split). Each engine runs in
  its own worker process (:mod:`xray_seg.serving.station_worker`); the parent sends requests
  round-robin, so the rounds are interleaved and the order of the engines rotates each round.
  Batch 1: one scan per call at each size (``512`` = one tile; ``1024x3000`` = a belt scan
  through the geometry rule). Printed: the median over the rounds with min-max.
- **Peak RSS** of each worker after its last request (``VmHWM``: its imports, the loaded
  engine and the largest scan), checked: ONNX Runtime's below Keras's.
- **Share of peak**: FLOPs per scan (2 x MACs per tile x tiles) / median latency, over the best
  float32 matmul measured before and after the rounds, and over the theoretical peak.
- **Accuracy** on the val split of ``voc`` with the trained model ``run``, every engine from
  one export of it (int8 variants kept even when the gate rejects them): mIoU, delta vs Keras
  in points, PD at PFA 5 %.

An engine that cannot run here (package or export format missing) gets its reason in the table.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from xray_seg.core.config import save_config
from xray_seg.core.layouts import RunLayout
from xray_seg.evaluation.engine_eval import compare_with, engine_accuracy
from xray_seg.evaluation.flops import count_flops
from xray_seg.evaluation.peak import measure_matmul_peak, theoretical_peak_gflops
from xray_seg.evaluation.timing import cpu_description
from xray_seg.inference.geometry import ScanGeometry
from xray_seg.models.registry import build_model, import_custom_objects
from xray_seg.serving.bench_station_report import header_lines, markdown_table, rss_check, target_lines
from xray_seg.serving.engines import load_engine, read_export
from xray_seg.serving.export_source import load_source
from xray_seg.serving.exporter import export_model
from xray_seg.serving.formats import FORMATS
from xray_seg.serving.quantize import (
    INT8_FORMATS,
    GateSettings,
    calibration_tiles,
    int8_file,
    onnx_static_int8,
    tflite_full_int8,
)
from xray_seg.serving.station_worker import Worker
from xray_seg.training.config import TrainConfig

# label -> (engine, variant, the export format that writes its file)
ENGINE_SPECS = {
    "keras": ("keras", None, None),
    "savedmodel": ("savedmodel", None, "savedmodel"),
    "savedmodel_optimized": ("savedmodel_optimized", None, "savedmodel_optimized"),
    "tflite_f32": ("tflite", "float32", "tflite"),
    "tflite_f16": ("tflite", "float16", "tflite"),
    "tflite_int8_dynamic": ("tflite", "int8_dynamic", "tflite"),
    "tflite_int8": ("tflite", "int8", "tflite_int8"),
    "onnx": ("onnx", None, "onnx"),
    "onnx_int8": ("onnx", "int8", "onnx_int8"),
    "openvino": ("openvino", None, "openvino"),
    "openvino_int8": ("openvino", "int8", "onnx_int8"),
}


@dataclass
class StationSettings:
    """What one station benchmark measures (defaults: full-width CWF-DeepLabv3+, 512 tiles)."""

    model: str = "cwf_deeplabv3plus"
    width: float = 1.0
    classes: int = 6
    tile: int = 512
    sizes: list = field(default_factory=lambda: [(512, 512), (1024, 3000)])
    rounds: int = 5
    engines: list = field(default_factory=lambda: list(ENGINE_SPECS))
    scan_engines: list | None = None  # the engines that also run the sizes after the first (None: all)
    run: str | None = None
    voc: str | None = None
    export: str | None = None
    calibration_tiles: int = 64
    latency_calibration_tiles: int = 16
    peak_sizes: list = field(default_factory=lambda: [512, 1024, 2048, 4096])
    out: str = "bench_station.json"
    keep: str | None = None

    @property
    def scan_labels(self) -> list:
        return [e for e in self.engines if self.scan_engines is None or e in self.scan_engines]


def size_name(size) -> str:
    return f"{size[0]}x{size[1]}"


def make_latency_run(s: StationSettings, work: Path) -> Path:
    """A run folder holding the latency model: ``model`` at ``width``, random weights, ``tile``."""
    run = work / "latency_run"
    run.mkdir(parents=True, exist_ok=True)
    layout = RunLayout(run)
    build_model(s.model, s.classes, (s.tile, s.tile, 3), width=s.width).save(layout.best_model)
    layout.class_names_file.write_text("\n".join(["_background_"] + [f"class{i}" for i in range(1, s.classes)]) + "\n")
    cfg = TrainConfig()
    cfg.model.name, cfg.model.width, cfg.data.image_size = s.model, s.width, (s.tile, s.tile)
    save_config(cfg, layout.config_file)
    return run


def wanted_formats(labels) -> tuple[list[str], dict]:
    """The export formats the engines need that this exporter offers, and why the others cannot run."""
    formats, missing = [], {}
    for label in labels:
        fmt = ENGINE_SPECS[label][2]
        if fmt is None:
            continue
        if fmt not in FORMATS + INT8_FORMATS:
            missing[label] = f"this checkout's exporter has no {fmt} format"
        elif fmt not in formats:
            formats.append(fmt)
    return formats, missing


def export_latency(s: StationSettings, run: Path, work: Path, formats) -> Path:
    """The latency model's export: float formats by the exporter, int8 files by the quantiser (no gate)."""
    out = work / "latency_export"
    float_formats = [f for f in formats if not f.endswith("_int8")]
    if "onnx_int8" in formats and "onnx" not in float_formats:
        float_formats.append("onnx")
    export_model(run, out, formats=float_formats or ["tflite"], force=True, tflite_runs=1, progress=False)
    if s.voc:
        tiles = calibration_tiles(s.voc, ScanGeometry(tile=(s.tile, s.tile)), num=s.latency_calibration_tiles)
    else:
        shape = (s.latency_calibration_tiles, s.tile, s.tile, 3)
        tiles = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    if "tflite_int8" in formats:
        source = load_source(run)
        int8_file(out, "tflite_int8").write_bytes(tflite_full_int8(source.model, source.input_size, tiles))
    if "onnx_int8" in formats:
        onnx_static_int8(out / "model.onnx", int8_file(out, "onnx_int8"), tiles)
    return out


def export_accuracy(s: StationSettings, work: Path, formats) -> Path:
    """An export of the trained ``run`` with every engine's file; int8 variants kept even when rejected."""
    if s.export:
        return Path(s.export)
    out = work / "accuracy_export"
    settings = GateSettings(Path(s.voc), num_tiles=s.calibration_tiles, runs=1, keep_rejected=True)
    calibration = settings if any(f.endswith("_int8") for f in formats) else None
    export_model(s.run, out, formats=formats or ["tflite"], force=True, progress=False, calibration=calibration)
    return out


def start_workers(labels, latency_export: Path, latency_run: Path, missing: dict) -> dict:
    """One worker per engine that can run; ``missing`` gets the reason of each that cannot."""
    workers = {}
    for label in labels:
        if label not in missing:
            engine, variant, _ = ENGINE_SPECS[label]
            workers[label] = Worker(label, latency_run if label == "keras" else latency_export, engine, variant)
    for label, w in list(workers.items()):  # they load in parallel; collect each one's answer
        w.status = w.read()
        if "error" in w.status:
            missing[label] = w.status["error"]
            w.close()
            del workers[label]
    return workers


def run_rounds(workers: dict, sizes, rounds: int, scan_labels) -> dict:
    """``{label: {size: [ms, ...]}}``: one warm-up each, then ``rounds`` rounds, the engine order rotating.

    Sizes after the first run only on ``scan_labels``. Each worker times its own call (no pipe in the figure)."""
    labels = list(workers)
    plan = [(i, size, [lb for lb in labels if i == 0 or lb in scan_labels]) for i, size in enumerate(sizes)]
    for _, size, runners in plan:
        for label in runners:
            workers[label].ask("time", size=list(size))
    times = {label: {} for label in labels}
    for _, size, runners in plan:
        for label in runners:
            times[label][size_name(size)] = []
    for r in range(rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]  # rotate: no engine always first
        for _, size, runners in plan:
            for label in (lb for lb in order if lb in runners):
                times[label][size_name(size)].append(workers[label].ask("time", size=list(size))["ms"])
        print(f"round {r + 1}/{rounds} done", flush=True)
    return times


def latency_flops(s: StationSettings, run: Path) -> dict:
    """GFLOPs of one scan of each size: the tile's (2 x MACs) x the tiles the geometry rule cuts."""
    import keras  # lazy: TensorFlow

    import_custom_objects()
    model = keras.models.load_model(RunLayout(run).best_model, compile=False)
    per_tile = count_flops(model, (s.tile, s.tile, 3)).gflops
    geometry = ScanGeometry(tile=(s.tile, s.tile))
    return {
        size_name(z): {"tiles": geometry.num_tiles(*z), "gflops": per_tile * geometry.num_tiles(*z)} for z in s.sizes
    }


def accuracy_rows(s: StationSettings, export: Path, missing: dict) -> dict:
    """``{label: scores vs Keras}`` on the val split, every engine through the geometry rule."""
    geometry = read_export(export).geometry
    keras_scores = engine_accuracy(load_engine(s.run, "keras"), s.voc, geometry=geometry)
    rows = {"keras": compare_with(keras_scores, keras_scores)}
    for label in s.engines:
        if label == "keras" or label in missing:
            continue
        engine_name, variant, _ = ENGINE_SPECS[label]
        try:
            engine = load_engine(export, engine_name, variant=variant)
            rows[label] = compare_with(engine_accuracy(engine, s.voc, geometry=geometry), keras_scores)
        except Exception as exc:  # one engine failing is a row of the table, not the end of the run
            rows[label] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        print(f"accuracy {label}: {rows[label].get('miou', rows[label].get('error'))}", flush=True)
    return rows


def summarise(times, rss, flops, peak, theoretical) -> dict:
    """Per engine and size: median, min, max, q25, q75 ms and the shares of the peaks."""
    rows = {}
    for label, by_size in times.items():
        rows[label] = {"peak_rss_mb": rss.get(label), "sizes": {}}
        for name, values in by_size.items():
            v = np.asarray(values)
            median = float(np.median(v))
            rate = flops[name]["gflops"] / (median / 1000.0)
            rows[label]["sizes"][name] = {
                "median_ms": median,
                "min_ms": float(v.min()),
                "max_ms": float(v.max()),
                "q25_ms": float(np.percentile(v, 25)),
                "q75_ms": float(np.percentile(v, 75)),
                "runs_ms": [float(x) for x in v],
                "gflops_per_s": rate,
                "share_of_matmul_peak": rate / peak["gflops"],
                "share_of_theoretical_peak": None if not theoretical else rate / theoretical,
            }
    return rows


def time_engines(s: StationSettings, work: Path, missing: dict, formats) -> tuple:
    """The latency run, its FLOPs, and each worker's times and peak RSS (MiB)."""
    run = make_latency_run(s, work)
    start = time.perf_counter()
    export = export_latency(s, run, work, formats)
    print(f"latency export written in {time.perf_counter() - start:.0f} s: {export}", flush=True)
    flops = latency_flops(s, run)
    workers = start_workers(s.engines, export, run, missing)
    try:
        times = run_rounds(workers, s.sizes, s.rounds, s.scan_labels)
        rss = {label: w.ask("rss")["peak_rss_bytes"] / 2**20 for label, w in workers.items()}
    finally:
        for w in workers.values():
            w.close()
    return flops, times, rss


def measure(s: StationSettings, work: Path) -> dict:
    """Exports, workers, the interleaved rounds, RSS, the peaks and accuracy: everything the report shows."""
    formats, missing = wanted_formats(s.engines)
    first_peak = measure_matmul_peak(s.peak_sizes)
    flops, times, rss = time_engines(s, work, missing, formats)
    second_peak = measure_matmul_peak(s.peak_sizes)
    peak = {**max(first_peak, second_peak, key=lambda p: p["gflops"]), "runs": first_peak["runs"] + second_peak["runs"]}
    cpu = cpu_description()
    theoretical = theoretical_peak_gflops(cpu)
    accuracy = {}
    if s.run and s.voc:
        accuracy = accuracy_rows(s, export_accuracy(s, work, formats), dict(missing))
    return {
        "cpu": cpu,
        "theoretical_peak_gflops": theoretical,
        "matmul_peak": peak,
        "flops": flops,
        "engines": summarise(times, rss, flops, peak, theoretical),
        "accuracy": accuracy,
        "not_run": missing,
    }


def bench_station(s: StationSettings, command: str = "") -> dict:
    """Measure, print the header, the table and the checks, and write ``s.out`` (JSON)."""
    work = Path(s.keep) if s.keep else Path(tempfile.mkdtemp(prefix="bench_station_"))
    start = time.perf_counter()
    results = measure(s, work)
    results["command"] = command or "xray-seg bench --suite station " + " ".join(sys.argv[1:])
    results["settings"] = asdict(s)
    results["wall_s"] = time.perf_counter() - start
    print()
    print("\n".join(header_lines(s, results)))
    print()
    results["table"] = markdown_table(s.engines, results, [size_name(z) for z in s.sizes])
    print(results["table"])
    print()
    results["checks"] = target_lines(results["engines"], results["accuracy"], size_name(s.sizes[0]))
    results["checks"] += rss_check(results["engines"])
    print("\n".join(results["checks"]))
    Path(s.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {s.out} ({results['wall_s']:.0f} s)")
    return results
