"""The tf.data input pipeline: VOC folder -> decode -> paired augmentation -> batches.

Everything after the up-front file check is pure TensorFlow (no ``py_function``), so
it runs in parallel (``num_parallel_calls=AUTOTUNE``) and prefetches.

Masks
    ``tf.io.decode_png`` expands a palette ("P") PNG to the palette's *colours*, not its
    indices (checked: ``channels=0`` gives 3 channels of VOC colours). The masks that
    ``xray-seg convert`` / ``labelme2voc.py`` write use the VOC colour map, which is a
    bijection of 0..255 onto colours built by interleaving the index bits, so the index is
    recovered exactly from the top bits of (r, g, b) (:func:`voc_colours_to_labels`).
    8-bit greyscale PNGs (and palette PNGs with a grey identity palette) hold the labels
    directly. Any other mask is refused up front with a message naming the file.

Determinism and resume
    The stream is a pure function of ``(seed, shard, epoch, position in epoch)``: epoch ``e``
    visits the files in ``stateless_shuffle(range(n), fold_in(key, e))`` order and the element
    at position ``p`` is augmented with seed ``fold_in(fold_in(key', e), p)``. Each epoch is cut
    to whole batches (with ``drop_remainder``), so batches never straddle epochs and a dataset
    built with ``start_epoch=k`` yields exactly what one built with ``start_epoch=0`` yields
    after ``k`` epochs. ``deterministic=False`` may reorder elements within the prefetch
    window, but each element's content still depends only on its seed.

Errors
    Before any TF op runs, every file of the split is checked: existence, the format's magic
    bytes, every PNG chunk CRC and the IEND chunk (truncation and bit rot), the JPEG end
    marker, image and mask sizes agreeing, the pixel limit (:mod:`xray_seg.core.pixel_limit`),
    a full decode of every image and mask (corrupt compressed data), and every mask value
    lying in ``0..K-1`` or 255. Each failure raises a
    :class:`~xray_seg.core.errors.DatasetError` naming the file. Results are remembered per
    (path, size, mtime) for the process. A file changed after the check still fails inside
    the graph with a message carrying the file name, which :func:`dataset_error_from`
    turns back into a DatasetError (``xray-seg train`` does).

Sharding
    ``input_context`` is a ``tf.distribute.InputContext`` or ``(num_shards, index)``. The
    file list is sharded (``stems[index::num_shards]``) before anything is decoded. With an
    InputContext ``batch_size`` is the global batch and each worker batches
    ``input_context.get_per_replica_batch_size(batch_size)``; with a tuple it is the batch
    of this shard.
"""

from __future__ import annotations

import os
import re
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from xray_seg.conversion.voc import read_class_names, read_split
from xray_seg.core.constants import IGNORE_LABEL, JPEG_MAGIC, PNG_MAGIC
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.fileio import read_regular_file
from xray_seg.core.layouts import VocLayout
from xray_seg.core.pixel_limit import check_pixels
from xray_seg.core.viz import voc_palette
from xray_seg.pipeline.augment import AugmentConfig, augment_pair
from xray_seg.pipeline.tip import make_projector

AUTOTUNE = tf.data.AUTOTUNE
MASK_GREY, MASK_VOC = 0, 1
_ERROR_TAG = "xray_seg.DatasetError"
_ERROR_RE = re.compile(re.escape(_ERROR_TAG) + r"\|(?P<path>[^|]*)\|(?P<problem>[^|\]\n]*)")
_CHECKED: dict[tuple, tuple] = {}


@dataclass(frozen=True)
class SplitFiles:
    """The checked files of a split: paths, sizes ``(h, w)`` and mask encodings."""

    stems: list[str]
    images: list[str]
    masks: list[str]
    sizes: list[tuple[int, int]]
    mask_kinds: list[int]
    num_classes: int

    def __len__(self) -> int:
        return len(self.stems)


# ----------------------------------------------------------------------------- file checks


