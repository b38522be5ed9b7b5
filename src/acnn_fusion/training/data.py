"""Training pairs: sharp 16×16 grey patches against defocused copies of the same place.

Following Liu et al. (2017), a blurred copy of each sharp image is made (Gaussian σ=2
applied 1–5 times; here also a disk, i.e. defocus, kernel), and the patch pair at one
position becomes two samples: (sharp, blurred) labelled 1 and (blurred, sharp) labelled 0.
Pairs that the blur barely changed (flat or saturated patches) carry no focus information
and are dropped, since they would only teach the network to guess.

With ``relative_defocus`` > 0, that share of the blurred copies compares two defocus levels
instead of sharp against blurred: the "sharp" side is itself lightly blurred (Gaussian
σ 0.5–1.5) and the blurred side is a further defocus of it, as between neighbouring
slices of a focal stack, where no slice is perfectly sharp.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from acnn_fusion.core.imageops import disk_kernel, joint_unit_range, to_grey
from acnn_fusion.core.model import PATCH_SIZE
from acnn_fusion.io import IMAGE_SUFFIXES, read_image


@dataclass
class PatchPairs:
    """Sharp and blurred patches at the same positions, float16 (N, 16, 16) in [0, 1]."""

    sharp: np.ndarray
    blurred: np.ndarray
    skipped: list[str]

    def __len__(self) -> int:
        return len(self.sharp)


def find_images(folders: Iterable[str | Path]) -> list[Path]:
    """All image files below the given folders, sorted for reproducibility."""
    found: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"training image folder not found: {folder}")
        found += [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(set(found))


def defocus(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly defocused copy: Gaussian σ=2 applied 1–5 times, or a disk of radius 1.5–6."""
    if rng.random() < 0.5:
        passes = int(rng.integers(1, 6))
        return ndimage.gaussian_filter(image, sigma=2.0 * np.sqrt(passes), mode="reflect")
    return ndimage.convolve(image, disk_kernel(float(rng.uniform(1.5, 6.0))), mode="reflect")


def sample_patch_pairs(
    paths: Sequence[Path],
    *,
    patches_per_image: int,
    blurs_per_image: int = 3,
    min_difference: float = 0.004,
    relative_defocus: float = 0.0,
    seed: int = 0,
) -> PatchPairs:
    """Cut sharp/blurred patch pairs from every image (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    sharp_list, blurred_list = [], []
    skipped: list[str] = []
    per_blur = max(1, patches_per_image // blurs_per_image)
    for path in paths:
        try:
            image = read_image(path)
            grey = joint_unit_range(to_grey(image), source_dtype=image.dtype)[0]
        except ValueError as exc:
            skipped.append(f"{path}: {exc}")
            continue
        h, w = grey.shape
        if h < PATCH_SIZE or w < PATCH_SIZE:
            continue
        for _ in range(blurs_per_image):
            sharp = grey
            if relative_defocus > 0 and rng.random() < relative_defocus:
                sharp = ndimage.gaussian_filter(grey, float(rng.uniform(0.5, 1.5)), mode="reflect")
            blurred = defocus(sharp, rng)
            # oversample, then keep the pairs the blur really changed
            ys = rng.integers(0, h - PATCH_SIZE + 1, size=per_blur * 3)
            xs = rng.integers(0, w - PATCH_SIZE + 1, size=per_blur * 3)
            idx = (
                ys[:, None, None] + np.arange(PATCH_SIZE)[None, :, None],
                xs[:, None, None] + np.arange(PATCH_SIZE)[None, None, :],
            )
            s, b = sharp[idx], blurred[idx]
            keep = np.abs(s - b).mean(axis=(1, 2)) >= min_difference
            sharp_list.append(s[keep][:per_blur])
            blurred_list.append(b[keep][:per_blur])
    if not sharp_list:
        raise ValueError("no usable training images (all smaller than a patch?)")
    return PatchPairs(
        sharp=np.concatenate(sharp_list).astype(np.float16),
        blurred=np.concatenate(blurred_list).astype(np.float16),
        skipped=skipped,
    )
