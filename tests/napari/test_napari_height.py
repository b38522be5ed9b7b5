"""3-D height view: the fused image over the depth map, heights in the stack's z units."""

from __future__ import annotations

import numpy as np

from acnn_fusion.napari._height import height_mesh
from acnn_fusion.napari._widget import FocusFusionWidget


def test_height_view_uses_the_z_spacing_and_masks_unsure_cells(make_napari_viewer, small_stack):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack, name="stack", scale=(2.5, 0.5, 0.5), units=("µm", "µm", "µm"))
    widget = FocusFusionWidget(viewer)
    widget.run()
    widget.height_button.clicked.emit()
    surface = viewer.layers["stack height surface"]
    assert surface._type_string == "surface" and viewer.dims.ndisplay == 3
    vertices, faces = surface.data[0], surface.data[1]
    depth = viewer.layers["stack depth map"].data
    assert len(vertices) == depth.size  # an 80×96 map needs no thinning
    np.testing.assert_allclose(vertices[:, 0], depth.ravel() * 2.5)  # slice index × z spacing
    np.testing.assert_allclose(vertices[:, 1:].max(axis=0), [79 * 0.5, 95 * 0.5])
    assert "micrometer" in surface.metadata["z_unit"] or "µm" in surface.metadata["z_unit"]
    assert len(faces) > 0


def test_height_mesh_leaves_out_low_confidence_cells():
    depth = np.zeros((4, 4), np.uint16)
    fused = np.arange(16, dtype=np.uint8).reshape(4, 4)
    confidence = np.ones((4, 4), np.float32)
    _, all_faces, colours = height_mesh(depth, fused, confidence)
    assert len(all_faces) == 2 * 3 * 3 and colours.shape == (16, 4)
    confidence[0, 0] = 0.0  # one unsure corner removes the one cell it belongs to
    _, faces, _ = height_mesh(depth, fused, confidence)
    assert len(faces) == len(all_faces) - 2
