"""How close the network runs to this CPU's arithmetic peak, and the time its arithmetic alone
must take: the floor under any whole-process time of ours.

    .venv/bin/python benchmarks/roofline.py [--repeats 20] [--name roofline]

Counts the FLOPs of the shipped network (``speed.branch_flops`` / ``network_flops``, which
``tests/test_benchmarks.py`` checks against torch's own counter) and times, on one thread and
on all: (1) matrix products of 2048², numpy's (OpenBLAS) and torch's in fp32 and torch's in
bf16 (the best of each type is the CPU's practical peak for it); (2) onnxruntime's
``session.run`` and (3) torch's bf16 per-slice call (branch, both projections, head) on a 526²
tile (fp32 on a CPU without native bf16, where bf16 is emulated and is skipped), each as
GFLOP/s and as a share of its type's peak. Then, for the peers' cases, the
network's arithmetic at the bf16 and fp32 peaks of all threads: no implementation of this
network on this CPU takes less. Writes ``docs/results/{name}.md`` with the machine line.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import speed
import wholeprocess as wp

REPO = Path(__file__).resolve().parents[1]
TILE = 526
#: (case, kind, shape) as ``speed.network_flops`` counts them
CASES = (
    ("metallographic_1_1 8×1000×1600", "stack", (8, 1000, 1600)),
    ("lightsheet 34×800×512", "stack", (34, 800, 512)),
    ("synthetic 1024²×16", "stack", (16, 1024, 1024)),
    ("pair 2048²", "pair", (2048, 2048)),
)


def image_flops(size: int, config) -> float:
    """FLOPs of one ``size``² image through the branch and both halves of fc1 (what
    ``session.run`` and the fold's per-slice call compute): ``speed.network_flops`` of the
    stack fold's reference alone, i.e. a stack of no slices."""
    return speed.network_flops("stack", (0, size, size), "features", config)


def numpy_peak_gflops(threads: int) -> float:
    """GFLOP/s of numpy's float32 2048² matrix product on ``threads`` BLAS threads (a fresh
    process: OpenBLAS reads its thread count once)."""
    code = (
        "import time, numpy as np\n"
        "a = np.random.rand(2048, 2048).astype(np.float32); a @ a; t = []\n"
        "for _ in range(8):\n"
        "    s = time.perf_counter(); a @ a; t.append(time.perf_counter() - s)\n"
        "print(2 * 2048**3 / sorted(t)[4] / 1e9)\n"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def median_seconds(call: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    import torch

    from acnn_fusion.core.inference import TorchNetwork, _cpu_has_native_bf16, cpu_threads
    from acnn_fusion.core.onnx_runtime import OnnxNetwork
    from acnn_fusion.core.weights import load_model, read_onnx_export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--name", default="roofline")
    args = parser.parse_args()
    info = wp.machine()
    model = load_model()
    config = model.config
    widths = (config.c1, config.c2, config.c3, config.fc)
    per_pixel = image_flops(2048, config) / 2048**2  # far from the edges
    tile_flop = image_flops(TILE, config)
    image = np.random.default_rng(0).random((TILE, TILE), dtype=np.float32)
    data = read_onnx_export()[1]
    rows = []
    all_threads = cpu_threads()
    peaks: dict[tuple[str, int], float] = {}
    # without native bf16 torch emulates it (~8x slower than fp32): its rows would take many
    # minutes and measure nothing a user runs, so the torch network is timed in fp32 there
    native_bf16 = _cpu_has_native_bf16()
    torch_precision = "bf16" if native_bf16 else "fp32"
    for threads in sorted({1, all_threads}):
        torch.set_num_threads(threads)
        numpy_fp32 = numpy_peak_gflops(threads)
        torch_fp32 = speed.peak_gflops("cpu", "float32", size=2048, repeats=8)
        peaks["fp32", threads] = max(numpy_fp32, torch_fp32)
        peaks["bf16", threads] = (
            speed.peak_gflops("cpu", "bfloat16", size=2048, repeats=8) if native_bf16 else float("nan")
        )
        rows.append(
            (
                "numpy (OpenBLAS) fp32 matrix product 2048²",
                threads,
                numpy_fp32,
                numpy_fp32 / peaks["fp32", threads],
            )
        )
        rows.append(
            ("torch fp32 matrix product 2048²", threads, torch_fp32, torch_fp32 / peaks["fp32", threads])
        )
        if native_bf16:
            rows.append(("torch bf16 matrix product 2048²", threads, peaks["bf16", threads], 1.0))
        onnx = OnnxNetwork(data, threads)
        feed = {"images": image[None, None]}
        seconds = median_seconds(lambda o=onnx, f=feed: o.session.run(["proj_a", "proj_b"], f), args.repeats)
        rate = tile_flop / seconds / 1e9
        rows.append((f"onnxruntime fp32 network, {TILE}² tile", threads, rate, rate / peaks["fp32", threads]))
        network = TorchNetwork(model, torch.device("cpu"), torch_precision)
        reference = network.reference(image)
        seconds = median_seconds(lambda n=network, r=reference: n.slice_odds(image, r), args.repeats)
        rate = tile_flop / seconds / 1e9
        rows.append(
            (
                f"torch {torch_precision} network, {TILE}² tile (with its head)",
                threads,
                rate,
                rate / peaks[torch_precision, threads],
            )
        )
    info["loadavg_end"] = wp.os.getloadavg()
    lines = [
        "# The network against the CPU's arithmetic peak (`benchmarks/roofline.py`)",
        "",
        f"{wp.machine_line(info)}. Shipped widths {'-'.join(map(str, widths))}: "
        f"{per_pixel / 1e3:.1f} kFLOP per input pixel through the branch and both halves of fc1 "
        f"(`speed.branch_flops`). Medians of {args.repeats} calls."
        + ("" if native_bf16 else " No native bf16 on this CPU: bf16 rows skipped (emulated)."),
        "",
        "| work | threads | GFLOP/s | × the matrix peak of its type |",
        "|---|---|---|---|",
    ]
    lines += [f"| {work} | {t} | {rate:.1f} | {share:.2f} |" for work, t, rate, share in rows]
    lines += [
        "",
        f"The network's arithmetic alone at the matrix peak of {all_threads} threads "
        f"(bf16 {peaks['bf16', all_threads]:.0f}, fp32 {peaks['fp32', all_threads]:.0f} GFLOP/s):",
        "",
        "| case | MP through the branch | TFLOP | at the bf16 peak s | at the fp32 peak s |",
        "|---|---|---|---|---|",
    ]
    for case, kind, shape in CASES:
        flop = speed.network_flops(kind, shape, "features", config)
        slices = shape[0] + 1 if kind == "stack" else 2
        megapixels = slices * shape[-2] * shape[-1] / 1e6
        at_bf16, at_fp32 = (flop / peaks[kind, all_threads] / 1e9 for kind in ("bf16", "fp32"))
        bf16_cell = f"{at_bf16:.2f}" if native_bf16 else "–"
        lines.append(f"| {case} | {megapixels:.1f} | {flop / 1e12:.2f} | {bf16_cell} | {at_fp32:.2f} |")
    text = "\n".join(lines) + "\n"
    (REPO / "docs/results" / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
