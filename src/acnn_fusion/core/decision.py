"""Decision steps that do not depend on image size (issues 18 and 13).

- :func:`remove_unconfident_regions`: the small-region clean-up. A connected region of
  either source no larger than a minimum area *in pixels* is handed to the other source
  only when the focus map is not confident about it anywhere, so a confidently sharp
  small blob survives whatever the image size.
- :func:`override_by_fine_measure`: where a fine focus measure (Laplacian energy in a
  small window, full resolution) says clearly which source is sharper, it overrides the
  patch-scale decision, so details smaller than a 16×16 patch and thin structures keep
  their sharp source.

Both are local: the first looks at regions smaller than the minimum area only, the
second at a window of a few pixels.
"""

from __future__ import annotations

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
    # |2S − 1| > c  ⇔  S > (1 + c)/2 or S < (1 − c)/2; bool, not a float margin map
    confident = None
    if confidence < 1.0:
        confident = (focus_map > (1.0 + confidence) / 2) | (focus_map < (1.0 - confidence) / 2)
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


def fine_energy(grey: np.ndarray, window: int) -> np.ndarray:
    """Laplacian energy averaged over ``window``×``window`` pixels (float32)."""
    lap = ndimage.laplace(grey.astype(np.float32))
    return ndimage.uniform_filter(lap * lap, window)


def band_energies(
    grey_a: np.ndarray, grey_b: np.ndarray, r0: int, r1: int, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fine_energy` of both images in rows ``r0:r1``, computed on that band plus the
    filters' reach, so the values equal the whole image's."""
    reach = window // 2 + 1  # the Laplacian's and the window's reach
    lo, hi = max(0, r0 - reach), min(grey_a.shape[0], r1 + reach)
    energy_a = fine_energy(grey_a[lo:hi], window)[r0 - lo : r1 - lo]
    energy_b = fine_energy(grey_b[lo:hi], window)[r0 - lo : r1 - lo]
    return energy_a, energy_b


def override_by_fine_measure(
    decision_map: np.ndarray,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    margin: float,
    window: int = 5,
    rows_per_chunk: int = 1024,
) -> np.ndarray:
    """Take the source the fine focus measure clearly prefers, wherever it does.

    The fine margin is (E_A − E_B) / (E_A + E_B + :data:`ENERGY_FLOOR`) with E the
    Laplacian energy in a ``window``×``window`` neighbourhood; where it exceeds
    ``margin`` (or falls below −``margin``) the pixel goes to A (B) whatever the patch
    decision said, and the pixels it changed take the 3×3 median of the result (no
    isolated specks). ``margin`` ≥ 1 changes nothing. Worked in bands of
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
        smoothed = ndimage.median_filter(after.view(np.uint8), size=3).view(bool)
        keep = slice(r0 - e0, r0 - e0 + (r1 - r0))
        changed = after[keep] != before[keep]
        out[r0:r1] = np.where(changed, smoothed[keep], after[keep])
    return out
