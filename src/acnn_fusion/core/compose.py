"""Composition: turn a decision map (pairs) or depth map (stacks) into the fused image.

Two modes (:data:`COMPOSITIONS`):

``copy``
    Every pixel, all channels, is copied unchanged from the one source the map names. The
    fused image holds only measured values (provenance), but where the map switches source
    in a flat region any brightness difference between the sources shows as a step (seam).
``pyramid``
    Multi-resolution spline blending (Burt & Adelson 1983, as in enfuse): each source's
    Laplacian pyramid is weighted, level by level, by the Gaussian pyramid of its weight map
    (the decision map, or one-hot "depth == z" per slice), and the blended pyramid is
    collapsed. Fine detail switches source as sharply as the map does; coarse brightness
    switches over a distance that grows with the level, so steps in flat regions are spread
    out instead of shown. Output values near a switch are mixtures found in no source.

Both keep the input's shape and dtype; integer outputs are rounded and clipped to the dtype,
float outputs clipped to the sources' value range. Stacks are blended one slice at a time
(the blended pyramid and one slice's pyramids are the only image-sized float arrays held),
so a memory-mapped stack is read slice by slice. Everything is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from acnn_fusion.core.imageops import SUPPORTED_DTYPES
from acnn_fusion.options import COMPOSITIONS

#: Composition modes; ``copy`` is the default (every pixel is a measured value).
DEFAULT_COMPOSITION = "copy"

#: Burt & Adelson's 5-tap generating kernel (a = 0.375): binomial [1, 4, 6, 4, 1] / 16.
_KERNEL = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
#: The coarsest pyramid level keeps at least this many pixels on its shorter side.
_MIN_TOP_SIZE = 8
#: Default ``soften`` (pixels) of the weight maps: 0 for pairs, 2 for stacks, the best measured
#: (``benchmarks/composition.py``: +0.7 dB over hard weights on synthetic stacks, −0.18 dB on pairs).
PAIR_SOFTEN = 0.0
STACK_SOFTEN = 2.0


def auto_levels(shape: Sequence[int]) -> int:
    """The number of pyramid levels used when ``levels`` is None: as many as the image allows
    while the coarsest level keeps ≥ 8 pixels on its shorter side (what enfuse does)."""
    short = min(int(shape[0]), int(shape[1]))
    levels = 0
    while -(-short // 2) >= _MIN_TOP_SIZE:
        short = -(-short // 2)
        levels += 1
    return levels


def _along(array: np.ndarray, index: slice, axis: int) -> np.ndarray:
    """``array[..., index, ...]`` with ``index`` on ``axis`` (0 or 1)."""
    return array[index] if axis == 0 else array[:, index]


def _reduce_axis(image: np.ndarray, axis: int) -> np.ndarray:
    """Low-pass with the 5-tap kernel along ``axis`` at every second sample: ⌈n/2⌉ samples.

    Mirror boundaries (… x2 x1 | x0 x1 x2 …); only the kept samples are computed.
    """
    n = image.shape[axis]
    if n < 3:  # too short to mirror twice: filter everything, then subsample
        smooth = ndimage.correlate1d(image, _KERNEL.astype(image.dtype), axis=axis, mode="mirror")
        return np.ascontiguousarray(_along(smooth, slice(None, None, 2), axis))
    kept = -(-n // 2)
    padded = np.concatenate(
        [
            _along(image, slice(2, 3), axis),
            _along(image, slice(1, 2), axis),
            image,
            _along(image, slice(n - 2, n - 1), axis),
            _along(image, slice(n - 3, n - 2), axis),
        ],
        axis=axis,
    )

    def tap(offset: int) -> np.ndarray:
        return _along(padded, slice(offset, offset + 2 * kept - 1, 2), axis)

    dtype = image.dtype.type
    return (tap(0) + tap(4)) * dtype(1 / 16) + (tap(1) + tap(3)) * dtype(4 / 16) + tap(2) * dtype(6 / 16)


def _expand_axis(image: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Inverse of the subsampling in :func:`_reduce_axis` along ``axis``, to ``size`` samples:
    zeros between the samples, interpolated with twice the kernel (mirror boundaries), computed
    as its two phases: even outputs (x[i−1] + 6·x[i] + x[i+1])/8, odd ones (x[i] + x[i+1])/2."""
    n = image.shape[axis]
    if n < 2:
        rows = np.zeros((*image.shape[:axis], size, *image.shape[axis + 1 :]), image.dtype)
        _along(rows, slice(None, None, 2), axis)[...] = image
        return ndimage.correlate1d(rows, (2.0 * _KERNEL).astype(image.dtype), axis=axis, mode="mirror")
    # the zero-filled signal mirrored at its ends: x[-1] = x[1]; past the end x[n] = x[n-2] (odd
    # size) or x[n-1] (even size, where the last output sample is a zero)
    right = slice(n - 2, n - 1) if size % 2 else slice(n - 1, n)
    padded = np.concatenate([_along(image, slice(1, 2), axis), image, _along(image, right, axis)], axis=axis)
    dtype = image.dtype.type
    even = (_along(padded, slice(0, n), axis) + _along(padded, slice(2, n + 2), axis)) * dtype(
        1 / 8
    ) + _along(padded, slice(1, n + 1), axis) * dtype(6 / 8)
    half = size // 2
    odd = (_along(padded, slice(1, half + 1), axis) + _along(padded, slice(2, half + 2), axis)) * dtype(0.5)
    out = np.empty((*image.shape[:axis], size, *image.shape[axis + 1 :]), image.dtype)
    _along(out, slice(0, None, 2), axis)[...] = even
    _along(out, slice(1, None, 2), axis)[...] = odd
    return out


