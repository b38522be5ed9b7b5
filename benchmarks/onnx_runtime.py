"""The onnxruntime runtime against torch: same decisions, start-up and network speed.

    .venv/bin/python benchmarks/onnx_runtime.py [--size 1024] [--repeats 3] [--no-decisions]
    .venv/bin/python benchmarks/onnx_runtime.py --int8 [--stacks 4]   # needs the onnx package

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

``--int8`` instead quantises the shipped export with onnxruntime's static quantisation
(:func:`quantised_exports`: per-channel int8 weights, uint8 activations calibrated on
natural-image tiles of the training set and defocused copies of them; QOperator and QDQ
formats; with and without 7-bit weights, ``reduce_range``, which CPUs without VNNI need
against the saturation of their u8×s8 products; uint8 weights; the first convolution,
which reads the image itself, kept fp32 or not) and compares, side by side in one run,
the network's time (``score_map`` of a natural-image pair) against onnxruntime fp32 and
torch, and the decisions against onnxruntime fp32 (Lytro-20 decision maps, every third of
the synthetic stacks, ``--stacks`` of them, depth maps). Writes ``docs/results/onnx_int8.{md,json}``.
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


#: int8 variants of :func:`quantised_exports`: (format, reduce_range, weight type, fp32 nodes)
INT8_VARIANTS = {
    "int8 QOperator s8": ("qoperator", False, "s8", ()),
    "int8 QOperator s8 7-bit": ("qoperator", True, "s8", ()),
    "int8 QDQ s8 7-bit": ("qdq", True, "s8", ()),
    "int8 QOperator s8 7-bit, conv1 fp32": ("qoperator", True, "s8", ("conv1_out",)),
    "int8 QOperator u8, conv1 fp32": ("qoperator", False, "u8", ("conv1_out",)),
    "int8 QOperator s8 7-bit, conv1 + fc1 fp32": ("qoperator", True, "s8", ("conv1_out", "proj_a", "proj_b")),
}


def calibration_tiles(count: int = 32, size: int = 256, seed: int = 0) -> list[np.ndarray]:
    """Grey [0, 1] tiles of the BSDS500 training photos, each with a defocused copy
    (:func:`acnn_fusion.training.data.defocus`): what the network sees in a fusion."""
    from skimage import io

    from acnn_fusion.core.imageops import to_grey
    from acnn_fusion.training.data import defocus

    rng = np.random.default_rng(seed)
    folder = wp.SHARED / "data" / "train" / "natural" / "BSDS500" / "train"
    tiles = []
    for path in sorted(folder.glob("*.jpg"))[:count]:
        grey = to_grey(io.imread(path), np.float32) / np.float32(255.0)
        y, x = (int(rng.integers(0, n - size + 1)) for n in grey.shape)
        tile = np.ascontiguousarray(grey[y : y + size, x : x + size])
        tiles += [tile, defocus(tile, rng).astype(np.float32)]
    return tiles


def quantised_exports(folder: Path) -> dict[str, bytes]:
    """The shipped export quantised as each of :data:`INT8_VARIANTS` (written to ``folder``)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from acnn_fusion.core.weights import read_onnx_export

    onnx_path, _ = read_onnx_export()
    model = onnx.load(onnx_path)
    for index, node in enumerate(
        model.graph.node
    ):  # the export's nodes are unnamed: name them to exclude some
        node.name = f"{node.op_type.lower()}{index}_{node.output[0]}"
    named = folder / "named.onnx"
    onnx.save(model, named)
    tiles = calibration_tiles()

    class Tiles(CalibrationDataReader):
        def __init__(self) -> None:
            self.remaining = iter(tiles)

        def get_next(self) -> dict | None:
            tile = next(self.remaining, None)
            return None if tile is None else {"images": tile[None, None]}

    out = {}
    for label, (form, reduce_range, weights, fp32_outputs) in INT8_VARIANTS.items():
        target = folder / f"{len(out)}.onnx"
        quantize_static(
            str(named),
            str(target),
            Tiles(),
            quant_format=QuantFormat.QDQ if form == "qdq" else QuantFormat.QOperator,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QUInt8 if weights == "u8" else QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=["Conv"],
            nodes_to_exclude=[n.name for n in model.graph.node if n.output[0] in fp32_outputs],
        )
        out[label] = target.read_bytes()
    return out


