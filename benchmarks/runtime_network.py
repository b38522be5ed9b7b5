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
    parser.add_argument("--whole", action="store_true", help="whole processes, each runtime at each tile")
    parser.add_argument("--cases", nargs="+", default=list(WHOLE_CASES), help="--whole: inputs")
    parser.add_argument("--tiles", nargs="+", type=int, default=[256, 384, 512], help="--whole: tile edges")
    parser.add_argument("--name", default="runtime_network_whole", help="--whole: results file stem")
    parser.add_argument(
        "--runtimes",
        nargs="+",
        choices=["onnx", "torch"],
        default=["onnx", "torch"],
        help="--whole: runtimes to run (torch in bf16 where native, else fp32)",
    )
    parser.add_argument(
        "--break-even", action="store_true", help="whole processes, onnx vs torch bf16 by size"
    )
    parser.add_argument("--onnx-tile", type=int, default=None, help="--break-even: onnx tile (default: auto)")
    parser.add_argument(
        "--torch-tile", type=int, default=None, help="--break-even: torch tile (default: auto)"
    )
    args = parser.parse_args()
    if args.whole:
        whole(args.repeats, tuple(args.cases), tuple(args.tiles), args.name, tuple(args.runtimes))
        return
    if args.break_even:
        break_even(args.repeats, args.onnx_tile, args.torch_tile)
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


#: the inputs of ``--whole``: name → megapixels through the network's branch
WHOLE_CASES = ("metallographic_1_1", "stack_1024x16", "pair_2048")
#: the break-even inputs of ``--break-even``: square pairs of these edges
BREAK_EVEN_PAIRS = (512, 1024, 1448, 2048)


def whole_inputs(folder: Path, cases: tuple[str, ...]) -> dict[str, tuple[list[str], float]]:
    """``acnn-fusion`` arguments (before the runner's) and branch megapixels of each case,
    synthetic inputs written into ``folder``; cases whose data is missing are left out."""
    import tifffile

    found: dict[str, tuple[list[str], float]] = {}
    for case in cases:
        if case == "metallographic_1_1":
            stack = wp.STACKS / "metallographic_mufoc" / "mufoc_1_1"
            if stack.is_dir():
                found[case] = (["stack", str(stack), "-o", str(folder / "m.tif")], 9 * 1000 * 1600 / 1e6)
        elif case.startswith("stack_"):
            size, slices = (int(v) for v in case.split("_")[1].split("x"))
            path = folder / f"{case}.tif"
            tifffile.imwrite(path, wp.synthetic_stack(size, slices))
            found[case] = (["stack", str(path), "-o", str(folder / "s.tif")], (slices + 1) * size**2 / 1e6)
        elif case.startswith("pair_"):
            size = int(case.split("_")[1])
            a, b = wp.synthetic_pair(size)
            paths = [folder / f"{case}_{k}.tif" for k in "ab"]
            for path, image in zip(paths, (a, b), strict=True):
                tifffile.imwrite(path, image)
            found[case] = (["fuse", *map(str, paths), "-o", str(folder / "p.tif")], 2 * size**2 / 1e6)
        else:
            raise SystemExit(f"unknown case {case!r}")
    return found


def runner_arguments(runtime: str, tile: int | None) -> list[str]:
    """``--runtime onnx`` (fp32) or ``--runtime torch --precision bf16``, with ``--tile`` if given."""
    base = ["--runtime", "onnx"] if runtime == "onnx" else ["--runtime", "torch", "--precision", "bf16"]
    return base + ([] if tile is None else ["--tile", str(tile)])


