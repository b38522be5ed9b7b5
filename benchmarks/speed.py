"""Speed of the fusion core, each case in a fresh process (for its peak memory).

    .venv/bin/python benchmarks/speed.py [--repeats 5] [--cases pair520-rgb ...] [--device auto]

Prints a Markdown table and writes ``docs/results/speed.{csv,json,md}`` and
``docs/images/speed_vs_size.png``. Per case: median wall time after a warm-up run (end to
end, as a user calls :func:`fuse_pair`/:func:`fuse_stack`), megapixels per second, the
network's nominal GFLOP/s against the machine's peak (a large fp32 matrix product measured
in the same run), and peak resident memory. Also the same network evaluated patch by patch
(as the original MATLAB release did: one 16×16 pair per call) on a sample of patches,
extrapolated to a 520×520 image, for the speed-up ratio. Timings are from the machine it
runs on only; no test asserts them.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# name: (kind, shape, dtype, stack strategy)
CASES = {
    "pair520-rgb": ("pair", (520, 520, 3), np.uint8, None),
    "pair1024-grey": ("pair", (1024, 1024), np.uint8, None),
    "pair2048-grey": ("pair", (2048, 2048), np.uint8, None),
    "stack1024x32-u16": ("stack", (32, 1024, 1024), np.uint16, "features"),
    "stack1024x32-u16-pairwise": ("stack", (32, 1024, 1024), np.uint16, "pairwise"),
    # large cases for memory bounds; run with --repeats 1
    "pair4096-grey": ("pair", (4096, 4096), np.uint8, None),
    "pair8192-u16": ("pair", (8192, 8192), np.uint16, None),
    "stack2048x64-u16": ("stack", (64, 2048, 2048), np.uint16, "features"),
}
DEFAULT_CASES = ["pair520-rgb", "pair1024-grey", "pair2048-grey", "stack1024x32-u16"]
#: cases timed once (after the warm-up) whatever --repeats says: minutes each on a small CPU
SINGLE_RUN = {"pair4096-grey", "pair8192-u16", "stack2048x64-u16"}


def textured(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
    """Smoothed noise, generated plane by plane so that input creation stays small."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    top = 255 if dtype == np.uint8 else 4000
    planes = shape[:1] if len(shape) == 3 and shape[-1] != 3 else (1,)
    plane_shape = shape[1:] if planes != (1,) else shape
    out = np.empty(shape, dtype=dtype).reshape(planes[0], *plane_shape)
    for i in range(planes[0]):
        values = ndimage.gaussian_filter(rng.random(plane_shape, dtype=np.float32), 1.0)
        values = (values - values.min()) / (values.max() - values.min())
        out[i] = (values * top).astype(dtype)
    return out.reshape(shape)


def branch_flops(height: int, width: int, config) -> tuple[float, tuple[int, int]]:
    """Multiply-adds ×2 of one branch on a (height, width) image, and its feature map shape."""
    c1, c2, c3 = config.c1, config.c2, config.c3
    h, w = height - 2, width - 2
    flops = h * w * 9 * c1
    h, w = h - 2, w - 2
    flops += h * w * 9 * c1 * c2
    h, w = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    flops += h * w * 9 * c2 * c2
    h, w = h - 2, w - 2
    flops += h * w * 9 * c2 * c3
    return 2.0 * flops, (h, w)


def network_flops(kind: str, shape: tuple[int, ...], strategy: str | None, config) -> float:
    """Nominal floating-point operations of the network for one case (no tile overlap)."""
    if kind == "pair":
        height, width = shape[:2]
        branch, (h, w) = branch_flops(height, width, config)
        score_px = (h - 2) * (w - 2)
        return 2 * branch + 2.0 * score_px * (9 * 2 * config.c3 * config.fc + 2 * config.fc)
    n_slices, height, width = shape
    branch, (h, w) = branch_flops(height, width, config)
    score_px = (h - 2) * (w - 2)
    if strategy == "features":  # a branch and two projections per slice and for the mean image,
        # two classifications (slice vs mean, mean vs slice) per slice
        projections = 2 * (n_slices + 1) * 2.0 * score_px * 9 * config.c3 * config.fc
        classify = 2 * n_slices * 2.0 * score_px * 2 * config.fc
        return (n_slices + 1) * branch + projections + classify
    pair = 2 * branch + 2.0 * score_px * (9 * 2 * config.c3 * config.fc + 2 * config.fc)
    return (n_slices - 1) * pair


