"""Coherent depth for stacks: the regularised score volume and its confidence."""

import numpy as np
import pytest
from skimage import data

from acnn_fusion import fuse_stack
from acnn_fusion.core.stack import _regularise
from acnn_fusion.synthetic import render_flat_region_stack


@pytest.fixture(scope="module")
def flat_stack():
    """8 uint16 slices of a tilted specimen (depth 0 → 7 left to right) with a flat dark square."""
    sharp = (data.camera()[::2, ::2][:128, :160].astype(np.float64) * 12 + 200).astype(np.uint16)
    _yy, xx = np.mgrid[0:128, 0:160]
    depth = 7.0 * xx / 159.0
    flat = np.zeros(sharp.shape, bool)
    flat[36:92, 52:108] = True
    return render_flat_region_stack(sharp, depth, 8, flat, radius_per_slice=1.5, noise=0.01, seed=2)


def test_flat_region_inherits_its_neighbours_depth(flat_stack):
    truth = flat_stack.depth_index.astype(int)
    inner = np.zeros(truth.shape, bool)
    inner[44:84, 60:100] = True  # 8 px inside the flat square: no texture reaches here
    regularised = fuse_stack(flat_stack.stack, precision="fp32")
    alone = fuse_stack(flat_stack.stack, precision="fp32", depth_smoothing=0)

    def within_one(result):
        return float(np.mean(np.abs(result.depth_map[inner].astype(int) - truth[inner]) <= 1))

    # each block on its own picks noise; with the neighbours' evidence the ramp continues
    assert within_one(alone) < 0.6
    assert within_one(regularised) > 0.9
    # textured pixels keep their own depth
    textured = ~flat_stack.flat
    textured[:, :16] = textured[:, -16:] = False
    assert np.mean(np.abs(regularised.depth_map[textured].astype(int) - truth[textured]) <= 1) > 0.9
    # and the confidence says where depth was a guess
    assert np.median(regularised.confidence[inner]) < 0.1
    assert np.median(regularised.confidence[textured]) > 0.8


def test_confident_blocks_keep_their_slice_and_weak_ones_follow():
    """Known answer on a hand-made score volume, no network."""
    z, h, w = 6, 40, 40
    rng = np.random.default_rng(0)
    volume = rng.normal(0, 0.3, (z, h, w)).astype(np.float32)  # noise: no block has evidence
    volume[4, :, :20] += 10.0  # the left half clearly in focus in slice 4
    volume[1, :, 20:] += 10.0  # the right half in slice 1
    volume[:, 18:22, 8:12] = rng.normal(0, 0.3, (z, 4, 4))  # a weak patch inside the left half
    volume[:, 30, 5] = 0.0
    volume[2, 30, 5] = 6.0  # one confident block that disagrees with its neighbours
    plain, _ = _regularise(volume, 0.0)
    assert np.array_equal(plain, np.argmax(volume, axis=0))  # smoothing 0: each block's own best
    best, confidence = _regularise(volume, 2.0)
    assert (best[18:22, 8:12] == 4).all()  # the weak patch takes its neighbours' slice
    assert best[30, 5] == 2  # clear evidence of its own is kept
    left = best[:, :18].copy()
    left[30, 5] = 4
    assert (left == 4).all() and (best[:, 23:] == 1).all()
    assert confidence[18:22, 8:12].max() < 0.1 and confidence[:10, :10].min() > 0.9


def test_depth_smoothing_is_checked():
    with pytest.raises(ValueError, match="depth_smoothing"):
        fuse_stack(np.zeros((3, 32, 32), np.uint8), depth_smoothing=-1)


