"""Classic fusion baselines the ACNN has to beat (our own implementations).

Pairs: local variance and Laplacian energy decision maps (the ACNN pipeline's threshold and
the paper's 1 % clean-up), Laplacian-energy focus maps put through the ACNN's whole default
pipeline instead of the network's map, and Laplacian-pyramid fusion. Stacks: variance and
Sobel projections (per pixel, the slice with the highest local measure, as in CLIJ's and
Fiji's easy extended-depth-of-field) and a Laplacian-pyramid fold.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from acnn_fusion.core.decision import ENERGY_FLOOR
from acnn_fusion.core.imageops import joint_unit_range, to_grey
from acnn_fusion.core.inference import focus_map_from_scores
from acnn_fusion.core.model import PATCH_SIZE, SCORE_STRIDE
from acnn_fusion.core.pipeline import FusionSettings, blend, decide


def _grey01(*images: np.ndarray) -> list[np.ndarray]:
    return joint_unit_range(*[to_grey(i) for i in images], source_dtype=images[0].dtype)


def local_variance(grey: np.ndarray, window: int = 15) -> np.ndarray:
    mean = ndimage.uniform_filter(grey, window)
    return np.maximum(ndimage.uniform_filter(grey * grey, window) - mean * mean, 0.0)


def laplacian_energy(grey: np.ndarray, window: int = 15) -> np.ndarray:
    return ndimage.uniform_filter(ndimage.laplace(grey) ** 2, window)


def sobel_energy(grey: np.ndarray, window: int = 15) -> np.ndarray:
    return ndimage.uniform_filter(ndimage.sobel(grey, 0) ** 2 + ndimage.sobel(grey, 1) ** 2, window)


MEASURES = {"variance": local_variance, "laplacian": laplacian_energy, "sobel": sobel_energy}


def fuse_pair_by_measure(
    a: np.ndarray, b: np.ndarray, measure: str, window: int = 15
) -> tuple[np.ndarray, np.ndarray]:
    """Decision map from a focus measure in a ``window``² window (A where it is larger), the
    paper's 1 % clean-up; (fused, decision). No boundary refinement or fine override:
    ``benchmarks/network_value.py`` puts such maps through the whole default pipeline."""
    ga, gb = _grey01(a, b)
    fa, fb = MEASURES[measure](ga, window), MEASURES[measure](gb, window)
    focus = (fa > fb).astype(np.float32) + 0.5 * (fa == fb)
    # the focus map is binary, so a confidence gate means nothing: every region under 1 % goes
    clean_up = FusionSettings(threshold=0.5, min_region=0.01, min_region_px=0, region_confidence=1.0)
    decision = decide(focus, clean_up)
    return blend(a, b, decision), decision


# Laplacian-energy focus maps for the ACNN's own pipeline (``fuse_from_focus_map``): the
# network's focus map swapped for a classic focus measure (``benchmarks/network_value.py``).


def _energy(grey: np.ndarray, window: int) -> np.ndarray:
    lap = ndimage.laplace(grey.astype(np.float64))
    return ndimage.uniform_filter(lap * lap, window)


def ratio_map(ga: np.ndarray, gb: np.ndarray, window: int) -> np.ndarray:
    """Soft Laplacian-energy focus map, ½ where neither image has detail."""
    ea, eb = _energy(ga, window), _energy(gb, window)
    return ((ea + ENERGY_FLOOR / 2) / (ea + eb + ENERGY_FLOOR)).astype(np.float32)


def hard_map(ga: np.ndarray, gb: np.ndarray, window: int) -> np.ndarray:
    ea, eb = _energy(ga, window), _energy(gb, window)
    return ((ea > eb) + 0.5 * (ea == eb)).astype(np.float32)


def patch_map(ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
    """Per 16×16 patch at stride 2: 1 if A has the higher Laplacian energy; patch-averaged."""

    def patch_energy(grey: np.ndarray) -> np.ndarray:
        lap = ndimage.laplace(grey.astype(np.float64))
        c = np.pad(np.cumsum(np.cumsum(lap * lap, 0), 1), ((1, 0), (1, 0)))
        p = PATCH_SIZE
        sums = c[p:, p:] - c[:-p, p:] - c[p:, :-p] + c[:-p, :-p]
        return sums[::SCORE_STRIDE, ::SCORE_STRIDE]

    ea, eb = patch_energy(ga), patch_energy(gb)
    scores = ((ea > eb) + 0.5 * (ea == eb)).astype(np.float32)
    return focus_map_from_scores(scores, ga.shape)


def fuse_pair_full_pipeline(a: np.ndarray, b: np.ndarray, focus_fn=None) -> tuple[np.ndarray, np.ndarray]:
    """The Laplacian patch classifier's focus map (or ``focus_fn(grey_a, grey_b)``'s) through the
    whole default pipeline, exactly as ``fuse_pair`` treats the network's map; (fused, decision)."""
    from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, grey_pair

    ga, gb = grey_pair(a, b)
    focus = (focus_fn or patch_map)(ga, gb)
    result = fuse_from_focus_map(a, b, focus, PRESETS["default"], grey=(ga, gb))
    return result.fused, result.decision_map


def _expand(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from skimage.transform import resize

    return resize(image, shape, order=1, mode="reflect", anti_aliasing=False)


def _pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Laplacian pyramid: band-pass details at each level, the low-pass residual last."""
    from skimage.transform import pyramid_reduce

    channel_axis = -1 if image.ndim == 3 else None
    bands, current = [], image
    for _ in range(levels):
        smaller = pyramid_reduce(current, downscale=2, sigma=1.0, channel_axis=channel_axis)
        bands.append(current - _expand(smaller, current.shape))
        current = smaller
    return [*bands, current]


def _collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = _expand(image, detail.shape) + detail
    return image


def laplacian_pyramid_fuse(images: list[np.ndarray], levels: int = 4) -> np.ndarray:
    """Per level, the coefficient with the largest magnitude; average at the coarsest level."""
    dtype = images[0].dtype
    scale = float(np.iinfo(dtype).max) if dtype.kind == "u" else 1.0
    pyramids = [_pyramid(i.astype(np.float64) / scale, levels) for i in images]
    fused = []
    for level in range(len(pyramids[0])):
        coeffs = np.stack([p[level] for p in pyramids])
        if level == len(pyramids[0]) - 1:
            fused.append(coeffs.mean(axis=0))
            continue
        strength = np.abs(coeffs).sum(axis=-1, keepdims=True) if coeffs.ndim == 4 else np.abs(coeffs)
        pick = np.argmax(strength, axis=0)[None]
        fused.append(np.take_along_axis(coeffs, np.broadcast_to(pick, (1, *coeffs.shape[1:])), 0)[0])
    out = _collapse(fused) * scale
    if dtype.kind == "u":
        return np.clip(np.round(out), 0, scale).astype(dtype)
    return out.astype(dtype)


def projection(stack: np.ndarray, measure: str, window: int = 15) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the slice with the highest local focus measure: (fused, depth)."""
    grey = joint_unit_range(*[to_grey(s) for s in stack], source_dtype=stack.dtype)
    scores = np.stack([MEASURES[measure](g, window) for g in grey])
    depth = np.argmax(scores, axis=0).astype(np.uint16)
    index = depth.reshape(1, *depth.shape, *([1] * (stack.ndim - 3))).astype(np.intp)
    return np.take_along_axis(stack, index, axis=0)[0], depth
