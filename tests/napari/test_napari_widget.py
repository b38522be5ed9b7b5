"""The dock widget on a real viewer: outputs, updates in place, live threshold, cancel."""

from __future__ import annotations

import numpy as np
import pytest

import acnn_fusion.core.pipeline as pipeline
from acnn_fusion.core.pipeline import FusionSettings, fuse_from_focus_map
from acnn_fusion.napari._layers import OUTPUT_KEY, Z_AXIS_KEY
from acnn_fusion.napari._widget import PAIR, STACK, FocusFusionWidget


@pytest.fixture
def focus_map_calls(monkeypatch):
    """Counts network runs (calls of the core's focus_map_in_tiles by fuse_pair)."""
    calls = []
    original = pipeline.focus_map_in_tiles

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "focus_map_in_tiles", counting)
    return calls


def _pair_viewer(make_napari_viewer, pair, **layer_kwargs):
    viewer = make_napari_viewer()
    viewer.add_image(pair.image_a, name="sample A", **layer_kwargs)
    viewer.add_image(pair.image_b, name="sample B", **layer_kwargs)
    return viewer


def test_pair_adds_focus_decision_and_fused_layers(make_napari_viewer, rgb_pair, focus_map_calls):
    viewer = _pair_viewer(make_napari_viewer, rgb_pair, scale=(0.5, 0.25), translate=(10.0, -4.0))
    viewer.layers["sample A"].contrast_limits = (10, 240)
    widget = FocusFusionWidget(viewer)
    assert widget.mode.value == PAIR
    assert widget.layer_a.value is viewer.layers["sample A"]
    assert widget.layer_b.value is viewer.layers["sample B"]

    assert widget.run()
    assert len(focus_map_calls) == 1
    names = [layer.name for layer in viewer.layers]
    assert names == ["sample A", "sample B", "sample focus map", "sample fused", "sample decision map"]

    focus, fused, decision = (viewer.layers[n] for n in names[2:])
    assert focus.data.dtype == np.float32 and focus.data.shape == (112, 128)
    assert 0.0 <= focus.data.min() and focus.data.max() <= 1.0
    assert focus.colormap.name == "magma" and tuple(focus.contrast_limits) == (0.0, 1.0)
    assert decision._type_string == "labels" and decision.data.dtype == np.uint8
    assert set(np.unique(decision.data)) <= {1, 2}
    assert fused.rgb and fused.data.dtype == np.uint8 and fused.data.shape == rgb_pair.image_a.shape
    assert tuple(fused.contrast_limits) == (10, 240)
    from_a = (decision.data == 1)[..., None]
    assert np.array_equal(fused.data, np.where(from_a, rgb_pair.image_a, rgb_pair.image_b))
    for layer in (focus, fused, decision):
        np.testing.assert_allclose(layer.scale, (0.5, 0.25))
        np.testing.assert_allclose(layer.translate, (10.0, -4.0))
        assert layer.metadata[OUTPUT_KEY] == layer.name
    # outputs are not offered as inputs
    assert [layer.name for layer in widget.layer_a.choices] == ["sample A", "sample B"]


def test_rerun_updates_layers_instead_of_duplicating(make_napari_viewer, grey_pair):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    widget.run()
    first = list(viewer.layers)
    widget.threshold.value = 0.7
    widget.run()
    assert list(viewer.layers) == first  # same layer objects, nothing added
    assert viewer.layers["sample fused"].metadata["threshold"] == pytest.approx(0.7)
    # a renamed result is kept; the next run makes a fresh one
    viewer.layers["sample fused"].name = "keep me"
    widget.run()
    assert "keep me" in viewer.layers and "sample fused" in viewer.layers
    assert len(viewer.layers) == len(first) + 1


def test_live_threshold_reuses_the_focus_map(make_napari_viewer, grey_pair, focus_map_calls, qtbot):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    widget.run()
    assert len(focus_map_calls) == 1
    focus_map = viewer.layers["sample focus map"].data.copy()
    fused_layer = viewer.layers["sample fused"]
    # the live path (decide, refine, blend) reproduces what fuse_pair made from the same focus map
    from_run = viewer.layers["sample decision map"].data.copy()
    fused_from_run = fused_layer.data.copy()
    again = widget.refresh_decision()
    assert np.array_equal(np.where(again.decision_map, 1, 2), from_run)
    assert np.array_equal(again.fused, fused_from_run)

    for beta, region in ((0.3, 1.0), (0.8, 5.0), (0.6, 0.0)):
        widget.threshold.value = beta
        widget.min_region.value = region
        settings = FusionSettings(threshold=beta, min_region=region / 100)
        expected = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, settings)
        qtbot.waitUntil(
            lambda expected=expected: np.array_equal(
                viewer.layers["sample decision map"].data == 1, expected.decision_map
            ),
            timeout=3000,
        )
        widget.live.wait()  # the fused image follows the decision map one event-loop turn later
        assert np.array_equal(fused_layer.data, expected.fused)
    assert len(focus_map_calls) == 1  # the network ran once
    assert viewer.layers["sample fused"] is fused_layer
    assert np.array_equal(viewer.layers["sample focus map"].data, focus_map)


