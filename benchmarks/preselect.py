"""Prototype: a cheap classic focus measure picks candidate slices per tile; the network folds only those.

    .venv/bin/python benchmarks/preselect.py [--tile 128] [--keep 4 8] [--slices 12 30]

Measures the accuracy cost and the work saved on the synthetic stacks with ground truth of
``quality_stacks.py``. Per tile of ``--tile`` pixels (plus a 16-pixel margin), the classic
measure is the squared Laplacian of the grey image averaged over 15×15 pixels; the slices
that are its per-pixel best for at least 0.5 % of the tile, each with its two neighbours, are
ranked by that share and the first ``--keep`` kept. The fold (``fuse_stack``, fp32) then runs
on the tile with only those slices. The reference is the same tile-wise fold with every
slice (``keep all``), so only the pre-selection differs; the whole-image fold is listed too.
Scores as in ``quality_stacks.py``: PSNR against the sharp original and the share of
textured pixels whose slice is within ±1 of the truth. Writes
``docs/results/preselect.{md,json}``. A prototype: ``core/stack.py`` is unchanged.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio

from acnn_fusion import fuse_stack
from quality_stacks import _textured, synthetic_stacks

REPO = Path(__file__).resolve().parents[1]
MARGIN = 16


def classic_measure(stack: np.ndarray) -> np.ndarray:
    """(Z, Y, X) float32: 15×15 mean of the squared Laplacian of each slice's grey."""
    grey = stack.astype(np.float32)
    if grey.ndim == 4:
        grey = grey.mean(axis=-1)
    out = np.empty(grey.shape, np.float32)
    for z, plane in enumerate(grey):
        out[z] = ndimage.uniform_filter(ndimage.laplace(plane) ** 2, 15)
    return out


def candidates(best: np.ndarray, n_slices: int, keep: int, min_share: float = 0.005) -> list[int]:
    """Slices that win ≥ ``min_share`` of the tile's pixels, with their neighbours, best first."""
    share = np.bincount(best.ravel(), minlength=n_slices) / best.size
    ranked: list[int] = []
    for z in np.argsort(-share):
        if share[z] < min_share:
            break
        for c in (z, z - 1, z + 1):
            if 0 <= c < n_slices and c not in ranked:
                ranked.append(int(c))
    return sorted(ranked[:keep]) if ranked else [int(np.argmax(share))]


def tilewise_fold(
    stack: np.ndarray, tile: int, keep: int | None
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Fused image, depth map, share of slice·tiles scored, seconds (measure included)."""
    start = time.perf_counter()
    n_slices, height, width = stack.shape[:3]
    best = np.argmax(classic_measure(stack), axis=0) if keep is not None else None
    fused = np.empty(stack.shape[1:], stack.dtype)
    depth = np.empty((height, width), np.uint16)
    scored = []
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            rows = slice(max(0, y - MARGIN), min(height, y + tile + MARGIN))
            cols = slice(max(0, x - MARGIN), min(width, x + tile + MARGIN))
            core = (
                slice(y - rows.start, y - rows.start + tile),
                slice(x - cols.start, x - cols.start + tile),
            )
            chosen = (
                list(range(n_slices)) if best is None else candidates(best[rows, cols], n_slices, keep or 0)
            )
            scored.append(len(chosen) / n_slices)
            if len(chosen) == 1:
                part_fused = stack[chosen[0], rows, cols]
                part_depth = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.uint16)
            else:
                result = fuse_stack(stack[chosen][:, rows, cols], precision="fp32")
                part_fused, part_depth = result.fused, result.depth_map
            out = (slice(y, min(height, y + tile)), slice(x, min(width, x + tile)))
            fused[out] = part_fused[core][: out[0].stop - y, : out[1].stop - x]
            depth[out] = np.asarray(chosen, np.uint16)[part_depth[core][: out[0].stop - y, : out[1].stop - x]]
    return fused, depth, float(np.mean(scored)), time.perf_counter() - start


def scores(case, name, data_range, textured, truth, method, fused, depth, share, seconds) -> dict:
    """One table row: PSNR against the sharp original, depth accuracy on textured pixels."""
    within = np.abs(depth[textured].astype(int) - truth[textured]) <= 1
    return {
        "case": name,
        "slices": case.stack.shape[0],
        "method": method,
        "scored_share": round(share, 3),
        "PSNR": round(float(peak_signal_noise_ratio(case.sharp, fused, data_range=data_range)), 3),
        "depth_within_1": round(float(np.mean(within)), 4),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--keep", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--slices", type=int, nargs="+", default=[12, 30])
    args = parser.parse_args()
    rows = []
    for name, case in synthetic_stacks():
        n_slices = case.stack.shape[0]
        if n_slices not in args.slices:
            continue
        sharp, truth, textured = case.sharp, case.depth_index.astype(int), _textured(case.sharp)
        data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())

        context = (case, name, data_range, textured, truth)
        start = time.perf_counter()
        whole = fuse_stack(case.stack, precision="fp32")
        rows.append(
            scores(*context, "whole image", whole.fused, whole.depth_map, 1.0, time.perf_counter() - start)
        )
        rows.append(scores(*context, "tiles, keep all", *tilewise_fold(case.stack, args.tile, None)))
        for keep in args.keep:
            if keep < n_slices:
                rows.append(
                    scores(*context, f"tiles, keep {keep}", *tilewise_fold(case.stack, args.tile, keep))
                )
        for row in rows[-(2 + len([k for k in args.keep if k < n_slices])) :]:
            print(row, flush=True)
    summary = []
    for slices in args.slices:
        for method in dict.fromkeys(r["method"] for r in rows if r["slices"] == slices):
            mine = [r for r in rows if r["slices"] == slices and r["method"] == method]
            summary.append(
                {
                    "slices": slices,
                    "method": method,
                    "cases": len(mine),
                    "scored_share": round(statistics.mean(r["scored_share"] for r in mine), 3),
                    "PSNR": round(statistics.mean(r["PSNR"] for r in mine), 3),
                    "depth_within_1": round(statistics.mean(r["depth_within_1"] for r in mine), 4),
                    "seconds": round(statistics.mean(r["seconds"] for r in mine), 2),
                }
            )
    results = REPO / "docs" / "results"
    (results / "preselect.json").write_text(
        json.dumps({"args": vars(args), "summary": summary, "rows": rows}, indent=1)
    )
    lines = [
        f"Tiles of {args.tile} px (+{MARGIN} px margin); means over the synthetic stacks of "
        "quality_stacks.py with the given slice count; network in fp32.",
        "",
        "| slices | method | stacks | share of slices scored | PSNR dB | depth within ±1 | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['slices']} | {s['method']} | {s['cases']} | {s['scored_share']:.3f} | {s['PSNR']:.2f} | "
            f"{s['depth_within_1']:.4f} | {s['seconds']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    (results / "preselect.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
