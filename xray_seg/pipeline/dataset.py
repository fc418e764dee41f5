"""The tf.data input pipeline: VOC folder -> decode -> paired augmentation -> batches.

Everything after the up-front file check is pure TensorFlow (no ``py_function``), so
it runs in parallel (``num_parallel_calls=AUTOTUNE``) and prefetches. Decoding:
:mod:`xray_seg.pipeline.decoding`.

Determinism and resume
    The stream is a pure function of ``(seed, shard, epoch, position in epoch)``: epoch ``e``
    visits the files in ``stateless_shuffle(range(n), fold_in(key, e))`` order and the element
    at position ``p`` is augmented with seed ``fold_in(fold_in(key', e), p)``. Each epoch is cut
    to whole batches (with ``drop_remainder``), so batches never straddle epochs and a dataset
    built with ``start_epoch=k`` yields exactly what one built with ``start_epoch=0`` yields
    after ``k`` epochs. ``deterministic=False`` may reorder elements within the prefetch
    window, but each element's content still depends only on its seed.

Errors
    Every file of the split is checked before any TF op runs
    (:mod:`xray_seg.pipeline.split_files`); a file changed after the check still fails inside
    the graph with a message carrying the file name, which :func:`dataset_error_from` turns
    back into a DatasetError (``xray-seg train`` does).

Memory cache
    ``cache=True`` keeps the decoded originals in memory when they take under half the
    available memory, a container's limit included (:mod:`xray_seg.pipeline.memory_cache`);
    otherwise the files are read each epoch, with a warning. The stream is the same either way.

Sharding
    ``input_context`` is a ``tf.distribute.InputContext`` or ``(num_shards, index)``. The
    file list is sharded (``stems[index::num_shards]``) before anything is decoded. With an
    InputContext ``batch_size`` is the global batch and each worker batches
    ``input_context.get_per_replica_batch_size(batch_size)``; with a tuple it is the batch
    of this shard.
"""

from __future__ import annotations

import re

import tensorflow as tf

from xray_seg.conversion.voc import read_split
from xray_seg.core.errors import ConfigError, DatasetError
from xray_seg.core.layouts import VocLayout
from xray_seg.pipeline.augment import AugmentConfig, augment_pair
from xray_seg.pipeline.decoding import ERROR_TAG, make_loader
from xray_seg.pipeline.memory_cache import cache_fits, memory_cache
from xray_seg.pipeline.split_files import SplitFiles, scan_split
from xray_seg.pipeline.tip import make_projector

AUTOTUNE = tf.data.AUTOTUNE
_ERROR_RE = re.compile(re.escape(ERROR_TAG) + r"\|(?P<path>[^|]*)\|(?P<problem>[^|\]\n]*)")


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


def split_size(voc_dir, split) -> int:
    """Number of images in ``split`` (the stems listed in its ImageSets file)."""
    return len(read_split(voc_dir, split))


def dataset_error_from(exc: BaseException) -> DatasetError | None:
    """The DatasetError behind a TF error raised by a bad label inside the pipeline, else None."""
    match = _ERROR_RE.search(str(exc))
    if not match:
        return None
    return DatasetError(match["problem"].strip(), path=match["path"], fix="fix the mask or re-run `xray-seg convert`")


def _check_one_batch(n: int, batch_size: int, drop_remainder: bool, voc_dir, split: str) -> None:
    """ConfigError when ``drop_remainder`` would leave no batch of this shard's ``n`` images."""
    if drop_remainder and n < batch_size:
        raise ConfigError(
            f"split {split!r} has {n} images (in this shard), fewer than one batch of {batch_size}",
            path=VocLayout(voc_dir).split_file(split),
            fix="lower the batch size or add images",
        )


def _epoch_positions(n, batch_size, drop_remainder, shuffle, seed, shard_index):
    """``positions(epoch)``: the dataset of (file index, element seed) for each position of ``epoch``
    (module docstring, "Determinism and resume"); cut to whole batches with ``drop_remainder``."""
    keep = (n // batch_size) * batch_size if drop_remainder else n
    key = tf.constant([int(seed), shard_index], tf.int64)
    order_key = tf.random.experimental.stateless_fold_in(key, 0)
    augment_key = tf.random.experimental.stateless_fold_in(key, 1)

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
    store = memory_cache(files, load)

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


def _transform(project, augment, crop_hw, fit_hw, scale):
    """``transform(image, mask, element_seed)``: threat projection (when ``project``), then the paired augmentation."""

    def transform(image, mask, element_seed):
        if project is not None:
            image, mask = project(image, mask, element_seed)
        return augment_pair(image, mask, element_seed, augment, crop_hw, fit_size=fit_hw, scale=scale)

    return transform


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
        cache: keep the decoded originals in memory if they fit (module docstring, "Memory cache").
        deterministic: keep element order fixed under parallel map.
        input_context: a ``tf.distribute.InputContext`` or ``(num_shards, index)``.
        drop_remainder: cut each epoch to whole batches (static batch dimension).
        crop_size: train on crops of this ``(height, width)`` cut from images fitted to
            ``image_size`` (default: ``image_size``; :func:`~xray_seg.pipeline.augment.augment_pair`).
        scale: the geometry rule's scale (1.0 = native resolution): images are scaled by
            it instead of being fitted to ``image_size`` (docs/architecture.md, "Geometry").
    """
    num_shards, shard_index = _shard_of(input_context)
    if isinstance(input_context, tf.distribute.InputContext):
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    files = scan_split(voc_dir, split, num_shards=num_shards, shard_index=shard_index)
    _check_one_batch(len(files), batch_size, drop_remainder, voc_dir, split)
    fit_hw = (int(image_size[0]), int(image_size[1]))
    crop_hw = fit_hw if not crop_size else (int(crop_size[0]), int(crop_size[1]))
    load = make_loader(files)
    cache = cache and cache_fits(files, voc_dir, split)
    positions = _epoch_positions(len(files), batch_size, drop_remainder, shuffle, seed, shard_index)
    originals = _epoch_originals(files, load, positions, cache)
    # threat image projection; None unless augment.tip_prob > 0
    transform = _transform(make_projector(augment, voc_dir), augment, crop_hw, fit_hw, scale)
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
    load = make_loader(files)

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
