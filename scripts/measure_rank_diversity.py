"""How far apart are scans in ``xray-seg rank``'s diversity embedding (16x16 grey thumbnails)?

Synthesises ``--bags`` distinct bags (``xray-seg synth``'s default difficulty) and, for each,
"rescans" of the same bag: shifted along the belt by a few pixels, with detector-like noise
(Gaussian, sigma 3 grey levels) and a JPEG re-encode (quality 90). It prints the RMS thumbnail
distance (0..1) between distinct bags and between a bag and its rescans, and for a few
thresholds the share of distinct pairs that would be wrongly skipped and of rescans caught.
``rank --min-distance`` should sit above the rescans and below the distinct pairs.

    .venv/bin/python scripts/measure_rank_diversity.py --bags 120 --size 256
    .venv/bin/python scripts/measure_rank_diversity.py --bags 60 --size 768x256
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray_seg.core.images import read_image_rgb  # noqa: E402
from xray_seg.inference.acquisition import thumb_distance, thumbnail  # noqa: E402
from xray_seg.synthesis.scene import SynthConfig, synthesize  # noqa: E402

THRESHOLDS = (0.02, 0.03, 0.05, 0.08, 0.1, 0.12)


def rescan(image: np.ndarray, shift: int, rng) -> np.ndarray:
    """The same bag scanned again: moved ``shift`` pixels along the belt (air fills in), noise, JPEG."""
    moved = np.full_like(image, 255)
    moved[:, shift:] = image[:, : image.shape[1] - shift]
    noisy = np.clip(moved + rng.normal(0, 3, moved.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noisy).save(buf, format="JPEG", quality=90)
    return np.asarray(Image.open(buf).convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=120)
    parser.add_argument("--size", default="256", help="N or WIDTHxHEIGHT, as `xray-seg synth --size`")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    width, _, height = args.size.partition("x")
    size, width = (int(height), int(width)) if height else (int(width), 0)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        config = SynthConfig(size=size, width=width, num=args.bags, seed=args.seed, workers=1)
        synthesize(Path(tmp) / "bags", config, progress=False)
        images = [read_image_rgb(p.with_suffix(".png")) for p in sorted((Path(tmp) / "bags").glob("*.json"))]
    thumbs = [thumbnail(im) for im in images]
    distinct = np.array([thumb_distance(a, b) for i, a in enumerate(thumbs) for b in thumbs[i + 1 :]])
    shifts = (1, 2, 4, 8)
    again = {
        s: np.array([thumb_distance(t, thumbnail(rescan(im, s, rng))) for im, t in zip(images, thumbs)]) for s in shifts
    }
    print(f"{len(images)} bags of {args.size} px, {distinct.size} distinct pairs")
    q = np.percentile(distinct, [0, 1, 5, 50])
    print(f"distinct bags: min {q[0]:.4f}, 1st percentile {q[1]:.4f}, 5th {q[2]:.4f}, median {q[3]:.4f}")
    for s in shifts:
        print(f"rescans shifted {s} px: median {np.median(again[s]):.4f}, max {again[s].max():.4f}")
    print("threshold | distinct pairs skipped | rescans caught (shift 1 / 2 / 4 / 8 px)")
    for t in THRESHOLDS:
        caught = " / ".join(f"{(again[s] < t).mean():.2f}" for s in shifts)
        print(f"{t:9.2f} | {(distinct < t).mean():22.4f} | {caught}")


if __name__ == "__main__":
    main()
