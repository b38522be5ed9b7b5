"""Fold a focal stack into one all-in-focus image and a depth map.

Two strategies:

``features`` (default)
    Every slice goes through the network branch once, and so does one reference: the
    mean grey image of the stack. The first fully connected layer is linear in the
    concatenated features, so each image's contribution to it is computed once
    (:meth:`Head.project`) and a slice is compared with the reference, both ways round, at
    the cost of an addition and a 1×1 layer. Each slice gets, per 16×16 patch, the
    log-odds that it is sharper than the mean image; each pixel averages the log-odds of
    the patches covering it (the paper's focus-map averaging) and takes the slice with the
    highest. No near-tie between neighbouring slices is ever turned into a hard decision,
    which matters in finely sampled, noisy stacks. ``confidence`` is the share of the
    covering patches whose own best slice is the pixel's: near 1 where the patches agree
    (structure in focus), low where each patch picks another slice (noise, no structure).
``pairwise``
    The paper's fold: fuse slices 1 and 2 with the full pair pipeline (focus map,
    threshold, small-region removal), then the result with slice 3, and so on, tracking
    the source slice of every pixel. Costs two branch passes per slice and accumulates
    hard decisions; kept for comparison. ``pairwise-tree`` folds the same way as a balanced
    tree (1+2, 3+4, …, then the results), so no slice passes through more than ⌈log2 Z⌉ folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from acnn_fusion.core.align import apply_shifts, estimate_shifts
from acnn_fusion.core.imageops import GREY_WEIGHTS, SUPPORTED_DTYPES, to_unit_range, unit_range_bounds
from acnn_fusion.core.inference import (
    ProgressCallback,
    autocast,
    compute_focus_map,
    grid_to_pixels,
    patch_average_blocks,
    prepare,
    resolve_precision,
    score_tiles,
    select_device,
    to_input,
)
from acnn_fusion.core.model import ACNN, PATCH_SIZE, SCORE_STRIDE, score_map_shape
from acnn_fusion.core.pipeline import FusionSettings, decide
from acnn_fusion.core.weights import load_model
from acnn_fusion.options import STRATEGIES, FusionOptions

__all__ = ["STRATEGIES", "FocusImage", "StackResult", "fuse_stack"]


@dataclass
class StackResult:
    """Result of :func:`fuse_stack`."""

    fused: np.ndarray  # the stack's shape without the z axis (time first), same dtype
    depth_map: np.ndarray  # uint16 ([T,] Y, X): index of the source slice of each pixel
    confidence: np.ndarray  # float32 ([T,] Y, X) in [0, 1]
    strategy: str
    shifts: np.ndarray | None = None  # (Z, 2) (dy, dx) applied per slice with align=True


#: the most slices a depth map (uint16) can index
MAX_SLICES = 65_535


def _standardise(stack: np.ndarray, axis: int, channel_axis: int | None) -> np.ndarray:
    """Move z to the front and channels (if any) to the back: (Z, Y, X[, C])."""
    if not isinstance(stack, np.ndarray):
        raise TypeError(f"stack must be a numpy array, got {type(stack).__name__}")
    if stack.dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(f"stack has unsupported dtype {stack.dtype}; use uint8, uint16, float32 or float64")
    ndim = stack.ndim
    if ndim == 2:
        raise ValueError(
            f"stack is one (Y, X) image {stack.shape}, not a focal stack; give it a focus axis: (Z, Y, X)"
        )
    if ndim not in (3, 4):
        raise ValueError(
            f"stack must be (Z, Y, X) or (Z, Y, X, C) after choosing axes, got {ndim}-D shape {stack.shape}"
        )
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a {ndim}-D stack")
    axis %= ndim
    if channel_axis is not None:
        if not -ndim <= channel_axis < ndim:
            raise ValueError(f"channel_axis {channel_axis} is out of range for a {ndim}-D stack")
        channel_axis %= ndim
        if channel_axis == axis:
            raise ValueError("axis and channel_axis must differ")
        stack = np.moveaxis(stack, [axis, channel_axis], [0, -1])
    else:
        stack = np.moveaxis(stack, axis, 0)
        if stack.ndim == 4 and stack.shape[-1] not in (3, 4):
            raise ValueError(
                f"4-D stack {stack.shape} needs channel_axis (or an RGB last axis of length 3 or 4)"
            )
    if stack.shape[0] < 1:
        raise ValueError("stack has no slices")
    if stack.shape[0] > MAX_SLICES:
        raise ValueError(
            f"stack has {stack.shape[0]:,} slices; at most {MAX_SLICES:,} are supported (uint16 depth map)"
        )
    if stack.shape[1] < PATCH_SIZE or stack.shape[2] < PATCH_SIZE:
        raise ValueError(f"slices are {stack.shape[1]}×{stack.shape[2]}, smaller than a 16×16 patch")
    if stack.dtype.kind == "f" and not all(np.isfinite(plane).all() for plane in stack):
        raise ValueError("stack contains NaN or infinite values")  # checked per slice: bounded memory
    return stack


class FocusImage:
    """The grey image focus is detected on, computed block by block from a (Z, Y, X[, C]) stack.

    Luminance for uint8 RGB, ``detect_channel`` if given, else the mean of the channels each
    scaled to [0, 1]; every slice shares one robust intensity scale. Nothing stack-sized is
    allocated, so a memory-mapped stack is read one tile at a time.
    """

    def __init__(self, stack: np.ndarray, detect_channel: int | None = None) -> None:
        self.stack = stack
        self.shape = stack.shape[:3]
        channels: list[int | None]
        if stack.ndim == 3:
            self.mode, channels = "grey", [None]
        elif detect_channel is not None:
            self.mode, channels = "channel", [detect_channel]
        elif stack.shape[-1] in (3, 4) and stack.dtype == np.uint8:
            self.mode, channels = "luminance", []
        else:  # independent channels (fluorescence)
            self.mode, channels = "mean", [*range(stack.shape[-1])]
        self.channels = channels
        self.bounds = [unit_range_bounds(self._sample(c), stack.dtype) for c in channels]

    def _sample(self, channel: int | None) -> np.ndarray:
        """About 250,000 values on a regular grid through every slice (25 in each 0.01 % tail)."""
        n_slices, height, width = self.shape
        step = max(1, int(np.ceil(np.sqrt(n_slices * height * width / 250_000))))
        planes = [self.stack[z, ::step, ::step] for z in range(n_slices)]
        return np.concatenate([(p if channel is None else p[..., channel]).ravel() for p in planes])

    def block(self, z: int | slice, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
        """float32 [0, 1] grey of slice(s) ``z`` within ``rows``, ``cols``."""
        data = self.stack[z, rows, cols]
        if self.mode == "luminance":
            return (data[..., :3].astype(np.float32) @ GREY_WEIGHTS.astype(np.float32)) / np.float32(255.0)
        if self.mode == "grey":
            return to_unit_range(data, self.bounds[0])
        if self.mode == "channel":
            return to_unit_range(data[..., self.channels[0]], self.bounds[0])
        scaled = [to_unit_range(data[..., c], b) for c, b in zip(self.channels, self.bounds, strict=True)]
        return np.asarray(np.mean(scaled, axis=0, dtype=np.float32))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, z: int) -> np.ndarray:
        """The float32 grey of slice ``z``."""
        if not -len(self) <= z < len(self):
            raise IndexError(f"slice {z} is out of range for {len(self)} slices")
        return self.block(z)


@torch.inference_mode()
def _soft_fold(
    model: ACNN,
    grey: FocusImage,
    device: torch.device,
    tile: int,
    precision: str,
    progress: ProgressCallback | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per 2×2 pixel block, the slice that most clearly beats the stack's mean image.

    Every slice is scored against one reference, the mean grey image of the stack, as
    log-odds ½[logit(slice vs mean) − logit(mean vs slice)]; each block averages the
    log-odds of the 16×16 patches covering it (the paper's focus-map averaging) and takes
    the slice with the highest. Returns ``(slice per block, share of the covering patches
    whose own highest slice is that one)``, both (h + 7, w + 7).
    """
    n_slices, height, width = grey.shape
    h, w = score_map_shape(height, width)
    best_slice = np.zeros((h + 7, w + 7), dtype=np.uint16)
    agreement = np.zeros((h + 7, w + 7), dtype=np.float32)
    tiles = score_tiles(height, width, tile, halo=7)  # tiles of the block grid
    model = prepare(model, device)
    dtype = resolve_precision(precision, device)
    done, total = 0, len(tiles) * (n_slices + 1)
    for block_rows, block_cols, in_rows, in_cols in tiles:
        first_row, first_col = in_rows.start // SCORE_STRIDE, in_cols.start // SCORE_STRIDE
        mean_image = np.zeros((in_rows.stop - in_rows.start, in_cols.stop - in_cols.start), np.float32)
        for z in range(n_slices):
            mean_image += grey.block(z, in_rows, in_cols)
        mean_image /= n_slices
        with autocast(device, dtype):
            reference = model.branch(to_input(mean_image[None], device))
            # fc1's bias added once here, not per slice (a broadcast add is slow on channels-last)
            reference_a = model.head.project(reference, as_a=True) + model.head.fc1_bias()
            reference_b = model.head.project(reference, as_a=False) + model.head.fc1_bias()
        done += 1
        tile_best = tile_odds = patch_best = patch_odds = None
        for z in range(n_slices):
            with autocast(device, dtype):
                features = model.branch(to_input(grey.block(slice(z, z + 1), in_rows, in_cols), device))
                first = model.head.classify(model.head.project(features, as_a=True) + reference_b)[0]
                second = model.head.classify(model.head.project(features, as_a=False) + reference_a)[0]
            odds = (((first[0] - first[1]) - (second[0] - second[1])).float() / 2).cpu().numpy()
            averaged = patch_average_blocks(odds, (first_row, first_col), (block_rows, block_cols), (h, w))
            if tile_odds is None or tile_best is None or patch_odds is None or patch_best is None:
                tile_odds, tile_best = averaged, np.zeros(averaged.shape, np.uint16)
                patch_odds, patch_best = odds, np.zeros(odds.shape, np.int32)
            else:
                better = averaged > tile_odds
                tile_odds = np.where(better, averaged, tile_odds)
                tile_best[better] = z
                better_patch = odds > patch_odds
                patch_odds = np.where(better_patch, odds, patch_odds)
                patch_best[better_patch] = z
            done += 1
            if progress is not None:
                progress(done, total)
        assert tile_best is not None and patch_best is not None  # n_slices ≥ 1
        best_slice[block_rows, block_cols] = tile_best
        agreement[block_rows, block_cols] = _agreement(
            patch_best, tile_best, first_row, first_col, block_rows, block_cols
        )
    return best_slice, agreement