def natural_pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey pair of scikit-image's astronaut (tiled to ``size``²): A sharp above the
    diagonal, B below, the other half blurred (σ 1.5): many patches far from 0 and 1."""
    from scipy import ndimage
    from skimage import data

    from acnn_fusion.core.imageops import to_grey

    grey = to_grey(data.astronaut(), np.float32) / np.float32(255.0)
    grey = np.tile(grey, (size // grey.shape[0] + 1, size // grey.shape[1] + 1))[:size, :size]
    blurred = ndimage.gaussian_filter(grey, 1.5)
    yy, xx = np.mgrid[:size, :size]
    upper = (xx + yy) < size
    return np.where(upper, grey, blurred), np.where(upper, blurred, grey)


def int8_comparison(args: argparse.Namespace) -> None:
    import tempfile

    import onnxruntime
    import torch

    import acnn_fusion.core.pipeline as pipeline
    import acnn_fusion.core.stack as stack
    from acnn_fusion.core.inference import TorchNetwork
    from acnn_fusion.core.onnx_runtime import OnnxNetwork
    from acnn_fusion.core.weights import load_model, read_onnx_export

    info = wp.machine()
    print(info, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        exports = quantised_exports(Path(tmp))
    networks = {"onnx fp32": OnnxNetwork(read_onnx_export()[1])}
    networks.update({label: OnnxNetwork(data) for label, data in exports.items()})
    cpu = torch.device("cpu")
    torch_networks = {"torch fp32": TorchNetwork(load_model(), cpu, "fp32")}
    if info["native_bf16"]:
        torch_networks["torch bf16"] = TorchNetwork(load_model(), cpu, "bf16")
    # speed, network only, every runtime once per round, order alternating
    grey_a, grey_b = natural_pair(args.size)
    everything = {**networks, **torch_networks}
    scores = {label: net.score_map(grey_a, grey_b, tile=256) for label, net in everything.items()}  # warm-up
    times: dict[str, list[float]] = {label: [] for label in everything}
    for r in range(args.repeats):
        for label in list(everything)[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            everything[label].score_map(grey_a, grey_b, tile=256)
            times[label].append(time.perf_counter() - start)
    load_after_speed = os.getloadavg()
    speed = {label: statistics.median(t) for label, t in times.items()}
    reference = scores["onnx fp32"]
    patches = {
        label: float(np.mean((s > 0.5) != (reference > 0.5)))
        for label, s in scores.items()
        if label in networks
    }
    # decisions against onnx fp32, for the variants named in --decide (all by default)
    chosen = [label for label in exports if not args.decide or any(key in label for key in args.decide)]

    def use(network) -> None:
        pipeline.open_network = stack.open_network = lambda *_a, **_k: network

    differ: dict[str, dict[str, list[float]]] = {label: {"lytro": [], "stacks": []} for label in chosen}
    for name, a, b in lytro_pairs():
        use(networks["onnx fp32"])
        truth = fuse_pair(a, b).decision_map
        for label in chosen:
            use(networks[label])
            differ[label]["lytro"].append(float(np.mean(fuse_pair(a, b).decision_map != truth)))
        print(name, {k: round(100 * v["lytro"][-1], 3) for k, v in differ.items()}, flush=True)
    from quality_stacks import synthetic_stacks

    for name, synthetic in list(synthetic_stacks())[::3][: args.stacks]:
        use(networks["onnx fp32"])
        truth = fuse_stack(synthetic.stack).depth_map
        for label in chosen:
            use(networks[label])
            differ[label]["stacks"].append(float(np.mean(fuse_stack(synthetic.stack).depth_map != truth)))
        print(name, {k: round(100 * v["stacks"][-1], 3) for k, v in differ.items()}, flush=True)
    info["loadavg_end"] = os.getloadavg()
    stack_names = [name for name, _ in list(synthetic_stacks())[::3][: args.stacks]]
    results = REPO / "docs" / "results"
    (results / "onnx_int8.json").write_text(
        json.dumps(
            {
                "machine": info,
                "load_after_speed": load_after_speed,
                "score_map_s": times,
                "patch_flips": patches,
                "differ": differ,
                "stacks": stack_names,
            },
            indent=1,
        )
    )
    base = speed["onnx fp32"]
    lines = [
        f"int8 (onnxruntime {onnxruntime.__version__} static quantisation of the shipped export) against "
        f"fp32; CPU {info['cpu_model']}, {info['affinity']} CPUs, native bf16 {info['native_bf16']}; load "
        f"average {info['loadavg'][0]:.1f} at start, {load_after_speed[0]:.1f} after the speed rounds, "
        f"{info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC). Command: "
        "`benchmarks/onnx_runtime.py --int8"
        + (f" --stacks {args.stacks}" if args.stacks != 4 else "")
        + "`.",
        "",
        f"Network only (`score_map`, {args.size}² grey astronaut pair, tile 256), medians of {args.repeats} "
        "interleaved rounds; patch scores on the other side of 0.5 than onnx fp32's:",
        "",
        "| network | s | × onnx fp32 | patches flipped |",
        "|---|---|---|---|",
        *(
            f"| {label} | {s:.3f} | {s / base:.2f} | "
            + (f"{100 * patches[label]:.3f} %" if label in patches else "–")
            + " |"
            for label, s in speed.items()
        ),
        "",
        "Decisions against onnx fp32 (share of pixels that differ; the whole `fuse_pair` / `fuse_stack`):",
        "",
        "| network | Lytro-20 decision map: mean / worst | "
        f"synthetic stacks ({len(stack_names)}: {', '.join(stack_names)}) depth map: mean / worst |",
        "|---|---|---|",
    ]
    for label, found in differ.items():
        cells = [
            f"{_percent(statistics.mean(v))} / {_percent(max(v))}" if v else "–"
            for v in (found["lytro"], found["stacks"])
        ]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    text = "\n".join(lines) + "\n"
    (results / "onnx_int8.md").write_text(text)
    print(text)


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
    parser.add_argument("--int8", action="store_true", help="int8 quantisations against fp32 instead")
    parser.add_argument(
        "--stacks", type=int, default=7, help="--int8: synthetic stacks to compare (every 3rd)"
    )
    parser.add_argument(
        "--decide", nargs="*", help="--int8: compare decisions of variants whose label has one"
    )
    args = parser.parse_args()
    if args.int8:
        int8_comparison(args)
        return
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
        f"{wp.machine_line(info)}.",
        "",
        "Decisions (pixels that differ from torch fp32; the package's whole pair / stack pipeline):",
        "",
        "| inputs | cases | onnx: mean / worst differ | onnx: largest map difference | "
        "torch auto (bf16 where native): mean / worst differ |",
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
