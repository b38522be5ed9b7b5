"""Decision steps that do not depend on image size (issues 18 and 13).

- :func:`remove_unconfident_regions`: the small-region clean-up. A connected region of
  either source no larger than a minimum area *in pixels* is handed to the other source
  only when the focus map is not confident about it anywhere, so a confidently sharp
  small blob survives whatever the image size.
- :func:`override_by_fine_measure`: where a fine focus measure (Laplacian energy in a
  small window, full resolution) says clearly which source is sharper, it overrides the
  patch-scale decision, so details smaller than a 16×16 patch and thin structures keep
  their sharp source; where it is unsure, a step-robust version of it (medians, which do
  not see a single edge) decides, so the boundary sits on an occlusion edge.

Both are local: the first looks at regions smaller than the minimum area only, the
second at a window of a few pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
from scipy import ndimage

#: Laplacian energy (grey on the joint [0, 1] scale) added to the sum in the fine margin's
#: denominator: keeps sensor noise and JPEG blocks in flat areas from looking decisive.
ENERGY_FLOOR = 1e-3


def remove_unconfident_regions(
    binary: np.ndarray, focus_map: np.ndarray, min_size: int, confidence: float
) -> np.ndarray:
    """Hand regions of at most ``min_size`` pixels to the other source unless confident.

    Regions of A (True) first, then regions of B (holes), as the paper's clean-up does
    (4-connected, as scikit-image's). A region is confident where its focus-map margin
    |2S − 1| exceeds ``confidence`` somewhere (``confidence`` ≥ 1: no region is, every
    small region goes). Returns a new bool map.
    """
    out = binary.copy()
    if min_size < 1:
        return out
    confident = _confident(focus_map, confidence)
    for value in (True, False):
        labels, count = ndimage.label(out == value)
        if count == 0:
            continue
        flip = np.bincount(labels.ravel(), minlength=count + 1) <= min_size
        flip[0] = False
        if confident is not None and flip.any():
            # confident pixels per region; only their labels are gathered
            flip &= np.bincount(labels[confident], minlength=count + 1) == 0
        if flip.any():
            out[flip[labels]] = not value
        del labels
    return out


def _confident(focus_map: np.ndarray, confidence: float) -> np.ndarray | None:
    """Pixels whose focus-map margin |2S − 1| exceeds ``confidence`` (None for ``confidence`` ≥ 1)."""
    if confidence >= 1.0:
        return None
    # |2S − 1| > c  ⇔  S > (1 + c)/2 or S < (1 − c)/2; bool, not a float margin map
    return (focus_map > (1.0 + confidence) / 2) | (focus_map < (1.0 - confidence) / 2)


def _region_tables(
    part: np.ndarray, focus_part: np.ndarray, value: bool, confidence: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels of ``part == value`` (4-connected), pixels per label, confident pixels per label."""
    labels, count = ndimage.label(part == value)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    confident = _confident(focus_part, confidence)
    if confident is None:
        return labels, sizes, np.zeros(count + 1, np.int64)
    return labels, sizes, np.bincount(labels[confident], minlength=count + 1)


def _edge_regions(
    out: np.ndarray, focus_map: np.ndarray, value: bool, confidence: float, span: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Pass 1 of :func:`remove_unconfident_regions_in_bands` on the band ``span``: its regions
    on its first or last row (labels), their sizes and confident pixels, the labels of those
    two rows, and the band's label count."""
    r0, r1 = span
    labels, sizes, confident = _region_tables(out[r0:r1], focus_map[r0:r1], value, confidence)
    edge = np.union1d(labels[0], labels[-1])
    edge = edge[edge > 0]
    return edge, sizes[edge], confident[edge], labels[0].copy(), labels[-1].copy(), sizes.size


def _hand_over(
    out: np.ndarray,
    focus_map: np.ndarray,
    value: bool,
    confidence: float,
    min_size: int,
    whole_small: np.ndarray,
    span: tuple[int, int],
    band_edge: tuple[int, np.ndarray],
) -> None:
    """Pass 2 on the band ``span``: the same labels as pass 1 (no other band's rows change
    them); its small unconfident regions go to the other source, those on a band edge by
    their whole region's verdict (``whole_small`` from ``band_edge``'s first global number)."""
    (r0, r1), (start, edge) = span, band_edge
    labels, sizes, confident = _region_tables(out[r0:r1], focus_map[r0:r1], value, confidence)
    flip = (sizes <= min_size) & (confident == 0)
    flip[edge] = whole_small[start : start + edge.size]
    flip[0] = False
    if flip.any():
        out[r0:r1][flip[labels]] = not value


def remove_unconfident_regions_in_bands(
    binary: np.ndarray,
    focus_map: np.ndarray,
    min_size: int,
    confidence: float,
    rows_per_band: int,
    *,
    in_place: bool = False,
    threads: int = 1,
) -> np.ndarray:
    """:func:`remove_unconfident_regions`, worked in bands of ``rows_per_band`` rows: the same map.

    Two passes per source. The first labels each band and keeps, for the regions that touch a
    band's first or last row only, their pixel and confident-pixel counts and which regions
    of the next band they meet; joining those gives every region's whole size, however many
    bands it spans (any ``min_size``, the paper's 1 % of the image included). The second
    labels each band again and hands the small unconfident regions over. Bands are labelled
    ``threads`` at a time (scipy's labelling releases the GIL; each band reads and writes its
    own rows only). Memory: the labels of ``threads`` bands plus a table of the regions that
    cross band edges, not the image's labels. ``in_place``: change ``binary`` itself (no
    second map).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = binary if in_place else binary.copy()
    if min_size < 1:
        return out
    height = out.shape[0]
    spans = [(r0, min(height, r0 + max(1, rows_per_band))) for r0 in range(0, height, max(1, rows_per_band))]
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(spans) > 1 else None
    each = map if pool is None else pool.map
    try:
        for value in (True, False):
            # pass 1: regions touching a band edge get a global number; join them across edges
            edge_sizes, edge_confident, links_a, links_b, edges = [], [], [], [], []
            first, bottom = 0, None
            tables = each(partial(_edge_regions, out, focus_map, value, confidence), spans)
            for edge, sizes, confident, top_row, bottom_row, count in tables:
                number = np.full(count, -1, np.int64)
                number[edge] = first + np.arange(edge.size)
                edge_sizes.append(sizes)
                edge_confident.append(confident)
                edges.append((first, edge))
                top = number[top_row]
                if bottom is not None:
                    touching = (bottom >= 0) & (top >= 0)
                    links_a.append(bottom[touching])
                    links_b.append(top[touching])
                bottom = number[bottom_row]
                first += edge.size
            whole_small = np.zeros(0, bool)
            if first:
                a = np.concatenate(links_a) if links_a else np.zeros(0, np.int64)
                b = np.concatenate(links_b) if links_b else np.zeros(0, np.int64)
                graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(first, first))
                _, joined = connected_components(graph, directed=False)
                size = np.bincount(joined, weights=np.concatenate(edge_sizes))
                sure = np.bincount(joined, weights=np.concatenate(edge_confident))
                whole_small = ((size <= min_size) & (sure == 0))[joined]

            hand_over = partial(_hand_over, out, focus_map, value, confidence, min_size, whole_small)
            list(each(hand_over, spans, edges))  # re-raises a band's error
    finally:
        if pool is not None:
            pool.shutdown()
    return out


#: The same floor for the step-robust measure (:func:`robust_energy`), three times higher:
#: the median ignores an edge, so only real texture should count there.
ROBUST_FLOOR = 3e-3


def _sliding(values: np.ndarray, size: int, axis: int, combine: Callable, outside: bool) -> np.ndarray:
    """``combine`` (``np.logical_or``/``np.logical_and``) of a bool map over ``size`` pixels
    centred along ``axis`` (odd ``size``), pixels beyond the map taken as ``outside``: runs of
    doubling length, then two overlapping ones."""
    half = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (half, half)
    acc = np.pad(values, pad, constant_values=outside)
    n = values.shape[axis]

    def part(array: np.ndarray, start: int, length: int) -> np.ndarray:
        return array[start : start + length] if axis == 0 else array[:, start : start + length]

    span = 1  # acc[i] combines pixels i … i + span − 1 of the padded map
    while 2 * span <= size:
        length = acc.shape[axis] - span
        acc = combine(part(acc, 0, length), part(acc, span, length))
        span *= 2
    return combine(part(acc, 0, n), part(acc, size - span, n)) if span < size else part(acc, 0, n)


def boundary_band(binary: np.ndarray, radius: int) -> np.ndarray:
    """Pixels within ``radius`` px (Chebyshev) of a change in the bool map: its dilation minus
    its erosion by a (2·radius + 1)² square, the map's outside counted as neither (= scipy's
    ``binary_dilation``/``binary_erosion(border_value=1)`` with a 3×3 square ``radius`` times;
    ~10× faster)."""
    if radius < 1:
        return np.zeros(binary.shape, bool)
    size = 2 * radius + 1
    grown = _sliding(_sliding(binary, size, 0, np.logical_or, False), size, 1, np.logical_or, False)
    shrunk = _sliding(_sliding(binary, size, 0, np.logical_and, True), size, 1, np.logical_and, True)
    grown &= ~shrunk
    return grown


def squared_laplacian(grey: np.ndarray) -> np.ndarray:
    """The squared Laplacian of ``grey`` (float32): what both energies below average."""
    lap = ndimage.laplace(grey.astype(np.float32))
    lap *= lap
    return lap


def fine_energy(grey: np.ndarray, window: int) -> np.ndarray:
    """Laplacian energy averaged over ``window``×``window`` pixels (float32)."""
    return _mean_energy(squared_laplacian(grey), window)


def _mean_energy(squared: np.ndarray, window: int) -> np.ndarray:
    """:func:`fine_energy` from the image's :func:`squared_laplacian`."""
    return ndimage.uniform_filter(squared, window)


def robust_energy(grey: np.ndarray, window: int) -> np.ndarray:
    """Laplacian energy, median over ``window`` pixels across of the medians over ``window``
    along (float32): texture that fills most of the window counts, a single edge does not.

    A step between an in-focus and a defocused area puts a line of strong Laplacian into
    every window within a few pixels of it, so the mean energy (:func:`fine_energy`) of the
    image whose edge is crisp wins on both sides of it; the median does not see a line.
    """
    return _median_energy(squared_laplacian(grey), window)


def _median_energy(squared: np.ndarray, window: int) -> np.ndarray:
    """:func:`robust_energy` from the image's :func:`squared_laplacian`."""
    return _running_median(_running_median(squared, window, axis=1), window, axis=0)


def majority3(binary: np.ndarray) -> np.ndarray:
    """``ndimage.median_filter`` of a bool map over 3×3 ('reflect' edges), as a count of the
    True pixels (≥ 5 of 9): the same map, ~40× faster."""
    padded = np.pad(binary.view(np.uint8), 1, mode="symmetric")  # = ndimage's 'reflect'
    rows = padded[:-2] + padded[1:-1]
    rows += padded[2:]
    count = rows[:, :-2] + rows[:, 1:-1]
    count += rows[:, 2:]
    return count >= 5


def smooth_changes(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``after`` with the pixels that differ from ``before`` set to the 3×3 majority of
    ``after`` (:func:`majority3`): a re-decided pixel keeps its new side only where most of
    its neighbours agree; pixels that kept their side stay."""
    return np.where(after != before, majority3(after), after)


def robust_energy_at(grey: np.ndarray, window: int, where: np.ndarray) -> np.ndarray:
    """``robust_energy(grey, window)[where]`` (odd ``window``), computed at those pixels
    only: the same values, for a sparse ``where`` at a fraction of the cost."""
    if window % 2 == 0:
        return robust_energy(grey, window)[where]
    lap = squared_laplacian(grey)
    half = window // 2
    padded = np.pad(lap, half, mode="symmetric")  # = ndimage's 'reflect', both passes
    del lap
    ys, xs = np.nonzero(where)
    row_medians = np.empty((window, ys.size), np.float32)
    for dy in range(window):
        along = np.stack([padded[ys + dy, xs + dx] for dx in range(window)])
        row_medians[dy] = np.partition(along, half, axis=0)[half]
    return np.partition(row_medians, half, axis=0)[half]


def _running_median(values: np.ndarray, window: int, axis: int) -> np.ndarray:
    """``ndimage.median_filter`` over ``window`` pixels along ``axis`` (its default 'reflect'
    edges); for the 5-pixel window, the same values from a min/max network, ~4x faster."""
    if window != 5:
        size = [1] * values.ndim
        size[axis] = window
        return ndimage.median_filter(values, size=tuple(size))
    pad = [(0, 0)] * values.ndim
    pad[axis] = (2, 2)
    padded = np.pad(values, pad, mode="symmetric")  # = ndimage's 'reflect'
    n = values.shape[axis]
    a, b, c, d, e = (padded[(slice(None),) * axis + (slice(k, k + n),)] for k in range(5))
    # median of 5 = median of (e, low, high); written in place to hold three temporaries
    low, high, spare = np.minimum(a, b), np.maximum(a, b), np.minimum(c, d)
    np.maximum(low, spare, out=low)  # low = max(min(a, b), min(c, d))
    np.maximum(c, d, out=spare)
    np.minimum(high, spare, out=high)  # high = min(max(a, b), max(c, d))
    np.maximum(e, low, out=spare)
    np.minimum(spare, high, out=spare)
    np.minimum(e, low, out=low)
    return np.maximum(low, spare, out=low)


def band_squared_laplacians(
    grey_a: np.ndarray, grey_b: np.ndarray, r0: int, r1: int, window: int
) -> tuple[np.ndarray, np.ndarray, slice]:
    """:func:`squared_laplacian` of both images on rows ``r0:r1`` plus the filters' reach, and
    the rows of that band that are ``r0:r1``: an energy of the band cut to them equals the
    whole image's."""
    reach = window // 2 + 1  # the Laplacian's and the window's reach
    lo, hi = max(0, r0 - reach), min(grey_a.shape[0], r1 + reach)
    return squared_laplacian(grey_a[lo:hi]), squared_laplacian(grey_b[lo:hi]), slice(r0 - lo, r1 - lo)


def _margin(energy_a: np.ndarray, energy_b: np.ndarray, floor: float) -> np.ndarray:
    """(E_A − E_B) / (E_A + E_B + ``floor``), written into ``energy_a``'s buffer's place with one
    temporary (the same values as the plain expression)."""
    difference = energy_a - energy_b
    energy_a += energy_b
    energy_a += np.float32(floor)
    difference /= energy_a
    return difference


def override_by_fine_measure(
    decision_map: np.ndarray,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    margin: float,
    window: int = 5,
    robust: bool = True,
    rows_per_chunk: int = 1024,
) -> np.ndarray:
    """Take the source the fine focus measure clearly prefers, wherever it does.

    The fine margin is (E_A − E_B) / (E_A + E_B + :data:`ENERGY_FLOOR`) with E the
    Laplacian energy in a ``window``×``window`` neighbourhood; where it exceeds
    ``margin`` (or falls below −``margin``) the pixel goes to A (B) whatever the patch
    decision said. With ``robust``, where that margin is not clear, the same test on the
    step-robust energy (:func:`robust_energy`, floor :data:`ROBUST_FLOOR`) decides: it
    places the boundary on a crisp occlusion edge instead of a few pixels past it, into
    the side that is sharp in the other image. The pixels changed take the 3×3 median of
    the result (no isolated specks). ``margin`` ≥ 1 changes nothing. Worked in bands of
    ``rows_per_chunk`` rows with their margins (same result, bounded memory).
    """
    if margin >= 1.0:
        return decision_map
    out = decision_map.copy()
    height = decision_map.shape[0]
    for r0 in range(0, height, rows_per_chunk):
        r1 = min(height, r0 + rows_per_chunk)
        e0, e1 = max(0, r0 - 1), min(height, r1 + 1)  # one more row each side for the median
        lap2_a, lap2_b, inner = band_squared_laplacians(grey_a, grey_b, e0, e1, window)
        fine = _margin(_mean_energy(lap2_a, window)[inner], _mean_energy(lap2_b, window)[inner], ENERGY_FLOOR)
        before = decision_map[e0:e1]
        after = before.copy()
        after[fine > margin] = True
        after[fine < -margin] = False
        if robust:
            unclear = np.abs(fine) <= margin
            del fine
            median_a = _median_energy(lap2_a, window)[inner]
            del lap2_a  # each Laplacian as soon as its last use is done: memory
            steady = _margin(median_a, _median_energy(lap2_b, window)[inner], ROBUST_FLOOR)
            after[unclear & (steady > margin)] = True
            after[unclear & (steady < -margin)] = False
            del median_a, steady
        keep = slice(r0 - e0, r0 - e0 + (r1 - r0))
        out[r0:r1] = smooth_changes(before, after)[keep]
    return out


# --- the edge-side test: who owns the few pixels either side of a step edge (issue 18) ---

#: Margin of the edge-side measure (:func:`edge_side_margin`) above which it re-decides a
#: pixel within :data:`EDGE_SIDE_NEAR` px of the decision boundary.
EDGE_SIDE_MARGIN = 0.6
#: Pixels either side of the decision boundary that :func:`refine_edge_side` may re-decide.
EDGE_SIDE_NEAR = 3
#: The step-robust margin (:func:`robust_energy`) may not oppose the edge-side measure by
#: more than this (two measures that each ignore a single edge, in different ways).
EDGE_SIDE_ROBUST = 0.3
#: Glow guard (grey on the joint [0, 1] scale): a pixel is not handed to the source whose
#: 3×3 mean leans toward the other side's level by more than this over the other source's.
GLOW_FLOOR = 0.01
#: Radius (px) of the window in which each side's level is averaged for the glow guard.
SIDE_RADIUS = 8
#: Edge of the square blocks :func:`refine_edge_side` works in (each with its halo); a
#: block without a pixel near the decision boundary is skipped, since nothing in it changes.
EDGE_SIDE_BLOCK = 256


def second_difference_variance(grey: np.ndarray, window: int) -> np.ndarray:
    """Per pixel, as the centre of a ``window``×``window`` window: the variance of the
    horizontal second differences whose three pixels all lie in the window, and of the
    vertical ones, averaged (float32).

    Only differences inside the window count, so a window beside a step edge sees nothing
    of it; the variance, not the mean square, so the smooth curvature of a defocus glow
    (nearly the same second difference across the window) does not count as texture.
    """
    g = grey.astype(np.float32)
    p = np.pad(g, 1, mode="symmetric")  # = ndimage's 'reflect'
    dxx = p[1:-1, :-2] - 2 * g + p[1:-1, 2:]
    dyy = p[:-2, 1:-1] - 2 * g + p[2:, 1:-1]
    del p, g
    out = np.zeros(grey.shape, np.float32)
    for diff, size in ((dxx, (window, window - 2)), (dyy, (window - 2, window))):
        mean = ndimage.uniform_filter(diff, size)
        square = ndimage.uniform_filter(diff * diff, size)
        square -= mean * mean
        np.maximum(square, 0, out=square)
        out += square
    out *= 0.5
    return out


def edge_side_margin(
    grey_a: np.ndarray, grey_b: np.ndarray, window: int = 5, where: np.ndarray | None = None
) -> np.ndarray:
    """Which source is sharper on the pixel's own side of a nearby step edge: a margin in
    [−1, 1] (float32), > 0 = A.

    Of the ``window``×``window`` windows that contain the pixel, the one in which the less
    textured source has the least :func:`second_difference_variance` is taken (the window
    that keeps clear of a crisp step, which puts energy into the blurred image's window as
    well as the sharp one's); there the margin is (V_A − V_B) / (V_A + V_B +
    :data:`ENERGY_FLOOR`). A pixel one to three pixels inside a B-sharp hole in an A-sharp
    island thus compares the hole's texture only, not A's crisp island edge next to it.
    ``where`` (bool): compute only those pixels (the others are 0); the same values.
    """
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be odd and at least 3, got {window}")
    half = window // 2
    pad_a = np.pad(second_difference_variance(grey_a, window), half, mode="symmetric")
    pad_b = np.pad(second_difference_variance(grey_b, window), half, mode="symmetric")
    ys, xs = np.nonzero(np.ones(grey_a.shape, bool) if where is None else where)
    least = np.full(ys.size, np.inf, np.float32)
    picked = np.zeros(ys.size, np.float32)
    floor = np.float32(ENERGY_FLOOR)
    for dy in range(-half, half + 1):
        for dx in range(-half, half + 1):
            a = pad_a[ys + (half + dy), xs + (half + dx)]
            b = pad_b[ys + (half + dy), xs + (half + dx)]
            weaker = np.minimum(a, b)
            take = weaker < least
            least[take] = weaker[take]
            picked[take] = (a[take] - b[take]) / (a[take] + b[take] + floor)
    margin = np.zeros(grey_a.shape, np.float32)
    margin[ys, xs] = picked
    return margin


def edge_side_reach(window: int) -> int:
    """Rows of context :func:`refine_edge_side` needs either side of a row (its halo)."""
    return max(SIDE_RADIUS, EDGE_SIDE_NEAR, 2 * (window // 2) + 1) + 2


def refine_edge_side(
    decision_map: np.ndarray,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    window: int = 5,
    margin: float = EDGE_SIDE_MARGIN,
    rows_per_chunk: int = 1024,
) -> np.ndarray:
    """Re-decide the pixels within :data:`EDGE_SIDE_NEAR` px of the decision boundary by the
    edge-side measure (:func:`edge_side_margin`), where it is clear (beyond ``margin``),
    the step-robust margin does not oppose it by more than :data:`EDGE_SIDE_ROBUST`, and
    the glow guard allows it.

    Glow guard: each side's level is the mean, within :data:`SIDE_RADIUS` px, of the pixels
    decided for that side, each in its own source. A pixel is not handed to B where B's
    3×3 mean lies further toward A's side's level than A's does (by more than
    :data:`GLOW_FLOOR`): there B carries the defocus glow of A's side (the thin-structure
    scene's bright wires), and A's blurred background is the nearer one; and the same with
    A and B swapped. The pixels changed take the 3×3 median of the result. Local (a halo of
    :func:`edge_side_reach` pixels), worked in bands of ``rows_per_chunk`` rows and in blocks
    of :data:`EDGE_SIDE_BLOCK` pixels within them, skipping blocks with no pixel near the
    boundary: the same map as on the whole image. ``margin`` ≥ 1 changes nothing.
    """
    if margin >= 1.0:
        return decision_map
    out = decision_map.copy()
    height = decision_map.shape[0]
    reach = edge_side_reach(window)
    for r0 in range(0, height, rows_per_chunk):
        r1 = min(height, r0 + rows_per_chunk)
        lo, hi = max(0, r0 - reach), min(height, r1 + reach)
        before = decision_map[lo:hi]
        near = boundary_band(before, EDGE_SIDE_NEAR)
        ga, gb = grey_a[lo:hi], grey_b[lo:hi]
        for block, window_, inner in blocks_near(near, EDGE_SIDE_BLOCK, reach, rows=slice(r0 - lo, r1 - lo)):
            decided = _edge_side_window(
                before[window_], near[window_], ga[window_], gb[window_], window, margin
            )
            out[lo:hi][block] = decided[inner]
    return out


Slices = tuple[slice, slice]


def blocks_near(
    near: np.ndarray, block: int, reach: int, rows: slice = slice(None)
) -> Iterator[tuple[Slices, Slices, Slices]]:
    """The ``block``-pixel squares of ``near``'s ``rows`` that hold a True pixel of ``near``
    (blocks without one are skipped), as (block, window, block within the window): the
    window is the block grown by ``reach`` pixels, clipped to ``near``."""
    height, width = near.shape
    first, last, _ = rows.indices(height)
    for r0 in range(first, last, block):
        r1 = min(last, r0 + block)
        for c0 in range(0, width, block):
            c1 = min(width, c0 + block)
            if not near[r0:r1, c0:c1].any():
                continue
            top, left = max(0, r0 - reach), max(0, c0 - reach)
            window = (slice(top, min(height, r1 + reach)), slice(left, min(width, c1 + reach)))
            yield (
                (slice(r0, r1), slice(c0, c1)),
                window,
                (slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)),
            )


def _edge_side_window(
    before: np.ndarray, near: np.ndarray, ga: np.ndarray, gb: np.ndarray, window: int, margin: float
) -> np.ndarray:
    """:func:`refine_edge_side` on one window (a block and its halo): the decisions after."""
    side = edge_side_margin(ga, gb, window, where=near)
    energy_a, energy_b = robust_energy_at(ga, window, near), robust_energy_at(gb, window, near)
    steady = np.zeros(near.shape, np.float32)  # only ``near`` pixels are read
    steady[near] = (energy_a - energy_b) / (energy_a + energy_b + np.float32(ROBUST_FLOOR))
    del energy_a, energy_b
    lean = _glow_lean(before, ga, gb)
    to_a = near & ~before & (side > margin) & (steady > -EDGE_SIDE_ROBUST) & (lean >= -GLOW_FLOOR)
    to_b = near & before & (side < -margin) & (steady < EDGE_SIDE_ROBUST) & (lean <= GLOW_FLOOR)
    after = before.copy()
    after[to_a] = True
    after[to_b] = False
    return smooth_changes(before, after)


def _glow_lean(decision: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray) -> np.ndarray:
    """How far B's 3×3 mean lies toward A's side's level beyond A's 3×3 mean (grey, float32;
    > 0: B leans toward A's side). Side levels: means within :data:`SIDE_RADIUS` px of the
    pixels decided A (in A) and decided B (in B)."""
    size = 2 * SIDE_RADIUS + 1
    share_a = ndimage.uniform_filter(decision.astype(np.float32), size)
    level_a = ndimage.uniform_filter(grey_a * decision, size)
    level_b = ndimage.uniform_filter(grey_b * ~decision, size)
    tiny = np.float32(1e-6)
    level_a /= np.maximum(share_a, tiny)
    level_b /= np.maximum(1 - share_a, tiny)
    direction = np.sign(level_a - level_b)
    lean = ndimage.uniform_filter(grey_b, 3) - ndimage.uniform_filter(grey_a, 3)
    lean *= direction
    return lean
