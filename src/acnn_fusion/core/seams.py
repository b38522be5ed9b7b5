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
that holds a pixel allowed to move is optimised exactly by dynamic programming (its vertical
neighbours and the pixels beyond its ends fixed; even rows, then odd rows), then every column
segment, the segment ends shifted by half a segment in every other round (iterated
conditional modes over chains: a boundary moves as a whole, not pixel by pixel, and the
energy never rises). Labels are the pixel's depth D or one slice either side, so no pixel
moves more than one slice from the depth its scores gave. A pixel may move only if it lies
within :data:`REACH` px of a depth boundary, no neighbour's depth differs from its own by more
than :data:`JUMP` slices, and leaving its slice costs it less than :data:`MOVE_LIMIT` log-odds
times its confidence; elsewhere nothing is computed. After R rounds a label depends only on
the image within R·(2·SEGMENT + 4) px, so the image is processed in tiles with that halo
(bounded memory; tiled and whole-image runs agree exactly). Deterministic (ties go to D).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from acnn_fusion.core.geometry import SCORE_STRIDE

#: μ: grey (on [0, 1]) a pixel of confidence 1 pays per log-odds of score it gives up.
DATA_WEIGHT = 0.01
#: Rounds of moves; each optimises every row segment, then every column segment, exactly.
SEAM_ROUNDS = 2
#: Length of the row and column segments optimised at once (dynamic programming along each).
SEGMENT = 8
#: A pixel may move only if leaving its slice for a neighbouring one costs it less than this
#: many log-odds of score, times its confidence (μ · this = the most it pays: 5 grey levels).
MOVE_LIMIT = 2.0
#: ν: grey a pixel pays per grey level of local contrast (RMS neighbour difference over 3×3)
#: its new slice has less than its own: the image's own focus cue at pixel scale, which the
#: 16×16-patch scores cannot give.
CONTRAST_WEIGHT = 2.0
#: Pixels farther than this from a depth boundary keep their depth.
REACH = 4
#: Segments solved at once (bounds the memory of one pass).
CHUNK = 512
#: Tiles of the image the moves run on (each with a halo, :func:`_halo`): bounds memory.
SEAM_TILE = 512
#: The cost of a label that is not allowed (outside the stack, or a pixel that may not move).
_FORBIDDEN = np.float32(1e9)
#: Preference for the current label, so that ties keep it (deterministic and stable).
_STAY = np.float32(1e-7)


def _near_boundary(depth: np.ndarray, reach: int) -> np.ndarray:
    """Pixels within ``reach`` px (Chebyshev) of a depth boundary."""
    low = ndimage.minimum_filter(depth, 3, mode="nearest")
    edge = ndimage.maximum_filter(depth, 3, mode="nearest") != low
    return ndimage.maximum_filter(edge, 2 * reach + 1, mode="constant") if reach > 1 else edge


def _halo(rounds: int) -> int:
    """Rows a band needs above and below: how far a label's influence reaches in ``rounds``."""
    return rounds * (2 * SEGMENT + 4) + 3  # + 2: the 3×3 contrast of the slices


#: Largest depth jump between neighbours whose pixels may still move (the grey of slices
#: D − JUMP − 1 … D + JUMP + 1 is gathered at each pixel).
JUMP = 2


