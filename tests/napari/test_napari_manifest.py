"""The npe2 manifest: valid, reachable from the installed package, commands importable."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

import pytest
from npe2 import PluginManifest

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "napari.yaml"


@pytest.fixture(scope="module")
def manifest() -> PluginManifest:
    return PluginManifest.from_file(MANIFEST)


def test_manifest_loads_and_names_the_plugin(manifest):
    assert manifest.name == "napari-acnn-fusion"
    assert manifest.display_name == "ACNN focus fusion"
    assert all(cmd.id.startswith("napari-acnn-fusion.") for cmd in manifest.contributions.commands)


def test_every_command_resolves_to_a_callable(manifest):
    for cmd in manifest.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        assert callable(getattr(import_module(module), attr)), cmd.python_name


def test_package_ships_the_same_manifest():
    packaged = REPO / "src" / "acnn_fusion" / "napari.yaml"
    assert packaged.is_symlink() and packaged.resolve() == MANIFEST.resolve()
    installed = PluginManifest.from_distribution("napari-acnn-fusion")
    assert installed.name == "napari-acnn-fusion"


def test_menus_sit_in_a_layers_submenu(manifest):
    menus = manifest.contributions.menus
    (submenu,) = manifest.contributions.submenus
    assert submenu.label == "Focus fusion"
    assert [item.submenu for item in menus["napari/layers/project"]] == [submenu.id]
    commands = {item.command for item in menus[submenu.id]}
    assert commands == {"napari-acnn-fusion.fuse_selected_layers", "napari-acnn-fusion.fold_z_stack"}


def test_sample_data_and_reader_are_declared(manifest):
    assert {s.key for s in manifest.contributions.sample_data} == {"pair", "stack"}
    (reader,) = manifest.contributions.readers
    assert reader.accepts_directories and "*.tif" in reader.filename_patterns
