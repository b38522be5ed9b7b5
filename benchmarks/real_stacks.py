"""Fold the real focal stacks in ../shared/data/eval/stacks; montages and timings.

    .venv/bin/python benchmarks/real_stacks.py [--shared ../shared/data] [--out docs]

For each stack: the ACNN (``features`` strategy, regularised depth, and the same score
volume unregularised) and the variance-projection baseline; isolated depth outliers of each
(pixels whose depth differs by more than 2, or 1, slices from the median of their 9×9
neighbourhood), wall times, and a PNG montage in ``docs/images/stacks/``; a Markdown table
in ``docs/results/real_stacks.md``. ``gacn_v4_component`` is folded on a central 600×800
crop (``CROPS``) to keep the run short. No ground truth exists for these stacks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from skimage.transform import resize

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion.core.inference import DEFAULT_TILE
from acnn_fusion.core.stack import StackResult
from acnn_fusion.io import read_stack, write_image
from baselines import projection
from figures import _heat
from quality_stacks import depth_outliers

REPO = Path(__file__).resolve().parents[1]
STACKS = [
    "brightfield_skeleton_edf/stack.tif",
    "brightfield_cells_sephace/fine_zstack.tif",
    "brightfield_cells_sephace/init_zstack.tif",
    "metallographic_mufoc/mufoc_1_1",
    "metallographic_mufoc/mufoc_1_2",
    "lightsheet_mitochondria_uint16",
    "macro_pcb",
    "gacn_v4_component",
]


def _show(image: np.ndarray, width: int) -> np.ndarray:
    image = image.astype(np.float64)
    lo, hi = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    height = round(image.shape[0] * width / image.shape[1])
    return resize(image[..., :3], (height, width), anti_aliasing=True)


def _stack_array(path: Path) -> np.ndarray:
    if path.is_dir() and "macro_pcb" in path.name:  # skip the reference result in that folder
        planes = [p for p in sorted(path.iterdir()) if p.stem != "expected"]
        from acnn_fusion.io import read_image

        return np.stack([read_image(p) for p in planes])
    stack = read_stack(path)
    data, axes = stack.data, stack.axes
    if "Z" in axes and axes.index("Z") != 0:
        data = np.moveaxis(data, axes.index("Z"), 0)
    if data.ndim == 4 and data.shape[-1] not in (3, 4):
        data = data[..., 0]
    return data


def compare_focus(folder: Path, weights: list[str], out: Path, pair: tuple[int, int] = (3, 30)) -> None:
    """Focus maps of two far-apart light-sheet slices for several weights.

    Prints, per weights file, the mean |focus − 0.5| on the background (where no slice is
    sharper: a noise-robust network stays near 0.5) and on the structures (top 3 % of the
    smoothed maximum), and the share of structure pixels given to the first slice.
    """
    from scipy import ndimage

    from acnn_fusion.core.inference import compute_focus_map, select_device
    from acnn_fusion.core.pipeline import grey_pair
    from acnn_fusion.core.weights import load_model

    data = _stack_array(folder)
    ga, gb = grey_pair(data[pair[0]], data[pair[1]])
    smooth = ndimage.gaussian_filter(np.maximum(ga, gb), 2)
    structures = smooth > np.percentile(smooth, 97)
    top = np.percentile(ga, 99.9)
    tiles = [np.clip(ga / top, 0, 1), np.clip(gb / top, 0, 1)]
    for name in weights:
        model = load_model(None if name == "default" else name)
        focus = compute_focus_map(model, ga, gb, device=select_device("cpu"))
        print(
            f"{name}: background mean |f-0.5| {np.abs(focus[~structures] - 0.5).mean():.3f}, "
            f"structures mean |f-0.5| {np.abs(focus[structures] - 0.5).mean():.3f}, "
            f"structures to slice {pair[0]} {np.mean(focus[structures] > 0.5):.3f}",
            flush=True,
        )
        tiles.append(focus)
    montage = np.concatenate([resize(t, (400, 256), anti_aliasing=True) for t in tiles], axis=1)
    write_image(out / "images/stacks/lightsheet_pair_focus.png", np.round(montage * 255).astype(np.uint8))


def margin_fold_depth(model, grey: np.ndarray, margin: float) -> np.ndarray:
    """Depth map of a prototype fold (not the package's): like ``fuse_stack``'s ``features``
    fold, a running winner per patch, but a later slice replaces it only if the network's
    score for the winner drops below 0.5 − ``margin``; pixels then take the slice most
    covering patches chose. Undecided patches keep the first slice."""
    import torch

    from acnn_fusion.core.inference import grid_to_pixels, patch_average_grid
    from acnn_fusion.core.model import ACNN

    with torch.no_grad():
        features = [model.branch(torch.from_numpy(g)[None, None]) for g in grey]
        as_a = [model.head.project(f, as_a=True) for f in features]
        as_b = [model.head.project(f, as_a=False) for f in features]
        best = torch.zeros(as_a[0].shape[2:], dtype=torch.int64)
        best_a = as_a[0]
        for z in range(1, len(grey)):
            keep = ACNN.score(model.head.combine(best_a, as_b[z]))[0] >= 0.5 - margin
            best = torch.where(keep, best, z)
            best_a = torch.where(keep, best_a, as_a[z])
    winners = best.numpy()
    shares = np.stack([patch_average_grid(winners == z) for z in range(len(grey))])
    return grid_to_pixels(shares.argmax(0), grey[0].shape).astype(np.int64)


def compare_fold(folder: Path, weights: list[str], margins: list[float], out: Path) -> None:
    """Light-sheet depth maps of :func:`margin_fold_depth` for each weights × margin, and the
    variance projection's, side by side; prints the share of pixels left at the first slice."""
    from acnn_fusion.core.imageops import joint_unit_range, to_grey
    from acnn_fusion.core.weights import load_model

    data = _stack_array(folder)
    grey = joint_unit_range(*[to_grey(s, np.float32) for s in data], source_dtype=data.dtype)
    n = max(1, len(grey) - 1)
    tiles = []
    for name in weights:
        model = load_model(None if name == "default" else name)
        for margin in margins:
            depth = margin_fold_depth(model, grey, margin)
            print(f"{name} margin {margin}: first slice kept on {np.mean(depth == 0):.1%}", flush=True)
            tiles.append(resize(_heat(depth / n), (400, 256)))
    tiles.append(resize(_heat(projection(data, "variance")[1] / n), (400, 256)))
    montage = np.concatenate(tiles, axis=1)
    write_image(out / "images/stacks/lightsheet_fold_margin.png", np.round(montage * 255).astype(np.uint8))


#: Windows (stack, top, left, size) where the fold before issue 13's last steps showed visible
#: defects in docs/images/peers: blocky steps on the flat metallographic specimen, and two
#: wrong-slice squares beside a defocused highlight on macro_pcb.
DEFECTS = (("metallographic_mufoc/mufoc_1_1", 842, 0, 96), ("macro_pcb", 1220, 1883, 96))


def defect_crops(root: Path, out: Path, revision: str, cache: Path | None) -> None:
    """4× crops of :data:`DEFECTS`, fused image and depth map, with ``core/stack.py`` at git
    ``revision`` (before) and as it is now (after), from one score volume per stack →
    ``images/stacks/defects_before_after.png`` (rows: stacks; columns: before fused, before
    depth, after fused, after depth)."""
    from acnn_fusion.core.compose import compose_stack
    from acnn_fusion.core.inference import grid_to_pixels, select_device
    from acnn_fusion.core.stack import FocusImage, _fold_volume, _score_volume, _standardise
    from acnn_fusion.core.weights import load_model
    from alignment import _module_at

    before = _module_at(revision, "src/acnn_fusion/core/stack.py", "stack_before")
    rows = []
    for name, top, left, size in DEFECTS:
        data = _stack_array(root / name)
        standard = _standardise(data, 0, None)
        slug = name.replace("/", "_").replace(".tif", "")
        cached = None if cache is None else cache / f"real_{slug}.npy"
        if cached is not None and cached.exists():
            volume = np.load(cached)
        else:
            grey = FocusImage(standard)
            volume = _score_volume(load_model(), grey, select_device("cpu"), DEFAULT_TILE, "fp32", None)
        shape = data.shape[1:3]
        old_depth = grid_to_pixels(before._regularise(volume, 2.0)[0], shape)
        new_depth = _fold_volume(volume, 2.0, shape, FocusImage(standard))[0]
        window = (slice(top, top + size), slice(left, left + size))
        tiles = []
        for depth in (old_depth, new_depth):
            fused = compose_stack(standard, depth)[window]
            fused = fused if fused.ndim == 3 else np.repeat(fused[..., None], 3, -1)
            if fused.dtype != np.uint8:
                fused = (255 * _show(fused, size)).astype(np.uint8)
            heat = _heat(depth[window].astype(float) / max(1, data.shape[0] - 1))
            tiles += [fused[..., :3], np.round(255 * np.clip(heat, 0, 1)).astype(np.uint8)]
            print(name, "slices in window", np.unique(depth[window]).tolist(), flush=True)
        gap = np.full((size, 2, 3), 255, np.uint8)
        rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], 1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 2), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    image = np.concatenate(rows, 0)
    image = np.repeat(np.repeat(image, 4, 0), 4, 1)  # 4× nearest neighbour
    (out / "images/stacks").mkdir(parents=True, exist_ok=True)
    write_image(out / "images/stacks/defects_before_after.png", image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--weights", help="weights file to use instead of the shipped one")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--compare-focus",
        nargs="+",
        metavar="WEIGHTS",
        help="instead of the montages: light-sheet pair focus maps of these weights ('default' = "
        "shipped) side by side → images/stacks/lightsheet_pair_focus.png, with statistics",
    )
    parser.add_argument(
        "--compare-fold",
        nargs="+",
        metavar="WEIGHTS",
        help="instead of the montages: light-sheet depth maps of a running-winner fold whose "
        "challenger must win by a margin, per weights and --margins "
        "→ images/stacks/lightsheet_fold_margin.png",
    )
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.3, 0.45])
    parser.add_argument(
        "--volume-cache",
        type=Path,
        help="folder for the ACNN score volumes (real_<stack>.npy): read if there, written if not",
    )
    parser.add_argument(
        "--defects",
        metavar="REV",
        help="only: 4× crops of the known defect windows, core/stack.py at git REV against now "
        "→ images/stacks/defects_before_after.png",
    )
    args = parser.parse_args()
    if args.defects:
        defect_crops(args.shared / "eval/stacks", args.out, args.defects, args.volume_cache)
        return
    if args.compare_fold:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        folder = args.shared / "eval/stacks/lightsheet_mitochondria_uint16"
        compare_fold(folder, args.compare_fold, args.margins, args.out)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.compare_focus:
        folder = args.shared / "eval/stacks/lightsheet_mitochondria_uint16"
        compare_focus(folder, args.compare_focus, args.out)
        return
    root = args.shared / "eval/stacks"
    if not root.is_dir():
        print(f"no stacks under {root}; nothing to do")
        return
    depth_outliers_table(root, args.only or STACKS, args.out, args.weights, args.volume_cache)