def _reduce(image: np.ndarray) -> np.ndarray:
    """Low-pass with the 5-tap kernel and keep every second row and column: ⌈n/2⌉ per axis."""
    return _reduce_axis(_reduce_axis(image, 0), 1)


def _expand(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Inverse of the subsampling in :func:`_reduce`, to ``shape`` (Y, X) (odd sizes included)."""
    return _expand_axis(_expand_axis(image, 0, shape[0]), 1, shape[1])


def gaussian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """``levels + 1`` images, full size first, each the :func:`_reduce` of the one before."""
    pyramid = [image]
    for _ in range(levels):
        pyramid.append(_reduce(pyramid[-1]))
    return pyramid


def laplacian_pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Band-pass details, full size first, and the low-pass residual last; collapsing it
    (:func:`collapse`) gives ``image`` back up to float rounding."""
    bands = []
    current = image
    for _ in range(levels):
        smaller = _reduce(current)
        bands.append(current - _expand(smaller, current.shape[:2]))
        current = smaller
    bands.append(current)
    return bands


def collapse(pyramid: list[np.ndarray]) -> np.ndarray:
    """The image a Laplacian pyramid describes."""
    image = pyramid[-1]
    for detail in reversed(pyramid[:-1]):
        image = _expand(image, detail.shape[:2]) + detail
    return image


def _work_dtype(dtype: np.dtype) -> type:
    return np.float64 if dtype == np.float64 else np.float32


def _check_mode(mode: str) -> None:
    if mode not in COMPOSITIONS:
        raise ValueError(f"unknown composition {mode!r}; choose from {COMPOSITIONS}")


def _check_options(levels: int | None, soften: float) -> None:
    if levels is not None and levels < 0:
        raise ValueError(f"levels must be ≥ 0 or None (automatic), got {levels}")
    if not soften >= 0.0:
        raise ValueError(f"soften must be ≥ 0 pixels, got {soften}")


def _check_dtype(image: np.ndarray, name: str) -> None:
    if image.dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} has unsupported dtype {image.dtype}; use uint8, uint16, float32 or float64")
    if not (image.ndim == 2 or image.ndim == 3):
        raise ValueError(f"{name} must be (Y, X) or (Y, X, C), got shape {image.shape}")


def _to_output(values: np.ndarray, dtype: np.dtype, low: float, high: float) -> np.ndarray:
    """Round and clip to an integer dtype's range, or clip a float result to [low, high]."""
    if dtype.kind == "u":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return np.clip(values, low, high).astype(dtype)


def _weight_pyramid(weight: np.ndarray, levels: int, soften: float, dtype: type) -> list[np.ndarray]:
    weight = weight.astype(dtype, copy=False)
    if soften > 0:
        weight = ndimage.gaussian_filter(weight, soften, mode="mirror")
    return gaussian_pyramid(weight, levels)


def _accumulate(
    blended: list[np.ndarray] | None,
    image: np.ndarray,
    weights: list[np.ndarray],
    levels: int,
) -> list[np.ndarray]:
    """Add one source's weighted Laplacian pyramid to ``blended`` (created on first use)."""
    bands = laplacian_pyramid(image, levels)
    if image.ndim == 3:
        weights = [w[..., None] for w in weights]
    if blended is None:
        return [band * weight for band, weight in zip(bands, weights, strict=True)]
    for total, band, weight in zip(blended, bands, weights, strict=True):
        total += band * weight
    return blended


