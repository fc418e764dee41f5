"""The training pipeline's up-front check reads images and masks through the one image reader
(issue 28): a file far longer than its header implies is refused by name before TensorFlow,
which reads files whole, ever sees it."""

from __future__ import annotations

import pytest
from test_tip import _voc


def test_training_split_refuses_an_image_with_a_huge_sparse_tail(tmp_path):
    from xray_seg.core.errors import DatasetError
    from xray_seg.pipeline.split_files import scan_split

    voc = _voc(tmp_path / "voc", n=2, clean_from=1)
    image = voc / "JPEGImages" / "s1.png"
    with open(image, "r+b") as f:
        f.truncate(6 << 30)  # sparse: TensorFlow's reader would read all 6 GiB
    with pytest.raises(DatasetError) as caught:
        scan_split(voc, "train")
    assert str(image) in caught.value.message and "far more than its image needs" in caught.value.message
