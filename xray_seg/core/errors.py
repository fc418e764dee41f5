"""The few exception types a user sees.

Every error a user can cause (a bad file, a bad label, a bad config) is raised as a
subclass of :class:`XraySegError`. The CLI prints it as one line, ``error: <path>:
<problem>. Fix: <fix>``, and exits with code 2 (no traceback unless ``--debug``).
"""

from __future__ import annotations

from pathlib import Path


class XraySegError(Exception):
    """A problem the user can fix: which file, what is wrong, how to fix it.

    Args:
        problem: what is wrong, e.g. ``"imagePath escapes the input folder"``.
        path: the file or folder concerned, if any.
        fix: how to fix it, e.g. ``"use a path relative to the JSON file"``.
    """

    def __init__(self, problem: str, *, path: str | Path | None = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = self.problem if self.path is None else f"{self.path}: {self.problem}"
        if self.fix:
            text = f"{text.rstrip('.')}. Fix: {self.fix}"
        return text


class DatasetError(XraySegError):
    """Bad input data: a corrupt image or JSON, an unknown label, a missing file."""


class ConfigError(XraySegError):
    """A bad preset, YAML file or command-line override."""


class ModelError(XraySegError):
    """An unknown model name, a bad model option or an unreadable weights file."""


class OutputExistsError(XraySegError):
    """An output already exists and ``--force``/``--resume`` was not given."""
