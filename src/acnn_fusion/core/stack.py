"""Fold a focal stack into one all-in-focus image and a depth map.

Two strategies:

``features`` (default)
    Every slice goes through the network branch once, and so does one reference: the
    mean grey image of the stack. The first fully connected layer is linear in the
    concatenated features, so each image's contribution to it is computed once
    (:meth:`Head.project`) and a slice is compared with the reference, both ways round, at
    the cost of an addition and a 1×1 layer. Each slice gets, per 16×16 patch, the
    log-odds that it is sharper than the mean image; each 2×2 block averages the log-odds of
    the patches covering it (the paper's focus-map averaging): a score volume. The volume is
    regularised on the whole block grid (:func:`_regularise`): blocks with clear evidence keep
    their best slice, blocks without (flat or dark regions, noise) and weak islands amid
    strong evidence for another depth take the depth interpolated from confident neighbours
    (a membrane, :func:`_membrane`); each block then takes the slice with the highest
    regularised score, and pixels along depth edges the slice whose interpolated scores are
    highest there (:func:`_pixel_depth`); depth boundaries that focus does not decide then
    move, by at most one slice, to where the neighbouring slices agree in brightness
    (``seams="agree"``, :func:`~acnn_fusion.core.seams.place_seams`), so that exact-copy
    composition shows smaller steps. No
    near-tie between neighbouring slices is ever turned into a hard decision, which matters
    in finely sampled, noisy stacks. ``confidence`` is near 1 where a block's own scores pick
    its depth and 0 where the depth is a guess taken from its neighbours.
``pairwise``
    The paper's fold: fuse slices 1 and 2 with the full pair pipeline (focus map,
    threshold, small-region removal), then the result with slice 3, and so on, tracking
    the source slice of every pixel. Costs two branch passes per slice and accumulates
    hard decisions; kept for comparison. ``pairwise-tree`` folds the same way as a balanced
    tree (1+2, 3+4, …, then the results), so no slice passes through more than ⌈log2 Z⌉ folds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from acnn_fusion.core.align import apply_transforms, centre_shifts, estimate_transforms
from acnn_fusion.core.compose import compose_stack
from acnn_fusion.core.geometry import PATCH_SIZE, SCORE_STRIDE, score_map_shape
from acnn_fusion.core.imageops import (
    GREY_WEIGHTS,
    SUPPORTED_DTYPES,
    scratch_array,
    to_unit_range,
    unit_range_bounds,
)
from acnn_fusion.core.inference import (
    Network,
    ProgressCallback,
    as_network,
    compute_focus_map,
    grid_to_pixels,
    open_network,
    patch_average_blocks,
    run_tiles,
    score_tiles,
)
from acnn_fusion.core.pipeline import FusionSettings, decide
from acnn_fusion.core.seams import place_seams, seam_tile
from acnn_fusion.options import DEFAULT_TILE, STRATEGIES, FusionOptions

if TYPE_CHECKING:
    import torch

    from acnn_fusion.core.model import ACNN

__all__ = ["STRATEGIES", "FocusImage", "StackResult", "fuse_stack"]


@dataclass
class StackResult:
    """Result of :func:`fuse_stack`."""

    fused: np.ndarray  # the stack's shape without the z axis (time first), same dtype
    depth_map: np.ndarray  # uint16 ([T,] Y, X): index of the source slice of each pixel
    confidence: np.ndarray  # float32 ([T,] Y, X) in [0, 1]
    strategy: str
    shifts: np.ndarray | None = None  # (Z, 2) (dy, dx) applied per slice with align=True
    # (Z, 3, 3) with align=True: slice z was resampled at transforms[z] · (row, col, 1)
    transforms: np.ndarray | None = None


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


def _score_volume(
    model: ACNN | Network,
    grey: FocusImage,
    device: torch.device | None,
    tile: int,
    precision: str,
    progress: ProgressCallback | None,
) -> np.ndarray:
    """The stack's score volume, built tile by tile.

    Every slice is scored against one reference, the mean grey image of the stack, as
    log-odds ½[logit(slice vs mean) − logit(mean vs slice)]; each 2×2 block averages the
    log-odds of the 16×16 patches covering it (the paper's focus-map averaging). Returns
    float32 (Z, h + 7, w + 7) block-averaged log-odds, a
    :func:`~acnn_fusion.core.imageops.scratch_array` (on disk when large). Every tile
    computes the patches and sums an untiled run does, in the same order.
    """
    n_slices, height, width = grey.shape
    h, w = score_map_shape(height, width)
    volume = scratch_array((n_slices, h + 7, w + 7), np.float32)
    tiles = score_tiles(height, width, tile, halo=7)  # tiles of the block grid
    network = as_network(model, device, precision)

    def score(network: Network, tile: tuple[slice, slice, slice, slice]) -> None:
        block_rows, block_cols, in_rows, in_cols = tile
        first_row, first_col = in_rows.start // SCORE_STRIDE, in_cols.start // SCORE_STRIDE
        mean_image = np.zeros((in_rows.stop - in_rows.start, in_cols.stop - in_cols.start), np.float32)
        for z in range(n_slices):
            mean_image += grey.block(z, in_rows, in_cols)
        mean_image /= n_slices
        reference = network.reference(mean_image)
        for z in range(n_slices):
            odds = network.slice_odds(grey.block(z, in_rows, in_cols), reference)
            volume[z, block_rows, block_cols] = patch_average_blocks(
                odds, (first_row, first_col), (block_rows, block_cols), (h, w)
            )

    for done in run_tiles(network, score, tiles):  # tiles on the network's concurrent copies
        if progress is not None:
            progress(done * (n_slices + 1), len(tiles) * (n_slices + 1))
    return volume


#: A block's evidence e (log-odds by which its best slice stands out of its slices' mean) at
#: which its own scores and its neighbours' count equally. Camera noise gives e ≈ 0.4–1 (the
#: light-sheet background), texture in focus 5–50.
EVIDENCE_SCALE = 2.0
#: The neighbours' depth takes over as 1 / (1 + (e / EVIDENCE_SCALE)**GATE_POWER).
GATE_POWER = 8.0
#: Strength (per slice², times ``depth_smoothing``) of the pull of a block without evidence
#: towards the depth interpolated from confident blocks.
PRIOR_STRENGTH = 10.0
#: Stiffness of the membranes (:func:`_membrane`) that interpolate depth: the smooth one
#: that fills blocks without evidence, and the close one that breaks near-ties.
SMOOTH_STIFFNESS, CLOSE_STIFFNESS = 20.0, 1.0
#: Near-tie breaking: a slice pays TIE_STRENGTH · min(u², TIE_CAP) (times
#: ``depth_smoothing``) for lying u slices from the close membrane's depth.
TIE_STRENGTH, TIE_CAP = 0.25, 4.0
#: Islands: a block whose slice lies more than max(ISOLATED_REACH, ISOLATED_SPREAD · s) slices
#: from the mean of the confident depths around it (Gaussian of LOCAL_SCALE blocks; s their
#: standard deviation) counts as confident only by 1 − 1 / (1 + (e / (RELATIVE_EVIDENCE · ē))
#: ** RELATIVE_POWER), ē the evidence-weighted mean evidence around it: a weak island amid
#: strong evidence for another depth (a defocused highlight's glow) follows its neighbours.
LOCAL_SCALE = 8.0
ISOLATED_SPREAD, ISOLATED_REACH = 2.5, 2.0
RELATIVE_EVIDENCE, RELATIVE_POWER = 0.5, 8.0
#: Conjugate-gradient steps per pyramid level of :func:`_membrane`, and on its coarsest level.
MEMBRANE_STEPS, COARSE_STEPS = 30, 300


def _expand_linear(values: np.ndarray, n: int, factor: int, axis: int) -> np.ndarray:
    """Linear interpolation of a grid reduced by ``factor`` back to the n sample centres on ``axis``."""
    m = values.shape[axis]
    position = np.clip((np.arange(n) + 0.5) / factor - 0.5, 0, m - 1)
    low = np.minimum(np.floor(position).astype(np.intp), max(m - 2, 0))
    high = np.minimum(low + 1, m - 1)
    frac = (position - low).astype(np.float32)
    shape = [1, 1]
    shape[axis] = n
    frac = frac.reshape(shape)
    out = np.take(values, low, axis=axis)
    out *= 1 - frac
    upper = np.take(values, high, axis=axis)
    upper *= frac
    out += upper
    return out


def _blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (σ in grid steps, edges repeated) of a (h, w) float32 grid.

    Wide blurs run on the grid reduced by block means (σ of 2–4 steps there) and are
    interpolated back linearly.
    """
    factor = int(2 ** np.floor(np.log2(max(1.0, sigma / 2))))
    if factor == 1:
        return ndimage.gaussian_filter(values, sigma, mode="nearest")
    h, w = values.shape
    padded = np.pad(values, ((0, -h % factor), (0, -w % factor)), mode="edge")
    small = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean((1, 3))
    small = ndimage.gaussian_filter(small, sigma / factor, mode="nearest")
    return _expand_linear(_expand_linear(small, h, factor, 0), w, factor, 1)


def _membrane_apply(depth: np.ndarray, weight: np.ndarray, stiffness: np.float32, out: np.ndarray) -> None:
    """out = (diag(weight) + stiffness · L) · depth, L the 4-neighbour graph Laplacian (free edges)."""
    np.multiply(weight, depth, out=out)
    step = depth[1:] - depth[:-1]
    step *= stiffness
    out[1:] += step
    out[:-1] -= step
    del step
    step = depth[:, 1:] - depth[:, :-1]
    step *= stiffness
    out[:, 1:] += step
    out[:, :-1] -= step


def _membrane_solve(
    depth: np.ndarray, rhs: np.ndarray, weight: np.ndarray, stiffness: np.float32, steps: int
) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients on :func:`_membrane_apply`, from ``depth``
    (updated in place; a few grid-sized buffers)."""
    diagonal = weight + stiffness * np.float32(4)
    diagonal[0] -= stiffness
    diagonal[-1] -= stiffness
    diagonal[:, 0] -= stiffness
    diagonal[:, -1] -= stiffness
    residual = np.empty_like(depth)
    _membrane_apply(depth, weight, stiffness, residual)
    np.subtract(rhs, residual, out=residual)
    direction = residual / diagonal
    image = np.empty_like(depth)
    product = float(np.vdot(residual, direction))
    for _ in range(steps):
        if product <= 1e-20:
            break
        _membrane_apply(direction, weight, stiffness, image)
        alpha = np.float32(product / float(np.vdot(direction, image)))
        image *= alpha
        residual -= image
        direction *= alpha
        depth += direction
        direction /= alpha
        np.divide(residual, diagonal, out=image)  # the preconditioned residual
        next_product = float(np.vdot(residual, image))
        direction *= np.float32(next_product / product)
        direction += image
        product = next_product
    return depth


def _pool(values: np.ndarray) -> np.ndarray:
    """2×2 sums (odd edges padded with zeros)."""
    h, w = values.shape
    padded = np.pad(values, ((0, h % 2), (0, w % 2)))
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).sum((1, 3))


def _membrane(weight: np.ndarray, target: np.ndarray, stiffnesses: tuple[float, ...]) -> list[np.ndarray]:
    """Per stiffness k, the depth d minimising Σ weight · (d − target)² + k · Σ (d_p − d_q)²
    over 4-neighbours: a membrane pinned to the confident blocks' depths.

    Where no block has weight the membrane is harmonic, so it continues a tilted surface
    across a flat region exactly (linear ramps are harmonic). Solved coarse to fine on a
    pyramid of 2×2 sums (the energy keeps its form on each level), a few conjugate-gradient
    steps per level from the coarser level's solution. Deterministic, whole grid.
    """
    weights = [weight]
    rhs = [weight * target]
    while min(weights[-1].shape) > 16:
        weights.append(_pool(weights[-1]))
        rhs.append(_pool(rhs[-1]))
    total = float(weights[-1].sum())
    start = float(rhs[-1].sum()) / total if total > 0 else 0.0
    solutions = []
    for stiffness in stiffnesses:
        k = np.float32(stiffness)
        depth = np.full(weights[-1].shape, start, np.float32)
        depth = _membrane_solve(depth, rhs[-1], weights[-1], k, COARSE_STEPS)
        for level in range(len(weights) - 2, -1, -1):
            h, w = weights[level].shape
            depth = np.ascontiguousarray(np.repeat(np.repeat(depth, 2, 0), 2, 1)[:h, :w])
            depth = _membrane_solve(depth, rhs[level], weights[level], k, MEMBRANE_STEPS)
        solutions.append(depth)
    return solutions


def _gate(strength: np.ndarray, scale: np.ndarray | np.float32, power: float) -> np.ndarray:
    """1 − 1 / (1 + (strength / scale)^power): 0 without evidence, 1 with clear evidence."""
    ratio = strength / scale
    ratio **= np.float32(power)
    ratio += 1
    np.reciprocal(ratio, out=ratio)
    return 1 - ratio


def _regularise(volume: np.ndarray, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Per block: the slice where the regularised score volume peaks, and a confidence
    (:func:`_regularise_parts`)."""
    best, confidence, _ = _regularise_parts(volume, smoothing)
    return best, confidence


def _regularise_parts(
    volume: np.ndarray, smoothing: float
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...] | None]:
    """Per block: the slice where the regularised score volume peaks, a confidence, and the
    terms of the regularised scores (:func:`_penalised`; ``None`` for ``smoothing=0``).

    A block's evidence is the prominence of its best slice, e = max_z S − mean_z S
    (log-odds); it counts as confident by c = 1 − 1 / (1 + (e / e₀)⁸), e₀ =
    :data:`EVIDENCE_SCALE`. A block whose own slice lies far outside the confident depths around
    it (an island at another depth) counts as confident only if its evidence is also strong
    next to theirs (:data:`ISOLATED_SPREAD`, :data:`RELATIVE_EVIDENCE`). Two membranes
    (:func:`_membrane`, weights e · c, targets the blocks' own best slices) interpolate depth:
    a smooth one d̂ and a close one d̃. Each slice's score becomes
    R_z = S_z − λ · [P (1 − c)(z − d̂)² + T min((z − d̃)², cap)]: a block without evidence takes
    d̂, the depth continued from its confident neighbours, a near-tie goes to the slice nearer
    d̃, and a block with clear evidence keeps its slice. λ = ``smoothing``; ``smoothing=0`` is
    the plain per-block maximum (the fold before regularisation). One slice of the volume
    at a time (bounded memory), on the whole block grid after every tile is scored, so tiled
    and untiled runs agree exactly.

    Confidence, in [0, 1]: c · tanh(m⁺ / e₀), m the block's own margin S(d) − max S(z) over
    slices z more than one away from its slice d (any other slice in a stack of ≤ 3). Near 1
    where the block's own scores clearly pick its depth, 0 where its depth is a guess taken
    from its neighbours.
    """
    n_slices = volume.shape[0]
    top = np.asarray(volume[0], np.float32).copy()
    own_best = np.zeros(volume.shape[1:], np.uint16)
    total = np.zeros(volume.shape[1:], np.float32)
    for z in range(n_slices):
        plane = np.asarray(volume[z], np.float32)
        if z:
            better = plane > top
            top[better] = plane[better]
            own_best[better] = z
        total += plane
    total /= np.float32(-n_slices)
    total += top
    evidence = np.maximum(total, 0, out=total)  # in place: top − mean
    del top
    parts = None
    if smoothing <= 0:
        best = own_best
        own = _gate(evidence, np.float32(EVIDENCE_SCALE), GATE_POWER)
        del evidence
    else:
        best, own, parts = _regularised_best(volume, own_best, evidence, np.float32(smoothing))
        del own_best
    reach = 1 if n_slices > 3 else 0  # rivals: slices more than one away, if the stack has them
    chosen = np.zeros(volume.shape[1:], np.float32)
    rival = np.full(volume.shape[1:], -np.inf, np.float32)
    for z in range(n_slices):
        plane = np.asarray(volume[z], np.float32)
        here = best == z
        chosen[here] = plane[here]
        far = (best < z - reach) | (best > z + reach)
        np.maximum(rival, plane, out=rival, where=far)
    chosen -= rival  # the margin; +inf where no slice is far enough to be a rival
    np.maximum(chosen, 0, out=chosen)
    chosen /= np.float32(EVIDENCE_SCALE)
    np.tanh(chosen, out=chosen)
    chosen *= own
    return best, chosen, parts


