"""fuse_pair: known answers on synthetic pairs, invariants, tiling, bad input."""

import numpy as np
import pytest

from acnn_fusion import fuse_pair
from acnn_fusion.core.imageops import joint_unit_range, to_grey
from acnn_fusion.core.inference import compute_focus_map, select_device
from acnn_fusion.core.pipeline import FusionSettings, blend, decide
from acnn_fusion.core.weights import load_model

from .conftest import textured


def _agreement_on_texture(result, pair) -> float:
    region = textured(pair.sharp)
    return float(np.mean(result.decision_map[region] == pair.mask[region]))


def test_decision_map_matches_ground_truth_grey(camera_pair):
    result = fuse_pair(camera_pair.image_a, camera_pair.image_b)
    assert _agreement_on_texture(result, camera_pair) >= 0.95


def test_decision_map_matches_ground_truth_colour(colour_pair):
    result = fuse_pair(colour_pair.image_a, colour_pair.image_b)
    assert _agreement_on_texture(result, colour_pair) >= 0.95


def test_swapping_inputs_flips_the_decision(camera_pair):
    ab = fuse_pair(camera_pair.image_a, camera_pair.image_b)
    ba = fuse_pair(camera_pair.image_b, camera_pair.image_a)
    region = textured(camera_pair.sharp)  # flat sky carries no focus information either way
    assert np.mean(ab.decision_map[region] != ba.decision_map[region]) >= 0.95


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("colour", [False, True])
def test_invariants_shape_dtype_and_values_from_sources(camera_pair, colour_pair, dtype, colour):
    pair = colour_pair if colour else camera_pair
    scale = {np.uint8: 1, np.uint16: 257, np.float32: 1 / 255, np.float64: 1 / 255}[dtype]
    a = (pair.image_a.astype(np.float64) * scale).astype(dtype)
    b = (pair.image_b.astype(np.float64) * scale).astype(dtype)
    result = fuse_pair(a, b)
    assert result.fused.shape == a.shape and result.fused.dtype == a.dtype
    assert result.focus_map.shape == a.shape[:2] and result.focus_map.dtype == np.float32
    assert 0.0 <= result.focus_map.min() and result.focus_map.max() <= 1.0
    assert result.decision_map.dtype == bool
    d = result.decision_map if a.ndim == 2 else result.decision_map[..., None]
    assert np.array_equal(result.fused, np.where(d, a, b))
    assert _agreement_on_texture(result, pair) >= 0.9


def test_tiled_and_untiled_focus_maps_agree(camera_pair):
    model = load_model()
    ga, gb = joint_unit_range(
        to_grey(camera_pair.image_a), to_grey(camera_pair.image_b), source_dtype=np.uint8
    )
    cpu = select_device("cpu")
    whole = compute_focus_map(model, ga, gb, device=cpu, tile=4096)
    tiled = compute_focus_map(model, ga, gb, device=cpu, tile=64)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    settings = FusionSettings()
    assert np.array_equal(decide(tiled, settings), decide(whole, settings))


def test_decide_removes_small_regions_and_fills_holes():
    focus = np.zeros((100, 100), np.float32)
    focus[10:60, 10:60] = 1.0  # a large A region with a small hole
    focus[30:33, 30:33] = 0.0
    focus[80:83, 80:83] = 1.0  # a small isolated A speck
    d = decide(focus, FusionSettings(threshold=0.5, min_region=0.01, min_region_px=0, region_confidence=1.0))
    assert d[31, 31] and not d[81, 81] and d[20, 20] and not d[5, 5]


def test_threshold_moves_uncertain_pixels_to_b():
    focus = np.full((64, 64), 0.7, np.float32)
    assert decide(focus, FusionSettings(threshold=0.5)).all()
    assert not decide(focus, FusionSettings(threshold=0.9)).any()


def test_blend_copies_every_channel():
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 9, np.uint8)
    d = np.eye(4, dtype=bool)
    out = blend(a, b, d)
    assert (out[d] == 0).all() and (out[~d] == 9).all()


@pytest.mark.parametrize(
    ("a", "b", "error", "message"),
    [
        (np.zeros((32, 32)), np.zeros((32, 33)), ValueError, "differ in shape"),
        (np.zeros((8, 32)), np.zeros((8, 32)), ValueError, "smaller than"),
        (np.full((32, 32), np.nan), np.zeros((32, 32)), ValueError, "NaN"),
        (np.zeros((32, 32), bool), np.zeros((32, 32), bool), TypeError, "dtype"),
        (np.zeros((32, 32), np.int64), np.zeros((32, 32), np.int64), TypeError, "dtype"),
        (np.zeros((4, 32, 32)), np.zeros((4, 32, 32)), ValueError, "fuse_stack"),
        ([[0] * 32] * 32, np.zeros((32, 32)), TypeError, "numpy array"),
        (np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint16), TypeError, "differ in dtype"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(a, b, error, message):
    with pytest.raises(error, match=message):
        fuse_pair(a, b)


def test_bad_settings_and_devices():
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(ValueError, match="threshold"):
        fuse_pair(img, img, threshold=1.5)
    with pytest.raises(ValueError, match="preset"):
        fuse_pair(img, img, preset="nope")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_constant_images_fuse_without_error():
    img = np.full((40, 40), 7, np.uint16)
    result = fuse_pair(img, img.copy())
    assert (result.fused == 7).all()