def _png_info(path: Path, data: bytes) -> tuple[tuple[int, int], int, int, bytes]:
    """Walk the chunks of a PNG, checking every CRC; return ((h, w), bit depth, colour type, PLTE)."""
    if not data.startswith(PNG_MAGIC):
        raise DatasetError(
            "not a PNG file (bad signature)", path=path, fix="re-export the file as PNG or re-run `xray-seg convert`"
        )
    pos, size, depth, colour, palette = 8, None, 0, 0, b""
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            break
        body = data[pos + 8 : pos + 8 + length]
        if zlib.crc32(data[pos + 4 : pos + 8 + length]) != int.from_bytes(data[end - 4 : end], "big"):
            raise DatasetError(
                f"corrupt PNG (CRC mismatch in {kind.decode('latin-1')} chunk)",
                path=path,
                fix="replace the file or re-run `xray-seg convert`",
            )
        if kind == b"IHDR":
            size = (int.from_bytes(body[4:8], "big"), int.from_bytes(body[0:4], "big"))
            depth, colour = body[8], body[9]
        elif kind == b"PLTE":
            palette = body
        elif kind == b"IEND":
            if size is None:
                break
            return size, depth, colour, palette
        pos = end
    raise DatasetError(
        "truncated or corrupt PNG (no complete IEND chunk)",
        path=path,
        fix="replace the file or re-run `xray-seg convert`",
    )


