"""Decisions that do not depend on image size (issue 18): one scene rendered at several sizes.

    .venv/bin/python benchmarks/size_independence.py [--sizes 512 1024 2048 4096 8192] [--out docs/results]
    .venv/bin/python benchmarks/size_independence.py --rims   # where the B-sharp holes are lost

``--merge`` keeps the rows of sizes not run this time (8192² alone takes ~15 min here).
The scene (``acnn_fusion.synthetic.render_detail_scene``) tiles one seamless 512×512 cell:
a central island sharp in A, the rest sharp in B, and round objects 10–100 px across sharp
in the image that is *not* focused around them. Content and pixel scale are the same at
every size, so a size-independent decision scores the same everywhere. Each size runs in
its own process (``fuse_pair``, fp32, CPU), which reports its peak resident memory; the
older rules are re-decided from the same focus map. Writes ``size_independence.{csv,md}``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: The rules compared: today's default (also without the edge-side test, as before it; with
#: the fine override's mean measure only, as before its step-robust part; and without the
#: override), the default before issue 18 (1 % of the image, no confidence gate, no fine
#: override) and the paper preset.
RULES = {
    "default": {},
    "default, no edge-side test": {"detail_edge_side": False},
    "default, mean measure only": {"detail_robust": False, "detail_edge_side": False},
    "default, no fine override": {"detail_margin": 1.0},
    "before (1 % rule)": {
        "min_region": 0.01,
        "min_region_px": 0,
        "region_confidence": 1.0,
        "detail_margin": 1.0,
    },
    "paper": None,
}


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def scores(scene, decision: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    """Decision accuracy on textured pixels, PSNR, and the details' share from their sharp source."""
    from scipy import ndimage
    from skimage.metrics import peak_signal_noise_ratio

    grey = scene.sharp.astype(np.float32)
    mean = ndimage.uniform_filter(grey, 7)
    textured = np.sqrt(np.maximum(ndimage.uniform_filter(grey * grey, 7) - mean * mean, 0)) > 4.0
    objects, holes = scene.details & scene.mask, scene.details & ~scene.mask
    right = decision == scene.mask
    spill = _spill_band(scene)
    return {
        "decision_accuracy": float(right[textured].mean()),
        "PSNR": float(peak_signal_noise_ratio(scene.sharp, fused, data_range=255)),
        "details_sharp": float(right[scene.details].mean()),
        "objects_in_B_sharp": float(right[objects].mean()),
        "holes_in_A_sharp": float(right[holes].mean()),
        "holes_outside_spill": float(right[holes & ~spill].mean()),
    }


