"""Conversion-test set-up: the labels file most tests convert with."""

from pathlib import Path

import pytest
from _helpers import write_labels


@pytest.fixture
def labels(tmp_path) -> Path:
    """``labels.txt`` with knife and gun (a test file that needs other classes defines its own)."""
    return write_labels(tmp_path, "knife", "gun")