def _decode_fully(path: Path, data: bytes, size: tuple[int, int], kind: str) -> np.ndarray:
    """Decode ``data`` completely (corrupt compressed data fails here, naming the file)."""
    import io

    from PIL import Image

    check_pixels(size[0], size[1], path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            with Image.open(io.BytesIO(data)) as img:
                img.load()
                return np.asarray(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(
            f"corrupt {kind} data ({exc})", path=path, fix="replace the file or re-run `xray-seg convert`"
        ) from None


def _check_image(path: Path) -> tuple[int, int]:
    data = read_regular_file(path, "image")
    if data.startswith(PNG_MAGIC):
        size = _png_info(path, data)[0]
        _decode_fully(path, data, size, "PNG")
        return size
    if data.startswith(JPEG_MAGIC):
        if b"\xff\xd9" not in data[-64:]:
            raise DatasetError(
                "truncated JPEG (no end-of-image marker)",
                path=path,
                fix="replace the file or re-run `xray-seg convert`",
            )
        from PIL import Image

        try:
            with Image.open(path) as img:
                size = img.size[1], img.size[0]
        except (OSError, SyntaxError) as exc:
            raise DatasetError(
                f"corrupt JPEG ({exc})", path=path, fix="replace the file or re-run `xray-seg convert`"
            ) from None
        _decode_fully(path, data, size, "JPEG")
        return size
    raise DatasetError(
        "not a PNG or JPEG image", path=path, fix="convert the image to PNG or JPEG (xray-seg convert does)"
    )


def _labels_present(path: Path, data: bytes, size: tuple[int, int]) -> tuple[int, ...]:
    """The pixel values of a grey or palette mask (palette indices, as Pillow decodes them)."""
    values = _decode_fully(path, data, size, "mask PNG")
    if values.ndim != 2:
        raise DatasetError(
            "mask does not decode to one channel", path=path, fix="write masks as palette or 8-bit grey PNGs"
        )
    return tuple(int(v) for v in np.flatnonzero(np.bincount(values.ravel(), minlength=256)))


def _check_mask(path: Path) -> tuple[tuple[int, int], int, tuple[int, ...]]:
    data = read_regular_file(path, "mask")
    size, depth, colour, palette = _png_info(path, data)
    if colour == 0 and depth == 8:
        return size, MASK_GREY, _labels_present(path, data, size)
    if colour == 3:
        entries = np.frombuffer(palette, dtype=np.uint8).reshape(-1, 3)
        if np.array_equal(entries, voc_palette(len(entries))):
            return size, MASK_VOC, _labels_present(path, data, size)
        if np.array_equal(entries, np.repeat(np.arange(len(entries), dtype=np.uint8)[:, None], 3, axis=1)):
            return size, MASK_GREY, _labels_present(path, data, size)
        raise DatasetError(
            "mask uses a palette other than the VOC colour map, so its colours cannot be read back as labels",
            path=path,
            fix="write masks with xray_seg.conversion.voc.save_label_png (xray-seg convert does) or as 8-bit greyscale label PNGs",
        )
    raise DatasetError(
        f"mask is not an indexed PNG (PNG colour type {colour}, bit depth {depth})",
        path=path,
        fix="write masks as palette PNGs whose pixel values are class indices (xray-seg convert does)",
    )


def _cached_check(path: Path, check):
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DatasetError(
            "file listed in the split is missing",
            path=path,
            fix="re-run `xray-seg convert`, or remove the stem from the split list",
        ) from None
    key = (str(path), stat.st_size, stat.st_mtime_ns, check.__name__)
    if key not in _CHECKED:
        _CHECKED[key] = check(path)
    return _CHECKED[key]


def _shard_of(input_context) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    if isinstance(input_context, tf.distribute.InputContext):
        return input_context.num_input_pipelines, input_context.input_pipeline_id
    num_shards, index = (int(v) for v in input_context)
    if not 0 <= index < num_shards:
        raise ConfigError(
            f"shard index {index} is not in 0..{num_shards - 1}",
            fix="pass (num_shards, index) with 0 <= index < num_shards",
        )
    return num_shards, index


def scan_split(voc_dir: str | Path, split: str, *, num_shards: int = 1, shard_index: int = 0) -> SplitFiles:
    """Check and list the files of ``split`` (this shard's part); DatasetError naming any bad file."""
    layout = VocLayout(voc_dir)
    num_classes = len(read_class_names(voc_dir))
    stems = read_split(voc_dir, split)[shard_index::num_shards]
    if not stems:
        raise ConfigError(
            f"shard {shard_index} of {num_shards} of split {split!r} is empty",
            path=layout.split_file(split),
            fix="use fewer shards or add images",
        )
    images, masks, sizes, kinds = [], [], [], []
    for stem in stems:
        image_path = layout.image_path(stem)
        mask_path = layout.mask_path(stem)
        image_hw = _cached_check(image_path, _check_image)
        mask_hw, kind, labels = _cached_check(mask_path, _check_mask)
        bad = [v for v in labels if v >= num_classes and v != IGNORE_LABEL]
        if bad:
            raise DatasetError(
                f"mask has label value(s) {', '.join(map(str, bad[:8]))} outside 0..{num_classes - 1} and {IGNORE_LABEL} "
                f"(class_names.txt lists {num_classes} classes)",
                path=mask_path,
                fix="write masks whose pixel values are class indices (xray-seg convert does), or fix class_names.txt",
            )
        if tuple(image_hw) != tuple(mask_hw):
            raise DatasetError(
                f"mask is {mask_hw[0]}x{mask_hw[1]} but its image {image_path.name} is {image_hw[0]}x{image_hw[1]} (HxW)",
                path=mask_path,
                fix="re-run `xray-seg convert` so that image and mask come from the same annotation",
            )
        images.append(str(image_path))
        masks.append(str(mask_path))
        sizes.append(tuple(image_hw))
        kinds.append(kind)
    return SplitFiles(stems, images, masks, sizes, kinds, num_classes)


def split_size(voc_dir, split) -> int:
    """Number of images in ``split`` (the stems listed in its ImageSets file)."""
    return len(read_split(voc_dir, split))


def dataset_error_from(exc: BaseException) -> DatasetError | None:
    """The DatasetError behind a TF error raised by a bad label inside the pipeline, else None."""
    match = _ERROR_RE.search(str(exc))
    if not match:
        return None
    return DatasetError(match["problem"].strip(), path=match["path"], fix="fix the mask or re-run `xray-seg convert`")


# ----------------------------------------------------------------------------- decoding (graph)


def _voc_inverse_table() -> np.ndarray:
    """Label of each key ``(r >> 5) << 5 | (g >> 5) << 2 | b >> 6`` of a VOC palette colour."""
    colours = voc_palette().astype(np.int32)
    keys = (colours[:, 0] >> 5) << 5 | (colours[:, 1] >> 5) << 2 | colours[:, 2] >> 6
    table = np.zeros(256, np.uint8)
    table[keys] = np.arange(256)
    return table


_VOC_INVERSE = _voc_inverse_table()


def voc_colours_to_labels(rgb):
    """Invert the VOC colour map: ``[H, W, 3]`` uint8 colours -> ``[H, W]`` uint8 indices.

    Index bits 0, 3, 6 are colour bits 7, 6, 5 of r; bits 1, 4, 7 those of g; bits 2, 5
    bits 7, 6 of b. So the top 3, 3 and 2 bits of (r, g, b) form an 8-bit key that a
    256-entry table maps back to the index (one gather; 3x faster than de-interleaving).
    """
    rgb = tf.cast(rgb, tf.uint8)
    top = tf.bitwise.right_shift(rgb, tf.constant([5, 5, 6], tf.uint8))  # 3, 3, 2 top bits
    key = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_or(tf.bitwise.left_shift(top[..., 0], 5), tf.bitwise.left_shift(top[..., 1], 2)), top[..., 2]
    )
    return tf.gather(tf.constant(_VOC_INVERSE), tf.cast(key, tf.int32))


def decode_mask(data, kind):
    """Decode mask PNG bytes to ``[H, W]`` uint8 labels (``kind``: MASK_GREY or MASK_VOC)."""
    return tf.cond(
        tf.equal(kind, MASK_VOC),
        lambda: voc_colours_to_labels(tf.io.decode_png(data, channels=3)),
        lambda: tf.io.decode_png(data, channels=1)[..., 0],
    )


def decode_image(data):
    """Decode PNG or JPEG bytes to ``[H, W, 3]`` uint8."""
    image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def _loader(files: SplitFiles):
    images = tf.constant(files.images)
    masks = tf.constant(files.masks)
    kinds = tf.constant(files.mask_kinds, tf.int32)
    num_classes = files.num_classes

    def load(index):
        image_path, mask_path = images[index], masks[index]
        image = decode_image(tf.io.read_file(image_path))
        mask = decode_mask(tf.io.read_file(mask_path), kinds[index])
        valid = tf.reduce_all((mask < num_classes) | (mask == IGNORE_LABEL))
        problem = f"mask has labels outside 0..{num_classes - 1} and {IGNORE_LABEL} (class_names.txt lists {num_classes} classes)"
        check = tf.debugging.Assert(valid, [tf.strings.join([_ERROR_TAG, mask_path, problem], separator="|")])
        same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.shape(mask)))
        check_size = tf.debugging.Assert(
            same, [tf.strings.join([_ERROR_TAG, mask_path, "mask and image sizes differ"], separator="|")]
        )
        with tf.control_dependencies([check, check_size]):
            return tf.identity(image), tf.identity(mask)

    return load


