"""Benchmark `xray-seg convert`: images per second with 1 and with N worker processes.

The input is the synthetic 512 x 512 Labelme dataset of ``xray-seg synth``
(:func:`xray_seg.synthesis.scene.synthesize`), generated once into ``--data-dir`` (or a
temporary folder). Each timed run converts the whole folder into a fresh output with
:func:`xray_seg.conversion.convert.convert` (scan, rasterise, write PNG image + palette mask),
pool start-up included, exactly as the CLI does. The best of ``--repeats`` runs (the
settings alternate, so drifting load hits both alike) is kept for each worker count, then
the speed-up N/1 is printed (target: >= 1.7x on 2 workers). On a machine shared with other
jobs the figures are noisy: compare them only when it is otherwise idle.

Usage::

    python scripts/bench_convert.py --num 64 --workers 2
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.conversion.convert import ConvertConfig, convert, resolve_workers  # noqa: E402
from xray_seg.evaluation.timing import cpu_line, load_line, time_rounds  # noqa: E402


def ensure_data(data_dir: Path, num: int, size: int) -> Path:
    """Generate the synthetic Labelme folder unless it already holds ``num`` JSON files."""
    if data_dir.is_dir() and len(list(data_dir.glob("*.json"))) >= num:
        return data_dir
    from xray_seg.synthesis.scene import SynthConfig, synthesize

    print(f"generating {num} synthetic {size}x{size} images into {data_dir} ...", flush=True)
    t0 = time.perf_counter()
    synthesize(data_dir, SynthConfig(num=num, size=size, seed=0), force=True, progress=False)
    print(f"  done in {time.perf_counter() - t0:.1f} s", flush=True)
    return data_dir


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the forked workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def conversion(data_dir: Path, tmp: Path, workers: int, image_format: str, record: dict):
    """One full conversion into a fresh folder, as a timed call; ``record[workers]`` gets each
    run's CPU seconds (this process and its finished children) and the images converted."""
    config = ConvertConfig(labels=str(data_dir / "labels.txt"), image_format=image_format, workers=workers)

    def call():
        out, c0 = tmp / f"voc_{workers}", cpu_seconds()
        report = convert(data_dir, out, config, progress=False)
        record.setdefault(workers, []).append(cpu_seconds() - c0)
        record["converted"] = report.converted
        if report.failed:
            raise SystemExit(f"benchmark conversion had failures:\n{report.summary()}")
        shutil.rmtree(out)

    return call


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=64, help="images (default 64)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--workers", type=int, default=0, help="N for the parallel run (default 0 = all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts (default 3)")
    parser.add_argument("--image-format", default="png", choices=["png", "jpeg", "copy"])
    parser.add_argument("--data-dir", type=Path, help="keep/reuse the synthetic input here (default: a temp folder)")
    args = parser.parse_args(argv)

    n_workers = resolve_workers(args.workers)
    with tempfile.TemporaryDirectory(prefix="bench_convert_") as tmp:
        tmp = Path(tmp)
        data_dir = ensure_data(args.data_dir or tmp / "labelme", args.num, args.size)
        print(f"CPU: {cpu_line()}; image format {args.image_format}")
        record = {}
        calls = {w: conversion(data_dir, tmp, w, args.image_format, record) for w in dict.fromkeys([1, n_workers])}
        timings = time_rounds(calls, args.repeats, 0)  # the settings alternate so load drift hits both alike
        best = {w: min(t.seconds) for w, t in timings.items()}
        cpu = {w: min(record[w]) for w in timings}
        converted = record["converted"]
        for w, t in timings.items():
            runs = ", ".join(f"{s:.2f} s wall / {c:.2f} s CPU" for s, c in zip(t.seconds, record[w], strict=True))
            print(f"  workers={w:2d}: {runs}")
        results = {w: converted / s for w, s in best.items()}
        for workers, rate in results.items():
            print(f"workers={workers:2d}: {converted} images in {best[workers]:.2f} s (best) = {rate:.1f} images/s")
        ratio = results[n_workers] / results[1]
        print(f"speed-up {n_workers} vs 1 worker(s): {ratio:.2f}x (measured wall clock)")
        # Worker CPU time cannot be read reliably here (forkserver workers are not our
        # children), so only the single-process CPU time is shown, beside the load.
        print(f"CPU per image with 1 worker: {1000 * cpu[1] / converted:.1f} ms")
        print(f"{load_line()} during the benchmark")
    return 0


if __name__ == "__main__":
    sys.exit(main())
