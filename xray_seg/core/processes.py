"""How worker processes start (synthesis and conversion pools; docs/architecture.md)."""

from __future__ import annotations


def start_method() -> str:
    """``fork`` when this process runs a single thread, else ``forkserver`` (or ``spawn``).

    Forked workers start at once with the parent's imports (start-up is most of the cost
    of a small job), and they do not re-import the caller's script, so a plain Python
    script without an ``if __name__ == "__main__":`` guard can call ``xray_seg.synthesize``
    or ``xray_seg.convert``. But a child forked while other threads hold locks (TensorFlow
    in a notebook, a progress-bar monitor) can deadlock, so then a clean server is used
    (and the caller's script needs the guard, as for any multiprocessing code).
    """
    import multiprocessing as mp
    import threading

    methods = mp.get_all_start_methods()
    # tqdm's monitor thread only sleeps and wakes to check bars; it holds no lock a child needs.
    busy = [t for t in threading.enumerate() if type(t).__name__ != "TMonitor"]
    if "fork" in methods and len(busy) == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"
