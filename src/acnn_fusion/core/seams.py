"""Place the depth map's boundaries where neighbouring slices agree (exact-copy composition).

With ``composition="copy"`` every fused pixel comes from the slice the depth map names, so
where the map switches slice inside a flat or low-confidence region any brightness
difference between the two slices shows as a step. Where the depth is a guess, nothing
about focus fixes where the switch lies; this step moves it to where it shows least, in the
spirit of Agarwala et al. 2004 ("Interactive Digital Photomontage"): a label per pixel with
the energy

    E(L) = Σ_p μ · c_p · (S_{D_p}(p) − S_{L_p}(p))⁺
         + Σ_{p~q, L_p ≠ L_q} |I_{L_p}(p) − I_{L_q}(p)| + |I_{L_p}(q) − I_{L_q}(q)|

over 4-neighbours p, q: D the depth map from the score volume, S_z the score volume (log-odds
of the 2×2 block holding the pixel), c the confidence, I_z the grey of slice z (the image focus
was detected on, on [0, 1]), μ = :data:`DATA_WEIGHT`. The data term is what a pixel gives up
in focus by leaving its slice: nothing where the depth is a guess (c ≈ 0) or where the slices'
scores are near-tied, much where one slice is clearly sharper. The seam term is Agarwala's
colour seam cost: zero where the two slices agree at both pixels.

It is minimised by a few rounds of block moves: every row segment of :data:`SEGMENT` pixels
is optimised exactly by dynamic programming (its vertical neighbours and the pixels beyond
its ends fixed; even rows, then odd rows), then every column segment, the segment ends
shifted by half a segment every other round (iterated conditional modes over chains, so a
boundary moves as a whole, not pixel by pixel, and the energy never rises). Labels are the
pixel's depth D or one slice either side, so no pixel moves more than one slice from the
depth its scores gave, and only pixels within R·SEGMENT of a depth boundary may move. After
R rounds a label depends only on the image within R·(2·SEGMENT + 4) rows: the image is
processed in bands of rows with that halo (bounded memory; banded and whole-image runs
agree exactly). Deterministic (ties go to D).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from acnn_fusion.core.geometry import SCORE_STRIDE

#: μ: grey (on [0, 1]) a pixel of confidence 1 pays per log-odds of score it gives up.
DATA_WEIGHT = 0.01
#: Rounds of moves; each optimises every row segment, then every column segment, exactly.
SEAM_ROUNDS = 3
#: Length of the row and column segments optimised at once (dynamic programming along each).
SEGMENT = 8
#: float32 values held per band (grey and scores of the slices in reach, label and seam costs:
#: 2 · slices + 21 per pixel): bounds memory (64 MB).
BAND_VALUES = 1 << 24
#: The cost of a label that is not allowed (outside the stack, or a pixel that may not move).
_FORBIDDEN = np.float32(1e9)
#: Preference for the current label, so that ties keep it (deterministic and stable).
_STAY = np.float32(1e-7)


def _movable(depth: np.ndarray, reach: int) -> np.ndarray:
    """Pixels that may move: within ``reach`` px of a depth boundary."""
    low = ndimage.minimum_filter(depth, 3, mode="nearest")
    edge = ndimage.maximum_filter(depth, 3, mode="nearest") != low
    return ndimage.maximum_filter(edge, 2 * reach + 1, mode="constant") if reach > 1 else edge


def _halo(rounds: int) -> int:
    """Rows a band needs above and below: how far a label's influence reaches in ``rounds``."""
    return rounds * (2 * SEGMENT + 4) + 1


def _pair_costs(start: np.ndarray, planes: np.ndarray, first: int, axis: int) -> np.ndarray:
    """(3, 3, …) seam costs between each pixel and its next neighbour along ``axis`` for the
    labels start + s − 1 (pixel) and start + t − 1 (neighbour), s, t in 0, 1, 2."""
    n = len(planes)
    rows, cols = start.shape
    flat = planes.reshape(n, -1)
    index = np.arange(rows * cols).reshape(rows, cols)
    if axis == 0:
        p, q, dp, dq = index[:-1], index[1:], start[:-1], start[1:]
    else:
        p, q, dp, dq = index[:, :-1], index[:, 1:], start[:, :-1], start[:, 1:]
    out = np.empty((3, 3, *p.shape), np.float32)
    for s in range(3):
        k = np.clip(dp.astype(np.int32) + (s - 1 - first), 0, n - 1)
        kp, kq = flat[k, p], flat[k, q]
        for t in range(3):
            m = np.clip(dq.astype(np.int32) + (t - 1 - first), 0, n - 1)
            cost = np.abs(kp - flat[m, p])
            cost += np.abs(kq - flat[m, q])
            cost[k == m] = 0
            out[s, t] = cost
    return out


