"""Stack-fold prototypes against the package's ``features`` fold (docs/experiments.md §5).

    .venv/bin/python benchmarks/fold_prototypes.py synthetic [--weights W]
    .venv/bin/python benchmarks/fold_prototypes.py lightsheet [--weights W] [--figure PNG]

Variants, all on one pass of every slice through the branch (whole image, no tiling):

- ``features``: the package's fold (running winner per patch, vote per pixel).
- ``vote-vs-mean``: each slice scored against the mean of all slices' first-layer
  projections; the best-scoring slice per patch, then the package's vote.
- ``soft-vs-mean``: the same log-odds averaged per pixel over the covering patches, then
  the best slice per pixel.

``synthetic``: depth within ±1 slice on textured pixels of the 20 stacks of
``quality_stacks.py``. ``lightsheet``: agreement with the variance projection on the
structures (top 3 % of the smoothed maximum projection) of the light-sheet stack in
``../shared``. fp32 throughout.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion.core import stack as stack_module
from acnn_fusion.core.inference import grid_to_pixels, patch_average_grid, to_input
from acnn_fusion.core.model import ACNN
from acnn_fusion.core.weights import load_model

REPO = Path(__file__).resolve().parents[1]


@torch.inference_mode()
def fold_variants(model: ACNN, data: np.ndarray, weights: str | None) -> dict[str, np.ndarray]:
    """Depth maps (uint16, Y × X) of each variant for a (Z, Y, X[, C]) stack."""
    grey = stack_module.FocusImage(stack_module._standardise(data, 0, None))
    n, shape, cpu = len(grey), grey.shape[1:], torch.device("cpu")
    as_a, as_b = [], []
    for z in range(n):
        features = model.branch(to_input(grey.block(slice(z, z + 1)), cpu))
        as_a.append(model.head.project(features, as_a=True))
        as_b.append(model.head.project(features, as_a=False))
    mean_a, mean_b = torch.stack(as_a).mean(0), torch.stack(as_b).mean(0)
    log_odds = []
    for z in range(n):
        first = model.head.combine(as_a[z], mean_b)[0]
        second = model.head.combine(mean_a, as_b[z])[0]
        log_odds.append((((first[0] - first[1]) - (second[0] - second[1])) / 2).numpy())
    odds = np.stack(log_odds)
    best_value, best_slice = None, None
    for z in range(n):
        per_pixel = patch_average_grid(odds[z].astype(np.float32))
        if best_value is None or best_slice is None:
            best_value, best_slice = per_pixel, np.zeros(per_pixel.shape, np.uint16)
            continue
        better = per_pixel > best_value
        best_value = np.where(better, per_pixel, best_value)
        best_slice[better] = z
    assert best_slice is not None
    return {
        "features": stack_module.fuse_stack(data, precision="fp32", weights=weights).depth_map,
        "vote-vs-mean": stack_module._vote(odds.argmax(0), n, shape)[0],
        "soft-vs-mean": grid_to_pixels(best_slice, shape).astype(np.uint16),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=["synthetic", "lightsheet"])
    parser.add_argument("--weights", help="weights file (default: the shipped one)")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared/data")
    parser.add_argument("--figure", type=Path, help="lightsheet: write the depth maps side by side")
    args = parser.parse_args()
    model = load_model(args.weights)
    if args.data == "synthetic":
        from quality_stacks import _textured, synthetic_stacks

        scores: dict[str, list[float]] = {}
        for _name, case in synthetic_stacks():
            textured = _textured(case.sharp)
            for variant, depth in fold_variants(model, case.stack, args.weights).items():
                error = np.abs(depth.astype(int) - case.depth_index)[textured]
                scores.setdefault(variant, []).append(float(np.mean(error <= 1)))
        for variant, values in scores.items():
            mean, worst = 100 * np.mean(values), 100 * min(values)
            print(f"{variant:14s} depth ±1 {mean:.2f} % (worst stack {worst:.1f} %)")
        return
    folder = args.shared / "eval/stacks/lightsheet_mitochondria_uint16"
    if not folder.is_dir():
        print(f"no light-sheet stack under {folder}; nothing to do")
        return
    from scipy import ndimage

    from baselines import projection
    from real_stacks import _stack_array

    data = _stack_array(folder)
    _, variance_depth = projection(data, "variance")
    smoothed_max = ndimage.gaussian_filter(data.max(0).astype(float), 2)
    structures = smoothed_max > np.percentile(smoothed_max, 97)
    depths = fold_variants(model, data, args.weights)
    for variant, depth in depths.items():
        error = np.abs(depth.astype(int) - variance_depth)[structures]
        within_2, within_1 = np.mean(error <= 2), np.mean(error <= 1)
        print(f"{variant:14s} structures within ±2 / ±1 of variance: {within_2:.1%} / {within_1:.1%}")
    if args.figure:
        from skimage.transform import resize

        from acnn_fusion.io import write_image
        from figures import _heat

        n = data.shape[0] - 1
        tiles = [resize(_heat(d / n), (300, 192)) for d in [*depths.values(), variance_depth]]
        image = np.round(np.clip(np.concatenate(tiles, 1), 0, 1) * 255).astype(np.uint8)
        write_image(args.figure, image)


if __name__ == "__main__":
    main()
