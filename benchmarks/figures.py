"""Figures in the style of the paper's Fig. 3: sources, focus map, decision map, fused, differences.

    .venv/bin/python benchmarks/figures.py [--shared ../shared/data] [--out docs/images]

Always draws the bundled sample pair (``sample_overview.png``); Lytro pairs when the shared
data is present.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from skimage.transform import resize

from acnn_fusion import fuse_pair
from acnn_fusion.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]


def _rgb(image: np.ndarray, size: int) -> np.ndarray:
    image = image.astype(np.float64)
    if image.max() > 1.0:
        image = image / (255.0 if image.max() <= 255 else image.max())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    return resize(image[..., :3], (size, size), order=1, anti_aliasing=True)


def _heat(values: np.ndarray) -> np.ndarray:
    """A small perceptual-ish ramp (black → purple → orange → yellow) for [0, 1] maps."""
    stops = np.array([[0, 0, 0.02], [0.45, 0.1, 0.5], [0.95, 0.45, 0.2], [0.99, 0.99, 0.75]])
    pos = np.clip(values, 0, 1) * (len(stops) - 1)
    low = np.floor(pos).astype(int).clip(0, len(stops) - 2)
    frac = (pos - low)[..., None]
    return stops[low] * (1 - frac) + stops[low + 1] * frac


def panel(a: np.ndarray, b: np.ndarray, size: int = 256) -> np.ndarray:
    """One row: A, B, focus map, decision map, fused, |F − A|, |F − B| (uint8 RGB)."""
    result = fuse_pair(a, b)
    fused = result.fused.astype(np.float64)
    diff_a = np.abs(fused - a.astype(np.float64))
    diff_b = np.abs(fused - b.astype(np.float64))
    scale = max(diff_a.max(), diff_b.max(), 1e-9)
    tiles = [
        _rgb(a, size),
        _rgb(b, size),
        resize(_heat(result.focus_map), (size, size), order=1),
        _rgb(result.decision_map.astype(float), size),
        _rgb(result.fused, size),
        _rgb(np.clip(diff_a / scale * 3, 0, 1), size),
        _rgb(np.clip(diff_b / scale * 3, 0, 1), size),
    ]
    gap = np.ones((size, 4, 3))
    row = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1)
    return np.round(row * 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs/images")
    args = parser.parse_args()
    sample = REPO / "sample_data"
    a, b = read_image(sample / "pair_A.tif"), read_image(sample / "pair_B.tif")
    print(write_image(args.out / "sample_overview.png", panel(a, b, 192)))
    lytro = args.shared / "eval/pairs/lytro"
    if lytro.is_dir():
        rows = []
        for name in ("lytro-03", "lytro-09", "lytro-14", "lytro-20"):
            rows.append(panel(read_image(lytro / f"{name}-A.jpg"), read_image(lytro / f"{name}-B.jpg"), 192))
            rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
        print(write_image(args.out / "lytro_examples.png", np.concatenate(rows[:-1])))


if __name__ == "__main__":
    main()
