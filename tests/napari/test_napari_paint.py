"""Paint to correct: painting the decision map or the depth map re-fuses that region now,
and the corrections survive threshold changes and re-runs until reset."""

from __future__ import annotations

import numpy as np
import pytest

from acnn_fusion.core.pipeline import FusionSettings, fuse_from_focus_map
from acnn_fusion.napari._jobs import FROM_A, FROM_B
from acnn_fusion.napari._widget import FocusFusionWidget

BOX = (slice(20, 50), slice(30, 80))


def _box_indices(shape):
    mask = np.zeros(shape, bool)
    mask[BOX] = True
    return np.nonzero(mask)


def test_painting_the_decision_map_refuses_that_region(make_napari_viewer, grey_pair, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="sample A")
    viewer.add_image(grey_pair.image_b, name="sample B")
    widget = FocusFusionWidget(viewer)
    widget.run()
    decision = viewer.layers["sample decision map"]
    fused = viewer.layers["sample fused"]
    assert decision.editable
    before = fused.data.copy()
    changed = np.zeros(before.shape, bool)
    changed[BOX] = decision.data[BOX] != FROM_B  # the pixels the stroke gives another source
    assert changed.any()

    decision.data_setitem(_box_indices(decision.data.shape), FROM_B)  # what a brush stroke does
    qtbot.waitUntil(lambda: np.array_equal(fused.data[BOX], grey_pair.image_b[BOX]), timeout=2000)
    outside = np.ones(before.shape, bool)
    outside[BOX] = False
    assert np.array_equal(fused.data[outside], before[outside])

    # a threshold change re-decides everything else but keeps the painted region
    widget.threshold.value = 0.2
    focus_map = viewer.layers["sample focus map"].data
    free = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, FusionSettings(0.2))
    qtbot.waitUntil(lambda: decision.metadata["threshold"] == pytest.approx(0.2), timeout=5000)
    widget.live.wait()  # the fused image follows the decision map one event-loop turn later
    assert np.array_equal(fused.data[changed], grey_pair.image_b[changed])
    assert np.all(decision.data[changed] == FROM_B)
    assert np.array_equal(fused.data[~changed], free.fused[~changed])

    # a re-run of the same pair keeps the correction too
    widget.run()
    qtbot.waitUntil(
        lambda: np.all(viewer.layers["sample decision map"].data[changed] == FROM_B), timeout=5000
    )
    widget.live.wait()
    assert np.array_equal(viewer.layers["sample fused"].data[changed], grey_pair.image_b[changed])

    # until reset: the computed decision comes back
    widget.reset_edits_button.clicked.emit()
    qtbot.waitUntil(lambda: np.array_equal(viewer.layers["sample fused"].data, free.fused), timeout=5000)


def test_a_brush_stroke_and_the_eraser(make_napari_viewer, grey_pair, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="sample A")
    viewer.add_image(grey_pair.image_b, name="sample B")
    widget = FocusFusionWidget(viewer)
    widget.run()
    decision = viewer.layers["sample decision map"]
    computed = decision.data.copy()
    target = FROM_A if computed[48, 64] == FROM_B else FROM_B
    source = grey_pair.image_a if target == FROM_A else grey_pair.image_b
    decision.brush_size = 9
    decision.paint((48, 64), target)  # one brush dab
    dab = decision.data != computed
    assert dab[48, 64]
    fused = viewer.layers["sample fused"]
    qtbot.waitUntil(lambda: np.array_equal(fused.data[dab], source[dab]), timeout=2000)
    decision.paint((48, 64), 0)  # the eraser undoes the correction
    qtbot.waitUntil(lambda: np.array_equal(decision.data, computed), timeout=2000)
    expected = np.where(computed == FROM_A, grey_pair.image_a, grey_pair.image_b)
    assert np.array_equal(fused.data, expected)


def test_painting_the_depth_map_takes_the_chosen_slice(make_napari_viewer, small_stack, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack, name="stack")
    widget = FocusFusionWidget(viewer)
    widget.run()
    depth = viewer.layers["stack depth map"]
    fused = viewer.layers["stack fused"]
    assert depth._type_string == "labels" and depth.editable
    depth.data_setitem(_box_indices(depth.data.shape), 3)
    qtbot.waitUntil(lambda: np.array_equal(fused.data[BOX], small_stack[3][BOX]), timeout=2000)
    taken = np.take_along_axis(small_stack, depth.data[None].astype(np.intp), axis=0)[0]
    assert np.array_equal(fused.data, taken)
    widget.run()  # kept across a re-run
    assert np.all(viewer.layers["stack depth map"].data[BOX] == 3)
    assert np.array_equal(viewer.layers["stack fused"].data[BOX], small_stack[3][BOX])
    widget.reset_edits_button.clicked.emit()
    assert not np.all(viewer.layers["stack depth map"].data[BOX] == 3)


def test_a_dragged_stroke_pins_every_pixel_it_covers(make_napari_viewer, grey_pair, qtbot):
    """Pixels under the brush that already had the painted source stay on it when β moves."""
    from napari.utils._test_utils import read_only_mouse_event
    from napari.utils.interactions import mouse_move_callbacks, mouse_press_callbacks, mouse_release_callbacks

    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="sample A")
    viewer.add_image(grey_pair.image_b, name="sample B")
    widget = FocusFusionWidget(viewer)
    widget.run()
    decision = viewer.layers["sample decision map"]
    computed = decision.data.copy()
    decision.mode = "paint"
    decision.selected_label = FROM_B
    decision.brush_size = 11
    row = int(np.argmax([np.ptp(line) for line in computed]))  # a row with both sources
    events = [("mouse_press", (row, 5)), ("mouse_move", (row, 60)), ("mouse_move", (row, 120))]
    for kind, position in events:
        event = read_only_mouse_event(type=kind, is_dragging=kind == "mouse_move", position=position)
        (mouse_press_callbacks if kind == "mouse_press" else mouse_move_callbacks)(decision, event)
    mouse_release_callbacks(decision, read_only_mouse_event(type="mouse_release", position=(row, 120)))
    stroke = np.zeros(computed.shape, bool)
    stroke[max(row - 4, 0) : row + 5, 10:115] = True  # well inside the brush's path
    qtbot.waitUntil(lambda: np.all(decision.data[stroke] == FROM_B), timeout=3000)
    assert np.any(computed[stroke] == FROM_A) and np.any(computed[stroke] == FROM_B)
    for beta in (0.05, 0.95):  # β at both ends: every unpinned pixel flips source
        widget.threshold.value = beta
        qtbot.waitUntil(lambda beta=beta: decision.metadata["threshold"] == pytest.approx(beta), timeout=5000)
        assert np.all(decision.data[stroke] == FROM_B), beta
        assert np.array_equal(viewer.layers["sample fused"].data[stroke], grey_pair.image_b[stroke])
