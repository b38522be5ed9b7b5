"""Issue 18, the last criterion: the rim of a small sharp detail comes from the detail's sharp
source (the edge-side test, ``acnn_fusion.core.decision.refine_edge_side``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from acnn_fusion.core import decision
from acnn_fusion.core.decision import edge_side_margin, refine_edge_side, robust_energy, robust_energy_at
from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, fuse_pair, grey_pair
from acnn_fusion.synthetic import _wrap_defocus, render_detail_scene, render_thin_scene


@pytest.fixture(scope="module")
def scene():
    return render_detail_scene(512)


def test_small_details_come_from_their_sharp_source(scene):
    """The whole pair path on one cell of the detail scene (sharp blobs 10–100 px in B's area,
    B-sharp holes 14–80 px in A's island): ≥ 99 % of the details' pixels from their sharp
    source, every hole ≥ 95 % (the 14-px hole was 70 % without the edge-side test)."""
    result = fuse_pair(scene.image_a, scene.image_b, device="cpu", precision="fp32")
    right = result.decision_map == scene.mask
    assert right[scene.details].mean() >= 0.99
    holes, count = ndimage.label(scene.details & ~scene.mask)
    assert count == 4
    for k in range(1, count + 1):
        assert right[holes == k].mean() >= 0.95, k
    # without the edge-side test the same focus map misses the criterion: the test can fail
    before = replace(PRESETS["default"], detail_edge_side=False)
    old = fuse_from_focus_map(scene.image_a, scene.image_b, result.focus_map, before).decision_map
    assert (old == scene.mask)[scene.details].mean() < 0.985


def test_edge_side_gives_a_holes_rim_back(scene):
    """A decision that hands each hole's outer 2 px to A (what the crisp island edge does to
    the mean measure) gets them back; the A-sharp objects are left alone."""
    holes, objects = scene.details & ~scene.mask, scene.details & scene.mask
    wrong = scene.mask | (ndimage.binary_dilation(scene.mask, iterations=2) & holes)
    assert (~wrong[holes]).mean() < 0.9
    fixed = refine_edge_side(wrong, *grey_pair(scene.image_a, scene.image_b))
    assert (~fixed[holes]).mean() > 0.97
    assert fixed[objects].mean() > 0.999
    assert (fixed == scene.mask).mean() > (wrong == scene.mask).mean()


def test_edge_side_margin_sees_the_hole_not_the_island_edge(scene):
    """One pixel inside a B-sharp hole the edge-side margin says B, although A's crisp island
    edge is next to it (the 5×5 mean Laplacian energy says A there)."""
    from acnn_fusion.core.decision import ENERGY_FLOOR, fine_energy

    grey_a, grey_b = grey_pair(scene.image_a, scene.image_b)
    holes = scene.details & ~scene.mask
    rim = holes & ~ndimage.binary_erosion(holes)  # ring 1: next to the island
    side = edge_side_margin(grey_a, grey_b)
    energy_a, energy_b = fine_energy(grey_a, 5), fine_energy(grey_b, 5)
    mean = (energy_a - energy_b) / (energy_a + energy_b + ENERGY_FLOOR)
    assert (side[rim] < 0).mean() > 0.75
    assert (mean[rim] > 0).mean() > 0.75


def test_glow_guard_keeps_the_glow_band_on_the_sharp_foreground(monkeypatch):
    """Thin-structure scene: B's blurred bright wires glow over the background next to them,
    where A's blurred background is the nearer source. Starting from that band decided A,
    the edge-side test leaves it (and the wires) with A; without the glow guard it would not."""
    thin = render_thin_scene(384, radius=4.0)
    glow = thin.halo & (_wrap_defocus(thin.mask.astype(float), 4.0) > 0.2)
    start = thin.mask | glow
    grey_a, grey_b = grey_pair(thin.image_a, thin.image_b)
    kept = refine_edge_side(start, grey_a, grey_b)
    assert kept[glow].mean() > 0.98 and kept[thin.thin].all()
    monkeypatch.setattr(decision, "GLOW_FLOOR", np.inf)  # no guard
    lost = refine_edge_side(start, grey_a, grey_b)
    assert lost[glow].mean() < kept[glow].mean() - 0.05


@pytest.mark.parametrize("rows", [1, 7, 40])
def test_edge_side_in_chunks_equals_whole_image(scene, rows):
    grey_a, grey_b = grey_pair(scene.image_a[:120, :200], scene.image_b[:120, :200])
    start = ndimage.binary_dilation(scene.mask[:120, :200], iterations=2)
    whole = refine_edge_side(start, grey_a, grey_b, rows_per_chunk=1000)
    assert not np.array_equal(whole, start)  # it did change pixels: the comparison can fail
    assert np.array_equal(refine_edge_side(start, grey_a, grey_b, rows_per_chunk=rows), whole)


@pytest.mark.parametrize("block", [8, 37])
def test_edge_side_in_blocks_equals_one_window(scene, monkeypatch, block):
    """Blocks (each with its halo, those far from the boundary skipped) give the map of one
    window over the whole image."""
    grey_a, grey_b = grey_pair(scene.image_a[:150, :230], scene.image_b[:150, :230])
    start = ndimage.binary_dilation(scene.mask[:150, :230], iterations=2)
    monkeypatch.setattr(decision, "EDGE_SIDE_BLOCK", 10_000)
    whole = refine_edge_side(start, grey_a, grey_b, rows_per_chunk=1000)
    assert not np.array_equal(whole, start)
    monkeypatch.setattr(decision, "EDGE_SIDE_BLOCK", block)
    assert np.array_equal(refine_edge_side(start, grey_a, grey_b, rows_per_chunk=1000), whole)
    assert np.array_equal(refine_edge_side(start, grey_a, grey_b, rows_per_chunk=23), whole)


def test_edge_side_off_with_the_override():
    focus_free = np.zeros((40, 40), bool)
    grey = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    assert refine_edge_side(focus_free, grey, grey * 0.5, margin=1.0) is focus_free
    with pytest.raises(ValueError):
        edge_side_margin(grey, grey, window=4)


def test_edge_side_margin_only_where_asked_gives_the_same_values(scene):
    grey_a, grey_b = grey_pair(scene.image_a[:96, :128], scene.image_b[:96, :128])
    where = np.random.default_rng(1).random(grey_a.shape) < 0.2
    full = edge_side_margin(grey_a, grey_b)
    part = edge_side_margin(grey_a, grey_b, where=where)
    assert np.array_equal(part[where], full[where]) and not part[~where].any()
    assert np.abs(full).max() > 0.5  # the margin is not trivially zero


@pytest.mark.parametrize(
    ("shape", "window"), [((64, 80), 5), ((9, 11), 5), ((40, 33), 3), ((30, 50), 7), ((20, 20), 4)]
)
def test_robust_energy_at_some_pixels_equals_the_whole_images(shape, window):
    """The sparse step-robust energy (edge-side test) gives the whole image's values exactly,
    borders included (every border pixel is asked for, and a random fifth of the rest)."""
    rng = np.random.default_rng(window)
    grey = ndimage.gaussian_filter(rng.random(shape), 0.7).astype(np.float32)
    where = rng.random(shape) < 0.2
    where[[0, -1], :] = where[:, [0, -1]] = True
    values = robust_energy_at(grey, window, where)
    assert values.dtype == np.float32 and np.count_nonzero(values) > 0
    assert np.array_equal(values, robust_energy(grey, window)[where])
