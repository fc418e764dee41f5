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


def _broken_pool_error(unfinished: list) -> XraySegError:
    """The error for a worker that died: the files it may have been on (the first unfinished ones,
    in submission order, are the ones the workers had taken) and how to find the culprit."""
    keys = [str(getattr(x, "key", None) or getattr(getattr(x, "item", None), "key", x)) for x in unfinished]
    shown = ", ".join(keys[:3]) + (f" ({len(keys)} file(s) not done)" if len(keys) > 3 else "")
    return XraySegError(
        "a worker process died (killed by the system, most often for lack of memory) while converting "
        f"one of: {shown or 'no file'}",
        fix="re-run with --resume --workers 1 to keep what was converted and see which file fails, "
        "then fix or remove it (in a script, call convert() under `if __name__ == '__main__':`)",
    )


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
        futures = {pool.submit(fn, item): item for item in items}
        finished = set()
        try:
            for future in as_completed(futures):
                result = future.result()
                finished.add(future)
                yield result
                if bar is not None:
                    bar.update()
        except BrokenProcessPool:
            raise _broken_pool_error([futures[f] for f in futures if f not in finished]) from None
    finally:
        if bar is not None:
            bar.close()


__all__ = ["make_pool", "map_items", "resolve_workers"]
