"""Drift correction for focal stacks: one translation per slice by phase correlation.

Focus breathing and stage drift shift slices against each other. Each slice is registered to
its neighbour (neighbours differ least in focus), the shifts are chained to the middle slice,
and every slice is resampled onto the middle slice's grid before fusion.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation


def estimate_shifts(grey: np.ndarray, upsample: int = 10) -> np.ndarray:
    """(Z, Y, X) → (Z, 2) float shifts (dy, dx) that move each slice onto the middle one."""
    from skimage.filters import window

    n = grey.shape[0]
    # a Hann window removes the wrap-around edge; plain (not phase-normalised) correlation
    # stays reliable when the two slices are blurred differently
    taper = window("hann", grey.shape[1:])
    planes = [(g - g.mean()) * taper for g in grey]
    steps = np.zeros((n, 2))
    for z in range(1, n):
        # shift that registers slice z onto slice z-1
        steps[z], _, _ = phase_cross_correlation(
            planes[z - 1], planes[z], upsample_factor=upsample, normalization=None
        )
    chained = np.cumsum(steps, axis=0)  # onto slice 0
    return chained - chained[n // 2]


def apply_shifts(stack: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Resample each slice of a (Z, Y, X[, C]) stack by its (dy, dx); same dtype, edges repeated."""
    out = np.empty_like(stack)
    for z, (dy, dx) in enumerate(shifts):
        offset = (dy, dx) + (0,) * (stack.ndim - 3)
        moved = ndimage.shift(stack[z].astype(np.float64), offset, order=1, mode="nearest")
        if np.issubdtype(stack.dtype, np.integer):
            info = np.iinfo(stack.dtype)
            moved = np.clip(np.round(moved), info.min, info.max)
        out[z] = moved.astype(stack.dtype)
    return out
