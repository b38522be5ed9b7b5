"""File › IO utilities › Batch fuse TIFF folder…: the manifest entry and the dock widget."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from npe2 import PluginManifest

from acnn_fusion.napari._batch_widget import DOCK_NAME, BatchFusionWidget, open_batch_widget

MANIFEST = Path(__file__).resolve().parents[2] / "napari.yaml"
OPEN = "napari-acnn-fusion.open_batch_widget"


@pytest.fixture
def tiny_folder(tmp_path, small_stack):
    folder = tmp_path / "stacks"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", small_stack[:, :48, :64], metadata={"axes": "ZYX"})
    (folder / "broken.tif").write_bytes(b"not a tiff")
    return folder


def test_manifest_declares_menu_entry_and_widget():
    contributions = PluginManifest.from_file(MANIFEST).contributions
    commands = {c.id: c for c in contributions.commands}
    assert commands[OPEN].title == "Batch fuse TIFF folder…"
    assert [item.command for item in contributions.menus["napari/file/io_utilities"]] == [OPEN]
    widget_commands = {w.command for w in contributions.widgets}
    assert "napari-acnn-fusion.batch_widget" in widget_commands
    assert commands["napari-acnn-fusion.batch_widget"].python_name.endswith(":BatchFusionWidget")


def test_menu_command_docks_the_widget(make_napari_viewer):
    from napari._app_model import get_app_model

    viewer = make_napari_viewer()
    app = get_app_model()
    assert OPEN in {item.command.id for item in app.menus.get_menu("napari/file/io_utilities")}
    app.commands.execute_command(OPEN).result()
    widget = viewer.window.dock_widgets[DOCK_NAME]
    assert isinstance(widget, BatchFusionWidget)
    assert open_batch_widget(viewer) is widget  # not docked twice


def test_widget_runs_a_folder_and_shows_the_summary(make_napari_viewer, tiny_folder, tmp_path):
    viewer = make_napari_viewer()
    widget = BatchFusionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    out = tmp_path / "out"
    widget.input_dir.value = tiny_folder
    widget.output_dir.value = out
    widget.mode.value = "stack"
    assert widget.run()
    report = widget.last_report
    assert report is not None and report.ok == 1 and report.failed == 1
    assert "1 fused, 0 skipped, 1 failed" in widget.summary.value
    assert "broken.tif" in widget.summary.value
    assert tifffile.imread(out / "good_fused.tif").shape == (48, 64)
    assert json.loads((out / "batch_report.json").read_text())["counts"]["ok"] == 1
    assert widget.run_button.enabled and not widget.cancel_button.enabled

    widget.threshold.value = 0.6
    assert widget.run()
    assert widget.last_report.ok == 1  # changed threshold: redone, not skipped


def test_widget_counts_a_2d_tiff_as_skipped(make_napari_viewer, tiny_folder, tmp_path, small_stack):
    tifffile.imwrite(tiny_folder / "flat.tif", small_stack[0, :48, :64])  # one plane, no z
    viewer = make_napari_viewer()
    widget = BatchFusionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.input_dir.value = tiny_folder
    widget.output_dir.value = tmp_path / "out"
    widget.mode.value = "stack"
    assert widget.run()
    report = widget.last_report
    assert {e.file: e.status for e in report.entries} == {
        "broken.tif": "failed",
        "flat.tif": "skipped",
        "good.tif": "ok",
    }
    assert "1 fused, 1 skipped, 1 failed" in widget.summary.value
    assert "failed: broken.tif" in widget.summary.value
    assert "skipped as not stacks: flat.tif" in widget.summary.value


def test_widget_refuses_missing_folders_and_same_folder(make_napari_viewer, tiny_folder):
    widget = BatchFusionWidget(make_napari_viewer())
    assert not widget.run()  # nothing chosen
    widget.input_dir.value = tiny_folder
    widget.output_dir.value = tiny_folder
    assert widget.run()  # started, but run_batch refuses: reported, nothing written
    assert widget.last_report is None
    assert "input folder" in widget.summary.value
    assert not list(tiny_folder.glob("*_fused.tif"))


def test_widget_cancel_before_start_of_inputs(make_napari_viewer, tiny_folder, tmp_path, monkeypatch):
    widget = BatchFusionWidget(make_napari_viewer())
    widget.input_dir.value = tiny_folder
    widget.output_dir.value = tmp_path / "out"
    monkeypatch.setattr(widget._stop, "is_set", lambda: True)
    assert widget.run()
    assert widget.last_report.cancelled
    assert "cancelled" in widget.summary.value
    assert np.all([e.status == "cancelled" for e in widget.last_report.entries])
