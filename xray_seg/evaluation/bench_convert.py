"""``xray-seg convert`` timed: images/s with 1 and N workers, and the COCO reader at PIDray's scale.

Run by ``scripts/bench_convert.py`` (synthetic Labelme bags) and ``scripts/bench_convert_coco.py``
(a generated COCO instance file, the real CLI in a child process watched for its peak RSS and
its first written mask); their docstrings say what each figure is.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from xray_seg.conversion.convert import ConvertConfig, convert
from xray_seg.conversion.pool import resolve_workers
from xray_seg.evaluation.timing import cpu_line, load_line, peak_rss_bytes, time_rounds
from xray_seg.synthesis.scene import SynthConfig, synthesize

ROOT = Path(__file__).resolve().parents[2]
PIDRAY_CATEGORIES = "Baton Pliers Hammer Powerbank Scissors Wrench Gun Bullet Sprayer HandCuffs Knife Lighter".split()  # noqa: SIM905 (one line)
PIDRAY_IMAGES = 47_677


def ensure_data(data_dir: Path, num: int, size: int) -> Path:
    """Generate the synthetic Labelme folder unless it already holds ``num`` JSON files."""
    if data_dir.is_dir() and len(list(data_dir.glob("*.json"))) >= num:
        return data_dir
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


def bench_convert(args) -> int:
    """Labelme conversion with 1 and ``args.workers`` workers (``scripts/bench_convert.py``)."""
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


def _polygon(rng, h, w, points) -> list[float]:
    """A star-shaped polygon of ``points`` vertices inside the image, PIDray's float precision."""
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    radius = rng.uniform(0.2, 0.45) * min(h, w) * rng.uniform(0.6, 1.0, points)
    xs = np.clip(cx + radius * np.cos(angles), 0, w - 1)
    ys = np.clip(cy + radius * np.sin(angles), 0, h - 1)
    return [round(float(v), 13) for pair in zip(xs, ys) for v in pair]