def whole(
    repeats: int,
    cases: tuple[str, ...],
    tiles: tuple[int, ...],
    name: str,
    which: tuple[str, ...] = ("onnx", "torch"),
) -> None:
    """Whole processes: onnxruntime fp32 and torch bf16 at each tile in ``tiles`` on each case,
    interleaved (:func:`wholeprocess.run_round`, order reversed every other round); ``which``:
    the runtimes to run."""
    import tempfile

    info = wp.machine()
    print(info, flush=True)
    rows: list[dict] = []
    runtimes = (["onnx"] if "onnx" in which else []) + (
        (["torch bf16"] if info["native_bf16"] else ["torch fp32"]) if "torch" in which else []
    )
    labels = {f"{rt}, tile {t}": (rt, t) for rt in runtimes for t in tiles}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = whole_inputs(Path(tmp), cases)
        for r in range(repeats):
            for case, (base, _) in inputs.items():
                runs: wp.Runs = {}
                for label, (rt, t) in labels.items():
                    arguments = (
                        runner_arguments("onnx", t)
                        if rt == "onnx"
                        else ["--runtime", "torch", "--precision", rt.split()[1], "--tile", str(t)]
                    )
                    runs[label] = ([wp.ours_script(), *base, *arguments], wp.ours_env())
                wp.run_round(runs, r, {"case": case}, rows)
    info["loadavg_end"] = os.getloadavg()
    results = REPO / "docs" / "results"
    (results / f"{name}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    lines = [
        f"Whole processes of `acnn-fusion` (`benchmarks/runtime_network.py --whole --repeats {repeats} "
        f"--cases {' '.join(cases)} --tiles {' '.join(map(str, tiles))} --runtimes {' '.join(which)} "
        f"--name {name}`); {wp.machine_line(info)}; "
        "medians of the rounds, runners "
        f"interleaved (order reversed every other round); × = against {labels and next(iter(labels))} "
        "of the same case; torch in bf16 where the CPU has native bf16, else fp32.",
        "",
        "| case (MP through the branch) | runner | median s | × first | peak RSS MB | runs s | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, (_, megapixels) in inputs.items():
        first = wp.median_of(rows, case=case, runner=next(iter(labels)))
        for label in labels:
            found = wp.median_of(rows, case=case, runner=label)
            mine = [x for x in rows if x["case"] == case and x["runner"] == label]
            if found is None or not mine:
                continue
            ratio = f"{found[0] / first[0]:.2f}" if first else "–"
            rss = statistics.median(x["peak_rss_mb"] for x in mine)
            runs_s = ", ".join(f"{x['seconds']:.1f}" for x in mine)
            load = statistics.median(x["load1"] for x in mine)
            lines.append(
                f"| {case} ({megapixels:.1f}) | {label} | {found[0]:.2f} | {ratio} | {rss:.0f} | {runs_s} | "
                f"{load:.1f} |"
            )
    text = "\n".join(lines) + "\n"
    (results / f"{name}.md").write_text(text)
    print(text)


def break_even(repeats: int, onnx_tile: int | None, torch_tile: int | None) -> None:
    """Whole processes, ``fuse`` of synthetic square pairs (:data:`BREAK_EVEN_PAIRS`), onnxruntime
    fp32 against torch bf16, interleaved: where ``runtime="auto"`` should switch
    (``inference.bf16_break_even_megapixels``); start-up included."""
    import tempfile

    info = wp.machine()
    print(info, flush=True)
    rows: list[dict] = []
    cases = tuple(f"pair_{size}" for size in BREAK_EVEN_PAIRS)
    runners = {"onnx fp32": ("onnx", onnx_tile), "torch bf16": ("torch", torch_tile)}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = whole_inputs(Path(tmp), cases)
        for r in range(repeats):
            for case, (base, _) in inputs.items():
                runs: wp.Runs = {
                    label: ([wp.ours_script(), *base, *runner_arguments(rt, t)], wp.ours_env())
                    for label, (rt, t) in runners.items()
                }
                wp.run_round(runs, r, {"case": case}, rows)
    info["loadavg_end"] = os.getloadavg()
    results = REPO / "docs" / "results"
    (results / "runtime_break_even.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    tiles = ", ".join(f"{k} tile {t or 'default'}" for k, (_, t) in runners.items())
    lines = [
        f"Whole processes, `acnn-fusion fuse` on synthetic square pairs "
        f"(`benchmarks/runtime_network.py --break-even --repeats {repeats}`; {tiles}); CPU "
        f"{info['cpu_model']}, {info['affinity']} CPUs, native bf16 {info['native_bf16']}; load "
        f"{info['loadavg'][0]:.1f} at start, {info['loadavg_end'][0]:.1f} at end ({info['time_utc']} UTC); "
        "medians, runners interleaved:",
        "",
        "| pair | MP through the branch | onnx fp32 s | torch bf16 s | torch / onnx "
        "| peak RSS MB onnx / torch |",
        "|---|---|---|---|---|---|",
    ]
    for case, (_, megapixels) in inputs.items():
        found = {k: wp.median_of(rows, case=case, runner=k) for k in runners}
        if any(v is None for v in found.values()):
            continue
        rss = " / ".join(
            f"{statistics.median(x['peak_rss_mb'] for x in rows if x['case'] == case and x['runner'] == k):.0f}"  # noqa: E501
            for k in runners
        )
        onnx_s, torch_s = found["onnx fp32"][0], found["torch bf16"][0]
        lines.append(
            f"| {case} | {megapixels:.1f} | {onnx_s:.2f} | {torch_s:.2f} | {torch_s / onnx_s:.2f} | {rss} |"
        )
    lines += ["", "Loads: " + ", ".join(f"{x['load1']:.1f}" for x in rows) + "."]
    text = "\n".join(lines) + "\n"
    (results / "runtime_break_even.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