def _chains(unary: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Exact minimum of Σ unary[s_j, j] + Σ pair[s_j, s_j+1, j] along chains: unary (3, n, m)
    for n chains of m pixels, pair (3, 3, n, m − 1). Returns (n, m) states; ties to the lower."""
    _, n, m = unary.shape
    total = unary[:, :, 0].copy()
    back = np.empty((m, 3, n), np.int8)
    for j in range(1, m):
        step = total[:, None, :] + pair[:, :, :, j - 1]  # (previous, next, chain)
        back[j] = np.argmin(step, axis=0)
        total = step.min(axis=0)
        total += unary[:, :, j]
    states = np.empty((n, m), np.int8)
    states[:, -1] = np.argmin(total, axis=0)
    chain = np.arange(n)
    for j in range(m - 1, 0, -1):
        states[:, j - 1] = back[j][states[:, j], chain]
    return states


def _segment_pass(
    state: np.ndarray,
    unary: np.ndarray,
    along: np.ndarray,
    across: np.ndarray,
    offset: int,
    origin: tuple[int, int],
) -> None:
    """Optimise ``state`` (rows, cols), in place, on every row segment of :data:`SEGMENT`
    pixels, segments starting at global columns ≡ ``offset`` (mod SEGMENT), rows of even global
    index first, then odd; everything outside a segment fixed. ``along``: (3, 3, rows, cols − 1)
    costs between horizontal neighbours; ``across``: (3, 3, rows − 1, cols) between vertical
    ones; ``origin``: global (row, column) of ``state[0, 0]``."""
    rows, cols = state.shape
    pre = (origin[1] - offset) % SEGMENT  # columns of the first segment before this array
    padded = -(-(pre + cols) // SEGMENT) * SEGMENT
    starts = np.zeros(cols, bool)
    starts[(np.arange(cols) + pre) % SEGMENT == 0] = True
    ends = np.zeros(cols, bool)
    ends[(np.arange(cols) + pre) % SEGMENT == SEGMENT - 1] = True
    for parity in (0, 1):
        chosen = np.arange((parity + origin[0]) % 2, rows, 2)
        n = len(chosen)
        if n == 0:
            continue
        local = unary[:, chosen]  # a copy (fancy index)
        below = chosen < rows - 1  # vertical neighbours, fixed
        r = chosen[below]
        fixed = state[r + 1][None, None].astype(np.intp)
        local[:, below] += np.take_along_axis(across[:, :, r], fixed, axis=1)[:, 0]
        above = chosen > 0
        r = chosen[above]
        fixed = state[r - 1][None, None].astype(np.intp)
        local[:, above] += np.take_along_axis(across[:, :, r - 1], fixed, axis=0)[0]
        if cols > 1:  # horizontal neighbours outside the segment, fixed
            link = along[:, :, chosen]
            left = state[chosen, :-1].astype(np.intp)[None, None]
            from_left = np.take_along_axis(link, left, axis=0)[0]  # (3, n, cols − 1): pixel j + 1
            local[:, :, 1:] += np.where(starts[1:], from_left, np.float32(0))
            right = state[chosen, 1:].astype(np.intp)[None, None]
            to_right = np.take_along_axis(link, right, axis=1)[:, 0]  # pixel j
            local[:, :, :-1] += np.where(ends[:-1], to_right, np.float32(0))
            inside = np.zeros((3, 3, n, padded), np.float32)
            inside[:, :, :, pre : pre + cols - 1] = link
            del link, from_left, to_right
        else:
            inside = np.zeros((3, 3, n, padded), np.float32)
        full = np.full((3, n, padded), _FORBIDDEN, np.float32)
        full[1] = 0  # virtual pixels before and after the array: state 1, free
        full[:, :, pre : pre + cols] = local
        segments = padded // SEGMENT
        chains = full.reshape(3, n * segments, SEGMENT)
        pairs = inside.reshape(3, 3, n * segments, SEGMENT)[..., :-1]
        result = _chains(chains, pairs).reshape(n, padded)
        state[chosen] = result[:, pre : pre + cols]


def _relabel_band(
    start: np.ndarray,
    cost: np.ndarray,
    movable: np.ndarray,
    planes: np.ndarray,
    scores: np.ndarray,
    first: int,
    rounds: int,
    n_slices: int,
    top: int,
) -> np.ndarray:
    """The moved labels of one band (rows, cols): ``start`` the depth D, ``cost`` μ·c,
    ``planes``/``scores`` grey and scores of slices ``first``… (n, rows, cols), ``top`` the
    band's first row in the image."""
    n = len(planes)
    rows, cols = start.shape
    flat_scores = scores.reshape(n, -1)
    index = np.arange(rows * cols).reshape(rows, cols)
    base = start.astype(np.int32)
    own = flat_scores[np.clip(base - first, 0, n - 1), index]
    unary = np.empty((3, rows, cols), np.float32)
    for s in range(3):
        label = base + (s - 1)
        value = own - flat_scores[np.clip(label - first, 0, n - 1), index]
        np.maximum(value, 0, out=value)
        value *= cost
        value[(label < 0) | (label >= n_slices) | (label < first) | (label >= first + n)] = _FORBIDDEN
        if s != 1:
            value[~movable] = _FORBIDDEN
            value += _STAY
        unary[s] = value
    right = _pair_costs(start, planes, first, axis=1)
    down = _pair_costs(start, planes, first, axis=0)
    state = np.ones((rows, cols), np.int8)
    for round_ in range(rounds):
        offset = (round_ % 2) * (SEGMENT // 2)  # segment ends move between rounds
        _segment_pass(state, unary, right, down, offset, (top, 0))
        _segment_pass(
            state.T,
            unary.transpose(0, 2, 1),
            down.transpose(0, 1, 3, 2),
            right.transpose(0, 1, 3, 2),
            offset,
            (0, top),
        )
    return (base + state.astype(np.int32) - 1).astype(start.dtype)


def place_seams(
    depth: np.ndarray,
    confidence: np.ndarray,
    grey: Any,
    volume: np.ndarray,
    *,
    rounds: int = SEAM_ROUNDS,
    band_values: int = BAND_VALUES,
) -> np.ndarray:
    """``depth`` with its boundaries moved to where the slices agree, where focus allows.

    ``depth``: (Y, X) uint16 slice per pixel; ``confidence``: (Y, X) in [0, 1]; ``grey``: a
    :class:`~acnn_fusion.core.stack.FocusImage` (or anything with ``shape`` and
    ``block(z, rows)`` giving the float32 grey of slice z in those rows); ``volume``: the
    (Z, h, w) score volume on the 2×2 block grid. Returns a new uint16 depth map; every label
    is its own or one of its neighbours', within one slice of ``depth``.
    """
    out = depth.copy()
    if rounds <= 0 or depth.size == 0 or grey.shape[0] < 2:
        return out
    halo = _halo(rounds)
    movable = _movable(depth, rounds * SEGMENT)
    if not movable.any():
        return out
    cost = np.float32(DATA_WEIGHT) * np.clip(confidence, 0, 1).astype(np.float32)
    height, width = depth.shape
    grid_h, grid_w = volume.shape[1:]
    block_cols = np.minimum(np.arange(width) // SCORE_STRIDE, grid_w - 1)  # as grid_to_pixels
    rows_moving = np.nonzero(movable.any(axis=1))[0]
    top, last = int(rows_moving[0]), int(rows_moving[-1])
    while top <= last:
        # band height: as many rows as the slices in reach allow within band_values
        lo, hi = max(0, top - halo), min(height, top + halo + 1)
        span = int(depth[lo:hi].max()) - int(depth[lo:hi].min()) + 3
        rows = max(halo, band_values // ((2 * span + 21) * width) - 2 * halo)
        bottom = min(height, top + rows)
        if not movable[top:bottom].any():
            top = bottom
            continue
        lo, hi = max(0, top - halo), min(height, bottom + halo)
        first = max(0, int(depth[lo:hi].min()) - 1)
        final = min(int(depth[lo:hi].max()) + 1, grey.shape[0] - 1)
        planes = np.stack([grey.block(z, slice(lo, hi)) for z in range(first, final + 1)])
        block_rows = np.minimum(np.arange(lo, hi) // SCORE_STRIDE, grid_h - 1)
        grid = np.asarray(volume[first : final + 1, block_rows[0] : block_rows[-1] + 1], np.float32)
        scores = grid[:, block_rows - block_rows[0]][:, :, block_cols]
        del grid
        labels = _relabel_band(
            depth[lo:hi], cost[lo:hi], movable[lo:hi], planes, scores, first, rounds, grey.shape[0], lo
        )
        del planes, scores
        out[top:bottom] = labels[top - lo : bottom - lo]
        top = bottom
    return out
