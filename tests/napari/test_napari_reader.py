"""Reader: ImageJ and OME focal stacks with pixel sizes, folders of planes, foreign and broken files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from imageio import v3 as iio

from acnn_fusion.napari import _reader
from acnn_fusion.napari._layers import Z_AXIS_KEY
from acnn_fusion.napari._reader import napari_get_reader, natural_key

PLUGIN = "napari-acnn-fusion"


@pytest.fixture
def errors(monkeypatch):
    """Messages the reader shows as napari error notifications."""
    shown = []
    monkeypatch.setattr(_reader, "show_error", shown.append)
    return shown


def _read(path):
    reader = napari_get_reader(str(path))
    assert reader is not None, path
    return reader(str(path))


def test_imagej_hyperstack_with_channels_and_pixel_size(tmp_path, make_napari_viewer):
    data = np.arange(4 * 2 * 40 * 48, dtype=np.uint16).reshape(4, 2, 40, 48)
    path = tmp_path / "cells.tif"
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.2),  # pixels per micron: x 0.25 µm, y 0.2 µm
        metadata={"spacing": 1.5, "unit": "micron", "axes": "ZCYX"},
    )
    ((_array, kwargs, kind),) = _read(path)
    assert kind == "image" and kwargs["channel_axis"] == 1
    assert kwargs["name"] == ["cells ch0", "cells ch1"]

    viewer = make_napari_viewer()
    layers = viewer.open(path, plugin=PLUGIN)
    assert [layer.name for layer in layers] == ["cells ch0", "cells ch1"]
    for channel, layer in enumerate(layers):
        assert layer.data.shape == (4, 40, 48)
        np.testing.assert_array_equal(layer.data, data[:, channel])
        np.testing.assert_allclose(layer.scale, (1.5, 0.2, 0.25))
        assert layer.metadata[Z_AXIS_KEY] == 0
        assert [str(u) for u in layer.units] == ["micrometer"] * 3
        assert tuple(layer.axis_labels) == ("z", "y", "x")


def test_ome_tiff_with_time_and_physical_sizes(tmp_path):
    data = np.random.default_rng(0).integers(0, 4000, (2, 3, 32, 36), dtype=np.uint16)
    path = tmp_path / "timelapse.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "TZYX",
            "PhysicalSizeX": 300.0,
            "PhysicalSizeXUnit": "nm",
            "PhysicalSizeY": 300.0,
            "PhysicalSizeYUnit": "nm",
            "PhysicalSizeZ": 1.2,
            "PhysicalSizeZUnit": "µm",
        },
    )
    ((array, kwargs, _),) = _read(path)
    assert kwargs["name"] == "timelapse"
    np.testing.assert_array_equal(array, data)
    np.testing.assert_allclose(kwargs["scale"], (1.0, 1200.0, 300.0, 300.0))  # z in the unit of x
    assert kwargs["units"] == ("pixel", "nanometer", "nanometer", "nanometer")
    assert kwargs["metadata"][Z_AXIS_KEY] == 1 and kwargs["axis_labels"] == ("t", "z", "y", "x")


def test_rgb_stack_stays_rgb(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, (3, 24, 28, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYXS"})
    ((array, kwargs, _),) = _read(path)
    assert kwargs["rgb"] and "channel_axis" not in kwargs
    assert array.shape == data.shape and kwargs["metadata"][Z_AXIS_KEY] == 0


def test_folder_of_planes_in_natural_order(tmp_path, make_napari_viewer):
    folder = tmp_path / "focus series"
    folder.mkdir()
    for index in (10, 2, 1):
        iio.imwrite(folder / f"plane{index}.png", np.full((20, 24), index, dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    assert sorted(["plane10", "plane2", "plane1"], key=natural_key) == ["plane1", "plane2", "plane10"]

    viewer = make_napari_viewer()
    (layer,) = viewer.open(folder, plugin=PLUGIN)
    assert layer.name == "focus series" and layer.data.shape == (3, 20, 24)
    assert list(layer.data[:, 0, 0]) == [1, 2, 10]
    assert layer.metadata[Z_AXIS_KEY] == 0


def test_foreign_files_are_declined(tmp_path, errors):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((32, 32), np.uint16))
    channels_only = tmp_path / "channels.tif"
    tifffile.imwrite(channels_only, np.zeros((3, 32, 32), np.uint16), imagej=True, metadata={"axes": "CYX"})
    png = tmp_path / "photo.png"
    iio.imwrite(png, np.zeros((16, 16), np.uint8))
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    iio.imwrite(lonely / "one.png", np.zeros((16, 16), np.uint8))
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    iio.imwrite(mixed / "a.png", np.zeros((16, 16), np.uint8))
    iio.imwrite(mixed / "b.png", np.zeros((16, 20), np.uint8))
    for path in (plain, channels_only, png, lonely, mixed, tmp_path / "missing.tif"):
        assert napari_get_reader(str(path)) is None, path
    assert napari_get_reader([str(plain), str(png)]) is None
    assert len(errors) == 1  # only the missing file is an error; the rest are just not ours
    assert "missing.tif" in errors[0]


def test_broken_tiffs_notify_and_return_none(tmp_path, errors):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + b"\x13" * 200)
    assert napari_get_reader(str(garbage)) is None
    assert len(errors) == 1 and "garbage.tif" in errors[0]

    # a valid header whose pixel data is cut short
    good = tmp_path / "good.tif"
    tifffile.imwrite(
        good, np.ones((4, 64, 64), np.uint16), photometric="minisblack", metadata={"axes": "ZYX"}
    )
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(good.read_bytes()[:20000])
    reader = napari_get_reader(str(truncated))  # (tifffile parses the header of what is left)
    assert reader is None or reader(str(truncated)) is None
    assert len(errors) == 2 and "truncated.tif" in errors[1]


def test_broken_file_in_the_viewer_does_not_crash(tmp_path, make_napari_viewer, errors):
    garbage = tmp_path / "broken.tif"
    garbage.write_bytes(b"MM\x00*" + b"\xff" * 64)
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match=r"broken\.tif"):  # napari: no reader could read it
        viewer.open(garbage, plugin=PLUGIN)
    assert len(viewer.layers) == 0 and errors
