"""The in-memory cache cannot take a PIDray-sized split out of memory (xray_seg.pipeline.memory_cache)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from xray_seg.conversion.voc import VocLayout, save_label_png, write_class_names, write_split
from xray_seg.core import memory
from xray_seg.pipeline import memory_cache
from xray_seg.pipeline.dataset import make_train_dataset
from xray_seg.pipeline.memory_cache import cache_bytes
from xray_seg.pipeline.split_files import SplitFiles

GIB = 1 << 30


def fake_split(n: int, hw=(456, 1886)) -> SplitFiles:
    """A split of ``n`` images of PIDray's strip size, without any file behind it."""
    return SplitFiles(
        stems=[f"s{i}" for i in range(n)],
        images=[""] * n,
        masks=[""] * n,
        sizes=[hw] * n,
        mask_kinds=[0] * n,
        num_classes=6,
    )


def test_pidray_sized_split_is_not_cached(monkeypatch):
    monkeypatch.setattr(memory_cache, "available_memory", lambda: 64 * GIB)
    big = fake_split(47_000)
    assert cache_bytes(big) == 2 * 4 * 47_000 * 456 * 1886  # about 300 GiB at the peak
    fits, why = memory_cache._fits_in_memory(big)
    assert not fits and "47000 images" in why and "64.0 GiB available" in why
    assert memory_cache._fits_in_memory(fake_split(100))[0]  # 100 strips: 0.6 GiB


def test_container_limit_caps_the_host_memory(monkeypatch, tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 134217728 kB\nMemAvailable: 100000000 kB\n")
    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text(f"{8 * GIB}\n")
    usage.write_text(f"{2 * GIB}\n")
    real_path = memory.Path
    redirect = {"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": limit, "/sys/fs/cgroup/memory.current": usage}
    monkeypatch.setattr(memory, "Path", lambda p, *a: real_path(redirect.get(str(p), tmp_path / "absent")))
    assert memory.available_memory() == 6 * GIB
    limit.write_text("max\n")
    assert memory.available_memory() == 100000000 * 1024


def test_unknown_free_memory_caches_only_small_splits(monkeypatch):
    monkeypatch.setattr(memory_cache, "available_memory", lambda: None)
    assert memory_cache._fits_in_memory(fake_split(10))[0]
    assert not memory_cache._fits_in_memory(fake_split(5_000))[0]


def _voc(root, n=4, size=(16, 24)):
    layout = VocLayout(root)
    rng = np.random.default_rng(0)
    for i in range(n):
        layout.images_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(layout.images_dir / f"s{i}.png")
        save_label_png(layout.mask_path(f"s{i}"), rng.integers(0, 2, size))
    write_class_names(root, ["_background_", "knife"])
    write_split(root, "train", [f"s{i}" for i in range(n)])


def test_make_train_dataset_falls_back_with_a_warning(monkeypatch, tmp_path):
    _voc(tmp_path)
    monkeypatch.setattr(memory_cache, "available_memory", lambda: 1000)  # as if the split were PIDray on a small box
    kwargs = dict(image_size=(16, 16), batch_size=2, seed=1, augment=None, repeat=False, shuffle=False)
    with pytest.warns(UserWarning, match="not caching the decoded 'train' split.*reading the files each epoch"):
        cached = list(make_train_dataset(tmp_path, cache=True, **kwargs))
    plain = list(make_train_dataset(tmp_path, **kwargs))
    assert len(cached) == len(plain) == 2
    for (a, am), (b, bm) in zip(cached, plain):
        assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(am.numpy(), bm.numpy())
