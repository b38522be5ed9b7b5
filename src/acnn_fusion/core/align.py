"""Drift correction for focal stacks: one translation per slice by phase correlation.

Focus breathing and stage drift shift slices against each other. Each slice is registered to
its neighbour (neighbours differ least in focus), the shifts are chained to the middle slice,
and every slice is resampled onto the middle slice's grid before fusion.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from acnn_fusion.core.imageops import scratch_array


class Planes(Protocol):
    """Anything that hands out (Y, X) planes by index: an array, or a lazy view of a stack."""

    def __len__(self) -> int: ...

    def __getitem__(self, z: int) -> np.ndarray: ...


def estimate_shifts(grey: Planes, upsample: int = 10) -> np.ndarray:
    """Z grey planes → (Z, 2) float shifts (dy, dx) that move each slice onto the middle one.

    ``grey``: (Y, X) planes by index (an array, or a lazy view such as
    :class:`~acnn_fusion.core.stack.FocusImage`); two are held at a time.
    """
    from skimage.filters import window

    n = len(grey)
    taper = None
    previous = None
    steps = np.zeros((n, 2))
    for z in range(n):
        plane = np.asarray(grey[z], dtype=np.float64)
        if taper is None:
            # a Hann window removes the wrap-around edge; plain (not phase-normalised)
            # correlation stays reliable when the two slices are blurred differently
            taper = window("hann", plane.shape)
        plane = (plane - plane.mean()) * taper
        if previous is not None:  # the shift that registers slice z onto slice z-1
            steps[z], _, _ = phase_cross_correlation(
                previous, plane, upsample_factor=upsample, normalization=None
            )
        previous = plane
    chained = np.cumsum(steps, axis=0)  # onto slice 0
    return chained - chained[n // 2]


def apply_shifts(stack: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Resample each slice of a (Z, Y, X[, C]) stack by its (dy, dx); same dtype, edges repeated.

    Slice by slice into a :func:`~acnn_fusion.core.imageops.scratch_array`, so a large
    stack is not held in memory twice.
    """
    out = scratch_array(stack.shape, stack.dtype)
    for z, (dy, dx) in enumerate(shifts):
        offset = (dy, dx) + (0,) * (stack.ndim - 3)
        moved = ndimage.shift(np.asarray(stack[z], dtype=np.float64), offset, order=1, mode="nearest")
        if np.issubdtype(stack.dtype, np.integer):
            info = np.iinfo(stack.dtype)
            moved = np.clip(np.round(moved), info.min, info.max)
        out[z] = moved.astype(stack.dtype)
    return out
