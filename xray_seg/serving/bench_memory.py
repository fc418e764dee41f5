"""``xray-seg bench --suite memory``: peak RSS of ``predict`` and ``serving_default`` against the formulas.

For each scan size (default 1, 16 and 63 M pixels: 1000x1000, 4000x4000, 7900x8000) and each
route, one fresh process segments one synthetic scan and its peak resident set is read from
its own ``VmHWM`` as it exits (:data:`PEAK_LAUNCHER`):

- ``keras``: ``xray-seg predict RUN scan.png`` (the run's ``.keras`` model, host strips);
- ``savedmodel``: ``xray-seg predict EXPORT/savedmodel scan.png`` (host strips, the SavedModel's
  ``serve_tiles`` fed exact tiles);
- ``tflite``: ``xray-seg predict EXPORT scan.png --engine tflite`` (host strips, the export's
  ``model_float32.tflite`` fed one tile per invoke);
- ``serving_default``: plain TensorFlow, ``tf.saved_model.load`` + ``serving_default`` on the
  whole scan ``[1, H, W, 3]`` (the in-graph path a station without xray-seg uses).

The model is ``--model`` at ``--width`` with random weights and ``--tile`` tiles (a run folder
and its export, made in a temporary folder: the SavedModel, and the TFLite files when the
``tflite`` route is asked for). Each figure is printed beside its
formula: :func:`xray_seg.inference.strips.predict_memory_bytes` for ``predict`` (the base of
the route: ``BASE_BYTES``, ``SAVEDMODEL_BASE_BYTES`` or ``TFLITE_BASE_BYTES``),
:func:`xray_seg.serving.signatures.serving_memory_bytes` for ``serving_default``. A process
whose resident set passes ``--rss-cap`` GB is killed and reported as such, so the benchmark
cannot take a shared machine down. docs/benchmarks.md, "Peak memory of predict", holds a table.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from xray_seg.evaluation.timing import cpu_line, load_line
from xray_seg.inference.strips import BASE_BYTES, SAVEDMODEL_BASE_BYTES, TFLITE_BASE_BYTES, predict_memory_bytes
from xray_seg.serving.bench_station import make_latency_run
from xray_seg.serving.exporter import export_model
from xray_seg.serving.signatures import serving_memory_bytes

ROUTES = ("keras", "savedmodel", "tflite", "serving_default")
PREDICT_BASES = {"keras": BASE_BYTES, "savedmodel": SAVEDMODEL_BASE_BYTES, "tflite": TFLITE_BASE_BYTES}
DEFAULT_SIZES = [(1000, 1000), (4000, 4000), (7900, 8000)]


@dataclass
class MemorySettings:
    model: str = "cwf_deeplabv3plus"
    width: float = 0.0625
    classes: int = 6
    tile: int = 512
    sizes: list = field(default_factory=lambda: list(DEFAULT_SIZES))
    routes: list = field(default_factory=lambda: list(ROUTES))
    rss_cap_gb: float = 12.0
    keep: str | None = None


def synthetic_scan(height: int, width: int) -> np.ndarray:
    """uint8 ``[H, W, 3]``: near-white air with darker blobs and stripes (a PNG that compresses)."""
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), np.uint8)
    for c, phase in enumerate((0.0, 1.0, 2.0)):
        for y0 in range(0, height, 512):
            rows = y[y0 : y0 + 512]
            wave = np.sin(rows / 97.0 + phase) * np.cos(x / 131.0 - phase)
            out[y0 : y0 + 512, :, c] = np.clip(235.0 - 120.0 * np.maximum(wave, 0.0), 0, 255).astype(np.uint8)
    return out


def write_scan(path: Path, height: int, width: int) -> Path:
    from PIL import Image

    Image.fromarray(synthetic_scan(height, width)).save(path, format="PNG", compress_level=1)
    return path


# Runs ``python -m MODULE ARGS...`` and writes its own VmHWM (kB) to a file at exit: the child's peak
# alone (``ru_maxrss`` of ``wait4`` would carry the parent's high-water mark across fork + exec).
PEAK_LAUNCHER = """
import atexit, runpy, sys
out, module = sys.argv[1], sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
def write_peak():
    with open("/proc/self/status", encoding="ascii") as f:
        kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(out, "w", encoding="ascii") as f:
        f.write(kb)
atexit.register(write_peak)
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            return next((int(line.split()[1]) for line in f if line.startswith(key)), 0)
    except OSError:
        return 0


