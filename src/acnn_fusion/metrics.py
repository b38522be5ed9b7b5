"""Objective quality metrics for multi-focus image fusion.

All metrics work on grey images on the 0–255 scale, the convention of the fusion literature:
colour images are converted with MATLAB's ``rgb2gray`` weights and rounded to uint8
(:func:`to_metric_grey`). :func:`evaluate` applies that conversion and returns all metrics.

- ``MI``: MI(A,F) + MI(B,F) in bits, from 256×256 joint histograms (Qu et al. 2002).
- ``QMI``: normalised mutual information (Hossny et al. 2008).
- ``Qabf``: gradient-based edge preservation Q^AB/F (Xydeas & Petrović 2000).
- ``QY``: SSIM-based metric of Yang et al. (2008).

MI, QMI and Qabf reproduce the per-pair scores published with Liu et al.'s multi-focus fusion
survey (2020) on the Lytro set to the four decimals given there; QY reproduces the published
Lytro-20 mean (only the mean is published).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from acnn_fusion.core.imageops import joint_unit_range, to_grey, to_uint8_grey

__all__ = [
    "evaluate",
    "fusion_mi",
    "mutual_information",
    "q_abf",
    "q_mi",
    "q_y",
    "to_metric_grey",
]

# Q^AB/F sigmoid parameters (Xydeas & Petrović 2000).
_QABF_GAMMA_G, _QABF_KAPPA_G, _QABF_SIGMA_G = 0.9994, -15.0, 0.5
_QABF_GAMMA_A, _QABF_KAPPA_A, _QABF_SIGMA_A = 0.9879, -22.0, 0.8
_SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
_SOBEL_Y = _SOBEL_X.T.copy()

# Q_Y: local SSIM over 7×7 Gaussian windows (σ = 1.5). As in the fusion-metric toolbox behind the
# published scores, SSIM's stabilising constants are negligible (2e-16), not (K·L)².
_QY_WINDOW, _QY_SIGMA, _QY_THRESHOLD = 7, 1.5, 0.75
_SSIM_C = 2e-16
# Local variances below this fraction of the local mean square are rounding noise: set to 0.
_QY_NOISE_FLOOR = 1e-10


# ----------------------------------------------------------------------------- input checks


def _check_grey(image: np.ndarray, name: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D grey image, got shape {image.shape} (use to_metric_grey)")
    if image.dtype.kind not in "uif":
        raise ValueError(f"{name} must have a real numeric dtype, got {image.dtype}")
    return image


def _check_same_shape(**images: np.ndarray) -> None:
    shapes = {name: img.shape for name, img in images.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"image shapes differ: {listed}")


def _grey_triplet(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, ...]:
    a, b, fused = (_check_grey(img, name) for img, name in ((a, "a"), (b, "b"), (fused, "fused")))
    _check_same_shape(a=a, b=b, fused=fused)
    return a, b, fused


def _histogram_codes(image: np.ndarray, name: str, bins: int) -> np.ndarray:
    """Integer grey values 0..255 → bin indices 0..bins-1 (one bin per value when bins = 256)."""
    if image.dtype.kind == "f":
        if not np.array_equal(image, np.round(image)):
            raise ValueError(f"{name} must hold integer grey values 0..255 (use to_metric_grey)")
    if image.size and (image.min() < 0 or image.max() > 255):
        raise ValueError(f"{name} has values outside 0..255 (use to_metric_grey)")
    values = image.astype(np.int64)
    return values if bins == 256 else values * bins // 256


# ----------------------------------------------------------------------------- information


def _entropy_bits(image: np.ndarray, bins: int = 256) -> float:
    """Shannon entropy (bits) of the grey-value histogram."""
    counts = np.bincount(_histogram_codes(image, "image", bins).ravel(), minlength=bins)
    p = counts[counts > 0] / image.size
    return float(-(p * np.log2(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 256) -> float:
    """Mutual information (bits) of two grey images from their joint histogram.

    ``a`` and ``b`` hold grey values 0..255 (uint8); with ``bins=256`` every value has its
    own bin (a 256×256 joint histogram), fewer bins merge neighbouring values.
    """
    if not 1 <= bins <= 256:
        raise ValueError(f"bins must be between 1 and 256, got {bins}")
    a, b = _check_grey(a, "a"), _check_grey(b, "b")
    _check_same_shape(a=a, b=b)
    if a.size == 0:
        raise ValueError("images are empty")
    codes = _histogram_codes(a, "a", bins).ravel() * bins + _histogram_codes(b, "b", bins).ravel()
    joint = np.bincount(codes, minlength=bins * bins).reshape(bins, bins) / a.size
    pa, pb = joint.sum(axis=1), joint.sum(axis=0)
    rows, cols = np.nonzero(joint)
    pab = joint[rows, cols]
    return float(max(0.0, (pab * np.log2(pab / (pa[rows] * pb[cols]))).sum()))


def fusion_mi(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> float:
    """Fusion mutual information MI(A,F) + MI(B,F) in bits (Qu et al. 2002)."""
    a, b, fused = _grey_triplet(a, b, fused)
    return mutual_information(a, fused) + mutual_information(b, fused)


def q_mi(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> float:
    """Normalised MI of Hossny et al.: 2·[MI(A,F)/(H(A)+H(F)) + MI(B,F)/(H(B)+H(F))].

    Ranges 0..2; a term whose two entropies are both 0 (two constant images) counts 0.
    """
    a, b, fused = _grey_triplet(a, b, fused)
    h_f = _entropy_bits(fused)
    total = 0.0
    for source in (a, b):
        denominator = _entropy_bits(source) + h_f
        if denominator > 0:
            total += mutual_information(source, fused) / denominator
    return 2.0 * total


# ----------------------------------------------------------------------------- Q^AB/F


def _sobel_strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sobel edge strength and orientation atan(s_y/s_x) in [-π/2, π/2], zero padding.

    Where s_x = 0 the orientation is the limit of atan(s_y/s_x) for s_x → 0⁺, i.e.
    sign(s_y)·π/2 (0 where both are 0); this matches the published reference scores.
    """
    image = image.astype(np.float64)
    sx = ndimage.correlate(image, _SOBEL_X, mode="constant", cval=0.0)
    sy = ndimage.correlate(image, _SOBEL_Y, mode="constant", cval=0.0)
    strength = np.hypot(sx, sy)
    nonzero = sx != 0
    ratio = np.divide(sy, sx, out=np.zeros_like(sy), where=nonzero)
    orientation = np.where(nonzero, np.arctan(ratio), np.sign(sy) * (np.pi / 2))
    return strength, orientation


