"""How worker processes start (synthesis and conversion pools; docs/architecture.md)."""

from __future__ import annotations

import multiprocessing as mp
import os
import threading


def start_method() -> str:
    """``fork`` when this process runs a single thread, else ``forkserver`` (or ``spawn``).

    Forked workers start at once with the parent's imports (start-up is most of the cost
    of a small job), and they do not re-import the caller's script, so a plain Python
    script without an ``if __name__ == "__main__":`` guard can call ``xray_seg.synthesize``
    or ``xray_seg.convert``. But a child forked while other threads hold locks (TensorFlow
    in a notebook, a progress-bar monitor) can deadlock, so then a clean server is used
    (and the caller's script needs the guard, as for any multiprocessing code).
    """
    methods = mp.get_all_start_methods()
    if "fork" in methods and _os_threads() - _idle_monitors(threading) == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _os_threads() -> int:
    """Threads of this process as the kernel sees them: native ones too (TensorFlow's, a test
    runner's), which :func:`threading.active_count` does not list."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def _idle_monitors(threading) -> int:
    """tqdm's monitor threads: they only sleep and wake to check bars, holding no lock a child needs."""
    return sum(1 for t in threading.enumerate() if type(t).__name__ == "TMonitor")
