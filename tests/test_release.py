"""Release metadata stays consistent: package metadata, napari hub files, docs site, CLI reference."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

import acnn_fusion
from acnn_fusion.cli import build_parser

tomllib = pytest.importorskip("tomllib")
ROOT = Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/napari-acnn-fusion/napari-acnn-fusion"


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_package_metadata(project):
    classifiers = project["classifiers"]
    assert "Framework :: napari" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: licence expression only"
    assert project["license"] == "BSD-3-Clause"
    versions = {c.rsplit(" :: ", 1)[1] for c in classifiers if re.fullmatch(r".*Python :: 3\.\d+", c)}
    assert versions == {"3.10", "3.11", "3.12"}
    assert project["requires-python"] == ">=3.10"
    assert {"Homepage", "Documentation", "Bug Tracker", "Source Code"} <= set(project["urls"])
    assert project["urls"]["Source Code"] == REPO_URL


def test_no_qt_binding_required(project):
    qt = re.compile(r"^(pyqt5|pyqt6|pyside2|pyside6|napari\[)", re.IGNORECASE)
    assert not [d for d in project["dependencies"] if qt.match(d)]
    assert any(d.lower().startswith("napari[pyqt6]") for d in project["optional-dependencies"]["all"])


def test_napari_hub_files(project):
    config = yaml.safe_load((ROOT / ".napari-hub" / "config.yml").read_text())
    assert config["visibility"] == "public"
    assert config["project_urls"]["Source Code"] == project["urls"]["Source Code"]
    assert config["project_urls"]["Documentation"] == project["urls"]["Documentation"]
    description = (ROOT / ".napari-hub" / "DESCRIPTION.md").read_text()
    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", description):
        assert image.startswith(f"{REPO_URL.replace('github.com', 'raw.githubusercontent.com')}/main/")
        assert (ROOT / image.split("/main/", 1)[1]).is_file(), image


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_docs_nav_pages_exist():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert {"index.md", "getting-started.md", "cli.md", "api.md", "model.md"} <= set(pages)
    assert not [p for p in pages if not (ROOT / "docs" / p).is_file()]


def test_cli_reference_covers_every_subcommand():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "docs/hooks/cli_reference.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    page = hook.on_page_markdown(f"# CLI\n\n{hook.MARKER}\n", None, None, None)
    assert hook.MARKER not in page
    subcommands = hook._subcommands(build_parser())
    assert {"fuse", "stack", "batch", "evaluate", "demo", "train", "info"} <= set(subcommands)
    for name, parser in subcommands.items():
        assert f"## `{name}`" in page
        assert f"usage: acnn-fusion {name}" in page
        for action in parser._actions:
            for flag in action.option_strings:
                assert flag in page, (name, flag)


def test_changelog_and_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(acnn_fusion.__version__)}\b", changelog, re.MULTILINE)


def test_written_tiffs_record_the_release(tmp_path):
    import numpy as np
    import tifffile

    from acnn_fusion import __version__
    from acnn_fusion.io import write_image

    for name, kwargs in (("plain.tif", {}), ("imagej.tif", {"pixel_size": (0.5, 0.5), "unit": "um"})):
        write_image(tmp_path / name, np.zeros((20, 20), np.uint16), **kwargs)
        with tifffile.TiffFile(tmp_path / name) as tif:
            assert tif.pages[0].software == f"napari-acnn-fusion {__version__}"
