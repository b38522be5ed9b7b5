"""The seam step's time (core/seams.py, ``seams="agree"``), before and after a revision, side by side.

    .venv/bin/python benchmarks/seams_speed.py [--before REV] [--repeats 2] [--shared ../shared/data]
        [--name seams_speed]

Builds the seam step's inputs once per case (the score volume at default precision, the
regularised depth and its confidence, as ``fuse_stack`` makes them): the speed benchmark's
1024²×32 uint16 stack (``quality_stacks.py --speed``; every slice equally sharp, so nearly
every pixel is near a depth boundary: the step's worst case) and the real stacks
metallographic mufoc_1_1 and macro_pcb where ``../shared`` has them. Then times
``place_seams`` as it was at ``--before`` (on the fold's tile, as that revision's fold called
it) against the current one (on :func:`seam_tile` of the fold's tile, with its default
threads, and on one thread), interleaved, the median of each; checks that the depth maps are
identical. A ``--before`` that already has :func:`seam_tile` runs on the same tile, on one
thread and the default threads. Writes ``docs/results/{name}.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from acnn_fusion.core import seams
from acnn_fusion.core.inference import DEFAULT_TILE, cpu_threads, grid_to_pixels, select_device
from acnn_fusion.core.stack import FocusImage, _pixel_depth, _regularise_parts, _score_volume, _standardise
from acnn_fusion.core.weights import load_model
from alignment import _module_at
from real_stacks import _stack_array
from speed import textured
from wholeprocess import machine

REPO = Path(__file__).resolve().parents[1]


def seam_inputs(stack: np.ndarray, channel_axis: int | None) -> tuple:
    """(depth, confidence, grey, volume) as the default fold hands them to ``place_seams``."""
    standard = _standardise(stack, 0, channel_axis)
    grey = FocusImage(standard)
    volume = np.asarray(_score_volume(load_model(), grey, select_device("auto"), DEFAULT_TILE, "auto", None))
    best, confidence, parts = _regularise_parts(volume, 2.0)
    depth = _pixel_depth(volume, best, parts, grey.shape[1:])
    return depth, grid_to_pixels(confidence, grey.shape[1:]), grey, volume


def cases(shared: Path) -> dict[str, tuple]:
    found = {"synthetic 32×1024² uint16": (textured((32, 1024, 1024), np.uint16, 0), None)}
    for name, folder in (
        ("metallographic_1_1", "metallographic_mufoc/mufoc_1_1"),
        ("macro_pcb", "macro_pcb"),
    ):
        path = shared / "eval/stacks" / folder
        if path.exists():
            data = _stack_array(path)
            found[name] = (data, -1 if data.ndim == 4 else None)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="80d587a", help="git revision of the reference seams.py")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--name", default="seams_speed", help="stem of the result files")
    args = parser.parse_args()
    before = _module_at(args.before, "src/acnn_fusion/core/seams.py", "seams_before")
    tile = seams.seam_tile(DEFAULT_TILE)
    threads = cpu_threads()
    # label -> (threads, call); a before revision with the seam tile runs like for like
    runners: dict[str, tuple[int, Callable]] = {}
    if hasattr(before, "seam_tile"):
        for n in (1, threads):
            runners[f"before ({args.before}, tile {tile}, {n} thread{'s' * (n > 1)})"] = (
                n,
                lambda *a, n=n: before.place_seams(*a, tile=tile, threads=n),
            )
    else:
        runners[f"before ({args.before}, tile {DEFAULT_TILE}, 1 thread)"] = (
            1,
            lambda *a: before.place_seams(*a, tile=DEFAULT_TILE),
        )
    runners[f"now (tile {tile}, 1 thread)"] = (1, lambda *a: seams.place_seams(*a, tile=tile, threads=1))
    runners[f"now (tile {tile}, {threads} threads: default)"] = (
        threads,
        lambda *a: seams.place_seams(*a, tile=tile),
    )
    first_label = next(iter(runners))
    # each runner against the before run on as many threads (the first run where none is)
    baseline = {
        label: next((b for b, (m, _) in runners.items() if b.startswith("before") and m == n), first_label)
        for label, (n, _) in runners.items()
    }
    rows = []
    for name, (stack, channel_axis) in cases(args.shared).items():
        inputs = seam_inputs(stack, channel_axis)
        load = os.getloadavg()[0]
        times: dict[str, list[float]] = {label: [] for label in runners}
        outputs = {}
        for _ in range(args.repeats):
            for label, (_, run) in runners.items():
                start = time.perf_counter()
                outputs[label] = run(*inputs)
                times[label].append(time.perf_counter() - start)
        reference = outputs[first_label]
        medians = {label: statistics.median(values) for label, values in times.items()}
        for label in runners:
            rows.append(
                {
                    "case": name,
                    "shape": "×".join(map(str, stack.shape)),
                    "runner": label,
                    "median_s": round(medians[label], 3),
                    "before_over_this": round(medians[baseline[label]] / medians[label], 2),
                    "pixels_differ": int(np.count_nonzero(outputs[label] != reference)),
                    "moved_pct": round(100 * float(np.mean(outputs[label] != inputs[0])), 3),
                    "load": round(load, 1),
                }
            )
            print(rows[-1], flush=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout
    meta = {
        "cpu": machine()["cpu_model"],
        "threads": cpu_threads(),
        "commit": commit.strip(),
        "repeats": args.repeats,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [
        "# Seam step (`place_seams`): time before and now, same inputs",
        "",
        f"`.venv/bin/python benchmarks/seams_speed.py --before {args.before} --repeats {args.repeats} "
        f"--name {args.name}`; "
        f"CPU {meta['cpu']}, {meta['threads']} threads, commit {meta['commit']}; median of "
        f"{args.repeats} interleaved runs; pixels differ: against the before run's depth map.",
        "",
        "| case | shape | runner | median s | before / this | pixels differ | moved % | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['shape']} | {r['runner']} | {r['median_s']} | {r['before_over_this']} | "
        f"{r['pixels_differ']} | {r['moved_pct']} | {r['load']} |"
        for r in rows
    ]
    (args.out / f"{args.name}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
