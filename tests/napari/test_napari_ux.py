"""What a new user meets: the mode follows the data, compact status, remembered settings,
tooltips, the device used, lazy layers read in the worker, a warning before long runs."""

from __future__ import annotations

import threading

import pytest

from acnn_fusion.napari import _jobs, _widget
from acnn_fusion.napari._batch_widget import BatchFusionWidget
from acnn_fusion.napari._widget import PAIR, STACK, FocusFusionWidget


def test_mode_follows_the_data_and_pairs_must_match(make_napari_viewer, grey_pair, small_stack):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("napari-acnn-fusion", "Focus fusion")
    assert widget.mode.value == PAIR
    stack = viewer.add_image(small_stack, name="stack")  # opened after docking
    assert widget.mode.value == STACK and widget.stack.value is stack
    a = viewer.add_image(grey_pair.image_a, name="left A")
    b = viewer.add_image(grey_pair.image_b, name="left B")
    viewer.add_image(grey_pair.image_b[:64], name="smaller")
    assert widget.mode.value == PAIR
    assert widget.layer_a.value is a and widget.layer_b.value is b
    assert [layer.name for layer in widget.layer_a.choices] == ["left A", "left B", "smaller"]
    assert [layer.name for layer in widget.layer_b.choices] == ["left B"]  # A's shape only, no stack
    viewer.layers.selection.active = stack
    assert widget.mode.value == STACK


def test_long_status_text_does_not_widen_the_panel(make_napari_viewer, grey_pair):
    viewer = make_napari_viewer()
    long = "a layer with a very long name " * 12
    viewer.add_image(grey_pair.image_a, name=long + "A")
    viewer.add_image(grey_pair.image_b[:64], name=long + "B")
    widget = FocusFusionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert not widget.run()
    assert "differ in shape" in widget.status.tooltip  # the whole message is kept
    assert widget.native.sizeHint().width() < 600
    assert len(widget.status.value) < len(widget.status.tooltip)


def test_batch_failures_do_not_widen_the_panel(make_napari_viewer, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(12):
        (folder / f"broken_input_with_a_long_descriptive_file_name_{i:02d}.tif").write_bytes(b"no tiff")
    widget = BatchFusionWidget(make_napari_viewer())
    widget.input_dir.value = folder
    widget.output_dir.value = tmp_path / "out"
    widget.mode.value = "stack"
    assert widget.run()
    assert widget.last_report.failed == 12
    assert widget.native.sizeHint().width() < 600
    assert "12 failed" in widget.summary.value


def test_settings_are_remembered_and_defaults_restored(make_napari_viewer):
    viewer = make_napari_viewer()
    first = FocusFusionWidget(viewer)
    first.threshold.value = 0.7
    first.precision.value = "fp32"
    first.close_down()
    second = FocusFusionWidget(viewer)  # docked again
    assert second.threshold.value == pytest.approx(0.7) and second.precision.value == "fp32"
    second.defaults_button.clicked.emit()
    assert second.threshold.value == pytest.approx(0.5) and second.precision.value == "auto"
    assert second.min_region.value == pytest.approx(0.0)  # the paper's % rule is off by default
    assert second.min_region_px.value == 4096


def test_every_control_has_a_tooltip(make_napari_viewer):
    viewer = make_napari_viewer()
    for widget in (FocusFusionWidget(viewer), BatchFusionWidget(viewer)):
        missing = [control.name for control in widget if not control.tooltip]
        assert missing == [], type(widget).__name__
    batch = BatchFusionWidget(viewer)
    from acnn_fusion.napari._controls import options_from_controls
    from acnn_fusion.options import option_names

    assert set(option_names()) <= {control.name for control in batch}  # the CLI's options
    batch.preset.value = "paper"  # a preset brings its own β and minimum region
    assert batch.threshold.value == pytest.approx(0.9)
    assert options_from_controls(batch).settings().threshold == pytest.approx(0.9)


def test_status_names_the_device_actually_used(make_napari_viewer, grey_pair):
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="sample A")
    viewer.add_image(grey_pair.image_b, name="sample B")
    widget = FocusFusionWidget(viewer)
    assert widget.device.value == "auto"
    widget.run()
    assert "(auto)" not in widget.status.value
    assert any(f"{d} (" in widget.status.value for d in ("cpu", "cuda", "mps")), widget.status.value


def test_lazy_stack_is_read_in_the_worker_with_a_warning(make_napari_viewer, small_stack, monkeypatch, qtbot):
    da = pytest.importorskip("dask.array")
    import dask

    read_on: dict[int, set[str]] = {}

    def plane(block, block_info=None):
        z = block_info[0]["chunk-location"][0]
        read_on.setdefault(z, set()).add(threading.current_thread().name)
        return block

    lazy = da.from_array(small_stack, chunks=(1, *small_stack.shape[1:])).map_blocks(
        plane, dtype=small_stack.dtype
    )
    warnings = []
    monkeypatch.setattr(_jobs, "LONG_RUN_SECONDS", 0.0)  # every run counts as long here
    monkeypatch.setattr(_widget, "show_warning", warnings.append)
    with dask.config.set(scheduler="synchronous"):  # blocks are computed by the thread that asks
        viewer = make_napari_viewer()
        viewer.add_image(lazy, name="lazy", contrast_limits=(0, 4000))
        widget = FocusFusionWidget(viewer)
        widget.runner.synchronous = False
        read_on.clear()
        assert widget.run()
        qtbot.waitUntil(lambda: not widget.runner.running, timeout=60_000)
    assert "lazy fused" in viewer.layers
    main = threading.main_thread().name
    worker_read = {z for z, threads in read_on.items() if threads - {main}}
    main_read = {z for z, threads in read_on.items() if main in threads}
    assert worker_read == set(range(small_stack.shape[0]))  # every plane read by the worker
    assert len(main_read) <= 1  # at most the plane napari displays
    assert warnings and "will take about" in warnings[0]


def test_batch_results_open_in_the_viewer(make_napari_viewer, small_stack, tmp_path):
    import tifffile

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", small_stack[:, :48, :64], metadata={"axes": "ZYX"})
    viewer = make_napari_viewer()
    widget = BatchFusionWidget(viewer)
    widget.input_dir.value = folder
    widget.output_dir.value = tmp_path / "out"
    widget.strategy.value = "pairwise"  # an option only the CLI offered before
    assert widget.run()
    assert widget.last_report.ok == 1 and widget.open_button.enabled
    (layer,) = widget.open_results()
    assert layer.data.shape == (48, 64)
    assert widget.last_report.parameters["strategy"] == "pairwise"
