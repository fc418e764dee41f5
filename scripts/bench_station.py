"""The station engines side by side: latency, peak RSS, share of the CPU's peak, accuracy (issue 20).

In ONE run, on this CPU (named in the output with its vector extensions):

- **Latency**: CWF-DeepLabv3+ at full width (``--width``), 6 classes, **random weights**
  (latency does not depend on them), built at the tile size ``--tile`` (512) and exported
  once (``xray_seg.serving.exporter.export_model``; the int8 files by
  ``xray_seg.serving.quantize`` from tiles of ``--voc``'s train split). Each engine runs in
  **its own worker process** (this script with ``--worker``); the parent sends requests
  round-robin, so the rounds are interleaved and load from other processes hits every
  engine alike; the order of the engines rotates each round. Batch 1: one scan per call, at
  each ``--sizes`` entry (``512`` = one tile; ``1024x3000`` = a belt scan through the
  geometry rule, ``xray_seg.serving.engines.scan_probabilities``: 27 tiles of 512).
  Printed: the median over ``--rounds`` with min-max.
- **Peak RSS** of each worker after its last request (its imports, the loaded engine and
  the largest scan): ``VmHWM`` of ``/proc/self/status``. ``resource.getrusage(RUSAGE_SELF)
  .ru_maxrss`` is recorded too but not used where ``VmHWM`` exists: Linux carries the
  parent's high-water mark across ``fork`` + ``exec``, so every worker reported the
  parent's 1368 MB in a first run.
- **Share of peak**: FLOPs per scan (``xray_seg.evaluation.flops``: 2 x MACs per tile x
  tiles) / median latency, over the best float32 matmul measured in this run before and
  after the rounds (``xray_seg.evaluation.peak``: TensorFlow and numpy, several sizes), and
  over the theoretical ``cores x clock x FLOP/cycle``.
- **Accuracy** on the val split of ``--voc`` with the trained model ``--run`` (the demo's),
  every engine from one export of it (``--export``, else written here; its int8 variants
  are kept even when the gate rejects them, so each is measured): mIoU, delta vs Keras in
  points, PD at PFA 5 % (n/a when val has no threat-free bag).

Engines: keras, savedmodel, savedmodel_optimized, tflite_f32, tflite_f16,
tflite_int8_dynamic, tflite_int8 (full integer), onnx (ONNX Runtime, all graph
optimisations), onnx_int8 (static QDQ), openvino (IR converted from the ONNX model), openvino_int8 (OpenVINO reading
``model_int8.onnx``). One that cannot run here (package or export format missing) gets its
reason in the table.

    nice python scripts/bench_station.py --run runs/demo/run --voc runs/demo/voc --rounds 3
    nice python scripts/bench_station.py --sizes 512 --rounds 5 --engines keras,tflite_f32,tflite_int8
    python scripts/bench_station.py --width 0.0625 --tile 64 --sizes 64,96x160 --rounds 2 --run RUN --voc VOC
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

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
INT8 = ("tflite_int8", "tflite_int8_dynamic", "onnx_int8", "openvino_int8")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cwf_deeplabv3plus", help="latency model (random weights)")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--tile", type=int, default=512, help="tile size of the latency model (default 512)")
    p.add_argument("--sizes", default="512,1024x3000", help="scan sizes HxW (N = NxN), comma-separated")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--engines", default="all", help=f"comma-separated subset of {','.join(ENGINE_SPECS)}")
    p.add_argument(
        "--scan-engines",
        default="all",
        help="the engines that also run the sizes after the first (default all; the 1024x3000 scan is 27 tiles)",
    )
    p.add_argument("--run", help="trained run folder for accuracy (e.g. runs/demo/run)")
    p.add_argument("--voc", help="its VOC folder: val split for accuracy, train split for int8 calibration")
    p.add_argument("--export", help="an export of --run with every engine's file (default: exported here)")
    p.add_argument("--calibration-tiles", type=int, default=64, help="int8 calibration tiles of the trained model")
    p.add_argument(
        "--latency-calibration-tiles",
        type=int,
        default=16,
        help="calibration tiles of the random-weight latency model (its ranges do not change int8 latency)",
    )
    p.add_argument("--peak-sizes", default="512,1024,2048,4096", help="n of the n x n matmuls of the peak")
    p.add_argument("--out", default="bench_station.json", help="JSON results (default bench_station.json)")
    p.add_argument("--keep", help="keep the exports in this folder (default: a temporary one)")
    p.add_argument("--worker", nargs=2, metavar=("LABEL", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.labels = list(ENGINE_SPECS) if args.engines == "all" else [e.strip() for e in args.engines.split(",")]
    bad = [e for e in args.labels if e not in ENGINE_SPECS]
    if bad:
        p.error(f"unknown engine(s) {bad}; use a subset of {','.join(ENGINE_SPECS)}")
    args.size_list = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    scan = args.labels if args.scan_engines == "all" else [e.strip() for e in args.scan_engines.split(",")]
    args.scan_labels = [e for e in args.labels if e in scan]
    return args


def parse_size(text: str) -> tuple[int, int]:
    parts = [int(v) for v in text.lower().split("x")]
    return (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def size_name(size) -> str:
    return f"{size[0]}x{size[1]}"


# ----------------------------------------------------------------------------- the worker process


def worker(label: str, path: str) -> int:
    """Load one engine and answer the parent's JSON requests, one a line, on a private pipe."""
    import resource

    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the protocol
    from xray_seg.serving.engines import load_engine, read_export, scan_probabilities

    engine_name, variant, _ = ENGINE_SPECS[label]
    start = time.perf_counter()
    try:
        engine = load_engine(path, engine_name, variant=variant)
        geometry = read_export(path).geometry if engine_name != "keras" else None
    except Exception as exc:
        proto.write(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}) + "\n")
        return 1
    proto.write(json.dumps({"ready": engine.name, "load_s": time.perf_counter() - start}) + "\n")
    scans = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "rss":
            maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            proto.write(json.dumps({"vmhwm_kb": vm_hwm_kb(), "maxrss_kb": maxrss}) + "\n")
            continue
        size = tuple(request["size"])
        if size not in scans:
            scans[size] = np.random.default_rng(size[0] * 7 + size[1]).integers(0, 256, (*size, 3), dtype=np.uint8)
        t0 = time.perf_counter()
        scan_probabilities(engine, scans[size], geometry)
        proto.write(json.dumps({"ms": (time.perf_counter() - t0) * 1000.0}) + "\n")
    return 0


