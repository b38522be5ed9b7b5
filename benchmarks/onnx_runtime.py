"""The onnxruntime runtime against torch: same decisions, start-up and network speed.

    .venv/bin/python benchmarks/onnx_runtime.py [--size 1024] [--repeats 3] [--no-decisions]

Uses the package's own runtimes (``runtime="onnx"``: the shipped ONNX export on
onnxruntime's CPU provider, fp32; ``runtime="torch"``), so it measures what users run.

1. Decisions: every Lytro-20 pair of ``../shared`` fused with ``fuse_pair`` on each runtime
   (the whole pipeline: focus map, regions, boundary refinement, fine override), and every
   synthetic stack of ``quality_stacks.py`` (20 stacks, 5–30 slices, uint8 RGB and uint16,
   with and without noise, plus the 6 flat-region stacks) folded with ``fuse_stack``: share
   of decision-map / depth-map pixels that differ from torch fp32, and the largest
   focus-map / confidence difference. torch ``auto`` (bf16 on a CPU with native bf16) is
   given beside it for scale.
2. Start-up: fresh processes that import onnxruntime, torch, or the package's pair pipeline
   (which no longer imports torch), interleaved.
3. Network speed: ``score_map`` of a ``--size``² grey pair (tile 256) on torch fp32, torch
   ``auto``, onnxruntime with its idle threads not spinning (the package default) and
   spinning (``OMP_WAIT_POLICY=ACTIVE``), interleaved, after one warm-up each.

Writes ``docs/results/onnx_runtime.{md,json}``; the machine's load is recorded with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from acnn_fusion import fuse_pair, fuse_stack

sys.path.insert(0, str(Path(__file__).parent))
import wholeprocess as wp

REPO = Path(__file__).resolve().parents[1]


def lytro_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    from skimage import io

    folder = wp.SHARED / "data" / "eval" / "pairs" / "lytro"
    return [
        (a.stem[:-2], io.imread(a), io.imread(str(a).replace("-A.", "-B.")))
        for a in sorted(folder.glob("lytro-*-A.jpg"))
    ]


def compare_pairs() -> list[dict]:
    rows = []
    for name, a, b in lytro_pairs():
        onnx = fuse_pair(a, b, runtime="onnx")
        fp32 = fuse_pair(a, b, runtime="torch", precision="fp32")
        bf16 = fuse_pair(a, b, runtime="torch", precision="auto")
        rows.append(
            {
                "case": name,
                "onnx_differ": float(np.mean(onnx.decision_map != fp32.decision_map)),
                "onnx_max_focus_diff": float(np.abs(onnx.focus_map - fp32.focus_map).max()),
                "torch_auto_differ": float(np.mean(bf16.decision_map != fp32.decision_map)),
            }
        )
        print(rows[-1], flush=True)
    return rows


def compare_stacks() -> list[dict]:
    from quality_stacks import flat_region_stacks, synthetic_stacks

    rows = []
    for name, synthetic in [*synthetic_stacks(), *flat_region_stacks()]:
        onnx = fuse_stack(synthetic.stack, runtime="onnx")
        fp32 = fuse_stack(synthetic.stack, runtime="torch", precision="fp32")
        bf16 = fuse_stack(synthetic.stack, runtime="torch", precision="auto")
        rows.append(
            {
                "case": name,
                "onnx_differ": float(np.mean(onnx.depth_map != fp32.depth_map)),
                "onnx_max_confidence_diff": float(np.abs(onnx.confidence - fp32.confidence).max()),
                "torch_auto_differ": float(np.mean(bf16.depth_map != fp32.depth_map)),
            }
        )
        print(rows[-1], flush=True)
    return rows


def startup(repeats: int) -> dict[str, float]:
    codes = {
        "import onnxruntime": "import onnxruntime",
        "import torch": "import torch",
        "import acnn_fusion.core.pipeline": "import acnn_fusion.core.pipeline",
    }
    rows: list[dict] = []
    runs = {label: ([sys.executable, "-c", code], wp.ours_env()) for label, code in codes.items()}
    for round_index in range(repeats):
        wp.run_round(runs, round_index, {"case": "startup"}, rows)
    return {label: round(wp.median_of(rows, runner=label)[0], 2) for label in codes}  # type: ignore[index]


def network_speed(size: int, repeats: int) -> dict[str, float]:
    import torch
    from scipy import ndimage

    from acnn_fusion.core.inference import TorchNetwork
    from acnn_fusion.core.onnx_runtime import OnnxNetwork
    from acnn_fusion.core.weights import load_model, read_onnx_export

    rng = np.random.default_rng(0)
    grey_a = ndimage.gaussian_filter(rng.random((size, size), dtype=np.float32), 1.0)
    grey_b = ndimage.gaussian_filter(grey_a, 2.0)
    model, cpu = load_model(), torch.device("cpu")
    _, onnx_bytes = read_onnx_export()
    networks = {
        "torch fp32": TorchNetwork(model, cpu, "fp32"),
        "torch auto": TorchNetwork(model, cpu, "auto"),
        "onnxruntime (idle threads sleep: default)": OnnxNetwork(onnx_bytes, spinning=False),
        "onnxruntime (idle threads spin)": OnnxNetwork(onnx_bytes, spinning=True),
    }
    times: dict[str, list[float]] = {name: [] for name in networks}
    for network in networks.values():
        network.score_map(grey_a, grey_b, tile=256)  # warm-up
    for r in range(repeats):
        for name in list(networks)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            networks[name].score_map(grey_a, grey_b, tile=256)
            times[name].append(time.perf_counter() - start)
    return {name: round(statistics.median(t), 3) for name, t in times.items()}


def _percent(value: float) -> str:
    return f"{100 * value:.4f} %"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="onnx_runtime")
    parser.add_argument("--no-decisions", action="store_true", help="skip the decision comparison")
    args = parser.parse_args()
    import onnxruntime
    import torch

    info = wp.machine()
    print(info, flush=True)
    pairs = [] if args.no_decisions else compare_pairs()
    stacks = [] if args.no_decisions else compare_stacks()
    load_after_decisions = os.getloadavg()
    start_up = startup(args.repeats)
    speed = network_speed(args.size, args.repeats)
    info["loadavg_end"] = os.getloadavg()
    summary = {
        "onnxruntime": onnxruntime.__version__,
        "torch": torch.__version__,
        "startup_s": start_up,
        "score_map_s": speed,
        "size": args.size,
        "load_after_decisions": load_after_decisions,
    }
    for label, rows, diff in (
        ("lytro", pairs, "onnx_max_focus_diff"),
        ("stacks", stacks, "onnx_max_confidence_diff"),
    ):
        if rows:
            summary[label] = {
                "cases": len(rows),
                "onnx_mean_differ": statistics.mean(r["onnx_differ"] for r in rows),
                "onnx_worst_differ": max(r["onnx_differ"] for r in rows),
                "onnx_max_diff": max(r[diff] for r in rows),
                "torch_auto_mean_differ": statistics.mean(r["torch_auto_differ"] for r in rows),
                "torch_auto_worst_differ": max(r["torch_auto_differ"] for r in rows),
            }
    results = REPO / "docs" / "results"
    (results / f"{args.name}.json").write_text(
        json.dumps({"machine": info, "summary": summary, "pairs": pairs, "stacks": stacks}, indent=1)
    )
    lines = [
        f"onnxruntime {onnxruntime.__version__} (CPU provider, fp32) against torch {torch.__version__}; "
        f"CPU {info['cpu_model']}, {info['affinity']} CPUs, native bf16 {info['native_bf16']}; load average "
        f"{info['loadavg'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC).",
        "",
        "Decisions (pixels that differ from torch fp32; the package's whole pair / stack pipeline):",
        "",
        "| inputs | cases | onnx: mean / worst differ | onnx: largest map difference | "
        "torch auto (bf16): mean / worst differ |",
        "|---|---|---|---|---|",
    ]
    for label, title, what in (
        ("lytro", "Lytro-20 pairs, decision map", "focus map"),
        ("stacks", "synthetic stacks (quality_stacks.py), depth map", "confidence"),
    ):
        if label in summary:
            s = summary[label]
            lines.append(
                f"| {title} | {s['cases']} | {_percent(s['onnx_mean_differ'])} / "
                f"{_percent(s['onnx_worst_differ'])} "
                f"| {s['onnx_max_diff']:.1e} ({what}) | {_percent(s['torch_auto_mean_differ'])} / "
                f"{_percent(s['torch_auto_worst_differ'])} |"
            )
    lines += [
        "",
        f"Start-up, fresh processes, medians of {args.repeats} interleaved rounds:",
        "",
        "| process | s |",
        "|---|---|",
        *(f"| `{label}` | {seconds:.2f} |" for label, seconds in start_up.items()),
        "",
        f"Network only (`score_map`, {args.size}² grey pair, tile 256), medians of {args.repeats} "
        "interleaved rounds:",
        "",
        "| runtime | s | × torch auto |",
        "|---|---|---|",
        *(f"| {name} | {s:.3f} | {s / speed['torch auto']:.2f} |" for name, s in speed.items()),
    ]
    text = "\n".join(lines) + "\n"
    (results / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
