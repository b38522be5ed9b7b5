"""Layers › Focus fusion commands, run through napari's app model on a real viewer."""

from __future__ import annotations

import numpy as np
import pytest
from app_model.expressions import parse_expression

FUSE = "napari-acnn-fusion.fuse_selected_layers"
FOLD = "napari-acnn-fusion.fold_z_stack"
SUBMENU = "napari-acnn-fusion.focus_fusion"


@pytest.fixture
def app():
    from napari._app_model import get_app_model

    return get_app_model()


def _enabled(app, viewer, command_id: str) -> bool:
    """Evaluate the command's enablement clause against the viewer's layer-list context."""
    from napari._app_model.context import get_context

    (item,) = [i for i in app.menus.get_menu(SUBMENU) if i.command.id == command_id]
    enablement = item.command.enablement
    expr = parse_expression(enablement) if isinstance(enablement, str) else enablement
    return bool(expr.eval(get_context(viewer.layers)))


def test_submenu_is_in_the_layers_menu(make_napari_viewer, app):
    make_napari_viewer()
    project_items = app.menus.get_menu("napari/layers/project")
    assert any(getattr(item, "submenu", None) == SUBMENU for item in project_items)
    assert {item.command.id for item in app.menus.get_menu(SUBMENU)} == {FUSE, FOLD}


def test_fuse_selected_layers_command(make_napari_viewer, app, grey_pair):
    viewer = make_napari_viewer()
    a = viewer.add_image(grey_pair.image_a, name="left_A", scale=(2.0, 2.0))
    b = viewer.add_image(grey_pair.image_b, name="left_B", scale=(2.0, 2.0))
    viewer.add_image(np.zeros((4, 4)), name="other")
    viewer.layers.selection = {viewer.layers["other"]}
    assert not _enabled(app, viewer, FUSE)
    viewer.layers.selection = {a, b}
    assert _enabled(app, viewer, FUSE)

    app.commands.execute_command(FUSE).result()
    names = [layer.name for layer in viewer.layers]
    assert names[3:] == ["left focus map", "left fused", "left decision map"]
    assert viewer.layers["left fused"].data.dtype == np.uint8
    np.testing.assert_allclose(viewer.layers["left decision map"].scale, (2.0, 2.0))
    viewer.layers.selection = {a, b}
    app.commands.execute_command(FUSE).result()
    assert [layer.name for layer in viewer.layers] == names  # updated, not duplicated


def test_fold_z_stack_command(make_napari_viewer, app, small_stack):
    viewer = make_napari_viewer()
    flat = viewer.add_image(small_stack[0], name="flat")
    colour = viewer.add_image(np.zeros((32, 32, 3), np.uint8), name="colour", rgb=True)
    for layer in (flat, colour):
        viewer.layers.selection = {layer}
        assert not _enabled(app, viewer, FOLD), layer.name
    stack = viewer.add_image(small_stack, name="zs")
    viewer.layers.selection = {stack}
    assert _enabled(app, viewer, FOLD)
    app.commands.execute_command(FOLD).result()
    assert {"zs fused", "zs depth map", "zs confidence"} <= {layer.name for layer in viewer.layers}
    assert viewer.layers["zs fused"].data.shape == small_stack.shape[1:]


def test_commands_with_the_wrong_selection_only_warn(make_napari_viewer, app):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.zeros((32, 32), np.uint8), name="one")
    viewer.layers.selection = {layer}
    app.commands.execute_command(FUSE).result()
    app.commands.execute_command(FOLD).result()
    assert [layer.name for layer in viewer.layers] == ["one"]


def test_sample_data(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-acnn-fusion", "pair")
    assert [layer.name for layer in viewer.layers] == ["sample A", "sample B"]
    assert viewer.layers["sample A"].rgb
    viewer.open_sample("napari-acnn-fusion", "stack")
    stack = viewer.layers["sample stack"]
    assert stack.data.ndim == 3 and stack.data.dtype == np.uint16
