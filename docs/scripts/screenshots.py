"""Render the napari screenshots of the documentation with the real viewer and plugin.

Run under a virtual X display from the repository root:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/screenshots.py

Writes PNGs into ``docs/images/napari/`` (the getting-started page and the napari hub
description show them). Fusion runs inline (``ACNN_FUSION_SYNC=1``) so each picture is taken
after the result layers exist.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("ACNN_FUSION_SYNC", "1")

import numpy as np
from qtpy.QtWidgets import QApplication

import napari

PLUGIN = "napari-acnn-fusion"
OUT = Path(__file__).resolve().parents[1] / "images" / "napari"
WINDOW = (1400, 860)


def _grid(viewer: napari.Viewer):
    """Grid mode settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


def settle(viewer: napari.Viewer) -> None:
    """Let Qt lay out and paint before a picture is taken."""
    for _ in range(5):
        QApplication.processEvents()
    viewer.window._qt_window.repaint()
    QApplication.processEvents()


def save(viewer: napari.Viewer, name: str) -> Path:
    settle(viewer)
    path = OUT / name
    viewer.window.screenshot(path=str(path), canvas_only=False, flash=False)
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
    return path


def pair_screenshots(viewer: napari.Viewer) -> None:
    viewer.open_sample(PLUGIN, "pair")
    _, widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Focus fusion")
    viewer.layers["sample B"].visible = False
    viewer.reset_view()
    save(viewer, "pair_widget.png")

    widget.run()  # fuses "sample A" and "sample B"; adds focus map, fused and decision map layers
    hidden = [layer.name for layer in viewer.layers if not layer.visible]
    print(f"hidden under the new fused image: {', '.join(hidden) or 'none'}")
    for layer in viewer.layers:
        layer.visible = layer.name.endswith(("fused", "decision map"))
    decision = next(layer for layer in viewer.layers if layer.name.endswith("decision map"))
    decision.opacity = 0.35
    viewer.reset_view()
    save(viewer, "pair_fused.png")

    _grid(viewer).enabled = True
    for layer in viewer.layers:
        layer.visible = True
        layer.opacity = 1.0
    viewer.reset_view()
    save(viewer, "pair_grid.png")
    _grid(viewer).enabled = False

    # paint to correct: give a band of the decision map to B, as a brush stroke would
    for layer in viewer.layers:
        layer.visible = layer.name.endswith(("fused", "decision map"))
    decision.opacity = 0.5
    height, width = decision.data.shape
    band = np.zeros(decision.data.shape, bool)
    band[height // 3 : height // 2, width // 5 : 4 * width // 5] = True
    decision.data_setitem(np.nonzero(band), 2)
    viewer.layers.selection.active = decision
    decision.mode = "paint"
    decision.selected_label = 2
    settle(viewer)
    viewer.reset_view()
    save(viewer, "pair_paint.png")
    decision.mode = "pan_zoom"


def stack_screenshot(viewer: napari.Viewer) -> None:
    viewer.layers.clear()
    widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Focus fusion")[1]
    viewer.open_sample(PLUGIN, "stack")  # opened after docking: the widget switches to z-stack itself
    assert widget.mode.value == "z-stack", widget.mode.value
    # physical sizes as an ImageJ file's `spacing` and resolution would give them (the synthetic
    # sample has none): 2 µm between slices, 0.5 µm pixels, so the depth shows in µm
    stack = viewer.layers["sample stack"]
    stack.scale, stack.units = (2.0, 0.5, 0.5), ("µm", "µm", "µm")
    widget.run()
    for layer in viewer.layers:  # the new fused image hid the layers under it: show the results
        layer.visible = layer.name != "sample stack"
    _grid(viewer).enabled = True
    viewer.reset_view()
    save(viewer, "stack_fused.png")
    _grid(viewer).enabled = False

    widget.height_button.clicked.emit()  # the fused image over its depth map, in 3-D
    for layer in viewer.layers:
        layer.visible = layer.name.endswith("height surface")
    viewer.reset_view()
    viewer.camera.angles = (-10.0, 40.0, 120.0)
    viewer.camera.zoom *= 0.8
    save(viewer, "stack_height.png")


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-acnn-fusion", show=True)
    viewer.window.resize(*WINDOW)
    try:
        pair_screenshots(viewer)
        stack_screenshot(viewer)
    finally:
        viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