def peak_gflops(device: str, dtype: str, size: int = 4096, repeats: int = 5) -> float:
    """Achieved GFLOP/s of a large matrix product in ``dtype``: the practical peak of the device."""
    import torch

    a = torch.rand(size, size, device=device).to(getattr(torch, dtype))
    b = torch.rand(size, size, device=device).to(getattr(torch, dtype))
    times = []
    for _ in range(repeats + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times[1:]) / 1e9


def network_dtype(device: str, precision: str) -> str:
    """The dtype the network runs in for this device and precision: float32 or bfloat16."""
    from acnn_fusion.core.inference import resolve_precision, select_device

    return str(resolve_precision(precision, select_device(device))).removeprefix("torch.")


def run_case(name: str, repeats: int, device: str, precision: str) -> dict:
    """Time one case in this process (called in a child process)."""
    import torch

    from acnn_fusion import fuse_pair, fuse_stack
    from acnn_fusion.core.weights import load_model

    kind, shape, dtype, strategy = CASES[name]
    repeats = 1 if name in SINGLE_RUN else repeats
    times = []
    if kind == "pair":
        a, b = textured(shape, dtype, 0), textured(shape, dtype, 1)
        fuse_pair(a[:520, :520], b[:520, :520], device=device, precision=precision)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            fuse_pair(a, b, device=device, precision=precision)
            times.append(time.perf_counter() - start)
        pixels = shape[0] * shape[1]
    else:
        stack = textured(shape, dtype, 0)
        fuse_stack(stack[:2, :64, :64], device=device, strategy=strategy, precision=precision)
        for _ in range(max(1, repeats // 2)):
            start = time.perf_counter()
            fuse_stack(stack, device=device, strategy=strategy, precision=precision)
            times.append(time.perf_counter() - start)
        pixels = shape[0] * shape[1] * shape[2]
    median = statistics.median(times)
    flops = network_flops(kind, shape, strategy, load_model().config)
    return {
        "case": name,
        "device": device,
        "dtype": network_dtype(device, precision),
        "seconds_median": median,
        "megapixels_per_s": pixels / median / 1e6,
        "network_gflop": flops / 1e9,
        "gflops_per_s": flops / median / 1e9,
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "input_MB": (2 if kind == "pair" else 1) * np.prod(shape) * np.dtype(dtype).itemsize / 2**20,
        "threads": torch.get_num_threads(),
    }


def patch_by_patch_seconds_per_patch(device: str, precision: str, n: int = 400) -> float:
    """The network run on one 16×16 patch pair per call, as the original release does."""
    import torch

    from acnn_fusion.core.inference import autocast, resolve_precision, select_device
    from acnn_fusion.core.model import ACNN
    from acnn_fusion.core.weights import load_model

    torch_device = select_device(device)
    model = load_model().to(torch_device)
    a, b = torch.rand(2, 1, 1, 16, 16, device=torch_device)
    with torch.inference_mode(), autocast(torch_device, resolve_precision(precision, torch_device)):
        for _ in range(20):
            ACNN.score(model(a, b)).cpu()
        start = time.perf_counter()
        for _ in range(n):
            ACNN.score(model(a, b)).cpu()  # each score is read back, as a per-patch loop must
    return (time.perf_counter() - start) / n


def machine() -> str:
    """CPU model and whether it computes bf16 natively (what decides the default precision)."""
    from acnn_fusion.core.inference import _cpu_has_native_bf16

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{name}, {os.cpu_count()} cores, native bf16: {'yes' if _cpu_has_native_bf16() else 'no'}"


def _child(args: argparse.Namespace) -> dict:
    if args.child == "peak":
        return {dtype: peak_gflops(args.device, dtype) for dtype in ("float32", "bfloat16")}
    if args.child == "patch-by-patch":
        # the faster of fp32 and the dense run's precision (autocast costs more than it saves
        # on a 16×16 patch), so the ratio does not flatter the dense evaluation
        # and with one thread as well as all: tiny calls lose more to thread hand-offs than
        # they gain, and a second thread makes them fragile when anything else runs
        import torch

        results = []
        for n_threads in sorted({1, torch.get_num_threads()}):
            torch.set_num_threads(n_threads)
            results += [patch_by_patch_seconds_per_patch(args.device, p) for p in {"fp32", args.precision}]
        return {"seconds_per_patch": min(results)}
    return run_case(args.child, args.repeats, args.device, args.precision)


def _in_child(what: str, args: argparse.Namespace) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            what,
            "--repeats",
            str(args.repeats),
            "--device",
            args.device,
            "--precision",
            args.precision,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(rows: list[dict], path: Path) -> None:
    """Wall time against input size (megapixels), pairs and stacks, log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for kind, marker in (("pair", "o"), ("stack", "s")):
        points = sorted(
            (r["seconds_median"] * r["megapixels_per_s"], r["seconds_median"], r["case"], r["device"])
            for r in rows
            if r["case"].startswith(kind)
        )
        for device in sorted({p[3] for p in points}):
            mine = [p for p in points if p[3] == device]
            ax.plot([p[0] for p in mine], [p[1] for p in mine], marker=marker, label=f"{kind}s ({device})")
            for mp, seconds, case, _ in mine:
                ax.annotate(case, (mp, seconds), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input megapixels (pairs: per image; stacks: all slices)")
    ax.set_ylabel("wall time, s (median)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=[*CASES, "all"])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, ... (as fuse_pair's device)")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16 (as fuse_pair's)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--name", default="speed", help="output file stem")
    parser.add_argument("--no-plot", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args)))
        return
    if "all" in args.cases:
        args.cases = list(CASES)
    peaks = _in_child("peak", args)
    print(f"peak matrix product GFLOP/s: {peaks}", flush=True)
    rows = []
    for name in args.cases:
        row = _in_child(name, args)
        row["percent_of_peak"] = 100 * row["gflops_per_s"] / peaks[row["dtype"]]
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    per_patch = _in_child("patch-by-patch", args)["seconds_per_patch"]
    patches_520 = ((520 - 16) // 2 + 1) ** 2
    dense = next((r["seconds_median"] for r in rows if r["case"] == "pair520-rgb"), None)
    summary = {
        "machine": machine(),
        "device": args.device,
        "precision": args.precision,
        "peak_gflops": peaks,
        "patch_by_patch_seconds_per_patch": per_patch,
        "patch_by_patch_520_seconds": per_patch * patches_520,
    }
    if dense:
        summary["speedup_dense_vs_patch_by_patch"] = per_patch * patches_520 / dense
    print(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / f"{args.name}.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / f"{args.name}.json").write_text(json.dumps({"summary": summary, "cases": rows}, indent=1))
    lines = [
        "| case | device | dtype | median s | MP/s | network GFLOP | GFLOP/s | % of peak "
        "| peak RSS MB | input MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['device']} | {r['dtype']} | {r['seconds_median']:.3f} "
        f"| {r['megapixels_per_s']:.2f} "
        f"| {r['network_gflop']:.0f} | {r['gflops_per_s']:.0f} | {r['percent_of_peak']:.0f} "
        f"| {r['peak_rss_MB']:.0f} | {r['input_MB']:.0f} |"
        for r in rows
    ]
    lines.append("")
    lines.append(f"- machine: {summary['machine']}; precision {args.precision}")
    lines.append(
        "- peak (4096² matrix product, same run): "
        + ", ".join(f"{dtype} {value:.0f} GFLOP/s" for dtype, value in peaks.items())
    )
    lines.append(
        f"- patch by patch: {1e3 * per_patch:.3f} ms per patch pair, "
        f"{per_patch * patches_520:.1f} s per 520² pair"
    )
    if dense:
        ratio = summary["speedup_dense_vs_patch_by_patch"]
        lines.append(f"- dense vs patch by patch (520² pair): {ratio:.0f}×")
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    if not args.no_plot:
        plot(rows, REPO / "docs/images" / f"{args.name}_vs_size.png")


if __name__ == "__main__":
    main()
