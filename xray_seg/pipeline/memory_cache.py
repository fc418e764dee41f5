"""The in-memory cache of a split's decoded originals (``make_train_dataset(cache=True)``), and
whether it fits: checked before anything is decoded, from the image sizes the file check read."""

from __future__ import annotations

import warnings

import tensorflow as tf

from xray_seg.core.memory import available_memory
from xray_seg.pipeline.split_files import SplitFiles

AUTOTUNE = tf.data.AUTOTUNE

# The memory cache holds 3 bytes of image and 1 of mask per pixel; building it (a ragged
# batch of every decoded original) holds the decoded elements and their batched copy at
# once, so the peak is twice that.
_CACHE_BYTES_PER_PIXEL = 4
_CACHE_PEAK_FACTOR = 2
# When the free memory cannot be read, cache only what is small on any machine.
_CACHE_BLIND_LIMIT = 2 << 30


def memory_cache(files: SplitFiles, load) -> tf.data.Dataset:
    """One element holding every decoded original, flattened and ragged-batched, cached in memory."""
    n = len(files)

    def flat(index):
        image, mask = load(index)
        return tf.reshape(image, [-1]), tf.reshape(mask, [-1]), tf.shape(mask)

    decoded = tf.data.Dataset.range(n).map(flat, num_parallel_calls=AUTOTUNE, deterministic=True)
    return decoded.ragged_batch(n).cache()


# The memory cache holds 3 bytes of image and 1 of mask per pixel; building it (a ragged
# batch of every decoded original) holds the decoded elements and their batched copy at
# once, so the peak is twice that.


def cache_bytes(files: SplitFiles) -> int:
    """Peak bytes the in-memory cache of ``files`` needs (sizes from the up-front file check)."""
    return _CACHE_PEAK_FACTOR * _CACHE_BYTES_PER_PIXEL * sum(int(h) * int(w) for h, w in files.sizes)


def _fits_in_memory(files: SplitFiles) -> tuple[bool, str]:
    """Whether the cache of ``files`` takes under half the available memory, and why not.

    Checked before anything is decoded, from the sizes the file check read from the
    headers, so a 47,000-image dataset is never loaded to find out.
    """
    need = cache_bytes(files)
    available = available_memory()
    gib = 1 << 30
    if available is None:
        fits = need < _CACHE_BLIND_LIMIT
        return (
            fits,
            f"needs {need / gib:.1f} GiB and the free memory is unknown (limit {_CACHE_BLIND_LIMIT / gib:.0f} GiB)",
        )
    return need < 0.5 * available, (
        f"needs {need / gib:.1f} GiB at its peak ({len(files)} images), more than half of the "
        f"{available / gib:.1f} GiB available"
    )


def cache_fits(files: SplitFiles, voc_dir, split: str) -> bool:
    """Whether the decoded split fits the memory cache; if not, a warning says the files are
    read each epoch instead (the same stream, only slower)."""
    fits, why = _fits_in_memory(files)
    if not fits:
        warnings.warn(
            f"{voc_dir}: not caching the decoded {split!r} split in memory: it {why}; reading the files "
            "each epoch instead (the same stream, only slower)",
            stacklevel=3,
        )
    return fits


__all__ = ["cache_bytes", "cache_fits", "memory_cache"]