def generate(folder: Path, num: int, h: int, w: int, points: int | None, seed: int = 0) -> Path:
    """Write ``folder/instances.json`` and ``folder/images/*.png``; return the JSON path."""
    from PIL import Image  # lazy: only this generator writes images
    from pycocotools import mask as mask_utils  # lazy: optional dependency

    rng = np.random.default_rng(seed)
    images_dir = folder / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    shared_png = None
    if points is not None:  # scale mode: one small image, written under every name
        import io

        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="PNG")
        shared_png = buf.getvalue()
    path = folder / "instances.json"
    ann_id = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"info": {"description": "bench_convert_coco"}, "categories": ')
        f.write(
            json.dumps([{"id": i + 1, "name": n, "supercategory": "item"} for i, n in enumerate(PIDRAY_CATEGORIES)])
        )
        f.write(', "images": [')
        for i in range(num):
            name = f"{i:06d}.png"
            if shared_png is not None:
                (images_dir / name).write_bytes(shared_png)
            else:
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(images_dir / name)
            f.write(("," if i else "") + json.dumps({"id": i + 1, "file_name": name, "height": h, "width": w}))
        f.write('], "annotations": [')
        for i in range(num):
            for _ in range(int(rng.integers(1, 5))):
                ann_id += 1
                k = points if points is not None else int(rng.integers(8, 41))
                seg = [_polygon(rng, h, w, k)]
                if points is None and ann_id % 5 == 0:
                    m = np.zeros((h, w), np.uint8)
                    y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
                    m[y0 : y0 + h // 3, x0 : x0 + w // 3] = 1
                    rle = mask_utils.encode(np.asfortranarray(m))
                    seg = {"size": [h, w], "counts": rle["counts"].decode("ascii")}
                ann = {
                    "id": ann_id,
                    "image_id": i + 1,
                    "category_id": int(rng.integers(1, 13)),
                    "segmentation": seg,
                    "iscrowd": int(points is None and ann_id % 20 == 0),
                    "area": 0.0,
                    "bbox": [0.0, 0.0, 1.0, 1.0],
                }
                f.write(("," if ann_id > 1 else "") + json.dumps(ann))
        f.write("]}")
    return path


def run_convert(json_path: Path, out: Path, workers: int, extra=()) -> dict:
    """Run the CLI in a child process; watch its peak RSS and its first written mask."""
    cmd = [
        sys.executable,
        "-m",
        "xray_seg.cli",
        "convert",
        "--from",
        "coco",
        str(json_path),
        str(out),
        "--images",
        str(json_path.parent / "images"),
        "--classes",
        "Gun,Knife,Wrench,Pliers,Scissors",
        "--workers",
        str(workers),
        "--quiet",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    masks = out / "SegmentationClass"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, peak = None, 0
    while proc.poll() is None:
        peak = max(peak, peak_rss_bytes(proc.pid) or 0)
        if first is None and masks.is_dir():
            with os.scandir(masks) as it:
                if any(e.name.endswith(".png") for e in it):
                    first = time.perf_counter() - t0
        time.sleep(0.02)
    total = time.perf_counter() - t0
    output = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"convert failed ({proc.returncode}):\n" + "\n".join(output.splitlines()[:5]))
    converted = int(output.split("converted ", 1)[1].split(",", 1)[0])
    return {"seconds": total, "first": first, "peak": peak, "converted": converted, "summary": output.splitlines()[0]}


def json_load_peak(json_path: Path) -> tuple[int, float]:
    """Peak RSS (bytes) and seconds of ``json.load`` of the file in a fresh interpreter."""
    code = (
        "import json,resource,sys,time;t=time.perf_counter();d=json.load(open(sys.argv[1]));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024, time.perf_counter()-t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(json_path)], capture_output=True, text=True, check=True
    ).stdout
    peak, seconds = out.split()
    return int(peak), float(seconds)


def index_peak(json_path: Path) -> tuple[int, int, float]:
    """Peak RSS (bytes) before and after building the COCO reader's index, and its seconds, in a fresh interpreter."""
    code = (
        "import sys,time;from pathlib import Path;from xray_seg.conversion.coco import CocoReader;"
        "from xray_seg.evaluation.timing import peak_rss_bytes as peak;b=peak();t=time.perf_counter();"
        "items=CocoReader(Path(sys.argv[1])).items();print(b, peak(), time.perf_counter()-t)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, str(json_path)], capture_output=True, text=True, check=True, env=env
    )
    before, after, seconds = out.stdout.split()
    return int(before), int(after), float(seconds)


def speed_runs(json_path: Path, tmp: Path, args) -> None:
    """The CLI with 1 and ``--workers`` workers, alternating, ``--repeats`` times each; the best counts."""
    seen = {}

    def call(workers):
        out = tmp / f"voc_{workers}"
        seen[workers] = seen.get(workers, []) + [run_convert(json_path, out, workers)]
        shutil.rmtree(out)

    timings = time_rounds({w: (lambda w=w: call(w)) for w in dict.fromkeys([1, args.workers])}, args.repeats, 0)
    for workers, runs in seen.items():
        firsts = ", ".join(f"{r['first']:.2f}" for r in runs)
        print(
            f"  workers={workers}: runs {', '.join(f'{t:.2f}' for t in timings[workers].seconds)} s (first mask after {firsts} s)"
        )
    converted = runs[-1]["converted"]
    best = {w: min(t.seconds) for w, t in timings.items()}
    for workers, seconds in best.items():
        print(
            f"workers={workers}: {converted} images in {seconds:.2f} s (best, process start included) "
            f"= {converted / seconds:.1f} images/s"
        )
    print(f"speed-up {args.workers} vs 1 worker: {best[1] / best[args.workers]:.2f}x")


def bench_convert_coco(args) -> int:
    """Speed or ``--scale`` run of the COCO importer (``scripts/bench_convert_coco.py``)."""
    num = args.num or (PIDRAY_IMAGES if args.scale else 64)
    h = args.height or (32 if args.scale else 256)
    w = args.width or (96 if args.scale else 768)
    mib = 1 << 20
    with tempfile.TemporaryDirectory(prefix="bench_coco_", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        json_path = generate(tmp / "coco", num, h, w, args.points if args.scale else None)
        size = json_path.stat().st_size
        print(
            f"generated {num} images of {w}x{h} and {size / mib:.1f} MiB of COCO JSON in {time.perf_counter() - t0:.1f} s"
        )
        print(f"CPU: {cpu_line()}")
        if args.scale and args.index_only:
            before, after, seconds = index_peak(json_path)
            print(
                f"index of {num} images: {seconds:.1f} s ({size / mib / seconds:.0f} MiB/s of JSON); peak RSS "
                f"{after / mib:.0f} MiB, {(after - before) / mib:.1f} MiB over the interpreter with its imports "
                f"({(after - before) / num / 1024:.2f} KiB per image)"
            )
        elif args.scale:
            r = run_convert(json_path, tmp / "voc", args.workers)
            kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
            print(r["summary"])
            print(
                f"peak RSS of the converting process: {r['peak'] / mib:.0f} MiB "
                f"(the largest of it and its workers: {kids / mib:.0f} MiB)"
            )
            print(f"time to the first written mask: {r['first']:.1f} s")
            print(
                f"total: {r['converted']} images in {r['seconds']:.1f} s = {r['converted'] / r['seconds']:.1f} images/s "
                f"({args.workers} workers)"
            )
        if args.scale and args.compare_json_load:
            peak, seconds = json_load_peak(json_path)
            print(f"for comparison, json.load of the same file: peak RSS {peak / mib:.0f} MiB in {seconds:.1f} s")
        if not args.scale:
            speed_runs(json_path, tmp, args)
        print(f"{load_line()} during the benchmark")
    return 0
