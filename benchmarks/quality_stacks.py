"""Stack folding against extended-depth-of-field baselines on synthetic stacks with ground truth.

    .venv/bin/python benchmarks/quality_stacks.py [--out docs/results]

Stacks are rendered from scikit-image pictures (256×256) with a smooth tilted depth surface
and an occluding foreground disc in the nearest slice; 5 to 30 slices; uint8 RGB and uint16
grey; with and without noise. Methods: ACNN (``features`` and ``pairwise``), variance and
Sobel projection (15×15 windows), Laplacian-pyramid fusion. Scores: PSNR and SSIM of the
fused image against the sharp original, and depth accuracy (share of textured pixels whose
slice is within ±1 of the truth). The network runs in fp32, so the scores do not depend on
the CPU; the seconds column is fp32 too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from acnn_fusion.core.imageops import GREY_WEIGHTS
from acnn_fusion.core.stack import STRATEGIES
from acnn_fusion.synthetic import render_stack
from baselines import laplacian_pyramid_fuse, projection
from quality_pairs import _means, _write

REPO = Path(__file__).resolve().parents[1]


def synthetic_stacks():
    """(name, stack result) pairs covering slice counts, dtypes and noise."""
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    disc = (yy - 0.55) ** 2 + (xx - 0.4) ** 2 < 0.05
    sources = {
        "astronaut-grey16": (data.astronaut()[::2, ::2] @ GREY_WEIGHTS * 16).astype(np.uint16),
        "coffee-rgb8": data.coffee()[:256, 100:356],
        "brick-grey16": (data.brick()[:256, :256].astype(np.float64) * 12).astype(np.uint16),
        "ihc-rgb8": data.immunohistochemistry()[200:456, 200:456],
        "gravel-grey8": data.gravel()[:256, :256],
    }
    cases = []
    for i, (name, sharp) in enumerate(sources.items()):
        for n_slices, noise in ((5, 0.0), (12, 0.0), (30, 0.0), (12, 0.01)):
            depth = (n_slices - 1) * np.clip(0.7 * xx + 0.3 * yy + 0.1 * np.sin(6 * yy), 0, 1)
            depth[disc] = 0.0
            stack = render_stack(
                sharp, depth, n_slices, radius_per_slice=1.2 * 12 / n_slices, noise=noise, seed=i
            )
            cases.append((f"{name}-z{n_slices}-n{noise:g}", stack))
    return cases


def _textured(sharp: np.ndarray) -> np.ndarray:
    grey = sharp.astype(np.float64) if sharp.ndim == 2 else sharp.astype(np.float64) @ GREY_WEIGHTS
    grey = grey / grey.max()
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(grey**2, 7) - ndimage.uniform_filter(grey, 7) ** 2, 0))
    return sd > 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    rows = []
    for name, case in synthetic_stacks():
        sharp, stack, truth = case.sharp, case.stack, case.depth_index.astype(int)
        textured = _textured(sharp)
        data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())
        channel_axis = -1 if sharp.ndim == 3 else None
        methods = {}
        for strategy in STRATEGIES:
            start = time.perf_counter()
            result = fuse_stack(stack, strategy=strategy, precision="fp32")
            methods[f"acnn-{strategy}"] = (result.fused, result.depth_map, time.perf_counter() - start)
        for measure in ("variance", "sobel"):
            start = time.perf_counter()
            fused, depth = projection(stack, measure)
            methods[f"{measure}-projection"] = (fused, depth, time.perf_counter() - start)
        start = time.perf_counter()
        methods["laplacian-pyramid"] = (
            laplacian_pyramid_fuse(list(stack)),
            None,
            time.perf_counter() - start,
        )
        for method, (fused, depth, seconds) in methods.items():
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "PSNR": peak_signal_noise_ratio(sharp, fused, data_range=data_range),
                    "SSIM": structural_similarity(
                        sharp, fused, data_range=data_range, channel_axis=channel_axis
                    ),
                    "depth_within_1": float(
                        np.mean(np.abs(depth[textured].astype(int) - truth[textured]) <= 1)
                    )
                    if depth is not None
                    else float("nan"),
                    "seconds": seconds,
                }
            )
        print(
            name,
            "  ".join(
                f"{r['method']} {r['PSNR']:.2f}/{r['depth_within_1']:.3f}" for r in rows[-len(methods) :]
            ),
            flush=True,
        )
    _write(rows, args.out / "synthetic_stacks_per_case")
    means = _means(rows, key="case")
    _write(means, args.out / "synthetic_stacks_means")
    for row in means:
        print(row)


if __name__ == "__main__":
    main()