def _spill_band(scene) -> np.ndarray:
    """Pixels of B's area that B's blurred foreground (A's area) spills over (> 2 %)."""
    from acnn_fusion.synthetic import DETAIL_CELL, _wrap_defocus

    cell = scene.mask[:DETAIL_CELL, :DETAIL_CELL]
    soft = _wrap_defocus(cell.astype(np.float64), 4.0) > 0.02
    reps = -(-scene.mask.shape[0] // DETAIL_CELL)
    return np.tile(soft, (reps, reps))[: scene.mask.shape[0], : scene.mask.shape[1]] & ~scene.mask


def _digest(*arrays: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha1()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def whole_image_pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair path as it was before it worked in bands (default settings): whole-image
    greys, focus map, clean-up, refinement, override, edge-side test (one chunk) and copy.
    (decision map, fused)."""
    from acnn_fusion.core.compose import compose_pair
    from acnn_fusion.core.decision import (
        override_by_fine_measure,
        refine_edge_side,
        remove_unconfident_regions,
    )
    from acnn_fusion.core.inference import compute_focus_map, open_network
    from acnn_fusion.core.pipeline import PRESETS, grey_pair, refine_boundary
    from acnn_fusion.options import FusionOptions

    settings = PRESETS["default"]
    # the network fuse_pair(device="cpu", precision="fp32") opens: the same runtime
    network = open_network(FusionOptions(device="cpu", precision="fp32"), 2 * image_a.size / 1e6)
    grey_a, grey_b = grey_pair(image_a, image_b)
    focus = compute_focus_map(network, grey_a, grey_b)
    minimum = settings.min_region_size(focus.size)  # the clean-up on the whole image, in one go
    decision = remove_unconfident_regions(
        focus > settings.threshold, focus, minimum, settings.region_confidence
    )
    decision = refine_boundary(
        decision, grey_a, grey_b, radius=settings.refine_radius, window=settings.refine_window
    )
    decision = override_by_fine_measure(
        decision, grey_a, grey_b, margin=settings.detail_margin, window=settings.refine_window
    )
    rows = focus.shape[0]  # one chunk: the whole image
    decision = refine_edge_side(decision, grey_a, grey_b, window=settings.refine_window, rows_per_chunk=rows)
    return decision, compose_pair(image_a, image_b, decision)


def whole_image_child(size: int) -> dict:
    """Run in a child process: the whole-image pair path's time and memory at ``size``."""
    import acnn_fusion.core.pipeline  # noqa: F401  (loaded before the count starts, as in one_size)
    from acnn_fusion.synthetic import render_detail_scene

    scene = render_detail_scene(size)
    before = _current_rss_mb()
    start = time.perf_counter()
    decision, fused = whole_image_pair(scene.image_a, scene.image_b)
    seconds = time.perf_counter() - start
    return {
        "whole_seconds": seconds,
        "whole_rss_before_MB": before,
        "whole_peak_rss_MB": _rss_mb(),
        "whole_digest": _digest(decision, fused),
    }


def one_size(size: int) -> list[dict]:
    """Run in a child process: fuse the scene at ``size``, report scores and memory."""
    from dataclasses import replace

    from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, fuse_pair
    from acnn_fusion.synthetic import render_detail_scene

    scene = render_detail_scene(size)
    before = _current_rss_mb()
    start = time.perf_counter()
    result = fuse_pair(scene.image_a, scene.image_b, device="cpu", precision="fp32")
    seconds = time.perf_counter() - start
    peak = _rss_mb()
    digest = _digest(result.decision_map, result.fused)
    rows = []
    for rule, changes in RULES.items():
        settings = PRESETS["paper"] if changes is None else replace(PRESETS["default"], **changes)
        if rule == "default":
            decided = result
        else:
            decided = fuse_from_focus_map(scene.image_a, scene.image_b, result.focus_map, settings)
        row = {"size": size, "rule": rule, **scores(scene, decided.decision_map, decided.fused)}
        if rule == "default":
            row |= {"seconds": seconds, "rss_before_MB": before, "peak_rss_MB": peak, "digest": digest}
        rows.append(row)
    return rows


def hole_rims(out: Path) -> None:
    """Where the B-sharp holes are lost: per ring of distance from a hole's edge, the share
    decided A, each source's mean error against the truth, and a crop of one hole
    (``size_independence_rings.md``, ``size_independence_hole.png``)."""
    from dataclasses import replace

    from scipy import ndimage
    from skimage.io import imsave

    from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, fuse_pair
    from acnn_fusion.synthetic import DETAILS_IN_A, render_detail_scene

    scene = render_detail_scene(512)
    result = fuse_pair(scene.image_a, scene.image_b, device="cpu", precision="fp32")
    no_side = replace(PRESETS["default"], detail_edge_side=False)
    mean_only = replace(no_side, detail_robust=False)
    earlier = fuse_from_focus_map(scene.image_a, scene.image_b, result.focus_map, no_side).decision_map
    before = fuse_from_focus_map(scene.image_a, scene.image_b, result.focus_map, mean_only).decision_map
    holes = scene.details & ~scene.mask
    inside = ndimage.distance_transform_edt(holes)
    outside = ndimage.distance_transform_edt(~holes)
    sharp = scene.sharp.astype(float)
    error_a, error_b = np.abs(scene.image_a - sharp), np.abs(scene.image_b - sharp)
    rows = []
    for ring in (-3, -2, -1, 1, 2, 3, 4, 5, 6):
        if ring > 0:
            pixels = holes & (inside > ring - 1) & (inside <= ring)
        else:
            pixels = scene.mask & (outside > -ring - 1) & (outside <= -ring)
        rows.append(
            {
                "ring (px; < 0: island)": str(ring),
                "pixels": float(pixels.sum()),
                "decided A": float(result.decision_map[pixels].mean()),
                "decided A, no edge-side test": float(earlier[pixels].mean()),
                "decided A, mean measure only": float(before[pixels].mean()),
                "error of A": float(error_a[pixels].mean()),
                "error of B": float(error_b[pixels].mean()),
                "B nearer": float((error_b < error_a)[pixels].mean()),
            }
        )
        print(rows[-1], flush=True)
    sys.path.insert(0, str(Path(__file__).parent))
    from quality_pairs import _write

    _write(rows, out / "size_independence_rings")
    row, col, diameter = DETAILS_IN_A[0]
    half = diameter // 2 + 16
    crop = (slice(row - half, row + half), slice(col - half, col + half))
    panels = [
        scene.image_a[crop],
        scene.image_b[crop],
        scene.sharp[crop],
        result.focus_map[crop] * 255,
        result.decision_map[crop] * 255,
        (error_b < error_a)[crop] * 255,
    ]
    big = [np.pad(np.kron(p.astype(np.float64), np.ones((3, 3))), 3, constant_values=128) for p in panels]
    imsave(out / "size_independence_hole.png", np.hstack(big).astype(np.uint8), check_contrast=False)


def docs_table(rows: list[dict]) -> str:
    """The Markdown table of ``docs/quality.md`` (rules × sizes, memory of both pair paths)."""
    head = (
        "| rule | size | decision accuracy | PSNR (dB) | details from their sharp source "
        "| small objects from A | holes from B (outside spill) | pair path: s "
        "| RSS before → peak (MB) | whole-image path: s | RSS before → peak (MB) | same output |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        cells = [
            r["rule"],
            f"{int(r['size'])}²",
            f"{r['decision_accuracy']:.4f}",
            f"{r['PSNR']:.2f}",
            f"{100 * r['details_sharp']:.2f} %",
            f"{100 * r['objects_in_B_sharp']:.1f} %",
            f"{100 * r['holes_in_A_sharp']:.1f} % ({100 * r['holes_outside_spill']:.1f} %)",
        ]
        if np.isfinite(r["peak_rss_MB"]):
            cells += [
                f"{r['seconds']:.0f}",
                f"{r['rss_before_MB']:.0f} → {r['peak_rss_MB']:.0f}",
                f"{r['whole_seconds']:.0f}",
                f"{r['whole_rss_before_MB']:.0f} → {r['whole_peak_rss_MB']:.0f}",
                "yes" if r["same_output"] == 1.0 else "no",
            ]
        else:
            cells += [""] * 5
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024, 2048, 4096])
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--merge", action="store_true", help="keep the other sizes of an existing table")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rims", action="store_true", help="only the hole-rim table and crop (512²)")
    args = parser.parse_args()
    if args.rims:
        hole_rims(args.out)
        return
    if args.child:
        print(json.dumps(whole_image_child(args.child) if args.whole else one_size(args.child)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from quality_pairs import _write

    rows: list[dict] = []
    table = args.out / "size_independence.csv"
    if args.merge and table.exists():
        import csv

        with open(table) as fh:
            for row in csv.DictReader(fh):
                if int(row["size"]) not in args.sizes:
                    rows.append({k: v if k == "rule" else float(v) for k, v in row.items()})
                    rows[-1]["size"] = int(row["size"])

    def child(*flags: str) -> object:
        run = subprocess.run([sys.executable, __file__, *flags], capture_output=True, text=True, check=True)
        return json.loads(run.stdout.strip().splitlines()[-1])

    for size in args.sizes:
        new = child("--child", str(size))
        whole = child("--child", str(size), "--whole")  # the path before it worked in bands
        assert isinstance(new, list) and isinstance(whole, dict)
        new[0] |= {k: v for k, v in whole.items() if k != "whole_digest"}
        new[0]["same_output"] = float(whole["whole_digest"] == new[0].pop("digest"))
        for row in new:
            print(row, flush=True)
        rows += new
    keys = ["seconds", "rss_before_MB", "peak_rss_MB", "whole_seconds", "whole_rss_before_MB"]
    keys += ["whole_peak_rss_MB", "same_output"]
    rows = [{**r, **{k: r.get(k, float("nan")) for k in keys}} for r in rows]
    rows = sorted(rows, key=lambda r: (list(RULES).index(r["rule"]), r["size"]))
    _write(rows, args.out / "size_independence")
    (args.out / "size_independence_table.md").write_text(docs_table(rows))


if __name__ == "__main__":
    main()
