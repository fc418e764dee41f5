"""One station engine in its own process, timed on request: the worker of ``xray-seg bench --suite station``.

The parent (:mod:`xray_seg.serving.bench_station`) starts one worker per engine with
``python -m xray_seg.serving.station_worker LABEL PATH ENGINE [VARIANT]`` and sends JSON
requests, one a line, on stdin: ``{"op": "time", "size": [h, w]}`` (one random scan of that
size through the geometry rule; the answer is ``{"ms": ...}``), ``{"op": "rss"}`` (the
worker's own peak RSS, :func:`~xray_seg.evaluation.timing.peak_rss_bytes`) and
``{"op": "quit"}``. This module imports the engines only, no TensorFlow, so a worker's peak
RSS is its engine's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from xray_seg.evaluation.timing import peak_rss_bytes
from xray_seg.serving.engines import load_engine, read_export, scan_probabilities


def _load(path: str, engine_name: str, variant: str | None, proto) -> tuple:
    start = time.perf_counter()
    try:
        engine = load_engine(path, engine_name, variant=variant)
        geometry = read_export(path).geometry if engine_name != "keras" else None
    except Exception as exc:  # any engine failure is reported to the parent, which lists it as not run
        proto.write(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}) + "\n")
        return None, None
    proto.write(json.dumps({"ready": engine.name, "load_s": time.perf_counter() - start}) + "\n")
    return engine, geometry


def serve(path: str, engine_name: str, variant: str | None = None) -> int:
    """Load one engine and answer the parent's requests on a private copy of stdout."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the libraries print goes to stderr, not into the protocol
    engine, geometry = _load(path, engine_name, variant, proto)
    if engine is None:
        return 1
    scans = {}
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "rss":
            proto.write(json.dumps({"peak_rss_bytes": peak_rss_bytes()}) + "\n")
            continue
        size = tuple(request["size"])
        if size not in scans:
            scans[size] = np.random.default_rng(size[0] * 7 + size[1]).integers(0, 256, (*size, 3), dtype=np.uint8)
        start = time.perf_counter()
        scan_probabilities(engine, scans[size], geometry)
        proto.write(json.dumps({"ms": (time.perf_counter() - start) * 1000.0}) + "\n")
    return 0


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, label: str, path, engine_name: str, variant: str | None):
        self.label = label
        command = [sys.executable, "-m", __name__, str(path), engine_name] + ([variant] if variant else [])
        root = str(Path(__file__).resolve().parents[2])  # this checkout's xray_seg, wherever the cwd is
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
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


if __name__ == "__main__":
    sys.exit(serve(*sys.argv[1:]))