def vm_hwm_kb() -> int | None:
    """This process's own peak resident set (``VmHWM``, kB), or None off Linux."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, label: str, path: Path):
        self.label = label
        env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", label, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.status = None

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            return {"error": f"the worker exited with code {self.proc.wait()}"}
        return json.loads(line)

    def ask(self, op: str, **kw) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "quit"}\n')
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=60)


# ----------------------------------------------------------------------------- the exports


def make_latency_run(args, work: Path) -> Path:
    """A run folder holding the latency model: ``--model`` at ``--width``, random weights, ``--tile``."""
    from xray_seg.core.config import save_config
    from xray_seg.core.layouts import RunLayout
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    run = work / "latency_run"
    run.mkdir(parents=True, exist_ok=True)
    model = build_model(args.model, args.classes, (args.tile, args.tile, 3), width=args.width)
    model.save(RunLayout(run).best_model)
    names = ["_background_"] + [f"class{i}" for i in range(1, args.classes)]
    RunLayout(run).class_names_file.write_text("\n".join(names) + "\n")
    cfg = TrainConfig()
    cfg.model.name, cfg.model.width, cfg.data.image_size = args.model, args.width, (args.tile, args.tile)
    save_config(cfg, RunLayout(run).config_file)
    return run


def wanted_formats(labels) -> tuple[list[str], dict]:
    """The export formats the engines need that this exporter offers, and why the others cannot run."""
    from xray_seg.serving.formats import FORMATS
    from xray_seg.serving.quantize import INT8_FORMATS

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


def export_latency(args, run: Path, work: Path, formats) -> Path:
    """The latency model's export: float formats by the exporter, int8 files by the quantiser (no gate)."""
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.serving.export_source import load_source
    from xray_seg.serving.exporter import export_model
    from xray_seg.serving.quantize import calibration_tiles, int8_file, onnx_static_int8, tflite_full_int8

    out = work / "latency_export"
    float_formats = [f for f in formats if not f.endswith("_int8")]
    if "onnx_int8" in formats and "onnx" not in float_formats:
        float_formats.append("onnx")
    export_model(run, out, formats=float_formats or ["tflite"], force=True, tflite_runs=1, progress=False)
    geometry = ScanGeometry(tile=(args.tile, args.tile))
    if args.voc:
        tiles = calibration_tiles(args.voc, geometry, num=args.latency_calibration_tiles)
    else:
        shape = (args.latency_calibration_tiles, args.tile, args.tile, 3)
        tiles = np.random.default_rng(0).integers(0, 256, shape, np.uint8)
    if "tflite_int8" in formats:
        source = load_source(run)
        int8_file(out, "tflite_int8").write_bytes(tflite_full_int8(source.model, source.input_size, tiles))
    if "onnx_int8" in formats:
        onnx_static_int8(out / "model.onnx", int8_file(out, "onnx_int8"), tiles)
    return out