def test_stack_mode_folds_z_and_keeps_the_spatial_transform(make_napari_viewer, small_stack):
    viewer = make_napari_viewer()
    viewer.add_image(small_stack, name="stack", scale=(3.0, 0.5, 0.5), translate=(0.0, 5.0, 6.0))
    widget = FocusFusionWidget(viewer)
    assert widget.mode.value == STACK and widget.stack.value is viewer.layers["stack"]
    assert widget.z_axis.value == 0
    assert widget.threshold.native.isHidden()  # the default stack method has no threshold
    widget.strategy.value = "pairwise"
    assert not widget.threshold.native.isHidden()
    widget.strategy.value = "features"
    widget.run()
    fused = viewer.layers["stack fused"]
    depth = viewer.layers["stack depth map"]
    focus = viewer.layers["stack confidence"]  # named for what it is (issue 15)
    assert fused.data.dtype == np.uint16 and fused.data.shape == (80, 96)
    assert depth.data.dtype == np.uint16 and depth.data.max() <= 4
    assert focus.data.dtype == np.float32
    taken = np.take_along_axis(small_stack, depth.data[None].astype(np.intp), axis=0)[0]
    assert np.array_equal(fused.data, taken)
    for layer in (fused, depth, focus):
        np.testing.assert_allclose(layer.scale, (0.5, 0.5))
        np.testing.assert_allclose(layer.translate, (5.0, 6.0))
    assert depth.metadata["z_scale"] == 3.0
    n_layers = len(viewer.layers)
    widget.strategy.value = "pairwise"  # the paper's fold, with threshold and region size
    widget.run()
    assert len(viewer.layers) == n_layers
    assert viewer.layers["stack fused"] is fused and fused.metadata["strategy"] == "pairwise"


def test_stack_axis_from_metadata_and_other_axes_from_the_slider(make_napari_viewer, small_stack):
    viewer = make_napari_viewer()
    tzyx = np.stack([small_stack, small_stack[::-1]])  # (T=2, Z=5, Y, X)
    layer = viewer.add_image(tzyx, name="tz", metadata={Z_AXIS_KEY: 1})
    widget = FocusFusionWidget(viewer)
    assert widget.z_axis.value == 1
    assert [value for value in widget.z_axis.choices] == [0, 1]
    viewer.dims.set_point(0, 1)  # second time point
    widget.run()
    depth = viewer.layers["tz depth map"].data
    taken = np.take_along_axis(layer.data[1], depth[None].astype(np.intp), axis=0)[0]
    assert np.array_equal(viewer.layers["tz fused"].data, taken)


def test_rgb_stack_and_unusual_dtype(make_napari_viewer, rgb_pair, grey_pair):
    viewer = make_napari_viewer()
    viewer.add_image(np.stack([rgb_pair.image_a, rgb_pair.image_b]), name="rgb", rgb=True)
    a16 = grey_pair.image_a.astype(np.int16) - 100
    b16 = grey_pair.image_b.astype(np.int16) - 100
    viewer.add_image(a16, name="i16 a")
    viewer.add_image(b16, name="i16 b")
    widget = FocusFusionWidget(viewer)
    widget.mode.value = STACK
    widget.stack.value = viewer.layers["rgb"]
    widget.run()
    fused = viewer.layers["rgb fused"]
    assert fused.rgb and fused.data.shape == rgb_pair.image_a.shape and fused.data.dtype == np.uint8

    widget.mode.value = PAIR
    widget.layer_a.value = viewer.layers["i16 a"]
    widget.layer_b.value = viewer.layers["i16 b"]
    widget.run()
    fused = viewer.layers["i16 fused"]
    assert fused.data.dtype == np.int16
    assert np.all((fused.data == a16) | (fused.data == b16))


def test_cancel_discards_the_run(make_napari_viewer, grey_pair, monkeypatch):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    original = pipeline.focus_map_in_tiles

    def cancelled_midway(*args, progress=None, **kwargs):
        assert widget.cancel_button.enabled and not widget.run_button.enabled
        widget.cancel_button.clicked.emit()  # what pressing Cancel does
        return original(*args, progress=progress, **kwargs)

    monkeypatch.setattr(pipeline, "focus_map_in_tiles", cancelled_midway)
    widget.run()
    assert [layer.name for layer in viewer.layers] == ["sample A", "sample B"]
    assert widget.status.value == "cancelled"
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_errors_are_reported_not_raised(make_napari_viewer, grey_pair):
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="a")
    viewer.add_image(grey_pair.image_b[:64], name="b")
    widget = FocusFusionWidget(viewer)
    assert not widget.run()
    assert "differ in shape" in widget.status.value
    viewer.layers.clear()
    assert not widget.run()
    assert len(viewer.layers) == 0


def test_background_worker_with_progress(make_napari_viewer, grey_pair, qtbot):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    widget.runner.synchronous = False
    widget.tile.value = 64  # several tiles, several progress updates
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert "sample fused" in viewer.layers
    assert widget.run_button.enabled


def test_widget_opens_from_the_plugin_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-acnn-fusion", "Focus fusion")
    assert isinstance(widget, FocusFusionWidget)
    assert widget.layer_a.value is None
    viewer.add_image(np.zeros((32, 32), np.uint8), name="x")
    assert widget.layer_a.value is viewer.layers["x"]


def test_precision_choice_reaches_the_core(make_napari_viewer, grey_pair, monkeypatch):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    assert list(widget.precision.choices) == ["auto", "fp32", "bf16"] and widget.precision.value == "auto"
    seen = []
    original = pipeline.open_network

    def recording(options, *args, **kwargs):
        seen.append(options.precision)
        return original(options, *args, **kwargs)

    monkeypatch.setattr(pipeline, "open_network", recording)
    widget.precision.value = "fp32"
    assert widget.run()
    assert seen == ["fp32"]
    exact = pipeline.fuse_pair(grey_pair.image_a, grey_pair.image_b, precision="fp32")
    assert np.array_equal(viewer.layers["sample fused"].data, exact.fused)
