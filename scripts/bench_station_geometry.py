"""Station latency and peak RSS of a full-width belt scan: SavedModel vs Keras, same run.

A synthetic belt scan (``xray-seg synth``'s renderer, default 1024 high x 3000 wide) is
segmented at full resolution by

- ``savedmodel serving_default``: the exported SavedModel, which tiles the scan inside its
  graph (``xray_seg.serving.signatures``; docs/architecture.md, "Geometry: how a scan
  reaches the network");
- ``keras sliding window``: the Keras model through ``xray_seg.inference.tta`` with the
  same rule (what ``evaluate`` and ``predict`` do).

Each engine runs in its own child process, one after the other, so that its peak RSS
(``VmHWM``) is its own: the figure printed is the peak over the whole child (imports,
model load, warm-up, timed runs) and, beside it, the RSS after loading, so their difference
is what segmenting one scan adds. Latency is the median of ``--runs`` after ``--warmup``.
The two class maps are compared too (they must agree on >= 99.9 % of pixels). Without
``--run`` a model of ``--width`` with random weights is built and exported (latency does
not depend on the weights).

    nice .venv/bin/python scripts/bench_station_geometry.py                    # width 0.25, 512 tiles, 1024x3000
    nice .venv/bin/python scripts/bench_station_geometry.py --run runs/demo/run --tile 256
    nice .venv/bin/python scripts/bench_station_geometry.py --width 0.0625 --tile 64 --scan 128x384 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from xray_seg.evaluation.timing import peak_rss_bytes, rss_bytes, time_calls  # noqa: E402

MIB = 2**20


def child(engine: str, model_path: str, scan_path: str, out_path: str, warmup: int, runs: int) -> dict:
    """Time one engine on the scan in this process; save its class map to ``out_path``."""
    scan = np.load(scan_path)
    if engine == "savedmodel":
        import tensorflow as tf

        serve = tf.saved_model.load(model_path).signatures["serving_default"]
        batch = tf.constant(scan[None])

        def segment():
            return serve(images=batch)["class_map"].numpy()[0]
    else:
        from xray_seg.inference.loader import load_for_inference
        from xray_seg.inference.tta import predict_class_map

        loaded = load_for_inference(model_path)

        def segment():
            return predict_class_map(loaded.logits_fn, scan, input_size=loaded.input_size)

    loaded_rss = rss_bytes() / MIB
    last = {}
    timing = time_calls(lambda i: last.update(class_map=segment()), runs, warmup)
    np.save(out_path, last["class_map"])
    return {
        "median_s": timing.median_s,
        "times_s": timing.seconds,
        "rss_after_load_mb": loaded_rss,
        "peak_rss_mb": peak_rss_bytes() / MIB,
    }


def _prepare(args, tmp: Path) -> tuple[Path, Path, tuple[int, int]]:
    """(run folder, SavedModel, tile): the given run and its export, or a random-weight model."""
    from xray_seg.serving.exporter import export_model

    if args.run:
        run = Path(args.run)
    else:
        from xray_seg.core.config import save_config
        from xray_seg.models.registry import build_model
        from xray_seg.synthesis.threats import CLASS_NAMES
        from xray_seg.training.config import TrainConfig

        run = tmp / "run"
        run.mkdir()
        names = ["_background_", *CLASS_NAMES]
        build_model(args.model, len(names), (args.tile, args.tile, 3), width=args.width).save(run / "best_model.keras")
        (run / "class_names.txt").write_text("\n".join(names) + "\n")
        cfg = TrainConfig()
        cfg.model.name, cfg.model.width, cfg.data.image_size = args.model, args.width, (args.tile, args.tile)
        save_config(cfg, run / "config.yaml")
    savedmodel = Path(args.savedmodel) if args.savedmodel else None
    if savedmodel is None:
        export_model(run, tmp / "export", formats=("savedmodel",), progress=False)
        savedmodel = tmp / "export" / "savedmodel"
    meta = json.loads((savedmodel / "export.json").read_text())
    return run, savedmodel, tuple(meta["input_size"])


def run_child(args, engine: str, model: Path, tmp: Path) -> dict | None:
    """One engine timed in its own child process (its own peak RSS); None if it failed."""
    cmd = [sys.executable, __file__, "--warmup", str(args.warmup), "--runs", str(args.runs), "--child", engine]
    cmd += [str(model), str(tmp / "scan.npy"), str(tmp / f"{engine}.npy")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="a trained run folder (default: a random-weight model)")
    parser.add_argument("--savedmodel", help="its exported SavedModel (default: exported here)")
    parser.add_argument("--model", default="cwf_deeplabv3plus")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--tile", type=int, default=512, help="training size of the random-weight model")
    parser.add_argument("--scan", default="1024x3000", help="HEIGHTxWIDTH of the belt scan (default 1024x3000)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=4, metavar=("ENGINE", "MODEL", "SCAN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.warmup, args.runs)))
        return 0

    from xray_seg.synthesis.scene import SynthConfig, render_sample

    height, width = (int(v) for v in args.scan.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run, savedmodel, tile = _prepare(args, tmp)
        scan = render_sample(SynthConfig(size=height, width=0 if width == height else width, seed=1), 0)[0]
        np.save(tmp / "scan.npy", scan)
        results = {}
        for engine, model in (("savedmodel", savedmodel), ("keras", run)):
            results[engine] = run_child(args, engine, model, tmp)
            if results[engine] is None:
                return 1
        agree = float(np.mean(np.load(tmp / "savedmodel.npy") == np.load(tmp / "keras.npy")))
    from xray_seg.inference.geometry import ScanGeometry

    geometry = ScanGeometry(tile=tile)
    tiles = geometry.num_tiles(height, width)
    print(
        f"\nscan {height}x{width}, tiles {tile[0]}x{tile[1]} ({tiles} tiles, {geometry.overlap:.2f} overlap), "
        f"model {'run ' + str(run) if args.run else f'{args.model} width {args.width} (random weights)'}"
    )
    print(f"{'engine':<28} {'median s':>9} {'RSS after load MiB':>18} {'peak RSS MiB':>12}")
    names = {"savedmodel": "savedmodel serving_default", "keras": "keras sliding window (tta)"}
    for engine, r in results.items():
        print(f"{names[engine]:<28} {r['median_s']:>9.3f} {r['rss_after_load_mb']:>18.0f} {r['peak_rss_mb']:>12.0f}")
    ratio = results["savedmodel"]["median_s"] / results["keras"]["median_s"]
    print(f"latency savedmodel / keras: {ratio:.2f}; class maps agree on {agree:.5f} of pixels")
    return 0 if agree >= 0.999 else 1


if __name__ == "__main__":
    raise SystemExit(main())