def _pair_costs(start: np.ndarray, planes: np.ndarray, axis: int) -> np.ndarray:
    """(3, 3, …) seam costs between each pixel p and its next neighbour q along ``axis`` for the
    labels D_p + s − 1 and D_q + t − 1, s, t in 0, 1, 2. ``planes``: (2·JUMP + 3, rows, cols)
    grey of slices D − JUMP − 1 … D + JUMP + 1 at each pixel; edges with |D_q − D_p| > JUMP
    get wrong costs, so their pixels must not move. float16 (half the memory)."""
    if axis == 0:
        gp, gq = planes[:, :-1], planes[:, 1:]
        d = start[1:].astype(np.int32) - start[:-1].astype(np.int32)
    else:
        gp, gq = planes[:, :, :-1], planes[:, :, 1:]
        d = start[:, 1:].astype(np.int32) - start[:, :-1].astype(np.int32)
    np.clip(d, -JUMP, JUMP, out=d)
    middle = JUMP + 1  # index of slice D
    out = np.empty((3, 3, *d.shape), np.float16)  # costs in [0, 2]: half precision is enough
    for s in range(3):
        at_q = np.take_along_axis(gq, (middle + s - 1 - d)[None], axis=0)[0]  # I_k(q)
        for t in range(3):
            at_p = np.take_along_axis(gp, (middle + d + t - 1)[None], axis=0)[0]  # I_l(p)
            cost = np.abs(gp[middle + s - 1] - at_p)
            cost += np.abs(at_q - gq[middle + t - 1])
            cost[d == s - t] = 0  # the same slice on both sides: no seam
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
    movable: np.ndarray,
    offset: int,
    origin: tuple[int, int],
) -> None:
    """Optimise ``state`` (rows, cols), in place, on every row segment of :data:`SEGMENT`
    pixels that holds a ``movable`` pixel, segments starting at global columns ≡ ``offset``
    (mod SEGMENT), rows of even global index first, then odd; everything outside a segment
    fixed. ``along``: (3, 3, rows, cols − 1) costs between horizontal neighbours; ``across``:
    (3, 3, rows − 1, cols) between vertical ones; ``origin``: global (row, column) of
    ``state[0, 0]``."""
    rows, cols = state.shape
    pre = (origin[1] - offset) % SEGMENT  # columns of the first segment before this array
    segments = -(-(pre + cols) // SEGMENT)
    zero = np.float32(0)
    for parity in (0, 1):
        chosen = np.arange((parity + origin[0]) % 2, rows, 2)
        if not len(chosen):
            continue
        padded = np.zeros((len(chosen), segments * SEGMENT), bool)
        padded[:, pre : pre + cols] = movable[chosen]
        which, segment = np.nonzero(padded.reshape(len(chosen), segments, SEGMENT).any(axis=2))
        if not len(which):
            continue
        updates = []  # written after every chunk is solved: chunks do not see each other
        for part in range(0, len(which), CHUNK):
            r = chosen[which[part : part + CHUNK]][:, None]  # (k, 1)
            c = segment[part : part + CHUNK, None] * SEGMENT - pre + np.arange(SEGMENT)[None]  # (k, SEGMENT)
            real = (c >= 0) & (c < cols)
            cc = np.clip(c, 0, cols - 1)
            local = unary[:, r, cc]  # (3, k, SEGMENT), a copy
            local[:, ~real] = _FORBIDDEN
            local[1][~real] = 0  # pixels beyond the array: state 1, free
            if rows > 1:  # vertical neighbours, fixed
                below = (r < rows - 1) & real
                link = across[:, :, np.minimum(r, rows - 2), cc]
                fixed = state[np.minimum(r + 1, rows - 1), cc]
                for k in range(3):
                    local[k] += np.where(below, np.choose(fixed, link[k]), zero)
                above = (r > 0) & real
                link = across[:, :, np.maximum(r - 1, 0), cc]
                fixed = state[np.maximum(r - 1, 0), cc]
                for k in range(3):
                    local[k] += np.where(above, np.choose(fixed, link[:, k]), zero)
            if cols > 1:
                first, last = c[:, 0], c[:, -1]
                row = r[:, 0]
                left = (first >= 1) & (first <= cols - 1)  # fixed left neighbour of the first pixel
                at = np.clip(first - 1, 0, cols - 2)
                link = along[:, :, row, at]  # (3, 3, k)
                fixed = state[row, at]
                for k in range(3):
                    local[k, :, 0] += np.where(left, np.choose(fixed, link[:, k]), zero)
                right = (last >= 0) & (last <= cols - 2)  # fixed right neighbour of the last pixel
                at = np.clip(last, 0, cols - 2)
                link = along[:, :, row, at]
                fixed = state[row, np.minimum(at + 1, cols - 1)]
                for k in range(3):
                    local[k, :, -1] += np.where(right, np.choose(fixed, link[k]), zero)
                inside = real[:, :-1] & real[:, 1:]
                pairs = along[:, :, r, np.clip(c[:, :-1], 0, cols - 2)]
                pairs *= inside
            else:
                pairs = np.zeros((3, 3, len(r), SEGMENT - 1), np.float32)
            result = _chains(local, pairs)
            updates.append((np.broadcast_to(r, c.shape)[real], c[real], result[real]))
        for at_rows, at_cols, values in updates:
            state[at_rows, at_cols] = values


def _relabel_tile(
    start: np.ndarray,
    unary: np.ndarray,
    right: np.ndarray,
    down: np.ndarray,
    rounds: int,
    origin: tuple[int, int],
) -> np.ndarray:
    """The moved labels of one tile: ``start`` the depth D (rows, cols), ``unary`` (3, rows,
    cols) the data term of D − 1, D, D + 1, ``right``/``down`` the seam costs to the next
    pixel along rows/columns (:func:`_pair_costs`), ``origin`` the tile's first (row, column)
    in the image."""
    movable = unary[0] < _FORBIDDEN
    movable |= unary[2] < _FORBIDDEN
    state = np.ones(start.shape, np.int8)
    top, left = origin
    for round_ in range(rounds):
        offset = (round_ % 2) * (SEGMENT // 2)  # segment ends move between rounds
        _segment_pass(state, unary, right, down, movable, offset, (top, left))
        _segment_pass(
            state.T,
            unary.transpose(0, 2, 1),
            down.transpose(0, 1, 3, 2),
            right.transpose(0, 1, 3, 2),
            movable.T,
            offset,
            (left, top),
        )
    return (start.astype(np.int32) + state.astype(np.int32) - 1).astype(start.dtype)


def _tile_terms(
    depth: np.ndarray,
    confidence: np.ndarray,
    near: np.ndarray,
    volume: np.ndarray,
    rows: slice,
    cols: slice,
    n_slices: int,
    inner: tuple[slice, slice],
) -> np.ndarray | None:
    """The data term (3, rows, cols) of labels D − 1, D, D + 1 on a tile with its halo,
    forbidden for pixels that may not move; None if none of the ``inner`` pixels (relative to
    the tile) may."""
    start = depth[rows, cols].astype(np.int32)
    grid_h, grid_w = volume.shape[1:]
    block_rows = np.minimum(np.arange(rows.start, rows.stop) // SCORE_STRIDE, grid_h - 1)
    block_cols = np.minimum(np.arange(cols.start, cols.stop) // SCORE_STRIDE, grid_w - 1)
    first, final = max(0, int(start.min()) - 1), min(n_slices - 1, int(start.max()) + 1)
    grid = np.asarray(
        volume[first : final + 1, block_rows[0] : block_rows[-1] + 1, block_cols[0] : block_cols[-1] + 1],
        np.float32,
    )
    br = (block_rows - block_rows[0])[:, None]
    bc = (block_cols - block_cols[0])[None, :]
    own = grid[start - first, br, bc]
    unary = np.empty((3, *start.shape), np.float32)
    cost = np.float32(DATA_WEIGHT) * np.clip(confidence[rows, cols], 0, 1).astype(np.float32)
    movable = near[rows, cols].copy()
    # a pixel next to a jump of more than JUMP slices stays (its seam costs are not computed)
    for axis in (0, 1):
        jump = np.abs(np.diff(start, axis=axis)) > JUMP
        if axis == 0:
            movable[1:] &= ~jump
            movable[:-1] &= ~jump
        else:
            movable[:, 1:] &= ~jump
            movable[:, :-1] &= ~jump
    cheapest = np.full(start.shape, np.inf, np.float32)
    for s in (0, 2):
        label = start + (s - 1)
        inside = (label >= 0) & (label < n_slices)
        value = own - grid[np.clip(label, first, final) - first, br, bc]
        np.maximum(value, 0, out=value)
        value *= cost
        np.minimum(cheapest, np.where(inside, value, np.inf), out=cheapest)
        value += _STAY
        value[~inside] = _FORBIDDEN
        unary[s] = value
    movable &= cheapest < np.float32(DATA_WEIGHT * MOVE_LIMIT)
    if not movable[inner].any():  # the tile's own pixels all stay
        return None
    unary[1] = 0
    unary[0][~movable] = _FORBIDDEN
    unary[2][~movable] = _FORBIDDEN
    return unary


def _tile_planes(grey: Any, start: np.ndarray, rows: slice, cols: slice) -> np.ndarray:
    """(2·JUMP + 3, rows, cols) grey of slices D − JUMP − 1 … D + JUMP + 1 (clipped to the
    stack) at each pixel."""
    n_slices, reach = grey.shape[0], JUMP + 1
    planes = np.zeros((2 * reach + 1, *start.shape), np.float32)  # slices beyond the stack: 0
    labels = start.astype(np.int32)
    for z in range(max(0, int(start.min()) - reach), min(n_slices - 1, int(start.max()) + reach) + 1):
        plane = grey.block(z, rows, cols)
        for u in range(2 * reach + 1):
            here = labels == z - (u - reach)
            planes[u][here] = plane[here]
    return planes


def _contrast(plane: np.ndarray) -> np.ndarray:
    """RMS difference between 4-neighbours over 3×3 (edges repeated): local contrast."""
    energy = np.zeros_like(plane)
    step = np.diff(plane, axis=0) ** 2
    energy[1:] += step
    energy[:-1] += step
    step = np.diff(plane, axis=1) ** 2
    energy[:, 1:] += step
    energy[:, :-1] += step
    return np.sqrt(ndimage.uniform_filter(energy, 3, mode="nearest") / 4)


def _add_contrast(unary: np.ndarray, planes: np.ndarray) -> None:
    """Add ν · (contrast of D − contrast of D ± 1)⁺ to the data term of D ± 1, in place."""
    middle = len(planes) // 2
    own = _contrast(planes[middle])
    for s in (0, 2):
        loss = own - _contrast(planes[middle + s - 1])
        np.maximum(loss, 0, out=loss)
        loss *= np.float32(CONTRAST_WEIGHT)
        unary[s] += loss


def place_seams(
    depth: np.ndarray,
    confidence: np.ndarray,
    grey: Any,
    volume: np.ndarray,
    *,
    rounds: int = SEAM_ROUNDS,
    tile: int = SEAM_TILE,
) -> np.ndarray:
    """``depth`` with its boundaries moved to where the slices agree, where focus allows.

    ``depth``: (Y, X) uint16 slice per pixel; ``confidence``: (Y, X) in [0, 1]; ``grey``: a
    :class:`~acnn_fusion.core.stack.FocusImage` (or anything with ``shape`` and
    ``block(z, rows, cols)`` giving the float32 grey of slice z there); ``volume``: the
    (Z, h, w) score volume on the 2×2 block grid. Pixels move only within ``rounds`` ·
    :data:`SEGMENT` px of a depth boundary, only to D ± 1, and only where that costs them less
    than :data:`MOVE_LIMIT` log-odds times their confidence. Runs on tiles of ``tile`` px with
    a halo; the result does not depend on ``tile``. Returns a new uint16 depth map.
    """
    out = depth.copy()
    n_slices = grey.shape[0]
    if rounds <= 0 or depth.size == 0 or n_slices < 2:
        return out
    halo = _halo(rounds)
    near = _near_boundary(depth, REACH)
    height, width = depth.shape
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            inner = (slice(top, min(height, top + tile)), slice(left, min(width, left + tile)))
            if not near[inner].any():
                continue
            rows = slice(max(0, top - halo), min(height, top + tile + halo))
            cols = slice(max(0, left - halo), min(width, left + tile + halo))
            own = (
                slice(top - rows.start, inner[0].stop - rows.start),
                slice(left - cols.start, inner[1].stop - cols.start),
            )
            unary = _tile_terms(depth, confidence, near, volume, rows, cols, n_slices, own)
            if unary is None:
                continue
            start = depth[rows, cols]
            planes = _tile_planes(grey, start, rows, cols)
            _add_contrast(unary, planes)
            right, down = _pair_costs(start, planes, axis=1), _pair_costs(start, planes, axis=0)
            del planes
            labels = _relabel_tile(start, unary, right, down, rounds, (rows.start, cols.start))
            del right, down
            out[inner] = labels[own]
    return out
