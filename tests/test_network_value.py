"""The network-value benchmark's Laplacian focus maps and paired statistics give known answers."""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
network_value = pytest.importorskip("network_value")


@pytest.fixture
def half_sharp_pair():
    texture = np.random.default_rng(0).random((96, 128)).astype(np.float32)
    blurred = ndimage.uniform_filter(texture, 7)
    left = np.zeros(texture.shape, bool)
    left[:, :64] = True
    return np.where(left, texture, blurred), np.where(left, blurred, texture), left


@pytest.mark.parametrize("name", ["lap-patch", "lap-ratio-7", "lap-ratio-15", "lap-hard-7"])
def test_laplacian_focus_maps_find_the_sharp_half(half_sharp_pair, name):
    a, b, left = half_sharp_pair
    focus = network_value.LAPLACIAN_MAPS[name](a, b)
    assert focus.shape == a.shape and focus.dtype == np.float32
    inner = ndimage.binary_erosion(left, iterations=16)
    outer = ndimage.binary_erosion(~left, iterations=16)
    assert focus[inner].min() > 0.9 and focus[outer].max() < 0.1
    # swapping A and B mirrors the map
    np.testing.assert_allclose(network_value.LAPLACIAN_MAPS[name](b, a), 1.0 - focus, atol=1e-6)


def test_ratio_map_is_unsure_where_neither_image_has_detail():
    flat = np.full((48, 48), 0.4, np.float32)
    np.testing.assert_allclose(network_value.ratio_map(flat, flat, 7), 0.5)


def test_paired_differences_known_answer():
    cases = [f"c{i}" for i in range(10)]
    rows = [{"case": c, "method": "x", "m": 1.0 + i} for i, c in enumerate(cases)]
    rows += [{"case": c, "method": "y", "m": float(i) + (0.0 if i < 8 else 2.0)} for i, c in enumerate(cases)]
    result = network_value.paired(rows, "x", "y", "m", np.random.default_rng(0))
    # differences: eight of +1, two of −1
    assert result["mean_diff"] == pytest.approx(0.6)
    assert (result["wins"], result["losses"]) == (8, 2)
    assert result["ci95_low"] < 0.6 < result["ci95_high"]
    assert result["sign_test_p"] == pytest.approx(0.109375)
