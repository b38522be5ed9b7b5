"""Drift and breathing correction for focal stacks.

Stage drift shifts slices against each other; focus breathing changes the magnification
from slice to slice; a stage may turn. Each slice is registered to its neighbour (neighbours
differ least in focus), the neighbour transforms are chained to the middle slice, and every
slice is resampled onto the middle slice's grid before fusion. ``translation``: one
phase-correlation shift per slice (:func:`estimate_shifts`); ``similarity`` / ``affine``:
phase correlation in a grid of windows and a robust least-squares fit of the model to their
displacements (:func:`estimate_transforms`).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from acnn_fusion.core.imageops import scratch_array
from acnn_fusion.options import ALIGN_MODELS  # motion models, each a superset of the one before


class Planes(Protocol):
    """Anything that hands out (Y, X) planes by index: an array, or a lazy view of a stack."""

    def __len__(self) -> int: ...

    def __getitem__(self, z: int) -> np.ndarray: ...


def _pair_shift(previous: np.ndarray, plane: np.ndarray, upsample: int) -> np.ndarray:
    """The (dy, dx) that registers ``plane`` onto ``previous`` (two (Y, X) planes): plain (not
    phase-normalised) cross correlation of the Hann-windowed planes, which stays reliable when
    the two are blurred differently; the window removes the wrap-around edge."""
    from skimage.filters import window

    taper = window("hann", plane.shape)
    a = (previous - previous.mean()) * taper
    b = (plane - plane.mean()) * taper
    shift, _, _ = phase_cross_correlation(a, b, upsample_factor=upsample, normalization=None)
    return np.asarray(shift, float)


def _neighbour_steps(grey: Planes, upsample: int = 10) -> np.ndarray:
    """(Z, 2) the shift that registers slice z onto slice z−1 (zero for slice 0)."""
    n = len(grey)
    previous = None
    steps = np.zeros((n, 2))
    for z in range(n):
        plane = np.asarray(grey[z], dtype=np.float64)
        if previous is not None:
            steps[z] = _pair_shift(previous, plane, upsample)
        previous = plane
    return steps


def estimate_shifts(grey: Planes, upsample: int = 10) -> np.ndarray:
    """Z grey planes → (Z, 2) float shifts (dy, dx) that move each slice onto the middle one.

    ``grey``: (Y, X) planes by index (an array, or a lazy view such as
    :class:`~acnn_fusion.core.stack.FocusImage`); two are held at a time.
    """
    n = len(grey)
    chained = np.cumsum(_neighbour_steps(grey, upsample), axis=0)  # onto slice 0
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


def _patch_grid(shape: tuple[int, int]) -> tuple[int, np.ndarray]:
    """Window edge and (N, 2) window centres (row, col): overlapping windows over the image."""
    height, width = shape
    window = int(min(256, max(32, 2 ** np.floor(np.log2(min(height, width) / 4)))))
    rows = np.linspace(window / 2, height - window / 2, int(np.clip(2 * height // window - 1, 3, 9)))
    cols = np.linspace(window / 2, width - window / 2, int(np.clip(2 * width // window - 1, 3, 9)))
    centres = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    return window, np.round(centres).astype(int)


def _local_shifts(
    reference: np.ndarray, moving: np.ndarray, window: int, centres: np.ndarray, upsample: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per window: the (dy, dx) that registers ``moving`` onto ``reference`` there, and whether
    the window has texture enough to trust it (standard deviation ≥ ¼ of the median window's)."""
    from skimage.filters import window as make_window

    taper = make_window("hann", (window, window))
    half = window // 2
    shifts = np.zeros((len(centres), 2))
    spread = np.zeros(len(centres))
    for i, (r, c) in enumerate(centres):
        a = reference[r - half : r - half + window, c - half : c - half + window]
        b = moving[r - half : r - half + window, c - half : c - half + window]
        a, b = (a - a.mean()) * taper, (b - b.mean()) * taper
        spread[i] = min(a.std(), b.std())
        if spread[i] > 0:
            shifts[i], _, _ = phase_cross_correlation(a, b, upsample_factor=upsample, normalization=None)
    return shifts, spread >= 0.25 * np.median(spread) if spread.any() else spread > 0


def _fit(source: np.ndarray, target: np.ndarray, model: str) -> np.ndarray:
    """Least-squares 3×3 homogeneous transform with target ≈ M · source ((N, 2) row, col points)."""
    n = len(source)
    if model == "affine":
        design = np.zeros((2 * n, 6))
        design[0::2, 0:2], design[0::2, 2] = source, 1
        design[1::2, 3:5], design[1::2, 5] = source, 1
        p = np.linalg.lstsq(design, target.reshape(-1), rcond=None)[0]
        return np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]], [0, 0, 1]])
    # similarity: [[a, -b], [b, a]] (scale and rotation) plus a translation
    design = np.zeros((2 * n, 4))
    design[0::2] = np.column_stack([source[:, 0], -source[:, 1], np.ones(n), np.zeros(n)])
    design[1::2] = np.column_stack([source[:, 1], source[:, 0], np.zeros(n), np.ones(n)])
    a, b, tr, tc = np.linalg.lstsq(design, target.reshape(-1), rcond=None)[0]
    return np.array([[a, -b, tr], [b, a, tc], [0, 0, 1]])


