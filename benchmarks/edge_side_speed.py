"""The pair path's boundary steps, now against before, side by side. The edge-side step
(``decision.refine_edge_side``): worked only in blocks near the decision boundary, its
step-robust energy only at the boundary pixels (now), against whole bands with the energy
everywhere (before).

    .venv/bin/python benchmarks/edge_side_speed.py [--size 2048] [--repeats 5]

Input: a synthetic pair of ``--size``² (``wholeprocess.synthetic_pair``, as ``peers.py``
uses) and the decision map the default pair path reaches before the edge-side pass
(``decide_in_bands`` with ``detail_edge_side`` off). Runs the pass as the pipeline does,
band by band (``pipeline._each_band``), as it is and with the former costs restored (one
block per band, ``EDGE_SIDE_BLOCK`` = 10⁹, and the energy of the whole band,
``robust_energy(grey, window)[where]``), interleaved; checks that the maps are identical.
Then the boundary refinement (``refine_boundary``) in blocks near the boundary against whole
chunks of rows, the same way. Writes ``docs/results/edge_side_speed.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from acnn_fusion.core import decision, pipeline
from acnn_fusion.core.inference import open_network
from acnn_fusion.core.pipeline import (
    PRESETS,
    GreyRows,
    _each_band,
    decide,
    decide_in_bands,
    decision_bands,
    focus_map_in_tiles,
)
from acnn_fusion.options import FusionOptions
from wholeprocess import machine, machine_line, synthetic_pair

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    info = machine()
    a, b = synthetic_pair(args.size)
    greys = GreyRows(a, b)
    settings = PRESETS["default"]
    options = FusionOptions()
    network = open_network(options, 2 * a.shape[0] * a.shape[1] / 1e6)
    focus = focus_map_in_tiles(network, greys, a.shape[:2], tile=options.tile)
    start = decide_in_bands(focus, greys, replace(settings, detail_edge_side=False))
    band, _ = decision_bands(settings, a.shape[1])
    reach = decision.edge_side_reach(settings.refine_window)
    sparse, block = decision.robust_energy_at, decision.EDGE_SIDE_BLOCK

    def dense(grey: np.ndarray, window: int, where: np.ndarray) -> np.ndarray:
        return decision.robust_energy(grey, window)[where]

    variants = {  # (step-robust energy, block edge)
        "blocks near the boundary, energy at its pixels (now)": (sparse, block),
        "whole bands, energy everywhere (before)": (dense, 10**9),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    maps: dict[str, np.ndarray] = {}
    try:
        for r in range(args.repeats):
            order = list(variants) if r % 2 == 0 else list(variants)[::-1]
            for label in order:
                decision.robust_energy_at, decision.EDGE_SIDE_BLOCK = variants[label]
                out = start.copy()
                t0 = time.perf_counter()
                _each_band(
                    out,
                    greys,
                    band,
                    reach,
                    lambda d, ga, gb: decision.refine_edge_side(
                        d, ga, gb, window=settings.refine_window, rows_per_chunk=d.shape[0]
                    ),
                )
                times[label].append(time.perf_counter() - t0)
                maps[label] = out
    finally:
        decision.robust_energy_at, decision.EDGE_SIDE_BLOCK = sparse, block
    refine = _refine_boundary_times(focus, greys, args.repeats)
    info["loadavg_end"] = os.getloadavg()
    same = np.array_equal(*maps.values())
    changed = int(np.count_nonzero(maps[next(iter(variants))] != start))
    base = statistics.median(times[list(variants)[1]])
    lines = [
        f"The edge-side pass of the pair path on a synthetic {args.size}² pair "
        f"(`benchmarks/edge_side_speed.py --size {args.size} --repeats {args.repeats}`); "
        f"{machine_line(info)}; medians, interleaved. Maps identical: {same} "
        f"({changed} pixels re-decided by the pass).",
        "",
        "| edge-side pass | median s | × before | runs s |",
        "|---|---|---|---|",
    ]
    lines += _rows(times, base)
    lines += [
        "",
        "The boundary refinement (`pipeline.refine_boundary`) of the same pair's decision map, "
        "in blocks near the boundary (now) against whole chunks of rows (before, "
        "`REFINE_BLOCK` = 10⁹); identical maps: " + str(refine.pop("same")),
        "",
        "| boundary refinement | median s | × before | runs s |",
        "|---|---|---|---|",
    ]
    lines += _rows(refine, statistics.median(refine["whole chunks (before)"]))
    text = "\n".join(lines) + "\n"
    (REPO / "docs" / "results" / "edge_side_speed.md").write_text(text)
    print(text)
    if not same:
        raise SystemExit("the maps differ")


def _rows(times: dict[str, list[float]], base: float) -> list[str]:
    """Table rows: label, median, ratio to ``base``, every run."""
    return [
        f"| {label} | {statistics.median(t):.3f} | {statistics.median(t) / base:.2f} | "
        + ", ".join(f"{x:.3f}" for x in t)
        + " |"
        for label, t in times.items()
    ]


def _refine_boundary_times(focus: np.ndarray, greys: GreyRows, repeats: int) -> dict:
    """``refine_boundary`` on the whole pair (one chunk of rows, as ``decide_in_bands``'s bands
    are at most that) with ``REFINE_BLOCK`` as it is and 10⁹, interleaved."""
    settings = PRESETS["default"]
    start = decide(focus, settings)
    ga, gb = greys.block(slice(None))
    block = pipeline.REFINE_BLOCK
    variants = {"blocks near the boundary (now)": block, "whole chunks (before)": 10**9}
    times: dict = {k: [] for k in variants}
    maps = {}
    try:
        for r in range(repeats):
            for label in list(variants) if r % 2 == 0 else list(variants)[::-1]:
                pipeline.REFINE_BLOCK = variants[label]
                t0 = time.perf_counter()
                maps[label] = pipeline.refine_boundary(
                    start, ga, gb, radius=settings.refine_radius, window=settings.refine_window
                )
                times[label].append(time.perf_counter() - t0)
    finally:
        pipeline.REFINE_BLOCK = block
    times["same"] = np.array_equal(*maps.values())
    return times


if __name__ == "__main__":
    main()
