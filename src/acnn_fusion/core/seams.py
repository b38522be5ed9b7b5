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

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from scipy import ndimage

from acnn_fusion.core.geometry import SCORE_STRIDE
from acnn_fusion.core.inference import cpu_threads

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
#: Rows (of one parity) whose segments are solved at once (bounds the memory of one pass).
CHUNK = 512
#: Largest tile of the image the moves run on (each with a halo, :func:`_halo`): bounds memory
#: (about 190 bytes per pixel of a tile and its halo, per thread).
SEAM_TILE = 512


def seam_tile(scoring_tile: int) -> int:
    """The seam step's tile for a fold scored on tiles of ``scoring_tile`` px: twice as large
    (its 43-px halo costs less on a larger tile: 1.8× the pixels on 256, 1.4× on 512), at most
    :data:`SEAM_TILE`."""
    return min(2 * scoring_tile, SEAM_TILE)


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
    get wrong costs, so their pixels must not move. Rounded to float16 precision
    (:func:`round_to_half`), held as float32 (the solver adds them to float32 sums)."""
    if axis == 0:
        gp, gq = planes[:, :-1], planes[:, 1:]
        d = start[1:].astype(np.int32) - start[:-1].astype(np.int32)
    else:
        gp, gq = planes[:, :, :-1], planes[:, :, 1:]
        d = start[:, 1:].astype(np.int32) - start[:, :-1].astype(np.int32)
    np.clip(d, -JUMP, JUMP, out=d)
    middle = JUMP + 1  # index of slice D
    # costs in [0, 2], rounded to half precision as they always were (the same minimum), in float32
    out = np.empty((3, 3, *d.shape), np.float32)
    # most neighbours share their depth (d = 0): gather the planes at the others only
    jumps = np.nonzero(d)
    shift = d[jumps]

    def shifted(grey: np.ndarray, plane: int, sign: int) -> np.ndarray:
        """``grey[plane + sign · d]`` at each pixel."""
        value = grey[plane].copy()
        value[jumps] = grey[(plane + sign * shift, jumps[0], jumps[1])]
        return value

    at_p = [shifted(gp, middle + t - 1, 1) for t in range(3)]  # I_l(p)
    same = d == 0
    other = np.empty(d.shape, np.float32)
    for s in range(3):
        at_q = shifted(gq, middle + s - 1, -1)  # I_k(q)
        for t in range(3):
            cost = out[s, t]
            np.subtract(gp[middle + s - 1], at_p[t], out=cost)
            np.abs(cost, out=cost)
            np.subtract(at_q, gq[middle + t - 1], out=other)
            np.abs(other, out=other)
            cost += other
            cost[same if s == t else d == s - t] = 0  # the same slice on both sides: no seam
            round_to_half(cost)
    return out


#: The smallest normal float16 (below it float16 keeps a fixed step of 2⁻²⁴).
_HALF_NORMAL = np.float32(2.0**-14)


def round_to_half(values: np.ndarray) -> np.ndarray:
    """Round non-negative float32 ``values`` in place to the nearest float16 value (ties to
    even), kept as float32: ``values.astype(float16).astype(float32)`` for values up to
    float16's largest, ~4× faster (integer steps on the bits instead of two conversions)."""
    small = values < _HALF_NORMAL
    tiny = values[small]  # float16 subnormals: multiples of 2⁻²⁴, which float32's step is on [½, 1)
    tiny += np.float32(0.5)
    tiny -= np.float32(0.5)
    bits = values.view(np.uint32)  # normals: drop 13 of float32's 23 mantissa bits, ties to even
    bits += np.uint32(0xFFF) + ((bits >> np.uint32(13)) & np.uint32(1))
    bits &= np.uint32(0xFFFFE000)
    values[small] = tiny
    return values


