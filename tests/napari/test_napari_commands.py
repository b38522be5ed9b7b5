"""Menu commands give feedback, run one at a time, and leave results the widget can tune;
the writer saves results with their metadata; the reader takes what the CLI takes."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tifffile

import acnn_fusion.core.pipeline as pipeline
from acnn_fusion.core.pipeline import FusionSettings, fuse_from_focus_map
from acnn_fusion.napari import _menus
from acnn_fusion.napari._reader import napari_get_reader
from acnn_fusion.napari._widget import FocusFusionWidget

FUSE = "napari-acnn-fusion.fuse_selected_layers"
PLUGIN = "napari-acnn-fusion"


@pytest.fixture
def app():
    from napari._app_model import get_app_model

    return get_app_model()


@pytest.fixture
def notes(monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(_menus, "show_info", shown.append)
    monkeypatch.setattr(_menus, "show_warning", shown.append)
    return shown


def _selected_pair(viewer, pair):
    a = viewer.add_image(pair.image_a, name="left_A")
    b = viewer.add_image(pair.image_b, name="left_B")
    viewer.layers.selection = {a, b}
    return a, b


def _enabled(app, viewer) -> bool:
    from app_model.expressions import parse_expression
    from napari._app_model.context import get_context

    (item,) = [i for i in app.menus.get_menu("napari-acnn-fusion.focus_fusion") if i.command.id == FUSE]
    enablement = item.command.enablement
    expr = parse_expression(enablement) if isinstance(enablement, str) else enablement
    return bool(expr.eval(get_context(viewer.layers)))


def test_menu_run_reports_start_and_end_and_the_widget_tunes_it(
    make_napari_viewer, app, grey_pair, notes, qtbot
):
    viewer = make_napari_viewer()
    _selected_pair(viewer, grey_pair)
    app.commands.execute_command(FUSE).result()
    assert any("fusing left" in n for n in notes) and any("done in" in n for n in notes)
    widget = FocusFusionWidget(viewer)  # docked after the menu run
    widget.threshold.value = 0.3
    focus_map = viewer.layers["left focus map"].data
    expected = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, FusionSettings(0.3))
    qtbot.waitUntil(lambda: np.array_equal(viewer.layers["left fused"].data, expected.fused), timeout=5000)


def test_two_menu_runs_cannot_run_at_once(make_napari_viewer, app, grey_pair, notes, monkeypatch, qtbot):
    monkeypatch.setenv("ACNN_FUSION_SYNC", "0")
    original = pipeline.focus_map_in_tiles

    def slow(*args, progress=None, **kwargs):
        for step in range(20):
            progress(step, 20)
            time.sleep(0.02)
        return original(*args, progress=progress, **kwargs)

    monkeypatch.setattr(pipeline, "focus_map_in_tiles", slow)
    viewer = make_napari_viewer()
    _selected_pair(viewer, grey_pair)
    app.commands.execute_command(FUSE).result()
    app.commands.execute_command(FUSE).result()
    assert any("already running" in n for n in notes)
    runner = _menus.menu_runner(viewer)
    qtbot.waitUntil(lambda: not runner.running, timeout=60_000)
    assert [layer.name for layer in viewer.layers].count("left fused") == 1


def test_fuse_is_disabled_for_layers_of_different_shape(make_napari_viewer, app, grey_pair):
    viewer = make_napari_viewer()
    a = viewer.add_image(grey_pair.image_a, name="a")
    b = viewer.add_image(grey_pair.image_b[:64], name="b")
    viewer.layers.selection = {a, b}
    assert not _enabled(app, viewer)


def test_writer_saves_results_with_metadata(make_napari_viewer, grey_pair, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="sample A")
    viewer.add_image(grey_pair.image_b, name="sample B")
    widget = FocusFusionWidget(viewer)
    widget.run()
    fused, decision = viewer.layers["sample fused"], viewer.layers["sample decision map"]
    viewer.layers.selection = {fused, decision}
    written = viewer.layers.save(str(tmp_path / "result.tif"), selected=True, plugin=PLUGIN)
    assert sorted(p.rsplit("/", 1)[-1] for p in written) == ["result.tif", "result_decision.tif"]
    with tifffile.TiffFile(tmp_path / "result.tif") as tif:
        assert np.array_equal(tif.asarray(), fused.data)
        meta = json.loads(tif.pages[0].description)
    assert meta["threshold"] == pytest.approx(0.5) and meta["sources"] == ["sample A", "sample B"]
    assert np.array_equal(tifffile.imread(tmp_path / "result_decision.tif"), decision.data)


def test_reader_takes_plain_multipage_and_imagej_rgb_stacks(make_napari_viewer, tmp_path):
    plain = tmp_path / "plain.tif"
    planes = np.arange(3 * 32 * 32, dtype=np.uint16).reshape(3, 32, 32)
    tifffile.imwrite(plain, planes, photometric="minisblack")  # pages, no axes metadata
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((4, 24, 28, 3), np.uint8), imagej=True, metadata={"axes": "ZYXS"})
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((32, 32), np.uint8))
    assert napari_get_reader(str(flat)) is None  # a 2-D TIFF is left to napari
    viewer = make_napari_viewer()
    (layer,) = viewer.open(plain, plugin=PLUGIN)
    assert layer.data.shape == (3, 32, 32)
    (colour,) = viewer.open(rgb, plugin=PLUGIN)
    assert colour.rgb and colour.data.shape == (4, 24, 28, 3)


def test_palette_does_not_offer_commands_that_need_arguments(make_napari_viewer, app, tmp_path):
    from app_model.expressions import parse_expression
    from napari._app_model.context import get_context

    viewer = make_napari_viewer()
    for command_id in ("get_reader", "write_results", "batch_fuse"):
        action = app.commands[f"napari-acnn-fusion.{command_id}"]
        enablement = getattr(action, "enablement", None)
        if enablement is None:  # older app-model: look the action up in the registry
            enablement = app._registered_actions[f"napari-acnn-fusion.{command_id}"].enablement
        expr = parse_expression(enablement) if isinstance(enablement, str) else enablement
        assert not expr.eval(get_context(viewer.layers)), command_id
    stack = tmp_path / "s.tif"
    tifffile.imwrite(stack, np.zeros((3, 16, 16), np.uint8), photometric="minisblack")
    (layer,) = viewer.open(stack, plugin=PLUGIN)  # the reader still works
    assert layer.data.shape == (3, 16, 16)
