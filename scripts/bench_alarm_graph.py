#!/usr/bin/env python
"""Benchmark the in-graph alarm (``xray_seg.serving.alarm_graph.alarm_outputs``) on belt-scan
sized probabilities, the part of ``serving_default`` that comes after the network.

Cases (each ``HEIGHT x WIDTH x K`` float32 probabilities, batch 1):

- ``trained``: a trained model's probabilities of a synthetic belt scan (``--run``: a run
  folder or export; the scan is ``xray-seg synth``'s renderer, seed 1, tiled with the
  Gaussian blend as ``predict`` does). Threat components are small and compact.
- ``blobs``: smooth random noise, each class the top 20 % of its own field (many
  medium blobs).
- ``percolating``: the same at the median: components that wind across the whole scan,
  the worst case (a model with random weights looks like this).

Each case is traced once, then timed ``--runs`` times; the median is printed with the
number of mask pixels and components. Run it on two commits to compare rules.

    python scripts/bench_alarm_graph.py --run runs/demo/run --runs 3
    python scripts/bench_alarm_graph.py --scan 256x768 --runs 1            # small and quick
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.serving.bench_alarm_graph import bench_alarm_graph  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scan", default="1024x3000", help="HEIGHTxWIDTH (default 1024x3000)")
    parser.add_argument("--run", default="", help="run folder or export for the `trained` case (skipped without)")
    parser.add_argument("--classes", type=int, default=6, help="K of the noise cases, background included")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per case (default 3)")
    parser.add_argument("--cases", default="trained,blobs,percolating", help="comma-separated subset")
    args = parser.parse_args(argv)
    return bench_alarm_graph(args)


if __name__ == "__main__":
    sys.exit(main())
