"""Large-image paths that work in bands give the same answer as the whole-image computation."""

import numpy as np
import pytest

from acnn_fusion.core.pipeline import refine_boundary


def test_refinement_in_blocks_equals_whole_image():
    """Blocks of 7 px (those far from the boundary skipped) give the one-block answer."""
    rng = np.random.default_rng(0)
    grey_a = rng.random((90, 70), dtype=np.float32)
    grey_b = rng.random((90, 70), dtype=np.float32)
    decision = np.zeros((90, 70), bool)
    decision[20:75, 10:50] = True
    whole = refine_boundary(decision, grey_a, grey_b, rows_per_chunk=1000)
    banded = refine_boundary(decision, grey_a, grey_b, rows_per_chunk=7)
    assert np.array_equal(whole, banded)
    assert not np.array_equal(whole, decision)  # the refinement did change pixels


def _numpy_peak(function):
    """(result, peak bytes that numpy allocated while ``function`` ran)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def _write_planes(folder, stack):
    import tifffile

    folder.mkdir()
    for z, plane in enumerate(stack):
        tifffile.imwrite(folder / f"plane{z + 1}.tif", plane)  # plane10 sorts after plane9


def test_folder_of_planes_is_read_one_plane_at_a_time(tmp_path, monkeypatch):
    from acnn_fusion.core import imageops
    from acnn_fusion.io import read_stack

    stack = (np.random.default_rng(1).random((12, 256, 256)) * 4000).astype(np.uint16)
    _write_planes(tmp_path / "planes", stack)
    in_memory = read_stack(tmp_path / "planes").data
    assert np.array_equal(in_memory, stack) and not in_memory.flags.writeable
    monkeypatch.setattr(imageops, "SCRATCH_IN_MEMORY_BYTES", 0)  # every stack counts as large
    on_disk, peak = _numpy_peak(lambda: read_stack(tmp_path / "planes").data)
    assert isinstance(on_disk, np.memmap) and np.array_equal(on_disk, stack)
    assert peak < stack.nbytes / 3  # a few planes, not the stack (np.stack of a list held it twice)


def test_folder_with_a_mismatched_plane_names_it(tmp_path):
    import pytest
    import tifffile

    from acnn_fusion.io import read_stack

    stack = np.zeros((3, 32, 32), np.uint8)
    _write_planes(tmp_path / "planes", stack)
    tifffile.imwrite(tmp_path / "planes" / "plane3.tif", np.zeros((32, 40), np.uint8))
    with pytest.raises(ValueError, match=r"plane3\.tif is \(32, 40\) uint8"):
        read_stack(tmp_path / "planes")


@pytest.mark.slow
def test_alignment_of_a_mapped_stack_holds_slices_not_the_stack(tmp_path, monkeypatch):
    """Memory for --align grows by less than the extra slices' own size (was 6× a uint16 stack).

    tracemalloc sees numpy's allocations (the stack-sized arrays this is about); the network's
    activations are per tile and do not grow with the number of slices.
    """
    import tifffile

    from acnn_fusion import fuse_stack
    from acnn_fusion.core import imageops
    from acnn_fusion.io import read_stack

    rng = np.random.default_rng(2)
    stack = (rng.random((24, 256, 256)) * 4000).astype(np.uint16)
    expected = fuse_stack(stack, align=True, precision="fp32")
    monkeypatch.setattr(imageops, "SCRATCH_IN_MEMORY_BYTES", 0)
    peaks = {}
    for n_slices in (8, 24):
        path = tmp_path / f"s{n_slices}.tif"
        tifffile.imwrite(path, stack[:n_slices], imagej=True, metadata={"axes": "ZYX"})
        mapped = read_stack(path).data
        result, peaks[n_slices] = _numpy_peak(
            lambda mapped=mapped: fuse_stack(mapped, align=True, precision="fp32")
        )
    assert peaks[24] - peaks[8] < stack[8:].nbytes / 2
    np.testing.assert_array_equal(result.shifts, expected.shifts)
    assert np.array_equal(result.depth_map, expected.depth_map)
    assert np.array_equal(result.fused, expected.fused)
