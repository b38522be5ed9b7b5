"""fuse_stack: depth and fused image against a synthetic stack with known depth."""

import numpy as np
import pytest
from skimage import data

from acnn_fusion import fuse_stack
from acnn_fusion.synthetic import render_stack

from .conftest import textured


@pytest.fixture(scope="module")
def synthetic_stack():
    sharp = data.camera()[::2, ::2][:160, :192]
    _yy, xx = np.mgrid[0:160, 0:192]
    depth = 4.0 * xx / 191.0  # a ramp through 5 slices
    depth[40:100, 50:110] = 4.0  # an occluding block in the last slice
    return render_stack(sharp, depth, 5, radius_per_slice=2.0)


def _within_one(result, truth, region):
    return float(np.mean(np.abs(result.depth_map[region].astype(int) - truth[region]) <= 1))


@pytest.mark.parametrize("strategy", ["features", "pairwise", "pairwise-tree"])
def test_depth_matches_ground_truth(synthetic_stack, strategy):
    result = fuse_stack(synthetic_stack.stack, strategy=strategy)
    region = textured(synthetic_stack.sharp)
    assert result.depth_map.dtype == np.uint16 and result.depth_map.shape == (160, 192)
    assert _within_one(result, synthetic_stack.depth_index, region) >= 0.9
    assert result.fused.dtype == synthetic_stack.stack.dtype
    # every fused pixel is the pixel of the slice the depth map names
    expected = np.take_along_axis(synthetic_stack.stack, result.depth_map[None].astype(int), 0)[0]
    assert np.array_equal(result.fused, expected)
    assert 0 <= result.confidence.min() and result.confidence.max() <= 1


