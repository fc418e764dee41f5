"""The benchmark toolkit: one timing loop, peak RSS and the CPU description.

Every benchmark (``xray-seg bench`` and its suites, the scripts, the int8 gate) times with
:func:`time_calls` (warm-up calls untimed, then timed calls) or :func:`time_rounds` (the
same over several candidates, interleaved round by round so that load from other processes
hits every candidate alike), reports the median with a spread (:class:`Timing`), reads its
peak resident set with :func:`peak_rss_bytes` and names the CPU with :func:`cpu_description`
and :func:`cpu_line`. No TensorFlow here: the JAX-only GPU machine imports this module.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field

import numpy as np

VECTOR_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)
LINE_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # what decides the kernels oneDNN picks


@dataclass
class Timing:
    """Seconds of the timed calls: the median and the 10th-90th percentile spread."""

    median_s: float
    p10_s: float
    p90_s: float
    seconds: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, seconds) -> Timing:
        p10, median, p90 = np.percentile(np.asarray(seconds, np.float64), [10, 50, 90])
        return cls(float(median), float(p10), float(p90), [float(s) for s in seconds])

    @property
    def fps(self) -> float:
        return 1.0 / self.median_s

    @property
    def median_ms(self) -> float:
        return 1000.0 * self.median_s

    def percentile_ms(self, q: float) -> float:
        return 1000.0 * float(np.percentile(self.seconds, q))

    def line(self, label: str) -> str:
        return (
            f"{label:<22s} {self.fps:8.2f} FPS   median {1000 * self.median_s:8.1f} ms   "
            f"p10-p90 {1000 * self.p10_s:.1f}-{1000 * self.p90_s:.1f} ms"
        )

    def as_dict(self) -> dict:
        """``fps``, ``median_ms``, ``p10_ms``, ``p90_ms`` (the keys ``xray-seg bench --out`` writes)."""
        return {"fps": self.fps, "median_ms": self.median_ms, "p10_ms": 1000 * self.p10_s, "p90_ms": 1000 * self.p90_s}


def time_calls(fn, runs: int, warmup: int) -> Timing:
    """Call ``fn(i)`` ``warmup`` times untimed, then ``runs`` times timed (``i`` counts from 0 each time)."""
    for i in range(warmup):
        fn(i)
    seconds = []
    for i in range(runs):
        start = time.perf_counter()
        fn(i)
        seconds.append(time.perf_counter() - start)
    return Timing.of(seconds)


def time_rounds(candidates: dict, runs: int, warmup: int, *, rotate: bool = False, progress=None) -> dict:
    """``{name: Timing}`` of argument-less callables, timed in interleaved rounds.

    Each candidate is warmed up ``warmup`` times first; then each of ``runs`` rounds calls every
    candidate once, so that load from other processes hits all alike. ``rotate`` changes which
    goes first each round; ``progress(round_index)`` is called after each round.
    """
    names = list(candidates)
    for name in names:
        for _ in range(warmup):
            candidates[name]()
    seconds = {name: [] for name in names}
    for r in range(runs):
        order = names[r % len(names) :] + names[: r % len(names)] if rotate else names
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            seconds[name].append(time.perf_counter() - start)
        if progress is not None:
            progress(r)
    return {name: Timing.of(values) for name, values in seconds.items()}


def median_ms(fn, *, warmup: int = 2, runs: int = 10) -> float:
    """Median wall time of ``fn()`` in milliseconds after ``warmup`` untimed calls."""
    return time_calls(lambda i: fn(), runs, warmup).median_ms


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """Peak resident set of a process: ``VmHWM`` of ``/proc/<pid>/status``.

    ``VmHWM`` starts afresh at exec; ``ru_maxrss`` (the fallback for this process off Linux)
    carries the parent's high-water mark across ``fork`` + ``exec``. None for a process gone.
    """
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if pid != "self":
        return None
    import resource  # lazy: POSIX only

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def rss_bytes() -> int:
    """Current resident set of this process (``/proc/self/statm``)."""
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return f.read()
    except OSError:
        return ""


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_description(cpuinfo: str | None = None) -> dict:
    """``model`` name, the ``vector`` extensions of :data:`VECTOR_FLAGS` it has, ``cores`` and ``mhz``."""
    text = _cpuinfo() if cpuinfo is None else cpuinfo
    model, flags, mhz = platform.processor() or platform.machine(), set(), []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name":
            model = value
        elif key == "flags":
            flags.update(value.split())
        elif key == "cpu MHz":
            mhz.append(float(value))
    return {
        "model": model,
        "vector": [f for f in VECTOR_FLAGS if f in flags],
        "cores": cpu_cores(),
        "mhz": max(mhz) if mhz else None,
    }


def cpu_line(cpu: dict | None = None) -> str:
    """``"<model name>, N cores, avx2 avx512f amx_tile"``: the CPU a figure was measured on."""
    cpu = cpu or cpu_description()
    flags = [f for f in LINE_FLAGS if f in cpu["vector"]]
    return f"{cpu['model']}, {cpu['cores']} cores, " + (" ".join(flags) if flags else "no avx2/avx512f/amx_tile")


def load_line() -> str:
    """The 1-minute load average over the usable cores: how busy the machine was."""
    return f"load average {os.getloadavg()[0]:.2f} on {cpu_cores()} cores"