def _edge_preservation(
    g_src: np.ndarray, a_src: np.ndarray, g_fused: np.ndarray, a_fused: np.ndarray
) -> np.ndarray:
    """Per-pixel Q^{XF}: strength preservation × orientation preservation."""
    low, high = np.minimum(g_src, g_fused), np.maximum(g_src, g_fused)
    relative_strength = np.divide(low, high, out=np.zeros_like(low), where=high > 0)
    relative_orientation = 1.0 - np.abs(a_src - a_fused) / (np.pi / 2)
    q_g = _QABF_GAMMA_G / (1.0 + np.exp(_QABF_KAPPA_G * (relative_strength - _QABF_SIGMA_G)))
    q_a = _QABF_GAMMA_A / (1.0 + np.exp(_QABF_KAPPA_A * (relative_orientation - _QABF_SIGMA_A)))
    return q_g * q_a


def q_abf(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> float:
    """Xydeas–Petrović Q^AB/F edge-preservation metric (weights = edge strength, L = 1).

    Returns NaN when neither source image has any edge (the metric is undefined there).
    A perfect transfer (F = A = B) scores Γg/(1+e^{κg(1−σg)})·Γα/(1+e^{κα(1−σα)}) ≈ 0.9748.
    """
    a, b, fused = _grey_triplet(a, b, fused)
    g_a, a_a = _sobel_strength_orientation(a)
    g_b, a_b = _sobel_strength_orientation(b)
    g_f, a_f = _sobel_strength_orientation(fused)
    weight = float((g_a + g_b).sum())
    if weight == 0.0:
        return float("nan")
    q_af = _edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = _edge_preservation(g_b, a_b, g_f, a_f)
    return float((q_af * g_a + q_bf * g_b).sum() / weight)


# ----------------------------------------------------------------------------- Q_Y (SSIM-based)


def _gaussian_window() -> np.ndarray:
    offsets = np.arange(_QY_WINDOW) - (_QY_WINDOW - 1) / 2
    profile = np.exp(-(offsets**2) / (2 * _QY_SIGMA**2))
    return profile / profile.sum()


def _local_mean(image: np.ndarray) -> np.ndarray:
    """Gaussian-weighted 7×7 window means, 'valid' positions only (window inside the image)."""
    window = _gaussian_window()
    smoothed = ndimage.correlate1d(image, window, axis=0, mode="constant")
    smoothed = ndimage.correlate1d(smoothed, window, axis=1, mode="constant")
    r = _QY_WINDOW // 2
    return smoothed[r:-r, r:-r]


def _local_stats(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and variance of an image; flat windows get variance exactly 0, not rounding noise."""
    mu = _local_mean(image)
    mean_square = _local_mean(image * image)
    var = mean_square - mu * mu
    return mu, np.where(var > _QY_NOISE_FLOOR * (mean_square + 1.0), var, 0.0)


def _ssim_map(
    x: np.ndarray,
    y: np.ndarray,
    stats_x: tuple[np.ndarray, np.ndarray],
    stats_y: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Local SSIM map of x and y from each image's local statistics."""
    (mu_x, var_x), (mu_y, var_y) = stats_x, stats_y
    cov = np.where((var_x > 0) & (var_y > 0), _local_mean(x * y) - mu_x * mu_y, 0.0)
    return ((2 * mu_x * mu_y + _SSIM_C) * (2 * cov + _SSIM_C)) / (
        (mu_x**2 + mu_y**2 + _SSIM_C) * (var_x + var_y + _SSIM_C)
    )


def q_y(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> float:
    """Yang et al.'s SSIM-based fusion metric Q_Y.

    Local SSIM over 7×7 Gaussian windows (σ = 1.5) lying inside the image, with negligible
    stabilising constants as in the toolbox behind the published scores. Where
    SSIM(A,B|w) ≥ 0.75 a window scores λ·SSIM(A,F|w) + (1−λ)·SSIM(B,F|w) with
    λ = σ²_A/(σ²_A+σ²_B), elsewhere max(SSIM(A,F|w), SSIM(B,F|w)). Q_Y is the mean over
    windows; windows where A and B are both flat (λ undefined) are left out, and NaN is
    returned when every window is.
    """
    a, b, fused = _grey_triplet(a, b, fused)
    if min(a.shape) < _QY_WINDOW:
        raise ValueError(f"images must be at least {_QY_WINDOW}×{_QY_WINDOW} pixels, got {a.shape}")
    x, y, f = (img.astype(np.float64) for img in (a, b, fused))
    sx, sy, sf = _local_stats(x), _local_stats(y), _local_stats(f)
    ssim_ab = _ssim_map(x, y, sx, sy)
    ssim_af = _ssim_map(x, f, sx, sf)
    ssim_bf = _ssim_map(y, f, sy, sf)
    var_a, var_b = sx[1], sy[1]
    defined = (var_a + var_b) > 0
    if not defined.any():
        return float("nan")
    lam = np.divide(var_a, var_a + var_b, out=np.zeros_like(var_a), where=defined)
    similar = ssim_ab >= _QY_THRESHOLD
    score = np.where(similar, lam * ssim_af + (1.0 - lam) * ssim_bf, np.maximum(ssim_af, ssim_bf))
    return float(score[defined].mean())


# ----------------------------------------------------------------------------- conversion, all


def to_metric_grey(image: np.ndarray) -> np.ndarray:
    """The metrics' grey image: 2-D uint8 on the 0–255 scale.

    Grey uint8 is returned unchanged; uint8 colour (Y, X, 3|4) is converted with MATLAB's
    ``rgb2gray`` weights and rounded; other dtypes are first scaled to 0–255 from their
    robust min/max (see :func:`acnn_fusion.core.imageops.to_uint8_grey`).
    """
    image = np.asarray(image)
    if image.dtype == np.uint8 and image.ndim == 2:
        return image
    if image.dtype.kind not in "uif":
        raise ValueError(f"unsupported image dtype {image.dtype}")
    return to_uint8_grey(image)


def _metric_greys(*images: np.ndarray) -> list[np.ndarray]:
    """to_metric_grey for several images, with one common scale for non-uint8 images."""
    if all(img.dtype == np.uint8 for img in images):
        return [to_metric_grey(img) for img in images]
    dtypes = {img.dtype for img in images}
    if len(dtypes) > 1:
        listed = ", ".join(sorted(str(d) for d in dtypes))
        raise ValueError(f"images differ in dtype ({listed}); convert them to one dtype first")
    greys = [to_grey(img) for img in images]
    scaled = joint_unit_range(*greys, source_dtype=images[0].dtype)
    return [np.clip(np.round(s.astype(np.float64) * 255.0), 0, 255).astype(np.uint8) for s in scaled]


def evaluate(a: np.ndarray, b: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    """All metrics of a fusion result: ``{"MI", "Qabf", "QMI", "QY"}``.

    Inputs may be grey or colour; they are converted with :func:`to_metric_grey` (non-uint8
    inputs, which must share one dtype, are scaled to 0–255 together). Raises ValueError
    when the images' (Y, X) shapes differ, when one holds NaN or infinite values, and when
    a metric is undefined (flat or constant sources): no score is ever NaN.
    """
    arrays = {"a": np.asarray(a), "b": np.asarray(b), "fused": np.asarray(fused)}
    for name, img in arrays.items():
        if img.ndim not in (2, 3):
            raise ValueError(f"{name} must be a (Y, X) or (Y, X, C) image, got shape {img.shape}")
    spatial = {name: img.shape[:2] for name, img in arrays.items()}
    if len(set(spatial.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in spatial.items())
        raise ValueError(f"image shapes differ: {listed}")
    for name, img in arrays.items():
        if img.dtype.kind not in "uifb":
            raise ValueError(f"{name} must have a real numeric dtype, got {img.dtype}")
        if img.dtype.kind == "f" and not np.isfinite(img).all():
            raise ValueError(f"{name} contains NaN or infinite values; the metrics are undefined for it")
    ga, gb, gf = _metric_greys(
        *(img.astype(np.uint8) if img.dtype == bool else img for img in arrays.values())
    )
    scores = {
        "MI": fusion_mi(ga, gb, gf),
        "Qabf": q_abf(ga, gb, gf),
        "QMI": q_mi(ga, gb, gf),
        "QY": q_y(ga, gb, gf),
    }
    undefined = [name for name, value in scores.items() if not np.isfinite(value)]
    if undefined:
        raise ValueError(
            f"{', '.join(undefined)} undefined for these images: A and B have no edges or local "
            "contrast (flat or constant), so there is nothing to score"
        )
    return scores