def run_measured(module_args: list[str], cap_bytes: int, log: Path) -> dict:
    """Run ``python -m MODULE ARGS`` (stderr to ``log``) in a fresh process: its peak RSS in bytes
    (its own ``VmHWM`` at exit; for a process killed at ``cap_bytes`` by the watchdog, the last
    ``VmHWM`` seen), seconds, exit code, and whether it was killed."""
    peak_file = log.with_suffix(".peak")
    peak_file.unlink(missing_ok=True)
    command = [sys.executable, "-c", PEAK_LAUNCHER, str(peak_file), *module_args]
    start, seen, killed = time.perf_counter(), 0, False
    with open(log, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            seen = max(seen, _status_kb(proc.pid, "VmHWM:") * 1024)
            if _status_kb(proc.pid, "VmRSS:") * 1024 > cap_bytes:
                proc.kill()
                killed = True
            time.sleep(0.05)
    peak = int(peak_file.read_text(encoding="ascii")) * 1024 if peak_file.is_file() else seen
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return {
        "peak_rss": peak,
        "seconds": round(time.perf_counter() - start, 1),
        "returncode": proc.returncode,
        "killed_at_cap": killed,
        "error": lines[-1] if proc.returncode and lines else "",
    }


def route_command(route: str, run: Path, export: Path, scan: Path, out: Path) -> list[str]:
    if route == "serving_default":
        return ["xray_seg.serving.serve_once", str(export / "savedmodel"), str(scan)]
    if route == "tflite":
        return ["xray_seg", "predict", str(export), str(scan), "--out", str(out), "--force", "--engine", "tflite"]
    model = run if route == "keras" else export / "savedmodel"
    return ["xray_seg", "predict", str(model), str(scan), "--out", str(out), "--force"]


def formula(route: str, s: MemorySettings, height: int, width: int) -> int:
    if route == "serving_default":
        return serving_memory_bytes(height, width, s.classes)  # every pixel in a class mask: the worst case
    return predict_memory_bytes(height, width, s.classes, PREDICT_BASES[route])


def measure(s: MemorySettings, work: Path) -> list[dict]:
    run = make_latency_run(SimpleNamespace(model=s.model, classes=s.classes, tile=s.tile, width=s.width), work)
    export = work / "export"
    formats = ("savedmodel", "tflite") if "tflite" in s.routes else ("savedmodel",)
    export_model(run, export, formats=formats, force=True, progress=False, tflite_runs=1)
    rows = []
    for height, width in s.sizes:
        scan = write_scan(work / f"scan_{height}x{width}.png", height, width)
        for route in s.routes:
            command = route_command(route, run, export, scan, work / f"pred_{route}")
            result = run_measured(command, int(s.rss_cap_gb * 2**30), work / f"{route}.log")
            row = {"route": route, "height": height, "width": width, "formula": formula(route, s, height, width)}
            rows.append({**row, **result})
            print(table_line(rows[-1]), flush=True)
        scan.unlink()
    return rows


def table_line(row: dict) -> str:
    mp = row["height"] * row["width"] / 1e6
    peak = f"{row['peak_rss'] / 1e9:.2f}"
    if row["killed_at_cap"]:
        peak = f"> {peak} (killed at the cap)"
    elif row["returncode"]:
        peak += f" (exit {row['returncode']}: {row['error']})"
    ratio = row["peak_rss"] / row["formula"]
    return (
        f"| {row['route']} | {row['height']}x{row['width']} | {mp:.1f} | {peak} | "
        f"{row['formula'] / 1e9:.2f} | {ratio:.2f} | {row['seconds']:.0f} |"
    )


def bench_memory(s: MemorySettings) -> list[dict]:
    """Measure every size and route (module docstring); prints a markdown table and returns the rows."""
    print(f"CPU: {cpu_line()}; {load_line()}")
    print(f"model {s.model} width {s.width}, {s.classes} classes, tile {s.tile}x{s.tile}, random weights")
    print("| route | scan | M px | peak RSS GB | formula GB | peak / formula | s |")
    print("|---|---|---|---|---|---|---|")
    if s.keep:
        work = Path(s.keep)
        work.mkdir(parents=True, exist_ok=True)
        return measure(s, work)
    with tempfile.TemporaryDirectory(prefix="xray_seg_bench_memory_") as tmp:
        return measure(s, Path(tmp))


__all__ = ["MemorySettings", "bench_memory", "run_measured", "synthetic_scan"]
