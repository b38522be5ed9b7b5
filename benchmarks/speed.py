"""Speed of the fusion core, each case in a fresh process (for its peak memory).

    .venv/bin/python benchmarks/speed.py [--repeats 5] [--cases pair520 pair1024 ...]

Prints a Markdown table and writes ``docs/results/speed.{csv,md}``: median wall time after a
warm-up run, megapixels per second, peak resident memory; plus the same network evaluated
patch by patch (as the original MATLAB release did) on a crop, extrapolated per patch, for
the speed-up ratio. Timings are from this machine only; no test asserts them.
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CASES = {
    "pair520-rgb": ("pair", (520, 520, 3), np.uint8),
    "pair1024-grey": ("pair", (1024, 1024), np.uint8),
    "pair2048-grey": ("pair", (2048, 2048), np.uint8),
    "stack1024x32-u16": ("stack", (32, 1024, 1024), np.uint16),
    # large cases for memory bounds; run with --repeats 1
    "pair8192-u16": ("pair", (8192, 8192), np.uint16),
    "stack2048x64-u16": ("stack", (64, 2048, 2048), np.uint16),
}
DEFAULT_CASES = ["pair520-rgb", "pair1024-grey", "pair2048-grey", "stack1024x32-u16"]


def _textured(shape: tuple[int, ...], dtype: type, seed: int) -> np.ndarray:
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


def run_case(name: str, repeats: int) -> dict:
    """Time one case in this process (called in a child process)."""
    import torch

    from acnn_fusion import fuse_pair, fuse_stack

    kind, shape, dtype = CASES[name]
    times = []
    if kind == "pair":
        a, b = _textured(shape, dtype, 0), _textured(shape, dtype, 1)
        fuse_pair(a[:520, :520], b[:520, :520])  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            fuse_pair(a, b)
            times.append(time.perf_counter() - start)
        pixels = shape[0] * shape[1]
    else:
        stack = _textured(shape, dtype, 0)
        fuse_stack(stack[:2, :64, :64])
        for _ in range(max(1, repeats // 2)):
            start = time.perf_counter()
            fuse_stack(stack)
            times.append(time.perf_counter() - start)
        pixels = shape[0] * shape[1] * shape[2]
    median = statistics.median(times)
    return {
        "case": name,
        "seconds_median": median,
        "megapixels_per_s": pixels / median / 1e6,
        "peak_rss_MB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def patch_by_patch_seconds_per_patch(n: int = 400) -> float:
    """The network run on one 16×16 patch pair at a time, as the original release does."""
    import torch

    from acnn_fusion.core.model import ACNN
    from acnn_fusion.core.weights import load_model

    model = load_model()
    a, b = torch.rand(2, 1, 1, 16, 16)
    with torch.inference_mode():
        for _ in range(20):
            ACNN.score(model(a, b))
        start = time.perf_counter()
        for _ in range(n):
            ACNN.score(model(a, b))
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.repeats)))
        return
    rows = []
    for name in args.cases:
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--repeats", str(args.repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    per_patch = patch_by_patch_seconds_per_patch()
    patches_520 = ((520 - 16) // 2 + 1) ** 2
    dense = next((r["seconds_median"] for r in rows if r["case"] == "pair520-rgb"), None)
    summary = {"patch_by_patch_520_seconds": per_patch * patches_520}
    if dense:
        summary["speedup_dense_vs_patch_by_patch"] = per_patch * patches_520 / dense
    print(summary)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "speed.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| case | median s | MP/s | peak RSS MB |", "|---|---|---|---|"]
    lines += [
        f"| {r['case']} | {r['seconds_median']:.3f} | {r['megapixels_per_s']:.2f} | {r['peak_rss_MB']:.0f} |"
        for r in rows
    ]
    lines.append("")
    lines += [f"- {k}: {v:.1f}" for k, v in summary.items()]
    (args.out / "speed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
