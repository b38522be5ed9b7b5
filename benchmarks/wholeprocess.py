"""Whole-process benchmarks: the helpers ``peers.py`` and ``contention.py`` share, and the
runtime comparison ours(onnx) against ours(torch).

    .venv/bin/python benchmarks/wholeprocess.py [--repeats 3] [--busy 1] [--cases ...]

Runs commands as separate processes and measures what a user waits for: wall time from
start to exit, and the child's own peak RSS (``/usr/bin/time``). A bounded CPU burner
stands in for "one other busy process". Inputs are rendered with :mod:`acnn_fusion.synthetic`
or taken from ``../shared`` (``ACNN_SHARED`` overrides), and written as TIFF planes for the
peers, which read one file per slice. :func:`run_round` is the one run-and-record loop:
runners in order on even rounds, reversed on odd ones (A B C, C B A, …).

As a script: ``acnn-fusion`` with ``--runtime onnx`` against ``--runtime torch`` (precision
``auto``, i.e. bf16 on a CPU with native bf16) and ``--runtime torch --precision fp32``, on
the metallographic stack mufoc_1_1 and the sample data (``sample_data/pair_A.tif`` +
``pair_B.tif``, ``sample_data/stack.tif``), interleaved, quiet and (with ``--busy N``) while
N busy loops run. Writes ``docs/results/wholeprocess_runtime.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
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
ENFUSE_SCRIPT = SHARED / "peers" / "enfuse_stack.sh"

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


def add_worktree(revision: str, path: Path) -> Path:
    """This repository at ``revision`` checked out (detached) at ``path``, left there."""
    git = ["git", "-C", str(REPO), "worktree"]
    subprocess.run([*git, "add", "-q", "--detach", str(path), revision], check=True)
    return path


@contextlib.contextmanager
def worktree(revision: str, path: Path) -> Iterator[Path]:
    """:func:`add_worktree`, removed afterwards."""
    add_worktree(revision, path)
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], check=False)


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


def machine_line(info: dict) -> str:
    """One line for a results table's header: CPU, CPU count, native bf16, load at start and end
    (``info`` from :func:`machine`, with ``loadavg_end`` added when the runs are done)."""
    return (
        f"CPU {info['cpu_model']}, {info['affinity']} CPUs, native bf16 {info['native_bf16']}; load "
        f"{info['loadavg'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC)"
    )


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


Runs = dict[str, tuple[list[str], "dict[str, str] | None"]]


def peer_commands(planes: Sequence[Path], out: Path) -> Runs:
    """focus-stack (defaults, which align the slices; ``--no-opencl``) and enfuse (as
    ``../shared/peers/enfuse_stack.sh`` runs it: contrast weight only, hard mask) on ``planes``,
    those that are installed."""
    files = [str(p) for p in planes]
    found: Runs = {}
    focus_stack = focus_stack_binary()
    if focus_stack:
        found["focus-stack"] = (
            [focus_stack, "--no-opencl", f"--output={out / 'focus-stack.tif'}", *files],
            None,
        )
    if enfuse_binary() and ENFUSE_SCRIPT.exists():
        found["enfuse"] = (["bash", str(ENFUSE_SCRIPT), str(out / "enfuse.tif"), *files], None)
    return found


def run_round(runs: Runs, round_index: int, fields: dict[str, object], rows: list[dict]) -> None:
    """Run every runner once, in order on even rounds and reversed on odd ones; append one row
    per run (``fields``, runner, round, seconds, peak RSS, load, exit status) and print it."""
    order = list(runs.items())
    if round_index % 2:
        order.reverse()
    for runner, (command, env) in order:
        timed = run_timed(command, env)
        row = {
            **fields,
            "runner": runner,
            "round": round_index,
            "seconds": round(timed.seconds, 3),
            "peak_rss_mb": round(timed.peak_rss_mb, 1),
            "load1": round(timed.load1, 2),
            "rc": timed.returncode,
        }
        rows.append(row)
        print(row, flush=True)


def median_of(rows: list[dict], **match: object) -> tuple[float, int] | None:
    """Median seconds and count of the successful rows whose fields equal ``match``."""
    seconds = [r["seconds"] for r in rows if r["rc"] == 0 and all(r.get(k) == v for k, v in match.items())]
    return (statistics.median(seconds), len(seconds)) if seconds else None


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


# -- the runtime comparison -------------------------------------------------------------------

#: runner → extra arguments of ``acnn-fusion``
RUNTIME_RUNNERS = {
    "ours onnx": ["--runtime", "onnx"],
    "ours torch (auto precision)": ["--runtime", "torch"],
    "ours torch fp32": ["--runtime", "torch", "--precision", "fp32"],
}
RUNTIME_CASES = ["metallographic_1_1", "sample_pair", "sample_stack"]


def runtime_case(name: str, out: Path) -> list[str] | None:
    """The ``acnn-fusion`` arguments (before the runner's) of a case, or None if its data is missing."""
    if name == "metallographic_1_1":
        folder = STACKS / "metallographic_mufoc" / "mufoc_1_1"
        return ["stack", str(folder), "-o", str(out / "metallographic.tif")] if folder.is_dir() else None
    samples = REPO / "sample_data"
    if name == "sample_pair":
        a, b = samples / "pair_A.tif", samples / "pair_B.tif"
        return ["fuse", str(a), str(b), "-o", str(out / "pair.tif")] if a.exists() else None
    if name == "sample_stack":
        stack = samples / "stack.tif"
        return ["stack", str(stack), "-o", str(out / "stack.tif")] if stack.exists() else None
    raise SystemExit(f"unknown case {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=RUNTIME_CASES, choices=RUNTIME_CASES)
    parser.add_argument("--runners", nargs="+", default=list(RUNTIME_RUNNERS), choices=list(RUNTIME_RUNNERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=0, help="also run while N busy loops run (0: quiet only)")
    parser.add_argument("--name", default="wholeprocess_runtime")
    args = parser.parse_args()
    info = machine()
    print(info, flush=True)
    rows: list[dict] = []
    script = ours_script()
    conditions = [0, args.busy] if args.busy else [0]
    with tempfile.TemporaryDirectory(prefix="acnn-runtime-") as tmp:
        out = Path(tmp)
        cases = {name: runtime_case(name, out) for name in args.cases}
        for round_index in range(args.repeats):
            for busy in conditions if round_index % 2 == 0 else conditions[::-1]:
                with burners(busy):
                    for case, base in cases.items():
                        if base is None:
                            continue
                        runs: Runs = {
                            runner: ([script, *base, *RUNTIME_RUNNERS[runner]], ours_env())
                            for runner in args.runners
                        }
                        run_round(runs, round_index, {"case": case, "busy": busy}, rows)
    info["loadavg_end"] = os.getloadavg()
    write_runtime(args, info, rows, conditions)


def write_runtime(args: argparse.Namespace, info: dict, rows: list[dict], conditions: list[int]) -> None:
    table = []
    for case in args.cases:
        for busy in conditions:
            entry: dict[str, object] = {"case": case, "busy": busy}
            for runner in args.runners:
                found = median_of(rows, case=case, busy=busy, runner=runner)
                if found is not None:
                    entry[runner] = round(found[0], 2)
                    entry["n"] = found[1]
                    entry[f"{runner} rss_mb"] = max(
                        r["peak_rss_mb"]
                        for r in rows
                        if (r["case"], r["busy"], r["runner"]) == (case, busy, runner)
                    )
            loads = [r["load1"] for r in rows if r["case"] == case and r["busy"] == busy]
            entry["load"] = round(statistics.median(loads), 1) if loads else None
            if len(entry) > 3:
                table.append(entry)
    results = REPO / "docs" / "results"
    (results / f"{args.name}.json").write_text(
        json.dumps({"machine": info, "args": vars(args), "table": table, "runs": rows}, indent=1)
    )
    first = args.runners[0]
    header = " | ".join(f"{r} s" for r in args.runners)
    ratios = " | ".join(f"{r} / {first}" for r in args.runners[1:])
    lines = [
        f"CPU: {info['cpu_model']}, {info['affinity']} CPUs, native bf16: {info['native_bf16']}; "
        f"{args.repeats} rounds, runners interleaved (order reversed every other round); load average "
        f"{info['loadavg'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC). "
        "Whole processes of `acnn-fusion`, medians.",
        "",
        f"| case | busy processes | {header} | {ratios} | peak RSS MB | load |",
        "|---|---|" + "---|" * (2 * len(args.runners) - 1) + "---|---|",
    ]
    for t in table:
        seconds = " | ".join(f"{t[r]:.2f}" if r in t else "–" for r in args.runners)
        ratio = " | ".join(
            f"{float(t[r]) / float(t[first]):.2f}" if r in t and first in t else "–" for r in args.runners[1:]
        )
        rss = " / ".join(f"{t[f'{r} rss_mb']:.0f}" for r in args.runners if f"{r} rss_mb" in t)
        lines.append(f"| {t['case']} | {t['busy']} | {seconds} | {ratio} | {rss} | {t['load']} |")
    text = "\n".join(lines) + "\n"
    (results / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
