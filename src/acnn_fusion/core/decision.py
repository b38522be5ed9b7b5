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

from collections.abc import Callable

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


def remove_unconfident_regions_in_bands(
    binary: np.ndarray,
    focus_map: np.ndarray,
    min_size: int,
    confidence: float,
    rows_per_band: int,
    *,
    in_place: bool = False,
) -> np.ndarray:
    """:func:`remove_unconfident_regions`, worked in bands of ``rows_per_band`` rows: the same map.

    Two passes per source. The first labels each band and keeps, for the regions that touch a
    band's first or last row only, their pixel and confident-pixel counts and which regions
    of the next band they meet; joining those gives every region's whole size, however many
    bands it spans (any ``min_size``, the paper's 1 % of the image included). The second
    labels each band again and hands the small unconfident regions over. Memory: the bands'
    labels plus a table of the regions that cross band edges, not the image's labels.
    ``in_place``: change ``binary`` itself (no second map).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    out = binary if in_place else binary.copy()
    if min_size < 1:
        return out
    height = out.shape[0]
    spans = [(r0, min(height, r0 + max(1, rows_per_band))) for r0 in range(0, height, max(1, rows_per_band))]
    for value in (True, False):
        # pass 1: regions touching a band edge get a global number; join them across edges
        edge_sizes, edge_confident, links_a, links_b, edges = [], [], [], [], []
        first, bottom = 0, None
        for r0, r1 in spans:
            labels, sizes, confident = _region_tables(out[r0:r1], focus_map[r0:r1], value, confidence)
            edge = np.union1d(labels[0], labels[-1])
            edge = edge[edge > 0]
            number = np.full(sizes.size, -1, np.int64)
            number[edge] = first + np.arange(edge.size)
            edge_sizes.append(sizes[edge])
            edge_confident.append(confident[edge])
            edges.append((first, edge))
            top = number[labels[0]]
            if bottom is not None:
                touching = (bottom >= 0) & (top >= 0)
                links_a.append(bottom[touching])
                links_b.append(top[touching])
            bottom = number[labels[-1]]
            first += edge.size
            del labels
        whole_small = np.zeros(0, bool)
        if first:
            a = np.concatenate(links_a) if links_a else np.zeros(0, np.int64)
            b = np.concatenate(links_b) if links_b else np.zeros(0, np.int64)
            graph = coo_matrix((np.ones(a.size, np.int8), (a, b)), shape=(first, first))
            _, joined = connected_components(graph, directed=False)
            size = np.bincount(joined, weights=np.concatenate(edge_sizes))
            sure = np.bincount(joined, weights=np.concatenate(edge_confident))
            whole_small = ((size <= min_size) & (sure == 0))[joined]
        # pass 2: the same labels again (rows of later bands are unchanged); hand small ones over
        for (r0, r1), (start, edge) in zip(spans, edges, strict=True):
            labels, sizes, confident = _region_tables(out[r0:r1], focus_map[r0:r1], value, confidence)
            flip = (sizes <= min_size) & (confident == 0)
            flip[edge] = whole_small[start : start + edge.size]
            flip[0] = False
            if flip.any():
                out[r0:r1][flip[labels]] = not value
            del labels
    return out


#: The same floor for the step-robust measure (:func:`robust_energy`), three times higher:
#: the median ignores an edge, so only real texture should count there.
ROBUST_FLOOR = 3e-3


def fine_energy(grey: np.ndarray, window: int) -> np.ndarray:
    """Laplacian energy averaged over ``window``×``window`` pixels (float32)."""
    lap = ndimage.laplace(grey.astype(np.float32))
    return ndimage.uniform_filter(lap * lap, window)


def robust_energy(grey: np.ndarray, window: int) -> np.ndarray:
    """Laplacian energy, median over ``window`` pixels across of the medians over ``window``
    along (float32): texture that fills most of the window counts, a single edge does not.

    A step between an in-focus and a defocused area puts a line of strong Laplacian into
    every window within a few pixels of it, so the mean energy (:func:`fine_energy`) of the
    image whose edge is crisp wins on both sides of it; the median does not see a line.
    """
    lap = ndimage.laplace(grey.astype(np.float32))
    return _running_median(_running_median(lap * lap, window, axis=1), window, axis=0)


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


def band_energies(
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    r0: int,
    r1: int,
    window: int,
    measure: Callable[[np.ndarray, int], np.ndarray] = fine_energy,
) -> tuple[np.ndarray, np.ndarray]:
    """``measure`` (:func:`fine_energy` or :func:`robust_energy`) of both images in rows
    ``r0:r1``, computed on that band plus the filters' reach, so the values equal the whole
    image's."""
    reach = window // 2 + 1  # the Laplacian's and the window's reach
    lo, hi = max(0, r0 - reach), min(grey_a.shape[0], r1 + reach)
    energy_a = measure(grey_a[lo:hi], window)[r0 - lo : r1 - lo]
    energy_b = measure(grey_b[lo:hi], window)[r0 - lo : r1 - lo]
    return energy_a, energy_b


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
        energy_a, energy_b = band_energies(grey_a, grey_b, e0, e1, window)
        fine = (energy_a - energy_b) / (energy_a + energy_b + np.float32(ENERGY_FLOOR))
        before = decision_map[e0:e1]
        after = before.copy()
        after[fine > margin] = True
        after[fine < -margin] = False
        if robust:
            unclear = np.abs(fine) <= margin
            del energy_a, energy_b, fine
            energy_a, energy_b = band_energies(grey_a, grey_b, e0, e1, window, robust_energy)
            steady = (energy_a - energy_b) / (energy_a + energy_b + np.float32(ROBUST_FLOOR))
            after[unclear & (steady > margin)] = True
            after[unclear & (steady < -margin)] = False
        smoothed = ndimage.median_filter(after.view(np.uint8), size=3).view(bool)
        keep = slice(r0 - e0, r0 - e0 + (r1 - r0))
        changed = after[keep] != before[keep]
        out[r0:r1] = np.where(changed, smoothed[keep], after[keep])
    return out
