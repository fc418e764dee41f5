"""What a conversion did (:class:`ConvertReport`): counts, failures and warnings, as printed
and as ``convert_report.txt`` holds them."""

from __future__ import annotations

from dataclasses import dataclass, field

REPORT_FILE = "convert_report.txt"


@dataclass(frozen=True)
class FileFailure:
    """A file that was not converted, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileWarning:
    """Something about a converted file the user should know (e.g. clipped points)."""

    path: str
    message: str


@dataclass
class ConvertReport:
    """What a conversion did.

    Args:
        voc_dir: the output folder.
        total: items found (JSON files; for COCO, entries of ``images``).
        converted: files converted in this run.
        skipped: files whose outputs were already complete (``resume``).
        failures: one :class:`FileFailure` per file not converted.
        warnings: :class:`FileWarning` s of converted files.
        train, val: stems in each split.
        seconds: wall time of the conversion.
        workers: worker processes used.
    """

    voc_dir: str
    total: int = 0
    converted: int = 0
    skipped: int = 0
    failures: list[FileFailure] = field(default_factory=list)
    warnings: list[FileWarning] = field(default_factory=list)
    train: int = 0
    val: int = 0
    seconds: float = 0.0
    workers: int = 1
    subsets: dict = field(default_factory=dict)  # flag name -> converted stems with it set

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def exit_code(self) -> int:
        """0 if every file converted (or was already done), 1 if any failed."""
        return 1 if self.failures else 0

    def summary(self, max_lines: int | None = 50) -> str:
        """Counts, then every failure with its reason, then the warnings.

        ``max_lines`` caps each list (None: no cap); the report file has them all.
        """

        def capped(items: list[str]) -> list[str]:
            if max_lines is None or len(items) <= max_lines:
                return items
            return items[:max_lines] + [f"  ... and {len(items) - max_lines} more (see {REPORT_FILE})"]

        lines = [
            f"converted {self.converted}, failed {self.failed}"
            + (f", already done {self.skipped}" if self.skipped else "")
            + f" of {self.total} file(s) into {self.voc_dir}"
            + f" (train {self.train}, val {self.val}; {self.seconds:.1f} s, {self.workers} worker(s))"
        ]
        if self.subsets:
            lines.append("subsets (image flags): " + ", ".join(f"{k} {v}" for k, v in self.subsets.items()))
        if self.failures:
            lines.append(f"failed ({self.failed}):")
            lines += capped([f"  {f.path}: {f.reason}" for f in self.failures])
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += capped([f"  {w.path}: {w.message}" for w in self.warnings])
        return "\n".join(lines)


__all__ = ["REPORT_FILE", "ConvertReport", "FileFailure", "FileWarning"]