def _chains(unary: np.ndarray, pair: np.ndarray) -> np.ndarray:
    """Exact minimum of Σ unary[s_j, j] + Σ pair[s_j, s_j+1, j] along chains: unary (3, n, m)
    for n chains of m pixels, pair (3, 3, n, m − 1). Returns (n, m) states; ties to the lower."""
    _, n, m = unary.shape
    total = unary[:, :, 0].copy()
    back = np.empty((m, 3, n), np.int8)
    for j in range(1, m):
        step = total[:, None, :] + pair[:, :, :, j - 1]  # (previous, next, chain)
        # argmin and min over the 3 previous states by comparisons (first minimum wins)
        back[j] = step[1] < step[0]
        total = np.minimum(step[0], step[1])
        later = step[2] < total
        back[j][later] = 2
        np.minimum(total, step[2], out=total)
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
    pixels, segments starting at global columns ≡ ``offset`` (mod SEGMENT), rows of even
    global index first, then odd; everything outside a segment fixed. ``along``: (3, 3, rows,
    cols − 1) costs between horizontal neighbours; ``across``: (3, 3, rows − 1, cols) between
    vertical ones; ``origin``: global (row, column) of ``state[0, 0]``. Only segments holding a
    ``movable`` pixel are solved, gathered from the arrays by flat index (a segment without
    one keeps its state, 1: its pixels' other labels are forbidden); every pixel of one parity
    reads the state before that parity. All arrays C-contiguous."""
    rows, cols = state.shape
    pre = (origin[1] - offset) % SEGMENT  # columns of the first segment before this array
    segments = -(-(pre + cols) // SEGMENT)
    width = segments * SEGMENT
    inner = slice(pre, pre + cols)  # the array's columns in the padded row
    if not state.flags.c_contiguous:
        raise ValueError("state must be C-contiguous (it is written through a flat view)")
    flat_state = state.reshape(-1)
    flat_unary = unary.reshape(3, -1)
    flat_along = along.reshape(9, -1)  # [3 · left label + right label, row · (cols − 1) + column]
    flat_across = across.reshape(9, -1)  # [3 · upper label + lower label, row · cols + column]
    for parity in (0, 1):
        chosen = np.arange((parity + origin[0]) % 2, rows, 2)
        chosen = chosen[movable[chosen].any(axis=1)]
        for part in range(0, len(chosen), CHUNK):
            r = chosen[part : part + CHUNK]
            moving = np.zeros((len(r), width), bool)
            moving[:, inner] = movable[r]
            picked = np.flatnonzero(moving.reshape(-1, SEGMENT).any(axis=1))
            if picked.size == 0:
                continue
            at_row = r[picked // segments][:, None]  # (n, 1) row of each picked segment
            column = (picked % segments)[:, None] * SEGMENT + np.arange(SEGMENT)[None] - pre  # (n, S)
            inside = (column >= 0) & (column < cols)
            pixel = (at_row * cols + column)[inside]  # flat index of each inside pixel
            local = np.full((3, *column.shape), _FORBIDDEN, np.float32)
            local[1] = 0  # pixels beyond the array: state 1, free
            local[:, inside] = flat_unary[:, pixel]
            if rows > 1:  # vertical neighbours, fixed (below first, then above, as always)
                inside_at = np.flatnonzero(inside.ravel())  # place of each inside pixel in local[label]
                row_of = np.broadcast_to(at_row, column.shape)[inside]
                for step in (1, -1):
                    has = (row_of + step >= 0) & (row_of + step < rows)
                    p = pixel[has]
                    neighbour = flat_state[p + step * cols].astype(np.intp)
                    link = p if step == 1 else p - cols  # flat index of the link in across's plane
                    where = inside_at[has]
                    for label in range(3):
                        plane = local[label].reshape(-1)
                        pair = 3 * label + neighbour if step == 1 else 3 * neighbour + label
                        plane[where] += flat_across[pair, link]
            if cols > 1:  # the fixed neighbours left of each segment's first pixel, right of its last
                links_per_row = cols - 1
                first = column[:, 0]
                has = (first >= 1) & (first <= cols - 1)
                rr, at = at_row[has, 0], first[has] - 1
                neighbour = flat_state[rr * cols + at].astype(np.intp)
                link = rr * links_per_row + at
                for label in range(3):
                    local[label, has, 0] += flat_along[3 * neighbour + label, link]
                last = column[:, -1]
                has = (last >= 0) & (last <= cols - 2)
                rr, at = at_row[has, 0], last[has]
                neighbour = flat_state[rr * cols + at + 1].astype(np.intp)
                link = rr * links_per_row + at
                for label in range(3):
                    local[label, has, -1] += flat_along[3 * label + neighbour, link]
            links = np.zeros((3, 3, picked.size, SEGMENT - 1), np.float32)
            joined = (column[:, :-1] >= 0) & (column[:, :-1] <= cols - 2)
            if cols > 1 and joined.any():
                link = (at_row * (cols - 1) + column[:, :-1])[joined]
                links.reshape(9, picked.size, SEGMENT - 1)[:, joined] = flat_along[:, link]
            flat_state[pixel] = _chains(local, links)[inside]


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
    # the column passes work on contiguous transposed copies (row gathers, not strided ones)
    columns = np.ones(start.shape[::-1], np.int8)
    unary_t = np.ascontiguousarray(unary.transpose(0, 2, 1))
    right_t = np.ascontiguousarray(right.transpose(0, 1, 3, 2))
    down_t = np.ascontiguousarray(down.transpose(0, 1, 3, 2))
    movable_t = np.ascontiguousarray(movable.T)
    for round_ in range(rounds):
        offset = (round_ % 2) * (SEGMENT // 2)  # segment ends move between rounds
        _segment_pass(state, unary, right, down, movable, offset, (top, left))
        columns[...] = state.T
        _segment_pass(columns, unary_t, down_t, right_t, movable_t, offset, (left, top))
        state[...] = columns.T
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
    offset = start.astype(np.int32) - reach  # slice of plane 0 at each pixel
    at = np.empty(start.shape, bool)
    for z in range(max(0, int(start.min()) - reach), min(n_slices - 1, int(start.max()) + reach) + 1):
        plane = grey.block(z, rows, cols)
        for u in range(2 * reach + 1):  # slice z is plane u where the pixel's plane 0 is z − u
            np.equal(offset, z - u, out=at)
            np.copyto(planes[u], plane, where=at)
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
    threads: int | None = None,
) -> np.ndarray:
    """``depth`` with its boundaries moved to where the slices agree, where focus allows.

    ``depth``: (Y, X) uint16 slice per pixel; ``confidence``: (Y, X) in [0, 1]; ``grey``: a
    :class:`~acnn_fusion.core.stack.FocusImage` (or anything with ``shape`` and
    ``block(z, rows, cols)`` giving the float32 grey of slice z there); ``volume``: the
    (Z, h, w) score volume on the 2×2 block grid. Pixels move only within ``rounds`` ·
    :data:`SEGMENT` px of a depth boundary, only to D ± 1, and only where that costs them less
    than :data:`MOVE_LIMIT` log-odds times their confidence. Runs on tiles of ``tile`` px with
    a halo, ``threads`` tiles at a time (default: the CPU inference's threads,
    :func:`~acnn_fusion.core.inference.cpu_threads`); the result depends on neither. Returns a
    new uint16 depth map.
    """
    out = depth.copy()
    n_slices = grey.shape[0]
    if rounds <= 0 or depth.size == 0 or n_slices < 2:
        return out
    halo = _halo(rounds)
    near = _near_boundary(depth, REACH)
    height, width = depth.shape

    def relabel(top: int, left: int) -> None:
        inner = (slice(top, min(height, top + tile)), slice(left, min(width, left + tile)))
        if not near[inner].any():
            return
        rows = slice(max(0, top - halo), min(height, top + tile + halo))
        cols = slice(max(0, left - halo), min(width, left + tile + halo))
        own = (
            slice(top - rows.start, inner[0].stop - rows.start),
            slice(left - cols.start, inner[1].stop - cols.start),
        )
        unary = _tile_terms(depth, confidence, near, volume, rows, cols, n_slices, own)
        if unary is None:
            return
        start = depth[rows, cols]
        planes = _tile_planes(grey, start, rows, cols)
        _add_contrast(unary, planes)
        right, down = _pair_costs(start, planes, axis=1), _pair_costs(start, planes, axis=0)
        del planes
        out[inner] = _relabel_tile(start, unary, right, down, rounds, (rows.start, cols.start))[own]

    corners = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
    workers = min(len(corners), cpu_threads() if threads is None else threads)
    if workers <= 1:
        for corner in corners:
            relabel(*corner)
    else:  # tiles are independent (each reads only the inputs): numpy releases the GIL
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda corner: relabel(*corner), corners))  # re-raises a tile's error
    return out
