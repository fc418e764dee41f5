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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.bench_convert import bench_convert  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=64, help="images (default 64)")
    parser.add_argument("--size", type=int, default=512, help="image side (default 512)")
    parser.add_argument("--workers", type=int, default=0, help="N for the parallel run (default 0 = all cores)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the best counts (default 3)")
    parser.add_argument("--image-format", default="png", choices=["png", "jpeg", "copy"])
    parser.add_argument("--data-dir", type=Path, help="keep/reuse the synthetic input here (default: a temp folder)")
    args = parser.parse_args(argv)

    return bench_convert(args)


if __name__ == "__main__":
    sys.exit(main())
