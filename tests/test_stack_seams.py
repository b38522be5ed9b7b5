"""Depth boundaries placed where the slices agree (core/seams.py): known answers."""

import numpy as np
from scipy import ndimage
from skimage import data

from acnn_fusion import fuse_stack
from acnn_fusion.core.compose import compose_stack
from acnn_fusion.core.seams import _chains, place_seams, round_to_half
from acnn_fusion.core.stack import FocusImage
from acnn_fusion.synthetic import render_flat_region_stack


def _steps_across(fused: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """|fused step| between horizontal neighbours whose depth differs."""
    cut = np.diff(depth.astype(int), axis=1) != 0
    return np.abs(np.diff(fused.astype(float), axis=1))[cut]


def _offset_stack(agree_at: int, shape=(40, 64)) -> np.ndarray:
    """Two flat slices with equal contrast; slice 1 is brighter than slice 0 by 0.004 per column
    from ``agree_at``."""
    cols = np.arange(shape[1], dtype=np.float32)
    offset = np.float32(0.002) * np.abs(cols - agree_at)[None, :] + np.zeros(shape, np.float32)
    return np.stack([0.5 - offset, 0.5 + offset])


def test_boundary_in_a_flat_region_moves_to_where_the_slices_agree():
    stack = _offset_stack(agree_at=20)
    depth = np.zeros(stack.shape[1:], np.uint16)
    depth[:, 24:] = 1  # the scores' boundary, 4 px from where the slices agree
    confidence = np.zeros(depth.shape, np.float32)  # a guess: flat region
    volume = np.zeros((2, 20, 32), np.float32)  # no slice is sharper
    placed = place_seams(depth, confidence, FocusImage(stack), volume)
    # every row still switches once, now between columns 19|20 and 20|21 (equal cost: 0.004)
    switch = np.argmax(placed == 1, axis=1)
    assert np.all(np.diff(placed.astype(int), axis=1) >= 0)
    assert np.all((switch == 20) | (switch == 21)), switch
    before = _steps_across(compose_stack(stack, depth), depth).mean()
    after = _steps_across(compose_stack(stack, placed), placed).mean()
    assert after < before / 3


def test_textured_depth_backed_by_the_scores_is_kept():
    """Left half in focus in slice 0, right half in slice 1; the slices differ most near the
    boundary on one side, but the scores are clear, so nothing moves."""
    sharp = data.camera()[:48, :64].astype(np.float32) / 255
    blurred = ndimage.gaussian_filter(sharp, 3)
    left = np.zeros(sharp.shape, bool)
    left[:, :32] = True
    stack = np.stack([np.where(left, sharp, blurred), np.where(left, blurred, sharp) + 0.05])
    depth = np.where(left, 0, 1).astype(np.uint16)
    volume = np.zeros((2, 24, 32), np.float32)
    volume[0, :, :16], volume[1, :, 16:] = 10.0, 10.0  # log-odds: clear evidence
    confidence = np.ones(depth.shape, np.float32)
    placed = place_seams(depth, confidence, FocusImage(stack), volume)
    np.testing.assert_array_equal(placed, depth)


def test_banded_and_whole_image_runs_agree_and_labels_stay_within_one_slice():
    rng = np.random.default_rng(5)
    shape = (90, 70)
    field = ndimage.gaussian_filter(rng.standard_normal(shape), 6)
    depth = np.clip(np.round((field - field.min()) / np.ptp(field) * 5), 0, 5).astype(np.uint16)
    planes = ndimage.gaussian_filter(rng.random((6, *shape)).astype(np.float32), (0, 3, 3))
    planes += np.linspace(0, 0.1, 6, dtype=np.float32)[:, None, None]  # brightness per slice
    confidence = rng.random(shape).astype(np.float32) * 0.6
    volume = rng.standard_normal((6, 45, 35)).astype(np.float32)
    grey = FocusImage(planes)
    whole = place_seams(depth, confidence, grey, volume, tile=4096)
    banded = place_seams(depth, confidence, grey, volume, tile=24, threads=1)
    threaded = place_seams(depth, confidence, grey, volume, tile=24, threads=3)
    np.testing.assert_array_equal(whole, banded)
    np.testing.assert_array_equal(threaded, banded)
    assert np.mean(whole != depth) > 0.01  # something moved
    assert np.abs(whole.astype(int) - depth.astype(int)).max() <= 1


def test_fold_with_brightness_steps_keeps_provenance_and_shows_smaller_seams():
    """A tilted specimen with a flat square, each slice up to 2 % brighter or darker than the one
    before (an offset that changes sign across the image):
    the default fold copies every pixel from its slice, and its depth boundaries inside the flat
    square show smaller steps than with ``seams="off"``."""
    sharp = (data.camera()[::2, ::2][:96, :128].astype(np.float64) * 12 + 4000).astype(np.uint16)
    _yy, xx = np.mgrid[0:96, 0:128]
    flat = np.zeros(sharp.shape, bool)
    flat[24:72, 32:96] = True
    depth = 5.0 * xx / 127.0
    case = render_flat_region_stack(sharp, depth, 6, flat, radius_per_slice=1.5, noise=0.002, seed=1)
    gain = np.linspace(1.0, 1.1, 6)[:, None, None]
    ramp = np.sin(xx / 9.0)[None]  # the slices' brightness differs by gain^ramp: equal where ramp = 0
    stack = np.clip(case.stack * gain**ramp, 0, 65535).astype(np.uint16)
    placed = fuse_stack(stack, precision="fp32")
    unplaced = fuse_stack(stack, precision="fp32", seams="off")
    rows, cols = np.indices(sharp.shape)
    np.testing.assert_array_equal(placed.fused, stack[placed.depth_map, rows, cols])
    assert np.abs(placed.depth_map.astype(int) - unplaced.depth_map.astype(int)).max() <= 1
    inner = ndimage.binary_erosion(flat, iterations=4)[:, 1:]
    cut_placed = (np.diff(placed.depth_map.astype(int), axis=1) != 0) & inner
    cut_unplaced = (np.diff(unplaced.depth_map.astype(int), axis=1) != 0) & inner
    step = np.abs(np.diff(placed.fused.astype(float), axis=1))
    step_off = np.abs(np.diff(unplaced.fused.astype(float), axis=1))
    assert cut_unplaced.any()
    assert step[cut_placed].mean() < 0.95 * step_off[cut_unplaced].mean()  # measured: 0.89


def test_chain_solver_finds_the_exact_minimum():
    """The dynamic programme over a segment gives the labelling of least energy (checked by
    trying all 3⁵ labellings), ties to the lower state."""
    import itertools

    rng = np.random.default_rng(2)
    n, m = 40, 5
    unary = rng.random((3, n, m)).astype(np.float32)
    unary[:, :5] = np.round(unary[:, :5] * 4) / 4  # ties in some chains
    pair = rng.random((3, 3, n, m - 1)).astype(np.float32)
    pair[:, :, :5] = 0
    states = _chains(unary, pair)
    for chain in range(n):

        def energy(labels, chain=chain):
            e = sum(unary[s, chain, j] for j, s in enumerate(labels))
            return e + sum(pair[s, t, chain, j] for j, (s, t) in enumerate(itertools.pairwise(labels)))

        best = min(energy(labels) for labels in itertools.product(range(3), repeat=m))
        assert np.isclose(energy(tuple(states[chain])), best, rtol=0, atol=1e-6)
    assert (states[:5] == 0).any()  # ties went to the lower state somewhere


def test_round_to_half_matches_numpy_float16_conversion():
    """Float32 bit patterns from 0 to 2.0 (normals and float16 subnormals, each with the low
    bits just below, at and above a tie, for both parities of the kept bit) and random costs
    round as ``astype(float16)`` does, ties to even."""
    high = np.arange(0, 0x40000000, 0x2000 * 97, dtype=np.uint32)  # kept bits, odd and even
    low = np.array([0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF], np.uint32)
    patterns = (high[:, None] | low[None, :]).ravel().view(np.float32)
    rng = np.random.default_rng(3)
    costs = np.concatenate([patterns, rng.random(100_000, dtype=np.float32) * 2, [2.0**-25, 3 * 2.0**-25]])
    costs = costs.astype(np.float32)
    expected = costs.astype(np.float16).astype(np.float32)
    assert np.array_equal(round_to_half(costs.copy()), expected)
    assert not np.array_equal(costs, expected)  # the rounding did something
