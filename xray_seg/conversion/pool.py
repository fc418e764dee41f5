"""The worker processes of a conversion: how many, the pool, and a progress bar over its results."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from tqdm import tqdm

from xray_seg.core.errors import XraySegError
from xray_seg.core.processes import start_method


def resolve_workers(workers: int) -> int:
    """``workers`` or, for 0, the CPU cores this process may use."""
    if workers and workers > 0:
        return int(workers)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _worker_init() -> None:
    # The parent handles Ctrl-C: it cancels the queued files; running ones finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_pool(workers: int):
    """A process pool of ``workers`` (None for one: convert in this process)."""
    if workers <= 1:
        return None
    return ProcessPoolExecutor(workers, mp_context=mp.get_context(start_method()), initializer=_worker_init)


def map_items(pool, fn, items: list, desc: str, progress: bool | None) -> Iterator:
    """Results of ``fn`` over ``items`` (in completion order with a pool), with a tqdm bar."""
    show = sys.stderr.isatty() if progress is None else progress
    # No tqdm object at all when hidden: even a disabled one starts a monitor thread,
    # which would make later conversions in this process avoid the fast fork start.
    bar = tqdm(total=len(items), desc=desc, unit="file", file=sys.stderr) if show else None
    try:
        if pool is None:
            for item in items:
                yield fn(item)
                if bar is not None:
                    bar.update()
            return
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
                if bar is not None:
                    bar.update()
        except BrokenProcessPool as exc:
            raise XraySegError(
                f"the worker processes stopped unexpectedly ({exc})",
                fix="run again with --workers 1 (in a script, call convert() under `if __name__ == '__main__':`)",
            ) from None
    finally:
        if bar is not None:
            bar.close()


__all__ = ["make_pool", "map_items", "resolve_workers"]