def export_accuracy(args, work: Path, formats) -> Path:
    """An export of the trained ``--run`` with every engine's file; int8 variants kept even when rejected."""
    from xray_seg.serving.exporter import export_model
    from xray_seg.serving.quantize import GateSettings

    if args.export:
        return Path(args.export)
    out = work / "accuracy_export"
    settings = GateSettings(Path(args.voc), num_tiles=args.calibration_tiles, runs=1, keep_rejected=True)
    calibration = settings if any(f.endswith("_int8") for f in formats) else None
    export_model(args.run, out, formats=formats or ["tflite"], force=True, progress=False, calibration=calibration)
    return out


# ----------------------------------------------------------------------------- measuring


def start_workers(labels, latency_export: Path, latency_run: Path, missing: dict) -> dict:
    """One worker per engine that can run; ``missing`` gets the reason of each that cannot."""
    workers = {}
    for label in labels:
        if label in missing:
            continue
        path = latency_run if label == "keras" else latency_export
        workers[label] = Worker(label, path)
    for label, w in list(workers.items()):  # they load in parallel; collect each one's answer
        w.status = w.read()
        if "error" in w.status:
            missing[label] = w.status["error"]
            w.close()
            del workers[label]
    return workers


def run_rounds(workers: dict, sizes, rounds: int, scan_labels) -> dict:
    """``{label: {size: [ms, ...]}}``: one warm-up each, then ``rounds`` interleaved rounds.

    Sizes after the first run only on ``scan_labels``."""
    labels = list(workers)

    def runs_at(label, i):
        return i == 0 or label in scan_labels

    for label in labels:
        for i, size in enumerate(sizes):
            if runs_at(label, i):
                workers[label].ask("time", size=list(size))
    times = {label: {size_name(s): [] for i, s in enumerate(sizes) if runs_at(label, i)} for label in labels}
    for r in range(rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]  # rotate: no engine always first
        for i, size in enumerate(sizes):
            for label in (lb for lb in order if runs_at(lb, i)):
                answer = workers[label].ask("time", size=list(size))
                times[label][size_name(size)].append(answer["ms"])
        print(f"round {r + 1}/{rounds} done", flush=True)
    return times


def latency_flops(args, run: Path, sizes) -> dict:
    """GFLOPs of one scan of each size: the tile's (2 x MACs) x the tiles the geometry rule cuts."""
    import keras

    from xray_seg.core.layouts import RunLayout
    from xray_seg.evaluation.flops import count_flops
    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()
    model = keras.models.load_model(RunLayout(run).best_model, compile=False)
    per_tile = count_flops(model, (args.tile, args.tile, 3)).gflops
    geometry = ScanGeometry(tile=(args.tile, args.tile))
    return {size_name(s): {"tiles": geometry.num_tiles(*s), "gflops": per_tile * geometry.num_tiles(*s)} for s in sizes}