# ----------------------------------------------------------------------------- datasets


def _memory_cache(files: SplitFiles, load) -> tf.data.Dataset:
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
_CACHE_BYTES_PER_PIXEL = 4
_CACHE_PEAK_FACTOR = 2
# When the free memory cannot be read, cache only what is small on any machine.
_CACHE_BLIND_LIMIT = 2 << 30


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process can still use: ``MemAvailable``, capped by a cgroup (container) limit.

    None when neither can be read. A container's limit matters most: the host's free
    memory can be far above what the cgroup lets this process allocate before it is killed.
    """
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            candidates.append(max(0, limit - usage))
    return min(candidates) if candidates else None


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


def _epoch_positions(n, keep, shuffle, order_key, augment_key):
    """``positions(epoch)``: the dataset of (file index, element seed) for each position of ``epoch``."""

    def positions(epoch):
        order = tf.range(n, dtype=tf.int64)
        if shuffle:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.random.experimental.stateless_fold_in(order_key, epoch)
            )
        epoch_key = tf.random.experimental.stateless_fold_in(augment_key, epoch)
        ds = tf.data.Dataset.from_tensor_slices((order[:keep], tf.range(keep, dtype=tf.int64)))
        return ds.map(lambda index, pos: (index, tf.random.experimental.stateless_fold_in(epoch_key, pos)))

    return positions


def _epoch_originals(files: SplitFiles, load, positions, cache: bool):
    """``originals(epoch)``: the dataset of (image, mask, element seed) of ``epoch``, decoded
    from the files or picked from the in-memory cache (the same elements either way)."""
    if not cache:
        return lambda epoch: positions(epoch).map(lambda index, element_seed: (*load(index), element_seed))
    store = _memory_cache(files, load)

    def originals(epoch):
        def pick(flat_images, flat_masks, shapes):
            def get(index, element_seed):
                shape = shapes[index]
                image = tf.reshape(flat_images[index], tf.concat([shape, [3]], 0))
                return image, tf.reshape(flat_masks[index], shape), element_seed

            return positions(epoch).map(get)

        return store.flat_map(pick)

    return originals


def _batched_epochs(originals, transform, batch_size, start_epoch, repeat, drop_remainder, deterministic):
    """Epochs from ``start_epoch`` (for ever, or just that one), transformed and batched."""
    if repeat:
        epochs = tf.data.Dataset.counter(start=start_epoch)
    else:
        epochs = tf.data.Dataset.range(start_epoch, start_epoch + 1)
    if drop_remainder or not repeat:
        ds = epochs.flat_map(originals)
        ds = ds.map(transform, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
        return ds.batch(batch_size, drop_remainder=drop_remainder)
    # keep partial batches without letting a batch straddle two epochs
    return epochs.flat_map(
        lambda epoch: (
            originals(epoch).map(transform, num_parallel_calls=AUTOTUNE, deterministic=deterministic).batch(batch_size)
        )
    )


def _cache_fits(files: SplitFiles, voc_dir, split: str) -> bool:
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


def make_train_dataset(
    voc_dir,
    split="train",
    *,
    image_size=(512, 512),
    batch_size=4,
    augment: AugmentConfig | None = AugmentConfig(),  # noqa: B008  (read only; None = no augmentation)
    seed=0,
    start_epoch=0,
    shuffle=True,
    repeat=True,
    cache=False,
    deterministic=True,
    input_context=None,
    drop_remainder=True,
    crop_size=None,
    scale=None,
) -> tf.data.Dataset:
    """Training batches ``(images float32 [B, H, W, 3] in 0..255, masks uint8 [B, H, W])``.

    Args:
        voc_dir: a VOC folder (see :mod:`xray_seg.conversion.voc`).
        split: ``train``, ``val`` or ``trainval``.
        image_size: the training size ``(height, width)``.
        batch_size: batch size (the global batch when ``input_context`` is an InputContext).
        augment: an :class:`AugmentConfig`, or None to only fit and pad to ``image_size``.
        seed: the stream is a pure function of (seed, shard, epoch, position).
        start_epoch: skip to this epoch without decoding the ones before (for --resume).
        shuffle: visit files in a per-epoch stateless random order.
        repeat: run epochs for ever (False: one epoch, ``start_epoch``).
        cache: keep the decoded originals in memory. Checked up front from the image sizes:
            if the cache would need more than half the available memory (a container's
            limit included; :func:`available_memory`), it falls back to reading the files
            each epoch, with a warning saying so. Yields exactly the same stream as without.
        deterministic: keep element order fixed under parallel map.
        input_context: a ``tf.distribute.InputContext`` or ``(num_shards, index)``.
        drop_remainder: cut each epoch to whole batches (static batch dimension).
        crop_size: train on crops of this ``(height, width)`` cut from images fitted to
            ``image_size`` (default: ``image_size`` itself; see
            :func:`~xray_seg.pipeline.augment.augment_pair`'s ``fit_size``).
        scale: the geometry rule's scale (1.0 = native resolution): images are scaled by
            it instead of being fitted to ``image_size`` (docs/architecture.md, "Geometry").
    """
    num_shards, shard_index = _shard_of(input_context)
    if isinstance(input_context, tf.distribute.InputContext):
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    files = scan_split(voc_dir, split, num_shards=num_shards, shard_index=shard_index)
    n = len(files)
    if drop_remainder and n < batch_size:
        raise ConfigError(
            f"split {split!r} has {n} images (in this shard), fewer than one batch of {batch_size}",
            path=VocLayout(voc_dir).split_file(split),
            fix="lower the batch size or add images",
        )
    fit_hw = (int(image_size[0]), int(image_size[1]))
    crop_hw = fit_hw if not crop_size else (int(crop_size[0]), int(crop_size[1]))
    keep = (n // batch_size) * batch_size if drop_remainder else n
    key = tf.constant([int(seed), shard_index], tf.int64)
    order_key = tf.random.experimental.stateless_fold_in(key, 0)
    augment_key = tf.random.experimental.stateless_fold_in(key, 1)
    load = _loader(files)
    cache = cache and _cache_fits(files, voc_dir, split)
    positions = _epoch_positions(n, keep, shuffle, order_key, augment_key)
    originals = _epoch_originals(files, load, positions, cache)

    project = make_projector(augment, voc_dir)  # threat image projection; None unless augment.tip_prob > 0

    def transform(image, mask, element_seed):
        if project is not None:
            image, mask = project(image, mask, element_seed)
        return augment_pair(image, mask, element_seed, augment, crop_hw, fit_size=fit_hw, scale=scale)

    ds = _batched_epochs(originals, transform, batch_size, start_epoch, repeat, drop_remainder, deterministic)
    options = tf.data.Options()
    options.deterministic = deterministic
    return ds.with_options(options).prefetch(AUTOTUNE)


def make_eval_dataset(voc_dir, split="val", *, image_size=None, batch_size=1, geometry=None) -> tf.data.Dataset:
    """Evaluation batches ``(images float32 [B, H, W, 3] in 0..255, masks uint8 [B, H, W])``, in split order.

    ``geometry`` (a :class:`~xray_seg.inference.geometry.ScanGeometry`, the one geometry rule of
    docs/architecture.md "Geometry: how a scan reaches the network"): images and masks stay at
    their original resolution - the predictor scales and tiles them
    (:func:`xray_seg.inference.tta.batch_class_maps`) - and batches hold ``batch_size``
    images when every image has the same size, else one image each. This is what
    validation during training uses.

    ``image_size=None`` without ``geometry`` also keeps each image at its original
    resolution (then ``batch_size`` must be 1 unless every image has the same size).
    ``image_size`` given (explicit opt-in, not the default anywhere): images are resized to
    ``image_size`` bilinearly and masks by nearest neighbour, squashing the aspect ratio as
    paper 1 does (it compresses images to 512x512). Every file is checked up front.
    """
    files = scan_split(voc_dir, split)
    if geometry is not None:
        if image_size is not None:
            raise ConfigError("give make_eval_dataset a geometry or an image_size to squash to, not both", path=voc_dir)
        if len(set(files.sizes)) > 1:
            batch_size = 1
    if image_size is None and batch_size != 1 and len(set(files.sizes)) > 1:
        raise ConfigError(
            f"images of split {split!r} differ in size, so they cannot be batched at their original resolution",
            path=voc_dir,
            fix="use batch_size=1 or give image_size",
        )
    load = _loader(files)

    def prepare(index):
        image, mask = load(index)
        image = tf.cast(image, tf.float32)
        if image_size is not None:
            size = (int(image_size[0]), int(image_size[1]))
            image = tf.image.resize(image, size, method="bilinear")
            mask = tf.image.resize(mask[..., None], size, method="nearest")[..., 0]
            image = tf.ensure_shape(image, [size[0], size[1], 3])
            mask = tf.ensure_shape(mask, [size[0], size[1]])
        return image, tf.cast(mask, tf.uint8)

    ds = tf.data.Dataset.range(len(files)).map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)
