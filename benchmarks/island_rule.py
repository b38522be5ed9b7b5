"""A pixel-level island rule for stack depth maps, tried and not kept (``docs/quality.md``).

    .venv/bin/python benchmarks/island_rule.py

After the default fold (fp32), every region of one depth (4-connected, ``skimage.measure.label``
on the depth map itself) of at most N pixels whose fold confidence never reaches C takes the
depth most common along its border, and the fused image is composed again by copy. Scored
side by side with the default on the synthetic stacks of ``quality_stacks.py`` (PSNR against
the sharp original on the dtype's full range, so not the same numbers as that table's; depth
within ±1 slice on textured pixels) and on its flat-region stacks (depth within ±1 slice
inside the flat region). Prints the means per setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.measure import label
from skimage.metrics import peak_signal_noise_ratio

sys.path.insert(0, str(Path(__file__).parent))
import quality_stacks
from acnn_fusion import fuse_stack
from acnn_fusion.core.compose import compose_stack

#: (largest region in pixels, confidence it must never reach) of each setting tried
SETTINGS = ((4096, 0.9), (1024, 0.9), (4096, 0.6))


def islands_to_border(depth: np.ndarray, confidence: np.ndarray, max_pixels: int, max_confidence: float):
    """``depth`` with its small unconfident regions set to the depth most common on their
    border; and how many regions changed."""
    regions = label(depth.astype(np.int64), background=-1, connectivity=1)
    count = int(regions.max())
    size = np.bincount(regions.ravel(), minlength=count + 1)
    most = np.zeros(count + 1, np.float32)
    np.maximum.at(most, regions.ravel(), confidence.ravel().astype(np.float32))
    small = (size <= max_pixels) & (most < max_confidence)
    small[0] = False
    if not small.any():
        return depth.copy(), 0
    region_depth = np.zeros(count + 1, np.int64)
    region_depth[regions.ravel()] = depth.ravel()
    inside, outside = [], []
    for left, right in ((regions[:, :-1], regions[:, 1:]), (regions[:-1], regions[1:])):
        differ = left != right
        inside += [left[differ], right[differ]]
        outside += [right[differ], left[differ]]
    region = np.concatenate(inside)
    neighbour_depth = region_depth[np.concatenate(outside)]
    keep = small[region]
    span = int(depth.max()) + 1
    pairs, counts = np.unique(region[keep] * span + neighbour_depth[keep], return_counts=True)
    owner, value = pairs // span, pairs % span
    order = np.lexsort((-counts, owner))  # per region, the most common border depth first
    owner, value = owner[order], value[order]
    first = np.r_[True, owner[1:] != owner[:-1]]
    region_depth[owner[first]] = value[first]
    return region_depth[regions].astype(depth.dtype), int(small.sum())


def scores(case, depth: np.ndarray, textured: np.ndarray) -> tuple[float, float]:
    """(PSNR of the copy composition against the sharp original, depth within ±1 on textured)."""
    fused = compose_stack(case.stack, depth, mode="copy")
    peak = 65535 if case.sharp.dtype == np.uint16 else 255
    psnr = peak_signal_noise_ratio(case.sharp.astype(np.float64), fused.astype(np.float64), data_range=peak)
    truth = case.depth_index.astype(int)
    return psnr, float(np.mean(np.abs(depth.astype(int) - truth)[textured] <= 1))


def main() -> None:
    labels = ["default", *(f"≤ {n} px, confidence < {c}" for n, c in SETTINGS)]
    synthetic: dict[str, list[tuple[float, float]]] = {name: [] for name in labels}
    for _, case in quality_stacks.synthetic_stacks():
        result = fuse_stack(case.stack, precision="fp32")
        textured = quality_stacks._textured(case.sharp)
        synthetic["default"].append(scores(case, result.depth_map, textured))
        for name, setting in zip(labels[1:], SETTINGS, strict=True):
            changed, _ = islands_to_border(result.depth_map, np.asarray(result.confidence), *setting)
            synthetic[name].append(scores(case, changed, textured))
    flat: dict[str, list[float]] = {name: [] for name in labels}
    for _, case in quality_stacks.flat_region_stacks():
        result = fuse_stack(case.stack, precision="fp32")
        inner = ndimage.binary_erosion(case.flat, iterations=8)
        truth = case.depth_index.astype(int)
        for name, setting in zip(labels, (None, *SETTINGS), strict=True):
            depth = result.depth_map
            if setting is not None:
                depth = islands_to_border(depth, np.asarray(result.confidence), *setting)[0]
            flat[name].append(float(np.mean(np.abs(depth.astype(int) - truth)[inner] <= 1)))
    print("| setting | synthetic PSNR (full range) dB | depth within ±1 | flat region depth within ±1 |")
    print("|---|---|---|---|")
    for name in labels:
        psnr, within = np.array(synthetic[name]).mean(axis=0)
        print(f"| {name} | {psnr:.2f} | {within:.4f} | {np.mean(flat[name]):.4f} |")


if __name__ == "__main__":
    main()