def _regularised_best(
    volume: np.ndarray, own_best: np.ndarray, evidence: np.ndarray, smoothing: np.float32
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """:func:`_regularise`'s decision for ``smoothing`` > 0: (slice per block, confidence c,
    the terms of the regularised scores for :func:`_penalised`)."""
    n_slices = volume.shape[0]
    own = _gate(evidence, np.float32(EVIDENCE_SCALE), GATE_POWER)
    # islands: far from the confident depths around them, and weak next to their evidence
    local = _blur(evidence * evidence, LOCAL_SCALE)
    local /= np.maximum(_blur(evidence, LOCAL_SCALE), np.float32(1e-6))  # e-weighted mean e
    local *= np.float32(RELATIVE_EVIDENCE)
    np.maximum(local, np.float32(1e-6), out=local)
    relative = _gate(evidence, local, RELATIVE_POWER)
    del local
    weight = evidence * own
    weight *= relative
    # the confident depths around each block: weighted mean and spread
    covered = np.maximum(_blur(weight, LOCAL_SCALE), np.float32(1e-6))
    depth = own_best.astype(np.float32)
    mean = _blur(weight * depth, LOCAL_SCALE)
    mean /= covered
    depth *= depth
    spread = _blur(weight * depth, LOCAL_SCALE)
    del depth
    spread /= covered
    spread -= mean * mean
    np.sqrt(np.maximum(spread, 0, out=spread), out=spread)
    del covered, weight
    spread *= np.float32(ISOLATED_SPREAD)
    np.maximum(spread, np.float32(ISOLATED_REACH), out=spread)
    mean -= own_best
    isolated = np.abs(mean) > spread
    del mean, spread
    own[isolated] *= relative[isolated]
    del relative, isolated
    weight = evidence * own
    del evidence
    last = np.float32(n_slices - 1)
    smooth, close = _membrane(weight, own_best, (SMOOTH_STIFFNESS, CLOSE_STIFFNESS))
    del weight
    np.clip(smooth, 0, last, out=smooth)
    np.clip(close, 0, last, out=close)
    pull = smoothing * np.float32(PRIOR_STRENGTH) * (1 - own)
    parts = (smooth, close, pull, np.asarray(smoothing * np.float32(TIE_STRENGTH), np.float32))
    best = np.zeros(volume.shape[1:], np.uint16)
    best_score = np.full(volume.shape[1:], -np.inf, np.float32)
    for z in range(n_slices):
        score = _penalised(volume, z, parts)
        better = score > best_score
        best_score[better] = score[better]
        best[better] = z
        del score, better
    return best, own, parts


def _penalised(
    volume: np.ndarray, z: int, parts: tuple[np.ndarray, ...], rows: slice = slice(None)
) -> np.ndarray:
    """Slice z's regularised scores R_z on the block grid, or on its ``rows`` (see
    :func:`_regularise`)."""
    smooth, close, pull, tie = parts
    score = np.array(volume[z, rows], np.float32)
    offset = np.subtract(np.float32(z), smooth[rows], dtype=np.float32)
    offset *= offset
    offset *= pull[rows]
    score -= offset
    np.subtract(np.float32(z), close[rows], out=offset)
    offset *= offset
    np.minimum(offset, np.float32(TIE_CAP), out=offset)
    offset *= tie
    score -= offset
    return score


#: Pixels per strip of :func:`_pixel_depth` (whole rows, at least two; bounded memory).
PIXEL_STRIP = 8192


def _pixel_depth(
    volume: np.ndarray, best: np.ndarray, parts: tuple[np.ndarray, ...] | None, shape: tuple[int, int]
) -> np.ndarray:
    """The depth map at pixel resolution: each 2×2 block's slice, except along depth edges,
    where a pixel takes, among the slices of the four blocks around it, the one whose
    regularised scores interpolated bilinearly to the pixel are highest. Edges between depth
    regions then run through the pixels where the scores cross, not along the block grid
    (no 2-px staircase). ``parts=None`` (no regularisation): the plain block expansion.
    Strips of about :data:`PIXEL_STRIP` pixels; the result does not depend on the strips."""
    depth = grid_to_pixels(best, shape)
    if parts is None or min(best.shape) < 2:
        return depth
    edge = ndimage.maximum_filter(best, 3, mode="nearest") != ndimage.minimum_filter(best, 3, mode="nearest")
    h, w = best.shape
    block_cols = np.minimum(np.arange(shape[1]) // SCORE_STRIDE, w - 1)  # as grid_to_pixels
    strip = max(2, PIXEL_STRIP // shape[1])
    for top in range(0, shape[0], strip):
        bottom = min(shape[0], top + strip)
        block_rows = np.minimum(np.arange(top, bottom) // SCORE_STRIDE, h - 1)
        band = edge[block_rows][:, block_cols]
        found_rows, found_cols = np.nonzero(band)
        if not len(found_rows):
            continue
        rows = found_rows.astype(np.int32) + np.int32(top)
        cols = found_cols.astype(np.int32)
        del found_rows, found_cols
        # block (i, j) covers pixels 2i, 2i + 1: its centre is at pixel 2i + 0.5
        fy = (rows.astype(np.float32) - np.float32(0.5)) / np.float32(SCORE_STRIDE)
        fx = (cols.astype(np.float32) - np.float32(0.5)) / np.float32(SCORE_STRIDE)
        i0 = np.clip(np.floor(fy).astype(np.int32), 0, h - 2)
        j0 = np.clip(np.floor(fx).astype(np.int32), 0, w - 2)
        wy = np.clip(fy - i0, 0, 1)
        wx = np.clip(fx - j0, 0, 1)
        del fy, fx
        lo = int(i0.min())
        hi = int(i0.max()) + 2
        local = i0 - lo
        stencil = [(local, j0, (1 - wy) * (1 - wx)), (local, j0 + 1, (1 - wy) * wx)]
        stencil += [(local + 1, j0, wy * (1 - wx)), (local + 1, j0 + 1, wy * wx)]
        labels = np.stack([best[lo + i, j] for i, j, _ in stencil])
        chosen = depth[rows, cols]
        top_score = np.full(len(rows), -np.inf, np.float32)
        for z in np.unique(labels):
            candidate = np.nonzero((labels == z).any(axis=0))[0]
            score = _penalised(volume, int(z), parts, slice(lo, hi))
            value = np.zeros(len(candidate), np.float32)
            for i, j, weight in stencil:
                value += score[i[candidate], j[candidate]] * weight[candidate]
            del score
            better = value > top_score[candidate]
            top_score[candidate[better]] = value[better]
            chosen[candidate[better]] = z
        depth[rows, cols] = chosen
    return depth


def _fold_volume(
    volume: np.ndarray,
    smoothing: float,
    shape: tuple[int, int],
    grey: FocusImage | None = None,
    tile: int = DEFAULT_TILE,
) -> tuple[np.ndarray, np.ndarray]:
    """A score volume's depth map (:func:`_pixel_depth`) and confidence, both at pixel resolution.

    With ``grey`` (the stack's :class:`FocusImage`) the depth boundaries in low-confidence
    regions are then moved to where the slices agree (:func:`~acnn_fusion.core.seams.place_seams`,
    on tiles of :func:`~acnn_fusion.core.seams.seam_tile` px: memory bounded by ``tile`` like the
    scoring's; the result does not depend on it).
    """
    best, confidence, parts = _regularise_parts(volume, smoothing)
    depth = _pixel_depth(volume, best, parts, shape)
    confidence = grid_to_pixels(confidence, shape)
    if grey is not None:
        depth = place_seams(depth, confidence, grey, volume, tile=seam_tile(tile))
    return depth, confidence


def _soft_fold(
    model: ACNN | Network,
    grey: FocusImage,
    device: torch.device | None,
    tile: int,
    precision: str,
    progress: ProgressCallback | None,
    smoothing: float = 2.0,
    seams: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel, the slice that most clearly beats the stack's mean image, regularised.

    The score volume (:func:`_score_volume`) regularised by :func:`_regularise`, expanded to
    pixels by :func:`_pixel_depth`, its boundaries placed where the slices agree with
    ``seams`` (:func:`~acnn_fusion.core.seams.place_seams`). Returns ``(depth map,
    confidence)``, both (Y, X).
    """
    volume = _score_volume(model, grey, device, tile, precision, progress)
    return _fold_volume(volume, smoothing, grey.shape[1:], grey if seams else None, tile)


def _pairwise(
    model: ACNN | Network,
    grey: FocusImage,
    settings: FusionSettings,
    device: torch.device | None,
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
    every channel is then taken from the chosen slice (``composition``). ``align`` first
    registers every slice onto the middle one with the motion model ``align_model``
    (``translation``, ``similarity`` = scale + rotation + translation for focus breathing, the
    default, or ``affine``; :mod:`acnn_fusion.core.align`). ``depth_smoothing`` (``features``
    strategy): how strongly blocks with little focus evidence of their own take the depth of
    confident neighbours; 0 = every 2×2 block takes its own best slice. ``seams="agree"``
    (``features``): depth boundaries that focus does not decide move, by up to one slice, to
    where the neighbouring slices agree (:mod:`acnn_fusion.core.seams`). ``threshold`` and
    the minimum region apply to the ``pairwise`` strategies. Returns a :class:`StackResult`.
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
    # runtime, device and verified weights, refused before any work; the branch sees Z + 1 slices
    network = open_network(options, (standard.shape[0] + 1) * standard.shape[1] * standard.shape[2] / 1e6)
    grey = FocusImage(standard, detect_channel)
    shifts = transforms = None
    if options.align and len(grey) > 1:  # two grey slices at a time; the resampled stack may go to disk
        transforms = estimate_transforms(grey, options.align_model)
        shifts = centre_shifts(transforms, grey.shape[1:])
        standard = apply_transforms(standard, transforms)
        grey = FocusImage(standard, detect_channel)
    shape = grey.shape[1:]
    tile, precision, strategy = options.tile, options.precision, options.strategy
    if len(grey) == 1:
        depth = np.zeros(shape, np.uint16)
        confidence = np.ones(shape, np.float32)
    elif strategy == "features":
        depth, confidence = _soft_fold(
            network, grey, None, tile, precision, progress, options.depth_smoothing, options.seams == "agree"
        )
    else:
        tree = strategy == "pairwise-tree"
        depth, confidence = _pairwise(network, grey, settings, None, tile, precision, progress, tree=tree)
    fused = compose_stack(standard, depth, mode=settings.composition)
    if channel_axis is not None:  # put the channels back where the caller had them
        ndim = stack.ndim
        position = channel_axis % ndim - (1 if channel_axis % ndim > axis % ndim else 0)
        fused = np.moveaxis(fused, -1, position)
    return StackResult(
        fused=fused,
        depth_map=depth,
        confidence=confidence,
        strategy=strategy,
        shifts=shifts,
        transforms=transforms,
    )