def test_weak_island_at_another_depth_follows_its_neighbours():
    """A defocused highlight's glow: a small island whose best slice is far from its
    strongly evident neighbours', with a near-tie for theirs, takes their slice; an island
    with evidence as strong as theirs (a thin structure in front) keeps its own."""
    z, h, w = 7, 48, 48
    rng = np.random.default_rng(1)
    volume = rng.normal(0, 0.3, (z, h, w)).astype(np.float32)
    volume[0] += 20.0  # everything clearly in focus in slice 0
    glow = np.array([16.2, 8.2, 8.1, 12.9, 18.6, 17.2, 13.6], np.float32)  # macro_pcb's scores
    volume[:, 10:15, 10:15] = glow[:, None, None]
    volume[:, 30:35, 30:35] = 0.0
    volume[5, 30:35, 30:35] = 20.0  # an island as clear as its neighbours, 5 slices away
    plain, _ = _regularise(volume, 0.0)
    assert (plain[10:15, 10:15] == 4).all()  # on its own the glow wins
    best, confidence = _regularise(volume, 2.0)
    assert (best[10:15, 10:15] == 0).all()
    assert confidence[10:15, 10:15].max() < 0.2  # and its depth is marked as a guess
    assert (best[30:35, 30:35] == 5).all()
    assert confidence[31:34, 31:34].min() > 0.9
    rest = np.ones((h, w), bool)
    rest[10:15, 10:15] = rest[30:35, 30:35] = False
    assert (best[rest] == 0).all()


def test_flat_region_continues_a_tilted_surface():
    """Known answer without the network: 30 slices on a tilted plane, a large disc with no
    evidence at all; the membrane continues the plane through it (within ±1 slice)."""
    z, h, w = 30, 128, 128
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.clip(np.round(29 * (0.7 * xx + 0.3 * yy) / 127), 0, 29).astype(int)
    rng = np.random.default_rng(2)
    slices = np.arange(z)[:, None, None]
    volume = (12.0 * np.exp(-0.5 * (slices - truth[None]) ** 2) + rng.normal(0, 0.3, (z, h, w))).astype(
        np.float32
    )
    disc = (yy - 60) ** 2 + (xx - 70) ** 2 < 35**2
    volume[:, disc] = rng.normal(0, 0.5, (z, int(disc.sum()))).astype(np.float32)
    best, _ = _regularise(volume, 2.0)
    assert np.mean(np.abs(best[disc].astype(int) - truth[disc]) <= 1) > 0.97
    assert np.mean(np.abs(_regularise(volume, 0.0)[0][disc].astype(int) - truth[disc]) <= 1) < 0.2
    assert (best[~disc] == truth[~disc]).mean() > 0.99


def test_depth_edges_follow_the_scores_at_pixel_resolution():
    """Two slices whose scores cross along a slanted line: the pixel depth map switches where
    the interpolated scores cross (within a pixel), not on the 2×2 block grid; a depth edge
    one block wide (a thin structure in front, as clear as its background) is kept."""
    from acnn_fusion.core.stack import _fold_volume

    h, w = 40, 48
    ii, jj = np.mgrid[0:h, 0:w].astype(np.float32)
    crossing = 4.0 * (jj - 0.37 * ii - 12)
    volume = np.stack([-crossing / 2, crossing / 2, np.full((h, w), -30.0, np.float32)])
    shape = (2 * h, 2 * w)
    depth, _ = _fold_volume(volume.astype(np.float32), 2.0, shape)
    blocks, _ = _fold_volume(volume.astype(np.float32), 0.0, shape)  # plain: block expansion
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    truth = ((xx - 0.5) / 2 - 0.37 * (yy - 0.5) / 2 - 12 > 0).astype(int)
    inside = (yy > 4) & (yy < shape[0] - 4)
    assert np.mean(depth[inside] != truth[inside]) < np.mean(blocks[inside] != truth[inside]) / 2
    switch = np.argmax(depth == 1, axis=1)[4:-4]  # first column of slice 1 in each row
    assert {int(c) % 2 for c in switch} == {0, 1}  # not only at block edges
    assert {int(c) % 2 for c in np.argmax(blocks == 1, axis=1)[4:-4]} == {0}

    thin = np.zeros((5, h, w), np.float32)
    thin[0] = 20.0
    thin[:, :, 20] = 0.0
    thin[4, :, 20] = 20.0  # one block (2 px) wide, four slices nearer
    depth, _ = _fold_volume(thin, 2.0, shape)
    assert (depth[:, 40:42] == 4).all() and (depth[:, :40] == 0).all() and (depth[:, 42:] == 0).all()