#: Stacks folded on a central crop (rows, cols) to keep the run short on a small machine.
CROPS = {"gacn_v4_component": (slice(300, 900), slice(400, 1200))}


def fold_both(
    data: np.ndarray, weights: str | None, cache: Path | None = None
) -> tuple[StackResult, np.ndarray, float]:
    """``fuse_stack``'s default fold (regularised depth) and the unregularised depth map
    (``depth_smoothing=0``) from one pass of the network: the score volume is computed once and
    regularised both ways, exactly as ``fuse_stack`` does. Returns (result, unregularised
    depth, seconds of the default fold). The network runs in fp32 on the CPU; with ``cache``
    the score volume is read from that .npy file if it exists, else written there."""
    from acnn_fusion.core.compose import compose_stack
    from acnn_fusion.core.inference import select_device
    from acnn_fusion.core.stack import FocusImage, _fold_volume, _score_volume, _standardise
    from acnn_fusion.core.weights import load_model

    start = time.perf_counter()
    standard = _standardise(data, 0, None)
    grey = FocusImage(standard)
    if cache is not None and cache.exists():
        volume = np.load(cache)
    else:
        device = select_device("cpu")
        volume = _score_volume(load_model(weights), grey, device, DEFAULT_TILE, "fp32", None)
        if cache is not None:
            np.save(cache, np.asarray(volume))
    network_s = time.perf_counter() - start
    start = time.perf_counter()
    depth, confidence = _fold_volume(volume, 2.0, grey.shape[1:], grey)  # the default: seams="agree"
    result = StackResult(
        fused=compose_stack(standard, depth),
        depth_map=depth,
        confidence=confidence,
        strategy="features",
    )
    seconds = network_s + time.perf_counter() - start
    unregularised = _fold_volume(volume, 0.0, grey.shape[1:])[0]
    return result, unregularised, seconds


