"""bf16 on the CPU: weights cast once (pre-cast, the package's way) against torch.autocast per call.

Under ``torch.autocast`` every convolution casts its weight and bias to bf16 on every call; a
model whose weights are stored in bf16 (``inference.prepare(..., dtype=torch.bfloat16)``) runs
the same arithmetic without those casts. The two do not round identically (autocast keeps some
intermediate sums in fp32), so this benchmark measures both the speed and how far each one's
decisions are from fp32:

- speed, network only, the two modes interleaved round by round: the stack fold's per-slice call
  (``TorchNetwork.slice_odds``) on a 256-px tile with its halo, and the pair's ``score_map`` of
  a 512² pair, single calls alternating A B B A …;
- decisions against fp32 (torch runtime): Lytro-20 decision-map pixels and the synthetic stacks'
  depth pixels (``quality_stacks.synthetic_stacks``) that differ from the fp32 result.

    .venv/bin/python benchmarks/network_precast.py [--repeats 200] [--no-quality]
        # writes docs/results/network_precast.{md,json}

Needs a CPU with native bf16 (else bf16 is emulated and neither mode is what ``auto`` runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import wholeprocess as wp
from acnn_fusion.core import inference

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
MODES = ("autocast", "pre-cast")


@contextmanager
def mode(name: str) -> Iterator[None]:
    """Run the package's bf16 CPU path as ``name``: ``pre-cast`` (as shipped) or ``autocast``."""
    original = inference._precast
    if name == "autocast":
        inference._precast = lambda device, dtype: False  # type: ignore[assignment]
    try:
        yield
    finally:
        inference._precast = original  # type: ignore[assignment]


def speed(repeats: int) -> dict[str, dict[str, float]]:
    """Median seconds per call of each mode; single calls alternate A B B A … so that the
    machine's drift (this shared CPU's speed changes by 2–3× within minutes) hits both alike."""
    import torch

    from acnn_fusion.core.weights import load_model

    cpu = torch.device("cpu")
    network = inference.TorchNetwork(load_model(), cpu, "bf16")
    rng = np.random.default_rng(0)
    side = 256 + 16
    slice_tile = rng.random((side, side), dtype=np.float32)
    mean_tile = rng.random((side, side), dtype=np.float32)
    grey_a, grey_b = (p.astype(np.float32) / 255 for p in wp.synthetic_pair(512))
    calls: dict[str, dict[str, Callable[[], object]]] = {
        "slice_odds, 272² tile": {},
        "score_map, 512² pair": {},
    }
    for name in MODES:
        with mode(name):
            reference = network.reference(mean_tile)
        calls["slice_odds, 272² tile"][name] = lambda reference=reference: network.slice_odds(
            slice_tile, reference
        )
        calls["score_map, 512² pair"][name] = lambda: network.score_map(grey_a, grey_b, tile=256)
    times: dict[str, dict[str, list[float]]] = {case: {m: [] for m in MODES} for case in calls}
    for case, per_mode in calls.items():
        for name in MODES:  # warm-up: the prepared copies, oneDNN's kernels
            with mode(name):
                per_mode[name]()
        for index in range(repeats):
            for name in MODES if index % 2 == 0 else MODES[::-1]:
                with mode(name):
                    start = time.perf_counter()
                    per_mode[name]()
                    times[case][name].append(time.perf_counter() - start)
        print(case, {m: f"{np.median(v) * 1e3:.2f} ms" for m, v in times[case].items()}, flush=True)
    return {case: {m: float(np.median(v)) for m, v in per.items()} for case, per in times.items()}


def quality() -> dict[str, dict[str, float]]:
    from acnn_fusion import fuse_pair, fuse_stack
    from acnn_fusion.io import read_image
    from quality_stacks import synthetic_stacks

    lytro: dict[str, list[float]] = {m: [] for m in MODES}
    paths = sorted((SHARED / "eval/pairs/lytro").glob("lytro-*-A.jpg"))
    for path_a in paths:
        a, b = read_image(path_a), read_image(path_a.with_name(path_a.name.replace("-A.", "-B.")))
        truth = fuse_pair(a, b, runtime="torch", precision="fp32").decision_map
        for name in MODES:
            with mode(name):
                decision = fuse_pair(a, b, runtime="torch", precision="bf16").decision_map
            lytro[name].append(float(np.mean(decision != truth)))
    stacks: dict[str, list[float]] = {m: [] for m in MODES}
    for case_name, case in synthetic_stacks():
        truth = fuse_stack(case.stack, runtime="torch", precision="fp32").depth_map
        for name in MODES:
            with mode(name):
                depth = fuse_stack(case.stack, runtime="torch", precision="bf16").depth_map
            stacks[name].append(float(np.mean(depth != truth)))
        print(case_name, {m: f"{stacks[m][-1]:.3%}" for m in MODES}, flush=True)
    out = {}
    for label, values in (("Lytro-20 decision pixels", lytro), ("synthetic stacks depth pixels", stacks)):
        if values[MODES[0]]:
            out[label] = {
                **{f"{m} mean": float(np.mean(v)) for m, v in values.items()},
                **{f"{m} worst": float(np.max(v)) for m, v in values.items()},
                "cases": len(values[MODES[0]]),
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="calls per mode and case")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    info = wp.machine()
    if not inference._cpu_has_native_bf16():
        print("warning: this CPU has no native bf16; the timings are of emulated bf16")
    timings = speed(args.repeats)
    agreement = {} if args.no_quality else quality()
    info_end = wp.machine()
    info["loadavg_end"] = info_end["loadavg"]
    lines = [
        "# bf16 on the CPU: pre-cast weights against autocast (`benchmarks/network_precast.py`)",
        "",
        f"{wp.machine_line(info)}. Median of {args.repeats} calls per mode, alternating A B B A …",
        "",
        "| call | autocast ms | pre-cast ms | pre-cast / autocast |",
        "|---|---|---|---|",
    ]
    for case, per in timings.items():
        lines.append(
            f"| {case} | {per['autocast'] * 1e3:.2f} | {per['pre-cast'] * 1e3:.2f} | "
            f"{per['pre-cast'] / per['autocast']:.3f} |"
        )
    if agreement:
        lines += [
            "",
            'Pixels that differ from fp32 (torch runtime, `precision="bf16"`):',
            "",
            "| set | cases | autocast mean | autocast worst | pre-cast mean | pre-cast worst |",
            "|---|---|---|---|---|---|",
        ]
        for label, v in agreement.items():
            lines.append(
                f"| {label} | {v['cases']} | {v['autocast mean']:.3%} | {v['autocast worst']:.3%} | "
                f"{v['pre-cast mean']:.3%} | {v['pre-cast worst']:.3%} |"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "network_precast.md").write_text("\n".join(lines) + "\n")
    (args.out / "network_precast.json").write_text(
        json.dumps(
            {"machine": info, "machine_end": info_end, "speed": timings, "agreement": agreement}, indent=1
        )
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
