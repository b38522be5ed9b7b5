"""The network alone on each CPU runtime, side by side: pair scores and a stack's score volume.

    .venv/bin/python benchmarks/runtime_network.py [--size 1024] [--slices 8] [--repeats 4]
    .venv/bin/python benchmarks/runtime_network.py --whole [--repeats 2]
    .venv/bin/python benchmarks/runtime_network.py --head [--size 768] [--slices 8]

What ``runtime="auto"`` weighs against start-up: onnxruntime fp32 (tiles 256, 384 and 512),
torch fp32 and, where the CPU has native bf16, torch bf16, each run once per round in
alternating order after a warm-up, on (1) ``score_map`` of a ``--size``² natural-image
pair (``onnx_runtime.natural_pair``) and (2) the stack fold's score volume
(``stack._score_volume``: the mean-image reference and every slice's log-odds) of a
``--size``² × ``--slices`` synthetic uint16 stack (``wholeprocess.synthetic_stack``).
Writes ``docs/results/runtime_network.{md,json}`` with the load average.

``--whole``: whole processes instead, ``acnn-fusion stack`` on the metallographic stack
mufoc_1_1 with ``--runtime onnx --tile`` 256, 384, 512 and ``--runtime torch``, interleaved
(``wholeprocess.run_round``); writes ``docs/results/runtime_network_whole.{md,json}``.

``--head``: the onnxruntime stack score volume with the numpy head as it is (in bands of
``HEAD_ROWS`` score rows) against the head as it was (whole tiles), side by side; writes
``docs/results/runtime_network_head.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import wholeprocess as wp
from onnx_runtime import natural_pair

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--head", action="store_true", help="the onnx numpy head, banded against whole tiles")
    parser.add_argument("--whole", action="store_true", help="whole processes on the metallographic stack")
    args = parser.parse_args()
    if args.whole:
        whole(args.repeats)
        return
    if args.head:
        head(args.size, args.slices, args.repeats)
        return
    import torch

    from acnn_fusion.core.inference import TorchNetwork
    from acnn_fusion.core.onnx_runtime import load_onnx_network
    from acnn_fusion.core.stack import FocusImage, _score_volume
    from acnn_fusion.core.weights import load_model

    info = wp.machine()
    print(info, flush=True)
    onnx, cpu = load_onnx_network(), torch.device("cpu")
    runtimes = {
        "onnx fp32, tile 256": (onnx, 256),
        "onnx fp32, tile 384": (onnx, 384),
        "onnx fp32, tile 512": (onnx, 512),
        "torch fp32, tile 256": (TorchNetwork(load_model(), cpu, "fp32"), 256),
    }
    if info["native_bf16"]:
        runtimes["torch bf16, tile 256"] = (TorchNetwork(load_model(), cpu, "bf16"), 256)
    grey_a, grey_b = natural_pair(args.size)
    grey = FocusImage(wp.synthetic_stack(args.size, args.slices))
    tasks = {
        "pair": lambda net, tile: net.score_map(grey_a, grey_b, tile=tile),
        "stack": lambda net, tile: _score_volume(net, grey, None, tile, "auto", None),
    }
    times: dict[str, dict[str, list[float]]] = {task: {label: [] for label in runtimes} for task in tasks}
    for run in tasks.values():
        for net, tile in runtimes.values():
            run(net, tile)  # warm-up
    for r in range(args.repeats):
        for task, run in tasks.items():
            for label in list(runtimes)[:: 1 if r % 2 == 0 else -1]:
                start = time.perf_counter()
                run(*runtimes[label])
                times[task][label].append(time.perf_counter() - start)
            print(r, task, {k: round(v[-1], 2) for k, v in times[task].items()}, flush=True)
    info["loadavg_end"] = os.getloadavg()
    megapixels = {"pair": 2 * args.size**2 / 1e6, "stack": (args.slices + 1) * args.size**2 / 1e6}
    results = REPO / "docs" / "results"
    (results / "runtime_network.json").write_text(json.dumps({"machine": info, "times": times}, indent=1))
    lines = [
        f"Network only, side by side (`benchmarks/runtime_network.py --size {args.size} --slices "
        f"{args.slices} --repeats {args.repeats}`); CPU {info['cpu_model']}, {info['affinity']} CPUs, native "
        f"bf16 {info['native_bf16']}; load average {info['loadavg'][0]:.1f} at start, "
        f"{info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC). Medians of {args.repeats} rounds "
        "(order alternating), seconds per megapixel through the branch in brackets:",
        "",
        "| runtime | "
        + " | ".join(f"{task} ({megapixels[task]:.1f} MP) s" for task in tasks)
        + " | "
        + " | ".join(f"{task} × onnx tile 256" for task in tasks)
        + " |",
        "|---|" + "---|" * (2 * len(tasks)),
    ]
    for label in runtimes:
        cells = []
        for task in tasks:
            median = statistics.median(times[task][label])
            cells.append(f"{median:.2f} ({median / megapixels[task]:.2f})")
        for task in tasks:
            base = statistics.median(times[task]["onnx fp32, tile 256"])
            cells.append(f"{statistics.median(times[task][label]) / base:.2f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (results / "runtime_network.md").write_text(text)
    print(text)


def head(size: int, slices: int, repeats: int) -> None:
    import numpy as np

    from acnn_fusion.core.onnx_runtime import OnnxNetwork
    from acnn_fusion.core.stack import FocusImage, _score_volume
    from acnn_fusion.core.weights import read_onnx_export

    class WholeTileHead(OnnxNetwork):
        """The head before: each step over the whole (64, h, w) tile."""

        def slice_odds(self, image, reference):
            reference_a, reference_b = reference
            proj_a, proj_b = self._run(["proj_a", "proj_b"], image[None])
            first, second = proj_a[0], proj_b[0]
            first += reference_b
            second += reference_a
            np.maximum(first, 0, out=first)
            np.maximum(second, 0, out=second)
            first -= second
            channels, h, w = first.shape
            odds = (self.logit_weight @ first.reshape(channels, h * w)).reshape(h, w)
            odds *= np.float32(0.5)
            return odds

    info = wp.machine()
    data = read_onnx_export()[1]
    networks = {
        "whole tiles (before)": WholeTileHead(data),
        "bands of HEAD_ROWS rows (now)": OnnxNetwork(data),
    }
    grey = FocusImage(wp.synthetic_stack(size, slices))
    volumes = {k: np.array(_score_volume(n, grey, None, 256, "auto", None)) for k, n in networks.items()}
    first, second = volumes.values()
    difference, same_best = (
        float(np.abs(first - second).max()),
        float(np.mean(first.argmax(0) == second.argmax(0))),
    )
    times: dict[str, list[float]] = {k: [] for k in networks}
    for r in range(repeats):
        for label in list(networks)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            _score_volume(networks[label], grey, None, 256, "auto", None)
            times[label].append(time.perf_counter() - start)
    info["loadavg_end"] = os.getloadavg()
    lines = [
        f"onnxruntime score volume of a {size}²×{slices} synthetic uint16 stack, tile 256 "
        f"(`benchmarks/runtime_network.py --head --size {size} --slices {slices} --repeats {repeats}`); "
        f"CPU {info['cpu_model']}, native bf16 {info['native_bf16']}; "
        f"load {info['loadavg'][0]:.1f} at start, "
        f"{info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC); {repeats} rounds, order alternating. "
        f"Largest volume difference {difference:.1e}, "
        f"best slice per block the same for {100 * same_best:.2f} %.",
        "",
        "| numpy head | median s | × before | runs s |",
        "|---|---|---|---|",
    ]
    base = statistics.median(times["whole tiles (before)"])
    for label, t in times.items():
        runs = ", ".join(f"{x:.2f}" for x in t)
        lines.append(f"| {label} | {statistics.median(t):.2f} | {statistics.median(t) / base:.2f} | {runs} |")
    text = "\n".join(lines) + "\n"
    (REPO / "docs" / "results" / "runtime_network_head.md").write_text(text)
    print(text)


def whole(repeats: int) -> None:
    import tempfile

    info = wp.machine()
    print(info, flush=True)
    stack = wp.SHARED / "data" / "eval" / "stacks" / "metallographic_mufoc" / "mufoc_1_1"
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fused.tif"
        base = [wp.ours_script(), "stack", str(stack), "-o", str(out)]
        runs: wp.Runs = {
            **{
                f"onnx, tile {t}": ([*base, "--runtime", "onnx", "--tile", str(t)], wp.ours_env())
                for t in (256, 384, 512)
            },
            "torch, tile 256": ([*base, "--runtime", "torch"], wp.ours_env()),
        }
        for r in range(repeats):
            wp.run_round(runs, r, {"case": "metallographic_1_1"}, rows)
    info["loadavg_end"] = os.getloadavg()
    results = REPO / "docs" / "results"
    (results / "runtime_network_whole.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    base_s = wp.median_of(rows, runner="onnx, tile 256")
    lines = [
        f"Whole processes, `acnn-fusion stack` on metallographic mufoc_1_1 (8×1000×1600), "
        f"`benchmarks/runtime_network.py --whole --repeats {repeats}`; CPU {info['cpu_model']}, native bf16 "
        f"{info['native_bf16']}; load {info['loadavg'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end "
        f"({info['time_utc']} UTC); medians, runners interleaved:",
        "",
        "| runner | s | × onnx tile 256 | peak RSS MB | runs |",
        "|---|---|---|---|---|",
    ]
    for runner in runs:
        found = wp.median_of(rows, runner=runner)
        if found is None or base_s is None:
            continue
        rss = statistics.median(r["peak_rss_mb"] for r in rows if r["runner"] == runner)
        lines.append(f"| {runner} | {found[0]:.2f} | {found[0] / base_s[0]:.2f} | {rss:.0f} | {found[1]} |")
    lines += ["", "Loads: " + ", ".join(f"{r['load1']:.1f}" for r in rows) + "."]
    text = "\n".join(lines) + "\n"
    (results / "runtime_network_whole.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
