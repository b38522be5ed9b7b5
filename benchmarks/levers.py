"""What each speed lever buys: variants of the network evaluation timed side by side in one run.

    .venv/bin/python benchmarks/levers.py [--size 1024] [--repeats 5] [--lytro]

Times :func:`acnn_fusion.core.inference.score_map` (the network part of a pair fusion) on a
grey pair of ``--size``², with each variant run in turn in every round so that drift of a
noisy machine hits them alike; also the ``features`` stack fold (each slice's branch
computed once) against the paper's pairwise fold on a 1024×1024×16 uint16 stack. With
``--lytro`` (needs ../shared), the share of Lytro-20 decision-map pixels that change when
the network runs under bf16 autocast instead of fp32. Writes ``docs/results/levers.{md,json}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from acnn_fusion.core import inference
from acnn_fusion.core.model import ACNN, ACNNConfig, Branch
from acnn_fusion.core.weights import load_model

REPO = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def _out_of_place_forward(self: Branch, image: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.conv1(image))
    x = F.relu(self.conv2(x))
    x = F.relu(self.down(x))
    return F.relu(self.conv3(x))


@contextlib.contextmanager
def out_of_place_relu() -> Iterator[None]:
    """The branch as first written: every ReLU allocates a new tensor."""
    original = Branch.forward
    Branch.forward = _out_of_place_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        Branch.forward = original  # type: ignore[method-assign]


@contextlib.contextmanager
def contiguous_layout() -> Iterator[None]:
    """NCHW tensors instead of channels-last."""
    prepare, to_input = inference.prepare, inference.to_input
    inference.prepare = lambda model, device: model.to(device).to(memory_format=torch.contiguous_format)
    inference.to_input = lambda images, device: torch.from_numpy(np.ascontiguousarray(images))[:, None]
    try:
        yield
    finally:
        inference.prepare, inference.to_input = prepare, to_input


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def variants(size: int) -> dict[str, Callable[[np.ndarray, np.ndarray], object]]:
    """Name → run; the first is the fp32 reference every other row is compared with."""
    model = load_model()
    liu = ACNN(ACNNConfig(64, 128, 256, 256)).eval()  # Liu et al.'s widths, untrained: cost only

    def score(
        net: ACNN = model,
        tile: int = inference.DEFAULT_TILE,
        precision: str = "fp32",
        context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    ) -> Callable[[np.ndarray, np.ndarray], object]:
        def run(a: np.ndarray, b: np.ndarray) -> object:
            with context():
                return inference.score_map(net, a, b, device=CPU, tile=tile, precision=precision)

        return run

    compiled = ACNN(model.config).eval()
    compiled.load_state_dict(model.state_dict())
    compiled.branch = torch.compile(compiled.branch)  # type: ignore[assignment]
    tile = inference.DEFAULT_TILE
    return {
        f"fp32, channels-last, in-place ReLU, tile {tile} (reference)": score(),
        "out-of-place ReLU (as first written)": score(context=out_of_place_relu),
        "NCHW layout instead of channels-last": score(context=contiguous_layout),
        "tile 512 (previous default)": score(tile=512),
        "tile 1024 (first default)": score(tile=1024),
        f"untiled ({size}²)": score(tile=size),
        "1 thread": score(context=lambda: threads(1)),
        "torch.compile (branch; first call excluded)": score(net=compiled),
        "bf16 autocast (precision='bf16')": score(precision="bf16"),
        "precision='auto' (the default)": score(precision="auto"),
        "Liu et al. widths 64-128-256, fc 256, fp32": score(net=liu),
        "Liu et al. widths, bf16": score(net=liu, precision="bf16"),
    }


def time_variants(size: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    a = rng.random((size, size), dtype=np.float32)
    b = rng.random((size, size), dtype=np.float32)
    runs = variants(size)
    times: dict[str, list[float]] = {name: [] for name in runs}
    first_call = {}
    for name, run in runs.items():  # warm-up (and compilation) outside the timed rounds
        start = time.perf_counter()
        run(a, b)
        first_call[name] = time.perf_counter() - start
    for round_ in range(repeats):
        for name, run in runs.items():
            if name.startswith("Liu") and round_ >= 2:  # slow; two rounds suffice
                continue
            start = time.perf_counter()
            run(a, b)
            times[name].append(time.perf_counter() - start)
    base = statistics.median(next(iter(times.values())))
    return [
        {
            "variant": name,
            "seconds_median": statistics.median(values),
            "relative_to_reference": statistics.median(values) / base,
            "first_call_seconds": first_call[name],
            "rounds": len(values),
        }
        for name, values in times.items()
    ]


def time_stack_strategies(repeats: int, precision: str) -> list[dict]:
    from acnn_fusion import fuse_stack
    from speed import textured  # benchmarks/ is on the path when run as a script

    stack = textured((16, 1024, 1024), np.uint16, 0)
    fuse_stack(stack[:2, :64, :64], precision=precision)
    rows = []
    times: dict[str, list[float]] = {"features": [], "pairwise": [], "pairwise-tree": []}
    for _ in range(max(1, repeats // 2)):
        for strategy in times:
            start = time.perf_counter()
            fuse_stack(stack, strategy=strategy, precision=precision)
            times[strategy].append(time.perf_counter() - start)
    for strategy, values in times.items():
        rows.append(
            {"strategy": strategy, "precision": precision, "seconds_median": statistics.median(values)}
        )
    return rows


def lytro_bf16_disagreement() -> dict:
    """Share of decision-map pixels that differ between fp32 and bf16-autocast networks."""
    from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, grey_pair
    from acnn_fusion.io import read_image

    root = REPO.parent / "shared/data/eval/pairs/lytro"
    if not root.is_dir():
        return {}
    model = load_model()
    changed = total = 0
    per_pair = []
    for path_a in sorted(root.glob("lytro-*-A.jpg")):
        a = read_image(path_a)
        b = read_image(path_a.with_name(path_a.name.replace("-A.", "-B.")))
        ga, gb = grey_pair(a, b)
        maps = []
        for precision in ("fp32", "bf16"):
            focus = inference.compute_focus_map(model, ga, gb, device=CPU, precision=precision)
            maps.append(fuse_from_focus_map(a, b, focus, PRESETS["default"]).decision_map)
        diff = int(np.count_nonzero(maps[0] != maps[1]))
        per_pair.append(diff / maps[0].size)
        changed += diff
        total += maps[0].size
    return {"pairs": len(per_pair), "share_changed": changed / total, "worst_pair": max(per_pair)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lytro", action="store_true", help="bf16 decision agreement on Lytro-20")
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    rows = time_variants(args.size, args.repeats)
    for row in rows:
        print(f"{row['variant']:<55} {row['seconds_median']:7.3f} s  ×{row['relative_to_reference']:.2f}")
    stack_rows = time_stack_strategies(args.repeats, "fp32") + time_stack_strategies(args.repeats, "auto")
    for row in stack_rows:
        print(f"stack 1024²×16 {row['strategy']:<14} {row['precision']:<5} {row['seconds_median']:7.2f} s")
    bf16 = lytro_bf16_disagreement() if args.lytro else {}
    if bf16:
        print(f"bf16 autocast vs fp32 on Lytro-20: {100 * bf16['share_changed']:.4f} % of decision pixels")
    from speed import machine

    lines = [
        f"Machine: {machine()}.",
        "",
        f"Network only (`score_map`), {args.size}² grey pair, median of {args.repeats} rounds "
        f"({torch.get_num_threads()} threads):",
        "",
        "| variant | median s | × reference | first call s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['variant']} | {r['seconds_median']:.3f} | {r['relative_to_reference']:.2f} "
        f"| {r['first_call_seconds']:.2f} |"
        for r in rows
    ]
    lines += ["", "Stack fold, 1024×1024×16 uint16, end to end:", ""]
    lines += ["| strategy | precision | median s |", "|---|---|---|"]
    lines += [f"| {r['strategy']} | {r['precision']} | {r['seconds_median']:.2f} |" for r in stack_rows]
    if bf16:
        lines += [
            "",
            f"bf16 autocast vs fp32, Lytro-20 default settings: {100 * bf16['share_changed']:.4f} % of "
            f"decision-map pixels differ (worst pair {100 * bf16['worst_pair']:.4f} %).",
        ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "levers.md").write_text("\n".join(lines) + "\n")
    (args.out / "levers.json").write_text(
        json.dumps({"network": rows, "stack": stack_rows, "bf16_lytro": bf16}, indent=1)
    )


if __name__ == "__main__":
    main()
