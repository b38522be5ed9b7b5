"""Helpers for whole-process benchmarks (``peers.py``, ``contention.py``).

Runs commands as separate processes and measures what a user waits for: wall time from
start to exit, and the child's own peak RSS (``os.wait4``, per child). A bounded CPU burner
stands in for "one other busy process". Inputs are rendered with :mod:`acnn_fusion.synthetic`
or taken from ``../shared`` (``ACNN_SHARED`` overrides), and written as TIFF planes for the
peers, which read one file per slice.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ACNN_SHARED", REPO.parent / "shared"))
if not SHARED.is_dir():
    SHARED = Path("/work/shared")
STACKS = SHARED / "data" / "eval" / "stacks"
TIME_BINARY = "/usr/bin/time"
PEERS_DIR = Path(os.environ.get("ACNN_PEERS_DIR", "/work/peers-bin"))

BURNER_CODE = (
    "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"
)


@dataclass
class Timed:
    """One whole-process run."""

    seconds: float
    peak_rss_mb: float
    returncode: int
    load1: float  # 1-minute load average just before the run


def run_timed(command: Sequence[str], env: dict[str, str] | None = None, timeout: float = 1800) -> Timed:
    """Run ``command`` to completion; wall seconds and the command's peak RSS (MB).

    The peak comes from ``/usr/bin/time`` as a small intermediate process: Linux carries a
    process's peak RSS across fork and exec, so a child forked straight from this (large)
    Python process would report at least this process's own size.
    """
    load1 = os.getloadavg()[0]
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss_file:
        wrapped = list(command)
        if Path(TIME_BINARY).exists():
            wrapped = [TIME_BINARY, "-f", "%M", "-o", rss_file.name, *wrapped]
        start = time.perf_counter()
        try:
            completed = subprocess.run(
                wrapped, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout
            )
            returncode, stderr = completed.returncode, completed.stderr.decode(errors="replace")
        except subprocess.TimeoutExpired:
            returncode, stderr = -9, "timeout"
        seconds = time.perf_counter() - start
        text = rss_file.read().strip().splitlines()
    peak_kb = float(text[-1]) if text and text[-1].strip().isdigit() else float("nan")
    if returncode != 0:
        print(f"  ! {command[0]} exited {returncode}: {stderr[-400:]}", file=sys.stderr)
    return Timed(seconds, peak_kb / 1024, returncode, load1)


@contextlib.contextmanager
def burners(count: int, limit_s: float = 900.0) -> Iterator[list[int]]:
    """``count`` single-threaded busy loops, each ending by itself after ``limit_s`` at most."""
    processes = [subprocess.Popen([sys.executable, "-c", BURNER_CODE, str(limit_s)]) for _ in range(count)]
    try:
        time.sleep(0.5 if count else 0)
        yield [p.pid for p in processes]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def machine() -> dict[str, object]:
    """CPU model line, CPU counts, load averages and versions, for the record."""
    model = platform.processor()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    flags = ""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
    return {
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "native_bf16": " avx512_bf16" in flags or " amx_bf16" in flags,
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }


def ours_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for our console script: this checkout's sources first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "OMP_NUM_THREADS"):
        env.pop(name, None)  # each variant says what it wants
    env.update(extra or {})
    return env


def ours_script() -> str:
    """The venv's ``acnn-fusion`` console script (whole process, as a user runs it)."""
    candidate = Path(sys.executable).parent / "acnn-fusion"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("acnn-fusion")
    if found is None:
        raise SystemExit("acnn-fusion console script not found next to this Python or on PATH")
    return found


def focus_stack_binary() -> str | None:
    """focus-stack built by ``../shared/peers/build_focus_stack.sh`` (or on PATH)."""
    candidate = PEERS_DIR / "focus-stack" / "build" / "focus-stack"
    if candidate.exists():
        return str(candidate)
    return shutil.which("focus-stack")


def enfuse_binary() -> str | None:
    return shutil.which("enfuse")


def textured(shape: tuple[int, int], seed: int, sigma: float = 1.0) -> np.ndarray:
    """Sharp texture in [0, 1]: smoothed noise plus a few larger blobs."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    fine = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), sigma)
    coarse = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), 8 * sigma)
    values = fine + 2.0 * coarse
    return (values - values.min()) / (values.max() - values.min())


def synthetic_stack(size: int, n_slices: int, seed: int = 0, max_defocus: int = 6) -> np.ndarray:
    """uint16 (Z, size, size) focal stack of a textured scene over a smooth depth map.

    Slice z blurs each pixel by a disk of radius 1.5·min(|depth − z|, ``max_defocus``)
    (:func:`acnn_fusion.synthetic.defocus_image`); the cap keeps rendering deep stacks cheap.
    """
    from scipy import ndimage

    from acnn_fusion.synthetic import defocus_image

    sharp = textured((size, size), seed) * 4000.0
    rng = np.random.default_rng(seed + 1)
    depth = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 6)
    depth = (depth - depth.min()) / (depth.max() - depth.min()) * (n_slices - 1)
    depth_index = np.round(depth).astype(int)
    levels = [defocus_image(sharp, 1.5 * d).astype(np.float32) for d in range(max_defocus + 1)]
    stack = np.empty((n_slices, size, size), np.uint16)
    for z in range(n_slices):
        distance = np.minimum(np.abs(depth_index - z), max_defocus)
        plane = np.zeros((size, size), np.float32)
        for d, level in enumerate(levels):
            chosen = distance == d
            plane[chosen] = level[chosen]
        stack[z] = np.clip(np.round(plane), 0, 65535).astype(np.uint16)
    return stack


def synthetic_pair(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 grey pair (A sharp inside a blob, B outside), :func:`acnn_fusion.synthetic.render_pair`."""
    from acnn_fusion.synthetic import blob_mask, render_pair

    sharp = np.round(textured((size, size), seed) * 255).astype(np.uint8)
    pair = render_pair(sharp, blob_mask((size, size), seed=seed), radius=4.0)
    return pair.image_a, pair.image_b


def write_planes(planes: Sequence[np.ndarray] | np.ndarray, folder: Path, prefix: str = "z") -> list[Path]:
    """One TIFF per plane, ``prefix000.tif`` …, as the peers read them."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, plane in enumerate(planes):
        path = folder / f"{prefix}{index:03d}.tif"
        tifffile.imwrite(path, np.asarray(plane))
        paths.append(path)
    return paths