def _robust_fit(source: np.ndarray, target: np.ndarray, model: str) -> np.ndarray | None:
    """:func:`_fit` with outliers trimmed (residual > max(0.5 px, 3 robust σ)), three rounds;
    ``None`` where fewer than 6 (similarity) or 8 (affine) points stay."""
    needed = 8 if model == "affine" else 6
    keep = np.ones(len(source), bool)
    matrix = None
    for _ in range(3):
        if keep.sum() < needed:
            return None
        matrix = _fit(source[keep], target[keep], model)
        predicted = source @ matrix[:2, :2].T + matrix[:2, 2]
        residual = np.linalg.norm(predicted - target, axis=1)
        scale = 1.4826 * np.median(residual[keep])
        keep = residual <= max(0.5, 3 * scale)
    return matrix


def _pair_transform(
    reference: np.ndarray,
    moving: np.ndarray,
    model: str,
    upsample: int,
    window: int,
    centres: np.ndarray,
    rounds: int = 4,
    initial: np.ndarray | None = None,
) -> np.ndarray:
    """3×3 map of ``reference``'s (row, col, 1) onto ``moving``'s, in image coordinates.

    Cross-correlating two windows cut at the same place underestimates their displacement
    (the windows overlap most at zero shift), so ``moving`` is resampled by the estimate so
    far and the residual estimated again, up to ``rounds`` times (until it moves no window
    by more than 0.02 px). ``initial``: an estimate to start from (a coarser level's).
    """
    middle = (np.array(reference.shape, float) - 1) / 2
    to_centre = np.eye(3)
    to_centre[:2, 2] = middle
    current = np.eye(3) if initial is None else initial.copy()
    warped = moving
    if initial is not None:
        warped = ndimage.affine_transform(
            moving, current[:2, :2], offset=current[:2, 2], order=1, mode="nearest"
        )
    for round_ in range(rounds):
        shifts, textured = _local_shifts(reference, warped, window, centres, upsample)
        source = centres[textured] - middle
        target = source - shifts[textured]  # a point of the reference sits at p − shift there
        residual = _robust_fit(source, target, model) if textured.sum() else None
        if residual is None:  # too few textured windows agree on the model: a translation
            residual = np.eye(3)
            residual[:2, 2] = -np.median(shifts[textured], axis=0) if textured.any() else 0.0
        residual = to_centre @ residual @ np.linalg.inv(to_centre)
        current = current @ residual
        moved = centres @ residual[:2, :2].T + residual[:2, 2] - centres
        if np.abs(moved).max() < 0.02 or round_ == rounds - 1:
            break
        warped = ndimage.affine_transform(
            moving, current[:2, :2], offset=current[:2, 2], order=1, mode="nearest"
        )
    return current


#: Frames whose longer side exceeds this are first registered on block means (a power-of-two
#: reduction that brings the longer side to at most this), then refined at full size.
COARSE_SIZE = 512
#: Refinement rounds at full size after the coarse estimate.
REFINE_ROUNDS = 1


def _coarse_factor(shape: tuple[int, ...]) -> int:
    """The power-of-two reduction for the coarse estimate (1: none), keeping ≥ 128 px a side."""
    factor = 1
    while max(shape[:2]) / factor > COARSE_SIZE and min(shape[:2]) / (2 * factor) >= 128:
        factor *= 2
    return factor


def _block_mean(plane: np.ndarray, factor: int) -> np.ndarray:
    h, w = plane.shape[0] // factor * factor, plane.shape[1] // factor * factor
    return plane[:h, :w].reshape(h // factor, factor, w // factor, factor).mean((1, 3))


def _coarse_to_fine(
    reference: np.ndarray, moving: np.ndarray, model: str, upsample: int, window: int, centres: np.ndarray
) -> np.ndarray:
    """:func:`_pair_transform`, estimated first on block means of large frames (a few rounds on
    a frame of at most :data:`COARSE_SIZE` px), then refined on the full frames from there in
    :data:`REFINE_ROUNDS` round(s): the window correlations at full size cost most."""
    factor = _coarse_factor(reference.shape)
    if factor == 1:
        return _pair_transform(reference, moving, model, upsample, window, centres)
    small_reference, small_moving = _block_mean(reference, factor), _block_mean(moving, factor)
    small_window, small_centres = _patch_grid(small_reference.shape)
    coarse = _pair_transform(small_reference, small_moving, model, upsample, small_window, small_centres)
    # a block mean's pixel i covers full pixels factor·i … factor·i + factor − 1
    scale = np.diag([float(factor), float(factor), 1.0])
    scale[:2, 2] = (factor - 1) / 2
    initial = scale @ coarse @ np.linalg.inv(scale)
    return _pair_transform(
        reference, moving, model, upsample, window, centres, rounds=REFINE_ROUNDS, initial=initial
    )


#: A neighbour pair keeps its similarity / affine fit only if the fit's scale, turn or shear
#: moves some image corner by at least this many pixels; otherwise it takes the translation.
MIN_MOTION = 1.0


def _linear_motion(transform: np.ndarray, shape: tuple[int, ...]) -> float:
    """The largest distance (px) the linear part of ``transform`` moves an image corner by,
    relative to the image centre (what a translation cannot do)."""
    half = (np.array(shape[:2], float) - 1) / 2
    corners = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]]) * half
    return float(np.abs(corners @ (transform[:2, :2] - np.eye(2)).T).max())