def compose_pair(
    image_a: np.ndarray,
    image_b: np.ndarray,
    decision_map: np.ndarray,
    *,
    mode: str = DEFAULT_COMPOSITION,
    levels: int | None = None,
    soften: float = PAIR_SOFTEN,
) -> np.ndarray:
    """The fused image of a pair from its decision map.

    ``image_a``/``image_b``: (Y, X) or (Y, X, C), same shape, one of uint8, uint16, float32,
    float64. ``decision_map``: (Y, X), bool (True = take A) or float weights of A in [0, 1].
    ``mode``: ``copy`` (``np.where``; a float map is thresholded at 0.5) or ``pyramid``
    (multi-resolution blending with ``levels`` levels, None = :func:`auto_levels`; the weight
    map is first smoothed by a Gaussian of ``soften`` pixels, 0 = off). Returns the inputs'
    shape and dtype.
    """
    _check_mode(mode)
    _check_options(levels, soften)
    a, b = np.asarray(image_a), np.asarray(image_b)
    _check_dtype(a, "image A")
    if a.shape != b.shape or a.dtype != b.dtype:
        raise ValueError(f"images A and B differ: {a.shape} {a.dtype} vs {b.shape} {b.dtype}")
    decision = np.asarray(decision_map)
    if decision.shape != a.shape[:2]:
        raise ValueError(f"decision map is {decision.shape}, images are {a.shape[:2]}")
    if mode == "copy":
        take_a = decision if decision.dtype == bool else decision > 0.5
        return np.where(take_a if a.ndim == 2 else take_a[..., None], a, b)
    work = _work_dtype(a.dtype)
    n_levels = auto_levels(a.shape) if levels is None else levels
    weight_a = _weight_pyramid(decision, n_levels, soften, work)
    weight_b = [1.0 - w for w in weight_a]
    blended = _accumulate(None, a.astype(work), weight_a, n_levels)
    del weight_a
    blended = _accumulate(blended, b.astype(work), weight_b, n_levels)
    low = float(min(a.min(), b.min())) if a.dtype.kind == "f" else 0.0
    high = float(max(a.max(), b.max())) if a.dtype.kind == "f" else 0.0
    return _to_output(collapse(blended), a.dtype, low, high)


def compose_stack(
    stack: np.ndarray,
    depth_map: np.ndarray,
    *,
    mode: str = DEFAULT_COMPOSITION,
    levels: int | None = None,
    soften: float = STACK_SOFTEN,
) -> np.ndarray:
    """The fused image of a focal stack from its depth map.

    ``stack``: (Z, Y, X) or (Z, Y, X, C), any supported dtype (a memory-mapped array is read
    one slice at a time). ``depth_map``: (Y, X) integer slice index per pixel. ``copy`` takes
    every pixel from the slice the depth map names; ``pyramid`` blends all slices with the
    one-hot weights ``depth_map == z`` (smoothed by a Gaussian of ``soften`` pixels first;
    2 px by default, which blends slices that neighbour in the image, not in z),
    ``levels`` as in :func:`compose_pair`. Slices the depth map never names are not read.
    Returns the stack's shape without the z axis, in its dtype.
    """
    _check_mode(mode)
    _check_options(levels, soften)
    if not hasattr(stack, "shape") or len(stack.shape) not in (3, 4):
        raise ValueError("stack must be a (Z, Y, X) or (Z, Y, X, C) array")
    depth = np.asarray(depth_map)
    if depth.shape != tuple(stack.shape[1:3]):
        raise ValueError(f"depth map is {depth.shape}, slices are {tuple(stack.shape[1:3])}")
    if depth.dtype.kind not in "ui":
        raise TypeError(f"depth map must hold integer slice indices, got {depth.dtype}")
    if depth.size and (depth.min() < 0 or depth.max() >= stack.shape[0]):
        raise ValueError(f"depth map names slices outside 0…{stack.shape[0] - 1}")
    dtype = np.dtype(stack.dtype)
    if dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(f"stack has unsupported dtype {dtype}; use uint8, uint16, float32 or float64")
    used = np.unique(depth)
    if mode == "copy":
        fused = np.empty(tuple(stack.shape[1:]), dtype=dtype)
        for z in used:
            chosen = depth == z
            fused[chosen] = np.asarray(stack[int(z)])[chosen]
        return fused
    work = _work_dtype(dtype)
    n_levels = auto_levels(stack.shape[1:3]) if levels is None else levels
    blended: list[np.ndarray] | None = None
    low, high = np.inf, -np.inf
    for z in used:
        plane = np.asarray(stack[int(z)])
        if dtype.kind == "f":
            low, high = min(low, float(plane.min())), max(high, float(plane.max()))
        weights = _weight_pyramid(depth == z, n_levels, soften, work)
        blended = _accumulate(blended, plane.astype(work), weights, n_levels)
    assert blended is not None  # the depth map names at least one slice
    return _to_output(collapse(blended), dtype, low, high)