def depth_outliers_table(
    root: Path, names: list[str], out: Path, weights: str | None, cache: Path | None = None
) -> None:
    """Per stack: isolated depth outliers of ours (default and unregularised) and of the
    variance projection, the share of pixels whose depth is a guess, and a montage."""
    lines = [
        "| stack | slices × size, dtype | ACNN s | variance s | outliers >2: ACNN | ACNN unregularised "
        "| variance | outliers >1: ACNN | unregularised | variance | confidence < 0.5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    images = []
    for name in names:
        data = _stack_array(root / name)
        crop = CROPS.get(name)
        if crop is not None:
            data = np.ascontiguousarray(data[:, crop[0], crop[1]])
        slug = name.replace("/", "_").replace(".tif", "")
        cached = None if cache is None else cache / f"real_{slug}.npy"
        result, unregularised, acnn_s = fold_both(data, weights, cached)
        start = time.perf_counter()
        var_fused, var_depth = projection(data, "variance")
        var_s = time.perf_counter() - start
        n = max(1, data.shape[0] - 1)
        width = 240
        shown = _show(result.fused, width)

        def heat(depth: np.ndarray, n: int = n, size: tuple = shown.shape[:2]) -> np.ndarray:
            return resize(_heat(depth / n), size, order=0)

        tiles = [
            _show(data[data.shape[0] // 2], width),
            shown,
            heat(result.depth_map),
            heat(unregularised),
            resize(np.repeat(result.confidence[..., None], 3, -1), shown.shape[:2]),
            _show(var_fused, width),
            heat(var_depth),
        ]
        montage = np.concatenate(tiles, axis=1)
        write_image(out / "images/stacks" / f"{slug}.png", np.round(montage * 255).astype(np.uint8))
        shape = "×".join(map(str, data.shape)) + (" (central crop)" if crop is not None else "")
        o = {
            k: (depth_outliers(d, 2), depth_outliers(d, 1))
            for k, d in (("ours", result.depth_map), ("plain", unregularised), ("variance", var_depth))
        }
        lines.append(
            f"| {name} | {shape}, {data.dtype} | {acnn_s:.1f} | {var_s:.1f} | {o['ours'][0]:.2%} | "
            f"{o['plain'][0]:.2%} | {o['variance'][0]:.2%} | {o['ours'][1]:.2%} | {o['plain'][1]:.2%} | "
            f"{o['variance'][1]:.2%} | {np.mean(result.confidence < 0.5):.1%} |"
        )
        print(lines[-1], flush=True)
        images.append(f"![{name}](../images/stacks/{slug}.png)\n")
    header = (
        "# Real focal stacks\n\nWritten by `benchmarks/real_stacks.py`. Each montage: a middle slice, "
        "ACNN fused, ACNN depth map (default, regularised), ACNN depth map unregularised "
        "(`depth_smoothing=0`), ACNN confidence (white = the pixel's own evidence picks its depth, "
        "black = a guess from its neighbours), variance-projection fused, variance-projection depth "
        "(depth: dark = first slice, yellow = last). No ground truth exists for these stacks. "
        "Outliers: share of pixels whose depth differs by more than 2 (or 1) slices from the median "
        "of their 9×9 neighbourhood. ACNN seconds: fp32 on the 2-core development machine while "
        "other jobs ran, ~0 where the score volume came from `--volume-cache` (not a speed benchmark).\n\n"
    )
    (out / "results/real_stacks.md").write_text(header + "\n".join(lines) + "\n\n" + "\n".join(images))


if __name__ == "__main__":
    main()
