"""Composition of the fused image: exact copy and multi-resolution (Laplacian pyramid) blending."""

import tracemalloc

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from acnn_fusion.core.compose import (
    _KERNEL,
    _expand,
    _reduce,
    auto_levels,
    collapse,
    compose_pair,
    compose_stack,
    laplacian_pyramid,
)

DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


def _random_image(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.random(shape)
    if np.dtype(dtype).kind == "u":
        return (values * np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def _half_map(shape):
    decision = np.zeros(shape, bool)
    decision[:, : shape[1] // 2] = True
    return decision


def _reference_reduce(image):
    smooth = ndimage.correlate1d(image, _KERNEL, axis=0, mode="mirror")
    return ndimage.correlate1d(smooth, _KERNEL, axis=1, mode="mirror")[::2, ::2]


def _reference_expand(image, shape):
    zeros = np.zeros((shape[0], shape[1], *image.shape[2:]))
    zeros[::2, ::2] = image
    rows = ndimage.correlate1d(zeros, 2 * _KERNEL, axis=0, mode="mirror")
    return ndimage.correlate1d(rows, 2 * _KERNEL, axis=1, mode="mirror")


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 4), (5, 6), (7, 9), (8, 8, 3), (17, 30)])
def test_reduce_and_expand_match_the_zero_filled_filter(shape):
    image = _random_image(shape, np.float64)
    small = _reduce(image)
    np.testing.assert_allclose(small, _reference_reduce(image), atol=1e-12)
    np.testing.assert_allclose(_expand(small, shape[:2]), _reference_expand(small, shape[:2]), atol=1e-12)


@pytest.mark.parametrize("shape", [(37, 53), (64, 48, 3), (101, 17)])
def test_laplacian_pyramid_collapses_to_the_image(shape):
    image = _random_image(shape, np.float64)
    for levels in (0, 1, auto_levels(shape)):
        np.testing.assert_allclose(collapse(laplacian_pyramid(image, levels)), image, atol=1e-12)


def test_auto_levels_keeps_eight_pixels_at_the_top():
    assert auto_levels((520, 520)) == 6  # 520 → 260 → … → 9
    assert auto_levels((16, 1000)) == 1
    assert auto_levels((14, 14)) == 0  # 14 → 7 < 8


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(45, 67), (33, 40, 3)])
def test_copy_is_np_where_exactly(dtype, shape):
    a, b = _random_image(shape, dtype, 1), _random_image(shape, dtype, 2)
    decision = _random_image(shape[:2], np.float64, 3) > 0.4
    expected = np.where(decision if len(shape) == 2 else decision[..., None], a, b)
    fused = compose_pair(a, b, decision, mode="copy")
    assert fused.dtype == a.dtype and fused.shape == a.shape
    np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(45, 67), (33, 40, 3)])
def test_pyramid_with_a_constant_map_returns_the_source(dtype, shape):
    a, b = _random_image(shape, dtype, 1), _random_image(shape, dtype, 2)
    everywhere = np.ones(shape[:2], bool)
    for decision, source in ((everywhere, a), (~everywhere, b)):
        fused = compose_pair(a, b, decision, mode="pyramid")
        assert fused.dtype == a.dtype and fused.shape == a.shape
        if np.dtype(dtype).kind == "u":
            np.testing.assert_array_equal(fused, source)  # float error ≪ 0.5 rounds away
        else:
            np.testing.assert_allclose(fused, source, atol=1e-6)


def test_pyramid_spreads_a_flat_seam_that_copy_shows_as_a_step():
    a, b = np.full((96, 128), 100, np.uint8), np.full((96, 128), 140, np.uint8)
    decision = _half_map(a.shape)
    copied = compose_pair(a, b, decision, mode="copy").astype(int)
    assert np.abs(np.diff(copied, axis=1)).max() == 40
    for levels in (None, 4):
        blended = compose_pair(a, b, decision, mode="pyramid", levels=levels).astype(int)
        steps = np.diff(blended, axis=1)
        assert np.abs(steps).max() <= 5  # 40 grey levels spread over ≥ 8 pixels
        assert (steps >= 0).all()  # monotone: no overshoot, no ringing
        assert blended.min() == 100 and blended.max() == 140
        assert (blended[:, :24] == 100).all() and (blended[:, -24:] == 140).all()  # far away: exact


def test_pyramid_keeps_fine_detail_of_the_chosen_source():
    sharp = data.camera()[::2, ::2][:128, :160].astype(np.float64)
    blurred = ndimage.gaussian_filter(sharp, 3.0)
    decision = _half_map(sharp.shape)
    a, b = sharp.astype(np.uint8), np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
    fused = compose_pair(a, b, decision, mode="pyramid").astype(float)
    # well inside each side, the result is that side's source up to a coarse-level leak
    assert np.abs(fused[:, :50] - a[:, :50]).mean() < 1.5
    assert np.abs(fused[:, -50:] - b[:, -50:]).mean() < 1.5
    # the detail is A's: high-pass energy on A's side matches A, not the blurred B
    high = lambda img: img - ndimage.gaussian_filter(img, 2.0)  # noqa: E731
    energy = lambda img: float(np.mean(high(img.astype(float))[:, 8:56] ** 2))  # noqa: E731
    assert abs(energy(fused) - energy(a)) < 0.05 * energy(a)
    assert energy(b) < 0.3 * energy(a)


