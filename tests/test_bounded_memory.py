"""Large-image paths that work in bands give the same answer as the whole-image computation."""

import numpy as np

from acnn_fusion.core.pipeline import refine_boundary


def test_refinement_in_row_bands_equals_whole_image():
    rng = np.random.default_rng(0)
    grey_a = rng.random((90, 70), dtype=np.float32)
    grey_b = rng.random((90, 70), dtype=np.float32)
    decision = np.zeros((90, 70), bool)
    decision[20:75, 10:50] = True
    whole = refine_boundary(decision, grey_a, grey_b, rows_per_chunk=1000)
    banded = refine_boundary(decision, grey_a, grey_b, rows_per_chunk=7)
    assert np.array_equal(whole, banded)
    assert not np.array_equal(whole, decision)  # the refinement did change pixels
