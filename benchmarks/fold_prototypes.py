"""Stack folds side by side: the package's, and the prototypes that led to it (experiments §5).

    .venv/bin/python benchmarks/fold_prototypes.py synthetic [--weights W]
    .venv/bin/python benchmarks/fold_prototypes.py lightsheet [--weights W] [--figure PNG]

Variants, all from one pass of every slice through the branch (whole image, no tiling):

- ``winner-vote``: the first ``features`` fold (acnn-fusion ≤ 0.1): a running winner per
  patch (a later slice replaces it when the network prefers it), then each pixel takes the
  slice most of its covering patches chose.
- ``vote-vs-mean``: each slice scored against the mean of all slices' first-layer
  projections; the best-scoring slice per patch, then the same vote.
- ``soft-vs-mean``: the same log-odds averaged per pixel over the covering patches, then
  the best slice per pixel.
- ``soft-vs-mean-image``: as ``soft-vs-mean``, against the branch features of the mean
  grey image of the stack (computable before any slice is scored: one extra branch pass).
- ``package``: ``fuse_stack`` as shipped (``soft-vs-mean-image``, tiled).

``synthetic``: depth within ±1 slice on textured pixels of the 20 stacks of
``quality_stacks.py``, and PSNR of the fused image. ``lightsheet``: agreement with the
variance projection on the structures (top 3 % of the smoothed maximum projection) of the
light-sheet stack in ``../shared``. fp32 throughout.
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
    mean_image = np.mean([grey.block(z) for z in range(n)], axis=0, dtype=np.float32)
    reference = model.branch(to_input(mean_image[None], cpu))
    image_a, image_b = model.head.project(reference, as_a=True), model.head.project(reference, as_a=False)

    def log_odds(ref_a: torch.Tensor, ref_b: torch.Tensor) -> np.ndarray:
        odds = []
        for z in range(n):
            first = model.head.combine(as_a[z], ref_b)[0]
            second = model.head.combine(ref_a, as_b[z])[0]
            odds.append((((first[0] - first[1]) - (second[0] - second[1])) / 2).numpy())
        return np.stack(odds)

    def best_per_pixel(per_patch: list[np.ndarray]) -> np.ndarray:
        best_value, best_slice = None, None
        for z, values in enumerate(per_patch):
            per_pixel = patch_average_grid(values.astype(np.float32))
            if best_value is None or best_slice is None:
                best_value, best_slice = per_pixel, np.zeros(per_pixel.shape, np.uint16)
                continue
            better = per_pixel > best_value
            best_value = np.where(better, per_pixel, best_value)
            best_slice[better] = z
        assert best_slice is not None
        return grid_to_pixels(best_slice, shape).astype(np.uint16)

    def vote(winners: np.ndarray) -> np.ndarray:
        return best_per_pixel([(winners == z).astype(np.float32) for z in range(n)])

    winner = torch.zeros(as_a[0].shape[2:], dtype=torch.int64)
    winner_a = as_a[0]
    for z in range(1, n):
        keep = ACNN.score(model.head.combine(winner_a, as_b[z]))[0] >= 0.5
        winner, winner_a = torch.where(keep, winner, z), torch.where(keep, winner_a, as_a[z])
    vs_mean, vs_mean_image = log_odds(mean_a, mean_b), log_odds(image_a, image_b)
    return {
        "winner-vote": vote(winner.numpy()),
        "vote-vs-mean": vote(vs_mean.argmax(0)),
        "soft-vs-mean": best_per_pixel(list(vs_mean)),
        "soft-vs-mean-image": best_per_pixel(list(vs_mean_image)),
        "package": stack_module.fuse_stack(data, precision="fp32", weights=weights).depth_map,
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
        from skimage.metrics import peak_signal_noise_ratio

        from quality_stacks import _textured, synthetic_stacks

        scores: dict[str, list[float]] = {}
        psnr: dict[str, list[float]] = {}
        for _name, case in synthetic_stacks():
            textured = _textured(case.sharp)
            data_range = 255 if case.sharp.dtype == np.uint8 else float(case.sharp.max())
            for variant, depth in fold_variants(model, case.stack, args.weights).items():
                error = np.abs(depth.astype(int) - case.depth_index)[textured]
                scores.setdefault(variant, []).append(float(np.mean(error <= 1)))
                index = depth.astype(np.intp)[None, ..., None] if case.stack.ndim == 4 else depth[None]
                fused = np.take_along_axis(case.stack, index.astype(np.intp), 0)[0]
                value = peak_signal_noise_ratio(case.sharp, fused, data_range=data_range)
                psnr.setdefault(variant, []).append(float(value))
        for variant, values in scores.items():
            mean, worst, db = 100 * np.mean(values), 100 * min(values), np.mean(psnr[variant])
            print(f"{variant:18s} depth ±1 {mean:.2f} % (worst stack {worst:.1f} %), PSNR {db:.2f} dB")
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
