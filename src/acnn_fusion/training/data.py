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

With ``occlusion`` > 0, that share of the blurred copies is an occlusion scene instead
(:func:`occlusion_scene`): a foreground (the image) in front of a background (the image
turned 180°) under a smooth random mask, rendered with the two-layer lens model of
``acnn_fusion.synthetic.render_pair`` — A focused on the foreground, B on the background,
B's defocused foreground spilling over the sharp background next to it (the defocus
spread effect). Patches are cut where the mask boundary crosses them, and each pair is
labelled by which source is nearer the all-in-focus truth over the patch, so the network
learns which source to take where the glow of a blurred foreground covers a sharp
background, not only which patch has more detail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
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


def random_psf(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """A random defocus blur: Gaussian σ=2 applied 1–5 times, or a disk of radius 1.5–6."""
    if rng.random() < 0.5:
        sigma = 2.0 * np.sqrt(int(rng.integers(1, 6)))
        return lambda image: ndimage.gaussian_filter(image, sigma=sigma, mode="reflect")
    kernel = disk_kernel(float(rng.uniform(1.5, 6.0)))
    return lambda image: ndimage.convolve(image, kernel, mode="reflect")


def defocus(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A randomly defocused copy (:func:`random_psf`)."""
    return random_psf(rng)(image)


@dataclass
class OcclusionScene:
    """Two-layer scene: A focused on the foreground, B on the background, the truth."""

    image_a: np.ndarray
    image_b: np.ndarray
    truth: np.ndarray
    mask: np.ndarray  # bool, True = foreground


def occlusion_scene(grey: np.ndarray, rng: np.random.Generator) -> OcclusionScene:
    """Foreground ``grey`` in front of ``grey`` turned 180°, under a smooth random mask
    (features 12–48 px, 30–70 % foreground), one random PSF for both defocused layers."""
    h, w = grey.shape
    background = grey[::-1, ::-1]
    # the smooth field at 1/8 resolution (cheap for large σ), then interpolated
    coarse = rng.standard_normal((h // 8 + 2, w // 8 + 2))
    coarse = ndimage.gaussian_filter(coarse, float(rng.uniform(12.0, 48.0)) / 8, mode="wrap")
    field_ = ndimage.zoom(coarse, 8, order=1)[:h, :w]
    mask = field_ > np.quantile(field_, 1.0 - float(rng.uniform(0.3, 0.7)))
    psf = random_psf(rng)
    soft = np.clip(psf(mask.astype(np.float32)), 0.0, 1.0)
    blurred_fg, blurred_bg = psf(grey), psf(background)
    image_a = np.where(mask, grey, blurred_bg)
    # B: background sharp, the defocused foreground spilling over it (as render_pair)
    image_b = soft * blurred_fg + (1.0 - soft) * np.where(mask, blurred_fg, background)
    truth = np.where(mask, grey, background)
    return OcclusionScene(image_a, image_b, truth, mask)


def _occlusion_pairs(
    grey: np.ndarray, rng: np.random.Generator, count: int, min_difference: float
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``count`` (nearer, farther) patch pairs whose patch the mask boundary crosses."""
    scene = occlusion_scene(grey, rng)
    h, w = grey.shape
    edge = scene.mask ^ ndimage.binary_erosion(scene.mask)
    ys, xs = np.nonzero(edge[: h - PATCH_SIZE + 1 + 8, : w - PATCH_SIZE + 1 + 8])
    empty = np.empty((0, PATCH_SIZE, PATCH_SIZE), np.float32)
    if len(ys) == 0:
        return empty, empty
    pick = rng.integers(0, len(ys), size=count * 3)
    # patch corners placed so the boundary pixel lies anywhere in the central 8×8
    y0 = np.clip(ys[pick] - rng.integers(4, 12, size=len(pick)), 0, h - PATCH_SIZE)
    x0 = np.clip(xs[pick] - rng.integers(4, 12, size=len(pick)), 0, w - PATCH_SIZE)
    idx = (
        y0[:, None, None] + np.arange(PATCH_SIZE)[None, :, None],
        x0[:, None, None] + np.arange(PATCH_SIZE)[None, None, :],
    )
    a, b, t = scene.image_a[idx], scene.image_b[idx], scene.truth[idx]
    error_a, error_b = np.abs(a - t).mean(axis=(1, 2)), np.abs(b - t).mean(axis=(1, 2))
    keep = (np.abs(a - b).mean(axis=(1, 2)) >= min_difference) & (
        np.abs(error_a - error_b) >= 0.25 * np.maximum(error_a, error_b)
    )
    a_nearer = (error_a < error_b)[:, None, None]
    nearer, farther = np.where(a_nearer, a, b), np.where(a_nearer, b, a)
    return nearer[keep][:count], farther[keep][:count]


def sample_patch_pairs(
    paths: Sequence[Path],
    *,
    patches_per_image: int,
    blurs_per_image: int = 3,
    min_difference: float = 0.004,
    relative_defocus: float = 0.0,
    occlusion: float = 0.0,
    seed: int = 0,
) -> PatchPairs:
    """Cut sharp/blurred patch pairs from every image (deterministic for a seed).

    ``occlusion``: share of the blurred copies replaced by an occlusion scene, whose pairs
    are (nearer the truth, farther from it) at the foreground boundary. At 0 the random
    stream, and so every pair, is what it was before the option existed."""
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
            if occlusion > 0 and rng.random() < occlusion:
                near, far = _occlusion_pairs(grey, rng, per_blur, min_difference)
                sharp_list.append(near)
                blurred_list.append(far)
                continue
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