def test_axes_and_channels_are_respected(synthetic_stack):
    stack = synthetic_stack.stack.astype(np.uint16) * 200
    # (Y, C, Z, X): z on axis 2, two channels on axis 1 (the second is a dim copy)
    two_channels = np.stack([stack, stack // 4], axis=-1)  # (Z, Y, X, C)
    moved = np.transpose(two_channels, (1, 3, 0, 2))
    result = fuse_stack(moved, axis=2, channel_axis=1)
    assert result.fused.shape == (160, 2, 192) and result.fused.dtype == np.uint16
    reference = fuse_stack(stack)
    assert np.mean(result.depth_map == reference.depth_map) > 0.95


@pytest.mark.parametrize(
    ("stack", "kwargs", "message"),
    [
        (np.zeros((3, 32, 32)), {"axis": 5}, "out of range"),
        (np.zeros((3, 32, 32, 5)), {}, "channel_axis"),
        (np.zeros((2, 3, 4, 32, 32)), {}, "5-D"),
        (np.zeros((3, 8, 32)), {}, "smaller than"),
        (np.zeros((3, 32, 32), np.int64), {}, "dtype"),
        (np.zeros((3, 32, 32)), {"strategy": "magic"}, "strategy"),
    ],
)
def test_bad_stacks_are_refused(stack, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fuse_stack(stack, **kwargs)


def test_single_slice_returns_it():
    stack = np.random.default_rng(0).integers(0, 255, (1, 32, 32), dtype=np.uint8)
    result = fuse_stack(stack)
    assert np.array_equal(result.fused, stack[0]) and not result.depth_map.any()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_tiled_and_untiled_stacks_agree(synthetic_stack, precision):
    whole = fuse_stack(synthetic_stack.stack, tile=4096, precision=precision)
    tiled = fuse_stack(synthetic_stack.stack, tile=48, precision=precision)
    # every tile computes each covering patch and sums it in the same order, and the depth
    # regularisation runs once on the whole block grid; the network itself may round
    # differently for another tile shape (≤ 1 ulp of log-odds up to ~50), which moves the
    # confidence (a tanh of a log-odds margin) by ~1e-5 and can only flip a pixel whose two
    # best slices tie to within that rounding
    np.testing.assert_allclose(whole.confidence, tiled.confidence, atol=1e-4)
    differ = whole.depth_map != tiled.depth_map
    assert differ.mean() < 1e-4
    assert np.array_equal(whole.fused[~differ], tiled.fused[~differ])


def test_time_lapse_folds_each_time_point(synthetic_stack):
    stack = synthetic_stack.stack[:, :64, :64]
    movie = np.stack([stack, stack[::-1]], axis=1)  # (Z, T, Y, X); the second time point reversed
    result = fuse_stack(movie, axis=0, time_axis=1)
    assert result.fused.shape == (2, 64, 64) and result.depth_map.shape == (2, 64, 64)
    single = fuse_stack(stack)
    assert np.array_equal(result.depth_map[0], single.depth_map)
    assert np.array_equal(result.fused[0], single.fused)
    n = stack.shape[0] - 1
    textured_share = np.mean(result.depth_map[1] == n - single.depth_map)
    assert textured_share > 0.9
    with pytest.raises(ValueError, match="time_axis"):
        fuse_stack(movie, axis=1, time_axis=1)


def test_align_recovers_known_drift_and_improves_depth(synthetic_stack):
    from scipy import ndimage

    truth_shifts = np.array([[0, 0], [2, -1], [4, -3], [5, -4], [7, -6]], float)  # drift per slice
    drifted = np.stack(
        [
            ndimage.shift(plane.astype(float), shift, order=1, mode="nearest").round().astype(plane.dtype)
            for plane, shift in zip(synthetic_stack.stack, truth_shifts, strict=True)
        ]
    )
    plain = fuse_stack(drifted)
    aligned = fuse_stack(drifted, align=True)
    # the estimated shifts undo the drift, relative to the middle slice
    expected = -(truth_shifts - truth_shifts[2])
    np.testing.assert_allclose(aligned.shifts, expected, atol=0.5)
    # depth is then measured on the middle slice's grid, where the truth is shifted like it
    truth = ndimage.shift(synthetic_stack.depth_index, truth_shifts[2], order=0, mode="nearest")
    region = textured(synthetic_stack.sharp)[10:-10, 10:-10]
    inner = (slice(10, -10), slice(10, -10))

    def accuracy(result):
        return np.mean(np.abs(result.depth_map[inner].astype(int) - truth[inner])[region] <= 1)

    assert accuracy(aligned) > accuracy(plain) and accuracy(aligned) > 0.85


def test_memory_mapped_stack_is_read_tile_by_tile(tmp_path):
    """numpy allocations stay below the stack's size (the old code made a float32 copy: 2×); the
    seam step adds a bounded amount per tile."""
    import tracemalloc

    import tifffile

    from acnn_fusion.io import read_stack

    rng = np.random.default_rng(0)
    stack = (rng.random((16, 512, 512)) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "s.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    mapped = read_stack(tmp_path / "s.tif").data
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable  # the input cannot be altered
    fuse_stack(mapped[:2, :64, :64], tile=128, precision="fp32")  # load the model outside the trace
    peaks = {}
    for seams in ("off", "agree"):
        tracemalloc.start()
        result = fuse_stack(mapped, tile=128, precision="fp32", seams=seams)
        peaks[seams] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks["off"] < stack.nbytes
    # the seam step (core/seams.py) holds ~190 bytes per pixel of one seam tile and its halo per
    # thread, whatever the number of slices, and a few bytes per pixel of the image:
    # (256 + 2 · 43)² px per tile here
    from acnn_fusion.core.inference import cpu_threads
    from acnn_fusion.core.seams import _halo, seam_tile

    tile_pixels = (seam_tile(128) + 2 * _halo(2)) ** 2
    assert peaks["agree"] - peaks["off"] < tile_pixels * 250 * min(4, cpu_threads()) + stack[0].size * 8
    expected = fuse_stack(stack, tile=128, precision="fp32")
    assert np.array_equal(result.depth_map, expected.depth_map)
    assert np.array_equal(result.fused, expected.fused)
    compressed = tmp_path / "c.tif"
    tifffile.imwrite(compressed, stack[:2], compression="zlib")
    assert not isinstance(read_stack(compressed).data, np.memmap)


def test_balanced_tree_folds_neighbours_first(synthetic_stack):
    """Five slices fold as ((0+1)+(2+3))+4, rebuilt here from two-slice folds of fused images."""
    stack = synthetic_stack.stack[:5, :96, :96].astype(np.float64)
    stack = np.round(255 * (stack - stack.min()) / np.ptp(stack)).astype(np.uint8)  # uint8: fixed scale

    def fold(images: list[np.ndarray]) -> np.ndarray:
        return fuse_stack(np.stack(images), strategy="pairwise", precision="fp32").depth_map

    def fused(images, depth):
        return np.where(depth == 0, images[0], images[1])

    d01, d23 = fold([stack[0], stack[1]]), fold([stack[2], stack[3]])
    f01, f23 = fused(stack[0:2], d01), fused(stack[2:4], d23)
    d0123 = fold([f01, f23])
    source_0123 = np.where(d0123 == 0, d01, d23 + 2)
    f0123 = fused([f01, f23], d0123)
    d_all = fold([f0123, stack[4]])
    expected = np.where(d_all == 0, source_0123, 4)
    result = fuse_stack(stack, strategy="pairwise-tree", precision="fp32")
    assert np.array_equal(result.depth_map, expected)
    assert len(np.unique(expected)) >= 3  # the check covers real choices


def test_block_averages_per_tile_equal_the_whole_image_average():
    """The soft fold's per-tile average over covering patches is the focus-map average."""
    from acnn_fusion.core.inference import patch_average_blocks, patch_average_grid, score_tiles

    h, w = 37, 29  # score grid of a 88×72 image
    values = np.random.default_rng(3).normal(size=(h, w)).astype(np.float32)
    expected = patch_average_grid(values)
    assembled = np.full(expected.shape, np.nan)
    for rows, cols, in_rows, in_cols in score_tiles(88, 72, tile=40, halo=7):
        first_row, first_col = in_rows.start // 2, in_cols.start // 2
        scores = values[
            in_rows.start // 2 : (in_rows.stop - 16) // 2 + 1,
            in_cols.start // 2 : (in_cols.stop - 16) // 2 + 1,
        ]
        assembled[rows, cols] = patch_average_blocks(scores, (first_row, first_col), (rows, cols), (h, w))
    np.testing.assert_allclose(assembled, expected, atol=1e-5)


def test_confidence_is_low_where_no_slice_has_structure():
    """Where only noise differs between slices the covering patches disagree; on texture they agree."""
    sharp = data.camera()[::2, ::2][:160, :192].copy()
    sharp[:, 96:] = 120  # the right half is flat: only the rendering noise differs between slices
    depth = np.full((160, 192), 2.0)
    stack = render_stack(sharp, depth, 5, radius_per_slice=2.0, noise=0.01, seed=1).stack
    confidence = fuse_stack(stack).confidence
    textured, flat = np.median(confidence[16:-16, 16:80]), np.median(confidence[16:-16, 112:-16])
    assert textured > 0.8 and flat < textured - 0.3