def test_soft_decision_weights_blend_in_proportion():
    a, b = np.full((40, 50), 0.0, np.float32), np.full((40, 50), 1.0, np.float32)
    weight_a = np.full((40, 50), 0.25)
    np.testing.assert_allclose(compose_pair(a, b, weight_a, mode="pyramid"), 0.75, atol=1e-6)
    np.testing.assert_array_equal(compose_pair(a, b, weight_a, mode="copy"), b)  # 0.25 ≤ 0.5 → B


def test_pyramid_is_deterministic_and_softening_smooths_more():
    a, b = _random_image((64, 80, 3), np.uint16, 4), _random_image((64, 80, 3), np.uint16, 5)
    decision = _random_image((64, 80), np.float64, 6) > 0.5
    first = compose_pair(a, b, decision, mode="pyramid", levels=3)
    np.testing.assert_array_equal(first, compose_pair(a, b, decision, mode="pyramid", levels=3))
    soft = compose_pair(a, b, decision, mode="pyramid", levels=3, soften=2.0)
    assert (
        np.abs(np.diff(soft.astype(float), axis=1)).mean()
        < np.abs(np.diff(first.astype(float), axis=1)).mean()
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_stack_copy_takes_each_pixel_from_its_slice(dtype):
    stack = np.stack([_random_image((30, 41, 3), dtype, z) for z in range(4)])
    depth = (_random_image((30, 41), np.float64, 9) * 4).astype(np.uint16)
    fused = compose_stack(stack, depth, mode="copy")
    expected = np.take_along_axis(stack, depth[None, ..., None].astype(np.intp), axis=0)[0]
    assert fused.dtype == stack.dtype
    np.testing.assert_array_equal(fused, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["copy", "pyramid"])
def test_stack_with_one_slice_everywhere_returns_that_slice(dtype, mode):
    stack = np.stack([_random_image((35, 46), dtype, z) for z in range(5)])
    fused = compose_stack(stack, np.full((35, 46), 3, np.uint16), mode=mode)
    assert fused.dtype == stack.dtype and fused.shape == (35, 46)
    if np.dtype(dtype).kind == "u" or mode == "copy":
        np.testing.assert_array_equal(fused, stack[3])
    else:
        np.testing.assert_allclose(fused, stack[3], atol=1e-6)


def test_stack_of_two_matches_the_pair():
    a, b = _random_image((48, 57, 3), np.uint8, 1), _random_image((48, 57, 3), np.uint8, 2)
    decision = _half_map((48, 57))
    from_pair = compose_pair(a, b, decision, mode="pyramid").astype(int)
    depth = (~decision).astype(np.uint8)
    from_stack = compose_stack(np.stack([a, b]), depth, mode="pyramid", soften=0.0).astype(int)
    assert np.abs(from_pair - from_stack).max() <= 1  # same algorithm, float rounding only


def test_stack_blending_holds_few_image_sized_arrays():
    n_slices, height, width = 16, 192, 192
    stack = _random_image((n_slices, height, width), np.uint8, 0)
    depth = np.broadcast_to(np.arange(width) * n_slices // width, (height, width)).astype(np.uint16)
    tracemalloc.start()
    try:
        compose_stack(stack, depth, mode="pyramid")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * height * width * 4  # < 10 float32 images; all 16 slices' pyramids would be ~21


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda a, d: compose_pair(a, a, d, mode="blend"), ValueError),
        (lambda a, d: compose_pair(a, a, d[:-1], mode="pyramid"), ValueError),
        (lambda a, d: compose_pair(a, a, d, mode="pyramid", levels=-1), ValueError),
        (lambda a, d: compose_pair(a.astype(np.int16), a.astype(np.int16), d), TypeError),
        (lambda a, d: compose_stack(np.stack([a, a]), np.full(a.shape, 2, np.uint16)), ValueError),
        (lambda a, d: compose_stack(np.stack([a, a]), d.astype(np.float32)), TypeError),
    ],
)
def test_bad_input_is_refused(call, error):
    image = _random_image((20, 24), np.uint8)
    with pytest.raises(error):
        call(image, _half_map((20, 24)))


def test_copy_reproduces_the_pipelines_own_composition(camera_pair):
    """What fuse_pair / fuse_stack compose today is exactly the copy mode (so either can call it)."""
    from acnn_fusion import fuse_pair, fuse_stack
    from acnn_fusion.synthetic import render_stack

    pair = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="fp32")
    copied = compose_pair(camera_pair.image_a, camera_pair.image_b, pair.decision_map, mode="copy")
    np.testing.assert_array_equal(copied, pair.fused)
    sharp = data.astronaut()[:96, :128]
    depth = np.broadcast_to(np.linspace(0, 3, 128), (96, 128))
    stack = render_stack(sharp, depth, 4, radius_per_slice=2.0).stack
    result = fuse_stack(stack, precision="fp32")
    np.testing.assert_array_equal(compose_stack(stack, result.depth_map, mode="copy"), result.fused)
