"""Up-front checks of a training run's data, before a run folder is created.

Every file of the train and val splits is checked once (existence, format, CRCs, a
full decode, sizes, the pixel limit and every mask value; see
:mod:`xray_seg.pipeline.split_files`), so a bad file stops ``xray-seg train``
with one line naming it, before any output exists (docs/architecture.md, "Errors").
The results are cached per file, so building the datasets afterwards costs nothing more.
"""

from __future__ import annotations

from xray_seg.pipeline.split_files import scan_split


def check_training_data(cfg) -> None:
    """DatasetError / ConfigError naming the first bad file of ``cfg``'s train or val split."""
    for split in dict.fromkeys([cfg.data.train_split, cfg.data.val_split]):
        scan_split(cfg.data.voc_dir, split)