def accuracy_rows(args, labels, export: Path, missing: dict) -> dict:
    """``{label: scores vs Keras}`` on the val split, every engine through the geometry rule."""
    from xray_seg.evaluation.engine_eval import compare_with, engine_accuracy
    from xray_seg.serving.engines import load_engine, read_export

    geometry = read_export(export).geometry
    keras_scores = engine_accuracy(load_engine(args.run, "keras"), args.voc, geometry=geometry)
    rows = {"keras": compare_with(keras_scores, keras_scores)}
    for label in labels:
        if label == "keras" or label in missing:
            continue
        engine_name, variant, _ = ENGINE_SPECS[label]
        try:
            engine = load_engine(export, engine_name, variant=variant)
            rows[label] = compare_with(engine_accuracy(engine, args.voc, geometry=geometry), keras_scores)
        except Exception as exc:
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


# ----------------------------------------------------------------------------- the report


def fmt_pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def markdown_table(labels, rows, accuracy, missing, sizes) -> str:
    names = [size_name(s) for s in sizes]
    head = ["engine", *(f"{n} ms median (min-max)" for n in names), "peak RSS MB"]
    head += [f"% matmul peak ({n})" for n in names[:1]] + [f"% theoretical ({n})" for n in names[:1]]
    head += ["val mIoU", "vs Keras (points)", "PD@PFA5%"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label in labels:
        if label in missing:
            lines.append(f"| {label} | not run: {missing[label]} |" + " |" * (len(head) - 2))
            continue
        row, cells = rows[label], [label]
        for n in names:
            s = row["sizes"].get(n)
            cells.append(f"{s['median_ms']:.1f} ({s['min_ms']:.1f}-{s['max_ms']:.1f})" if s else "not run")
        cells.append(f"{row['peak_rss_mb']:.0f}" if row["peak_rss_mb"] else "n/a")
        first = row["sizes"][names[0]]
        cells += [fmt_pct(first["share_of_matmul_peak"]), fmt_pct(first["share_of_theoretical_peak"])]
        acc = accuracy.get(label) or {}
        if "miou" in acc:
            pd = acc["pd_at_pfa_5"]
            cells += [f"{acc['miou']:.4f}", f"{acc['miou_delta_points']:+.2f}", "n/a" if pd is None else f"{pd:.3f}"]
        else:
            cells += [acc.get("error", "not measured")[:80], "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def target_lines(rows, accuracy, sizes) -> list[str]:
    """The issue's ratio targets at the first size, each against the Keras model of this run."""
    if "keras" not in rows:
        return []
    name = size_name(sizes[0])
    keras_ms = rows["keras"]["sizes"][name]["median_ms"]

    def best(labels):
        have = [(rows[lb]["sizes"][name]["median_ms"], lb) for lb in labels if lb in rows]
        return min(have) if have else None

    lines = []
    fp32 = best([lb for lb in rows if lb != "keras" and lb not in INT8])
    if fp32:
        ratio = keras_ms / fp32[0]
        lines.append(
            f"fp32: fastest station engine {fp32[1]} is {ratio:.2f}x Keras at {name} (target >= 1.5x): "
            + ("MET" if ratio >= 1.5 else "NOT MET")
        )
    ok = [
        lb
        for lb in rows
        if lb in INT8 and "miou_delta_points" in accuracy.get(lb, {}) and accuracy[lb]["miou_delta_points"] >= -1.0
    ]
    int8 = best(ok)
    if int8:
        ratio = keras_ms / int8[0]
        lines.append(
            f"int8: fastest int8 engine within 1 point of Keras mIoU, {int8[1]}, is {ratio:.2f}x Keras "
            f"(target >= 2.5x): " + ("MET" if ratio >= 2.5 else "NOT MET")
        )
    return lines


def header_lines(args, cpu, peak, theoretical, flops) -> list[str]:
    from xray_seg.evaluation.peak import fp32_flops_per_cycle

    tile_gflops = next(iter(flops.values()))["gflops"] / next(iter(flops.values()))["tiles"]
    return [
        f"CPU: {cpu['model']}, {cpu['cores']} cores at {cpu['mhz']} MHz; vector extensions: {' '.join(cpu['vector'])}",
        f"theoretical fp32 peak: {cpu['cores']} cores x {cpu['mhz']} MHz x {fp32_flops_per_cycle(cpu['vector'])} "
        f"FLOP/cycle = {theoretical or float('nan'):.1f} GFLOP/s",
        f"measured matmul peak (best of TF and numpy at n = {args.peak_sizes}, before and after the rounds): "
        f"{peak['gflops']:.1f} GFLOP/s ({peak['best']['backend']}, n = {peak['best']['n']})",
        f"latency model: {args.model} width {args.width}, {args.classes} classes, RANDOM weights, tile {args.tile}: "
        f"{tile_gflops:.2f} GFLOPs per tile (2 x MACs); batch 1; median of {args.rounds} interleaved rounds",
        f"accuracy model: {args.run or 'none'} on the val split of {args.voc or 'none'}",
    ]


# ----------------------------------------------------------------------------- main


def best_peak(first: dict, second: dict) -> dict:
    peak = max(first, second, key=lambda p: p["gflops"])
    return {**peak, "runs": first["runs"] + second["runs"]}


def measure(args, labels, work: Path) -> dict:
    """Exports, workers, the interleaved rounds, RSS, the peaks and accuracy: everything the report shows."""
    from xray_seg.evaluation.peak import cpu_description, measure_matmul_peak, theoretical_peak_gflops

    peak_sizes = [int(n) for n in args.peak_sizes.split(",")]
    formats, missing = wanted_formats(labels)
    run = make_latency_run(args, work)
    t0 = time.perf_counter()
    export = export_latency(args, run, work, formats)
    print(f"latency export written in {time.perf_counter() - t0:.0f} s: {export}", flush=True)
    flops = latency_flops(args, run, args.size_list)
    first_peak = measure_matmul_peak(peak_sizes)
    workers = start_workers(labels, export, run, missing)
    try:
        times = run_rounds(workers, args.size_list, args.rounds, args.scan_labels)
        answers = {label: w.ask("rss") for label, w in workers.items()}
        rss = {label: (a["vmhwm_kb"] or a["maxrss_kb"]) / 1024.0 for label, a in answers.items()}
    finally:
        for w in workers.values():
            w.close()
    peak = best_peak(first_peak, measure_matmul_peak(peak_sizes))
    cpu = cpu_description()
    theoretical = theoretical_peak_gflops(cpu)
    rows = summarise(times, rss, flops, peak, theoretical)
    accuracy = {}
    if args.run and args.voc:
        accuracy = accuracy_rows(args, labels, export_accuracy(args, work, formats), dict(missing))
    return {
        "cpu": cpu,
        "theoretical_peak_gflops": theoretical,
        "matmul_peak": peak,
        "flops": flops,
        "engines": rows,
        "accuracy": accuracy,
        "not_run": missing,
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(*args.worker)
    labels = args.labels
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_station_"))
    start = time.perf_counter()
    results = measure(args, labels, work)
    results["command"] = "python scripts/bench_station.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results["settings"] = {k: v for k, v in vars(args).items() if k not in ("worker", "size_list", "scan_labels")}
    results["wall_s"] = time.perf_counter() - start
    print()
    for line in header_lines(
        args, results["cpu"], results["matmul_peak"], results["theoretical_peak_gflops"], results["flops"]
    ):
        print(line)
    print()
    table = markdown_table(labels, results["engines"], results["accuracy"], results["not_run"], args.size_list)
    print(table)
    print()
    for line in target_lines(results["engines"], results["accuracy"], args.size_list):
        print(line)
    results["table"] = table
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} ({results['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
