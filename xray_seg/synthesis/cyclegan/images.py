"""Unpaired image folders for CycleGAN: loading, random crops and the image pool.

Zhu et al. 2017 (section 4 and appendix 7.1) train on unaligned folders: each step
takes one image of each domain, resized so that the shorter side is ``load_size``,
randomly cropped to ``size`` and randomly flipped left-right. The discriminators see
a fake drawn from a pool of the last 50 generated images half of the time (Shrivastava
et al. 2017), which damps oscillation.

All randomness comes from one ``numpy.random.Generator`` whose state the trainer saves
with each checkpoint, so a resumed run draws the same crops and pool choices as an
uninterrupted one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from xray_seg.core.constants import PHOTO_IMAGE_SUFFIXES
from xray_seg.core.errors import DatasetError
from xray_seg.core.images import decode_image, read_image_bytes
from xray_seg.synthesis.scene import CONTACT_SHEET


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted); DatasetError if the folder is missing.

    The ``contact_sheet.png`` that ``xray-seg synth`` writes beside its images is an
    overview, not a sample, and is left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError("image folder not found", path=folder, fix="give an existing folder of images")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in PHOTO_IMAGE_SUFFIXES and p.name != CONTACT_SHEET
    )


def resize_shorter_side(image: np.ndarray, side: int) -> np.ndarray:
    """Resize so that the shorter side is ``side`` pixels, keeping the aspect ratio."""
    h, w = image.shape[:2]
    scale = side / min(h, w)
    new_w, new_h = max(round(w * scale), side), max(round(h * scale), side)
    if (new_h, new_w) == (h, w):
        return image
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (new_w, new_h), interpolation=interpolation)


def load_domain(folder: str | Path, load_size: int, *, name: str, warn=None) -> list[np.ndarray]:
    """Decode every image of a domain folder, resized to shorter side ``load_size``.

    A file that cannot be decoded is reported through ``warn`` (default: a line on
    stderr naming the file) and skipped. Raises :class:`DatasetError` when no image
    is left.
    """
    warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
    files = list_images(folder)
    images = []
    for path in files:
        try:
            rgb, _, _, _ = decode_image(read_image_bytes(path), source=path)
        except DatasetError as exc:
            warn(f"{exc.message}; skipped")
            continue
        except OSError as exc:
            warn(f"{path}: cannot read ({exc.strerror or exc}); skipped")
            continue
        images.append(resize_shorter_side(rgb, load_size))
    if not images:
        found = f"none of its {len(files)} image files could be decoded" if files else "it holds no image files"
        raise DatasetError(
            f"domain {name} has no usable image: {found} ({', '.join(PHOTO_IMAGE_SUFFIXES)})",
            path=folder,
            fix=f"point --{name.lower()} at a folder of images",
        )
    return images


def random_crop_flip(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``size`` x ``size`` crop, flipped left-right with probability 0.5."""
    h, w = image.shape[:2]
    y = int(rng.integers(h - size + 1))
    x = int(rng.integers(w - size + 1))
    crop = image[y : y + size, x : x + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return crop


class UnpairedBatches:
    """Batches of (A, B) crops: A in a fresh random order each epoch, B drawn at random.

    Args:
        images_a, images_b: decoded images (shorter side ``load_size``).
        size: crop side.
        batch_size: images per batch.
        steps: batches per epoch.
    """

    def __init__(self, images_a, images_b, size: int, batch_size: int, steps: int):
        self.images_a = images_a
        self.images_b = images_b
        self.size = size
        self.batch_size = batch_size
        self.steps = steps

    def epoch(self, rng: np.random.Generator):
        """Yield ``steps`` pairs of float32 ``[batch, size, size, 3]`` arrays (0..255)."""
        count = self.steps * self.batch_size
        order_a = np.concatenate([rng.permutation(len(self.images_a)) for _ in range(-(-count // len(self.images_a)))])[
            :count
        ]
        for step in range(self.steps):
            picks = order_a[step * self.batch_size : (step + 1) * self.batch_size]
            a = [random_crop_flip(self.images_a[i], self.size, rng) for i in picks]
            b = [random_crop_flip(self.images_b[int(rng.integers(len(self.images_b)))], self.size, rng) for _ in picks]
            yield np.stack(a).astype(np.float32), np.stack(b).astype(np.float32)


class ImagePool:
    """The history of generated images (Shrivastava et al. 2017; Zhu et al. 2017, section 4).

    Until the pool holds ``capacity`` images, every fake is stored and returned. Then
    each fake is, with probability 0.5, swapped for a random stored one (which is
    returned instead), else returned as is. ``capacity`` 0 returns the fakes unchanged.
    """

    def __init__(self, capacity: int = 50):
        self.capacity = capacity
        self.images: list[np.ndarray] = []

    def query(self, fakes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.capacity == 0:
            return fakes
        out = []
        for fake in fakes:
            if len(self.images) < self.capacity:
                self.images.append(fake.copy())
                out.append(fake)
            elif rng.random() < 0.5:
                slot = int(rng.integers(self.capacity))
                out.append(self.images[slot])
                self.images[slot] = fake.copy()
            else:
                out.append(fake)
        return np.stack(out)

    def state(self) -> np.ndarray:
        """The stored images as one array (``[n, h, w, 3]``, possibly n = 0)."""
        if not self.images:
            return np.zeros((0, 1, 1, 3), np.float32)
        return np.stack(self.images)

    def restore(self, images: np.ndarray) -> None:
        self.images = [img.copy() for img in images]
