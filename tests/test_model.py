"""The network: dense mode equals patch mode; the split head equals the joint head."""

import numpy as np
import pytest
import torch

from acnn_fusion.core.model import ACNN, PATCH_SIZE, ACNNConfig, score_map_shape
from acnn_fusion.core.weights import load_model


@pytest.mark.parametrize("model_source", ["random", "shipped"])
def test_dense_scores_equal_patch_scores(model_source):
    torch.manual_seed(0)
    model = ACNN(ACNNConfig(8, 16, 16, 16)) if model_source == "random" else load_model()
    model.eval()
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((1, 1, 61, 70), dtype=np.float32))
    b = torch.from_numpy(rng.random((1, 1, 61, 70), dtype=np.float32))
    with torch.no_grad():
        dense = ACNN.score(model(a, b))[0]
        h, w = score_map_shape(61, 70)
        assert dense.shape[0] >= h and dense.shape[1] >= w
        for i, j in [(0, 0), (h - 1, w - 1), (7, 11), (h // 2, 3)]:
            pa = a[:, :, 2 * i : 2 * i + PATCH_SIZE, 2 * j : 2 * j + PATCH_SIZE]
            pb = b[:, :, 2 * i : 2 * i + PATCH_SIZE, 2 * j : 2 * j + PATCH_SIZE]
            patch = ACNN.score(model(pa, pb))
            assert patch.shape == (1, 1, 1)
            assert abs(float(patch) - float(dense[i, j])) <= 1e-5


def test_split_head_matches_joint_head():
    torch.manual_seed(1)
    model = ACNN(ACNNConfig(8, 16, 16, 16)).eval()
    a, b = torch.rand(2, 1, 1, 40, 40)
    with torch.no_grad():
        fa, fb = model.branch(a), model.branch(b)
        joint = model.head(fa, fb)
        split = model.head.combine(model.head.project(fa, as_a=True), model.head.project(fb, as_a=False))
    torch.testing.assert_close(joint, split, atol=1e-5, rtol=1e-5)


def test_score_map_shape_and_small_images():
    assert score_map_shape(16, 16) == (1, 1)
    assert score_map_shape(520, 521) == (253, 253)
    with pytest.raises(ValueError, match="smaller than"):
        score_map_shape(15, 40)
