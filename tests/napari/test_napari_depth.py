"""Depth in physical units: a stack's depth map as z in µm (from the file's z spacing) beside
the paintable slice-index map, painting in slices, and the height view in µm."""

from __future__ import annotations

import numpy as np
import tifffile

from acnn_fusion.napari._widget import STACK, FocusFusionWidget

PLUGIN = "napari-acnn-fusion"
BOX = (slice(20, 50), slice(30, 80))


def _box_indices(shape):
    mask = np.zeros(shape, bool)
    mask[BOX] = True
    return np.nonzero(mask)


def _fold(viewer, path):
    (layer,) = viewer.open(path, plugin=PLUGIN)
    widget = FocusFusionWidget(viewer)
    assert widget.mode.value == STACK and widget.stack.value is layer
    assert widget.run()
    return layer.name, widget


def test_depth_in_micrometres_from_the_imagej_spacing(tmp_path, make_napari_viewer, small_stack, qtbot):
    path = tmp_path / "tilted.tif"
    tifffile.imwrite(
        path,
        small_stack,
        imagej=True,
        resolution=(2.0, 2.0),  # pixels per µm: 0.5 µm pixels
        metadata={"spacing": 2.5, "unit": "micron", "axes": "ZYX"},
    )
    viewer = make_napari_viewer()
    name, widget = _fold(viewer, path)
    slices = viewer.layers[f"{name} depth map"]
    microns = viewer.layers[f"{name} depth (µm)"]
    assert slices._type_string == "labels" and microns._type_string == "image"
    assert microns.data.dtype == np.float32
    np.testing.assert_allclose(microns.data, slices.data * 2.5)  # slice index × z spacing
    assert microns.metadata["z_unit"] == "µm" and microns.metadata["z_spacing"] == 2.5
    assert microns.metadata["slice_index_layer"] == f"{name} depth map"
    assert tuple(microns.scale) == (0.5, 0.5)
    assert slices.metadata["z_unit"] == "µm" and "slice index" in slices.metadata["values"]

    # painting slice 3 into the slice-index map takes slice 3 and moves the µm map with it
    fused = viewer.layers[f"{name} fused"]
    slices.data_setitem(_box_indices(slices.data.shape), 3)
    qtbot.waitUntil(lambda: np.array_equal(fused.data[BOX], small_stack[3][BOX]), timeout=2000)
    qtbot.waitUntil(lambda: np.allclose(microns.data[BOX], 7.5), timeout=2000)
    np.testing.assert_allclose(microns.data, slices.data * 2.5)
    widget.reset_edits_button.clicked.emit()
    np.testing.assert_allclose(viewer.layers[f"{name} depth (µm)"].data, slices.data * 2.5)
    assert not np.allclose(viewer.layers[f"{name} depth (µm)"].data[BOX], 7.5)

    # the 3-D height view is in µm too
    widget.height_button.clicked.emit()
    surface = viewer.layers[f"{name} height surface"]
    np.testing.assert_allclose(surface.data[0][:, 0], slices.data.ravel() * 2.5)
    assert surface.metadata["z_unit"] == "µm"


def test_without_a_z_spacing_depth_stays_in_slices(tmp_path, make_napari_viewer, small_stack):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, small_stack, metadata={"axes": "ZYX"})  # no spacing anywhere
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert str(layer.units[0]) == "pixel"  # no "1 µm" z guessed
    name, widget = layer.name, FocusFusionWidget(viewer)
    assert widget.mode.value == STACK and widget.run()
    slices = viewer.layers[f"{name} depth map"]
    assert not [lay.name for lay in viewer.layers if lay.name.startswith(f"{name} depth (")]
    assert slices.metadata["z_unit"] is None and slices.metadata["z_spacing"] is None
    assert "no z spacing" in slices.metadata["values"]
    widget.height_button.clicked.emit()
    assert viewer.layers[f"{name} height surface"].metadata["z_unit"] == "slices"


def test_a_file_with_pixel_size_but_no_z_spacing_keeps_z_in_slices(tmp_path, make_napari_viewer, small_stack):
    path = tmp_path / "xy_only.tif"
    tifffile.imwrite(
        path, small_stack, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "micron", "axes": "ZYX"}
    )
    viewer = make_napari_viewer()
    (layer,) = viewer.open(path, plugin=PLUGIN)
    assert str(layer.units[0]) == "pixel" and tuple(layer.scale) == (1.0, 0.5, 0.5)
    assert "micrometer" in str(layer.units[-1])
    widget = FocusFusionWidget(viewer)
    assert widget.run()
    assert viewer.layers[f"{layer.name} depth map"].metadata["z_unit"] is None
