"""Benchmark `xray-seg convert --from coco`: speed with 1 and 2 workers, and PIDray-sized scale.

Both modes generate a COCO instance file and its images (seeded), then run the real CLI,
``python -m xray_seg.cli convert --from coco ...``, in a child process, exactly as a user
would, and watch it from this process:

* **speed** (default): ``--num`` images of ``--height`` x ``--width`` (PIDray's strips are
  about 456 x 1886; the default 256 x 768 keeps the run short) with 1 to 4 annotations each
  (polygons of 8 to 40 points, one in five a compressed RLE, one in twenty a crowd
  region). Each worker count is run ``--repeats`` times (alternating); the best counts.
* **scale** (``--scale``): PIDray's size, 47,677 image entries by default, with small
  (32 x 96) images but full-size annotations (polygons of ``--points`` points written
  with PIDray's float precision), so the JSON is hundreds of MB, as PIDray's is. Reported:
  the JSON size, the peak RSS of the converting process (``VmHWM``, the process that holds
  the annotation index) and of its largest worker, the time to the first written mask,
  and the total rate. ``--compare-json-load`` also measures a plain ``json.load`` of the
  same file in a child process, the peak the streaming reader avoids.

The machine is shared: compare figures only when it is otherwise idle.

Usage::

    python scripts/bench_convert_coco.py --num 64                 # speed, 1 and 2 workers
    python scripts/bench_convert_coco.py --scale --num 500        # a small scale check
    python scripts/bench_convert_coco.py --scale                  # the full PIDray size (minutes)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.evaluation.bench_convert import PIDRAY_IMAGES, bench_convert_coco  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", action="store_true", help="PIDray-sized scale run instead of the speed run")
    parser.add_argument("--num", type=int, help=f"images (default: 64 for speed, {PIDRAY_IMAGES} for --scale)")
    parser.add_argument("--height", type=int, help="image height (default 256; 32 for --scale)")
    parser.add_argument("--width", type=int, help="image width (default 768; 96 for --scale)")
    parser.add_argument(
        "--points", type=int, default=110, help="--scale: points per polygon (default 110, ~6 KB of JSON an image)"
    )
    parser.add_argument("--workers", type=int, default=2, help="the parallel worker count (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="speed: runs per setting, the best counts (default 2)")
    parser.add_argument("--compare-json-load", action="store_true", help="--scale: also measure a plain json.load")
    parser.add_argument(
        "--index-only",
        action="store_true",
        help="--scale: only build the annotation index (no conversion): its peak RSS and time",
    )
    parser.add_argument("--tmp", type=Path, help="folder for the generated data (default: a temporary folder)")
    args = parser.parse_args(argv)
    return bench_convert_coco(args)


if __name__ == "__main__":
    sys.exit(main())