def _agreement(
    patch_best: np.ndarray,
    block_best: np.ndarray,
    first_row: int,
    first_col: int,
    rows: slice,
    cols: slice,
) -> np.ndarray:
    """For each block, the share of its covering patches whose own best slice is the block's."""
    padded = np.pad(patch_best, 7, constant_values=-1)  # -1: no patch there
    row0, col0 = rows.start - first_row, cols.start - first_col
    n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
    agreeing = np.zeros(block_best.shape, np.float32)
    covering = np.zeros(block_best.shape, np.float32)
    for dr in range(8):
        for dc in range(8):
            window = padded[row0 + dr : row0 + dr + n_rows, col0 + dc : col0 + dc + n_cols]
            agreeing += window == block_best
            covering += window >= 0
    return agreeing / covering


def _pairwise(
    model: ACNN,
    grey: FocusImage,
    settings: FusionSettings,
    device: torch.device,
    tile: int,
    precision: str,
    progress: ProgressCallback | None,
    tree: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold with the full pair pipeline: left to right, or as a balanced tree of pairs.

    Slices are read as they are needed; the tree is built depth first (1+2, 3+4, then
    (1+2)+(3+4), …), so at most ⌈log2 Z⌉ + 1 partial results are held at once.
    """
    shape = grey.shape[1:]
    merges, total = 0, len(grey) - 1

    def leaf(z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # (grey image, source slice per pixel, confidence of the last decision)
        return grey.block(z), np.full(shape, z, np.uint16), np.ones(shape, np.float32)

    def merge(first, second):
        nonlocal merges
        focus = compute_focus_map(model, first[0], second[0], device=device, tile=tile, precision=precision)
        keep = decide(focus, settings)
        merges += 1
        if progress is not None:
            progress(merges, total)
        return (
            np.where(keep, first[0], second[0]),
            np.where(keep, first[1], second[1]),
            np.where(keep, focus, 1.0 - focus).astype(np.float32),
        )

    if not tree:
        folded = leaf(0)
        for z in range(1, len(grey)):
            folded = merge(folded, leaf(z))
        return folded[1], folded[2]
    pending: list[tuple[int, tuple]] = []  # (level, partial result), levels strictly decreasing
    for z in range(len(grey)):
        level, item = 0, leaf(z)
        while pending and pending[-1][0] == level:
            item, level = merge(pending.pop()[1], item), level + 1
        pending.append((level, item))
    folded = pending.pop()[1]
    while pending:  # leftovers of a stack whose size is not a power of two, right to left
        folded = merge(pending.pop()[1], folded)
    return folded[1], folded[2]


def _gather(standard: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Every pixel (all channels) from the slice ``depth`` names, reading one slice at a time."""
    fused = np.empty(standard.shape[1:], dtype=standard.dtype)
    for z in np.unique(depth):
        chosen = depth == z
        fused[chosen] = standard[z][chosen]
    return fused


def _fuse_timelapse(
    stack: np.ndarray,
    options: FusionOptions,
    time_axis: int,
    axis: int,
    channel_axis: int | None,
    progress: ProgressCallback | None,
) -> StackResult:
    """Fold each time point with :func:`fuse_stack`; axes are renumbered per time point."""
    if not isinstance(stack, np.ndarray):
        raise TypeError(f"stack must be a numpy array, got {type(stack).__name__}")
    ndim = stack.ndim
    if not -ndim <= time_axis < ndim:
        raise ValueError(f"time_axis {time_axis} is out of range for a {ndim}-D stack")
    for name, value in (("axis", axis), ("channel_axis", channel_axis)):
        if value is not None and not -ndim <= value < ndim:
            raise ValueError(f"{name} {value} is out of range for a {ndim}-D stack")
    t = time_axis % ndim
    if t in (axis % ndim, None if channel_axis is None else channel_axis % ndim):
        raise ValueError("time_axis must differ from axis and channel_axis")

    def renumber(a: int) -> int:
        return a % ndim if a % ndim < t else a % ndim - 1

    per_time = [
        fuse_stack(
            stack.take(i, axis=t),
            options,
            axis=renumber(axis),
            channel_axis=None if channel_axis is None else renumber(channel_axis),
            progress=progress,
        )
        for i in range(stack.shape[t])
    ]
    return StackResult(
        fused=np.stack([r.fused for r in per_time]),
        depth_map=np.stack([r.depth_map for r in per_time]),
        confidence=np.stack([r.confidence for r in per_time]),
        strategy=per_time[0].strategy,
    )


def fuse_stack(
    stack: np.ndarray,
    options: FusionOptions | None = None,
    *,
    axis: int = 0,
    channel_axis: int | None = None,
    time_axis: int | None = None,
    progress: ProgressCallback | None = None,
    **changes: Any,
) -> StackResult:
    """Fold a focal stack into one all-in-focus image.

    ``stack``: (Z, Y, X), (Z, Y, X, 3|4) RGB, or any order with ``axis`` (the focus axis)
    and ``channel_axis``; uint8, uint16, float32 or float64. With ``time_axis`` each time
    point is folded on its own and the results gain a leading T axis. ``options``
    (:class:`~acnn_fusion.options.FusionOptions`, defaults if omitted) with ``changes``
    applied, e.g. ``fuse_stack(s, strategy="pairwise", precision="fp32")``. Focus is detected
    on the luminance (RGB), on ``detect_channel``, or on the mean of the normalised channels;
    every channel is then copied from the chosen slice. ``align`` first corrects drift
    between slices (one translation per slice, :mod:`acnn_fusion.core.align`).
    ``threshold``/``min_region`` apply to the ``pairwise`` strategies. Returns a
    :class:`StackResult`.
    """
    options = (options or FusionOptions()).replace(**changes)
    settings = options.settings()
    if time_axis is not None:
        return _fuse_timelapse(stack, options, time_axis, axis, channel_axis, progress)
    standard = _standardise(stack, axis, channel_axis)
    detect_channel = options.detect_channel
    if detect_channel is not None and not (
        standard.ndim == 4 and -standard.shape[-1] <= detect_channel < standard.shape[-1]
    ):
        raise ValueError(f"detect_channel {detect_channel} does not name a channel of this stack")
    torch_device = select_device(options.device)
    resolve_precision(options.precision, torch_device)  # refuse an unknown precision before any work
    model = load_model(options.weights)
    grey = FocusImage(standard, detect_channel)
    shifts = None
    if options.align and len(grey) > 1:  # two grey slices at a time; the resampled stack may go to disk
        shifts = estimate_shifts(grey)
        standard = apply_shifts(standard, shifts)
        grey = FocusImage(standard, detect_channel)
    shape = grey.shape[1:]
    tile, precision, strategy = options.tile, options.precision, options.strategy
    if len(grey) == 1:
        depth = np.zeros(shape, np.uint16)
        confidence = np.ones(shape, np.float32)
    elif strategy == "features":
        best_slice, agreement = _soft_fold(model, grey, torch_device, tile, precision, progress)
        depth = grid_to_pixels(best_slice, shape)
        confidence = grid_to_pixels(agreement, shape)
    else:
        tree = strategy == "pairwise-tree"
        depth, confidence = _pairwise(
            model, grey, settings, torch_device, tile, precision, progress, tree=tree
        )
    fused = _gather(standard, depth)
    if channel_axis is not None:  # put the channels back where the caller had them
        ndim = stack.ndim
        position = channel_axis % ndim - (1 if channel_axis % ndim > axis % ndim else 0)
        fused = np.moveaxis(fused, -1, position)
    return StackResult(fused=fused, depth_map=depth, confidence=confidence, strategy=strategy, shifts=shifts)