def estimate_transforms(grey: Planes, model: str = "similarity", upsample: int = 10) -> np.ndarray:
    """Z grey planes → (Z, 3, 3) transforms T_z that carry the middle slice's (row, col, 1) onto
    slice z's: resampling slice z at T_z · x puts it on the middle slice's grid.

    ``translation``: :func:`estimate_shifts` (one global phase correlation per neighbour).
    ``similarity`` (scale, rotation, translation: focus breathing, a turning stage) and
    ``affine``: each slice against its neighbour, phase correlation in a grid of overlapping
    windows, the model fitted to the window displacements by least squares with outliers
    trimmed and refined on the resampled slice (:func:`_pair_transform`; frames larger than
    :data:`COARSE_SIZE` first on block means, then refined at full size:
    :func:`_coarse_to_fine`), the neighbour transforms chained to the middle slice. A
    neighbour pair whose windows do not support the model (too few textured windows agree)
    falls back to the median window shift; one whose fit scales, turns or shears the image by
    less than :data:`MIN_MOTION` at the corners takes the translation-only estimate (so
    ``similarity`` equals ``translation`` on a stack without breathing; the global
    correlation is computed only for those pairs).
    """
    if model not in ALIGN_MODELS:
        raise ValueError(f"unknown align model {model!r}; choose from {ALIGN_MODELS}")
    n = len(grey)
    transforms = np.tile(np.eye(3), (n, 1, 1))
    if model == "translation":
        transforms[:, :2, 2] = -estimate_shifts(grey, upsample)
        return transforms
    steps = np.tile(np.eye(3), (n, 1, 1))  # steps[z]: slice z−1's coordinates → slice z's
    previous = None
    for z in range(n):
        plane = np.asarray(grey[z], dtype=np.float64)
        if previous is not None:
            window, centres = _patch_grid(plane.shape)
            step = _coarse_to_fine(previous, plane, model, upsample, window, centres)
            if _linear_motion(step, plane.shape) >= MIN_MOTION:
                steps[z] = step
            else:  # no scale or turn worth a pixel: the translation-only estimate
                steps[z, :2, 2] = -_pair_shift(previous, plane, upsample)
        previous = plane
    mid = n // 2
    for z in range(mid + 1, n):
        transforms[z] = steps[z] @ transforms[z - 1]
    for z in range(mid - 1, -1, -1):
        transforms[z] = np.linalg.inv(steps[z + 1]) @ transforms[z + 1]
    return transforms


def centre_shifts(transforms: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(Z, 2) the (dy, dx) each transform moves the image centre by (a translation's shift)."""
    middle = (np.array(shape, float) - 1) / 2
    return middle - (transforms[:, :2, :2] @ middle + transforms[:, :2, 2])


def apply_transforms(stack: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Resample slice z of a (Z, Y, X[, C]) stack at T_z · x (linear, edges repeated); same dtype.

    Pure translations go through :func:`apply_shifts`, so ``translation`` results are those of
    the translation-only alignment. Slice by slice into a scratch array.
    """
    linear = transforms[:, :2, :2]
    if np.allclose(linear, np.eye(2), atol=0, rtol=0):
        return apply_shifts(stack, -transforms[:, :2, 2])
    out = scratch_array(stack.shape, stack.dtype)
    for z, transform in enumerate(transforms):
        plane = np.asarray(stack[z], dtype=np.float64)
        channels = [plane] if plane.ndim == 2 else [plane[..., c] for c in range(plane.shape[-1])]
        moved = [
            ndimage.affine_transform(c, transform[:2, :2], offset=transform[:2, 2], order=1, mode="nearest")
            for c in channels
        ]
        result = moved[0] if plane.ndim == 2 else np.stack(moved, -1)
        if np.issubdtype(stack.dtype, np.integer):
            info = np.iinfo(stack.dtype)
            result = np.clip(np.round(result), info.min, info.max)
        out[z] = result.astype(stack.dtype)
    return out
