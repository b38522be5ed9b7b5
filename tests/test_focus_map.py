"""The focus map is the mean score of every patch covering a pixel (checked by brute force)."""

import numpy as np
import pytest

from acnn_fusion.core.inference import focus_map_from_scores
from acnn_fusion.core.model import score_map_shape


@pytest.mark.parametrize("shape", [(16, 16), (40, 37), (53, 64)])
def test_focus_map_equals_brute_force_average(shape):
    h, w = score_map_shape(*shape)
    scores = np.random.default_rng(0).random((h, w)).astype(np.float32)
    total = np.zeros(shape)
    count = np.zeros(shape)
    for i in range(h):
        for j in range(w):
            total[2 * i : 2 * i + 16, 2 * j : 2 * j + 16] += scores[i, j]
            count[2 * i : 2 * i + 16, 2 * j : 2 * j + 16] += 1
    ch, cw = int((count[:, 0] > 0).sum()), int((count[0] > 0).sum())
    mean = total[:ch, :cw] / count[:ch, :cw]
    # an uncovered odd margin (one row or column) copies its neighbour
    expected = np.pad(mean, ((0, shape[0] - ch), (0, shape[1] - cw)), mode="edge")
    result = focus_map_from_scores(scores, shape)
    assert result.shape == shape and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)
