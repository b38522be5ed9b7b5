"""The fusion core: network, tiled inference, pair and stack fusion (no Qt, no napari).

Importing this package sets OpenMP defaults *before* any core module imports torch, because
torch's OpenMP runtime reads them once, when it is loaded:

- ``OMP_WAIT_POLICY=PASSIVE``: an OpenMP thread that has finished its share of a parallel
  region sleeps instead of spinning. GNU OpenMP (which torch's CPU wheels ship) otherwise
  spins for 300,000 iterations (~3 ms) after every region; the fold runs thousands of short
  regions with numpy work between them, so the spinning threads compete with our own main
  thread and with every other process for the cores. With one other busy process on a
  2-core machine this made a stack fold 3–5× slower (``docs/performance.md``, *Contention*).
- ``OMP_NUM_THREADS``: only where a cgroup CPU quota (containers, ``docker --cpus``) allows
  fewer CPUs than the affinity mask: torch would start one thread per visible CPU.

A value the user set wins: if any of ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT`` or
``KMP_BLOCKTIME`` is set, the wait policy is left alone, and ``OMP_NUM_THREADS`` is never
overridden. If torch was imported before this package, the settings come too late and
are not applied (:data:`OPENMP_DEFAULTS_APPLIED` tells which).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

#: Variables through which a user chooses how OpenMP threads wait; any of them set: hands off.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
#: The wait policy set when the user chose none.
DEFAULT_WAIT_POLICY = "PASSIVE"


def cgroup_cpu_limit(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """CPUs a cgroup-v2 quota allows (rounded up), or None without a quota."""
    try:
        quota, period = cpu_max.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (what OpenMP starts one thread per)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def usable_cpus(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """CPUs this process may use: the affinity mask, capped by a cgroup quota."""
    limit = cgroup_cpu_limit(cpu_max)
    return min(affinity_cpus(), limit) if limit is not None else affinity_cpus()


def configure_openmp(
    environ: MutableMapping[str, str] = os.environ,
    cpu_max: Path = Path("/sys/fs/cgroup/cpu.max"),
) -> dict[str, str]:
    """Set the OpenMP defaults described above in ``environ`` where unset; returns what it set."""
    applied: dict[str, str] = {}
    if not any(name in environ for name in WAIT_VARIABLES):
        applied["OMP_WAIT_POLICY"] = DEFAULT_WAIT_POLICY
    if "OMP_NUM_THREADS" not in environ:
        limit = cgroup_cpu_limit(cpu_max)
        if limit is not None and limit < affinity_cpus():
            applied["OMP_NUM_THREADS"] = str(limit)
    environ.update(applied)
    return applied


#: What this import set; empty when the user had chosen, or when torch had been imported first.
OPENMP_DEFAULTS_APPLIED: dict[str, str] = {} if "torch" in sys.modules else configure_openmp()
