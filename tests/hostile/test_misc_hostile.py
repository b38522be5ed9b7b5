"""The rest of the issue: evaluate never prints nan, pixel sizes, the napari reader, depth overflow."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from acnn_fusion.cli import main
from acnn_fusion.io import write_image

from .conftest import deadline, one_line_error

EVALUATE_INPUTS = {
    "constant": lambda a: (np.full_like(a, 50), np.full_like(a, 50), np.full_like(a, 50)),
    "nan_float": lambda a: (
        np.where(a > a.mean(), np.nan, 1.0).astype(np.float32),
        a.astype(np.float32),
        a.astype(np.float32),
    ),
    "flat_float": lambda a: (np.zeros(a.shape, np.float32),) * 3,
}


@pytest.mark.parametrize("kind", sorted(EVALUATE_INPUTS))
def test_cli_evaluate_never_prints_nan(kind, tmp_path, capsys, stack8):
    paths = [tmp_path / f"{n}.tif" for n in ("a", "b", "f")]
    for path, image in zip(paths, EVALUATE_INPUTS[kind](stack8[0]), strict=True):
        tifffile.imwrite(path, image)
    with deadline():
        code = main(["evaluate", *map(str, paths)])
    captured = capsys.readouterr()
    assert "nan" not in captured.out.lower()
    assert code == 2
    one_line_error(captured.err)


def test_cli_evaluate_folder_names_the_pair(tmp_path, capsys, stack8):
    pairs, fused = tmp_path / "pairs", tmp_path / "fused"
    pairs.mkdir()
    fused.mkdir()
    for name in ("flat_A", "flat_B"):
        tifffile.imwrite(pairs / f"{name}.tif", np.full_like(stack8[0], 3))
    tifffile.imwrite(fused / "flat_fused.tif", np.full_like(stack8[0], 3))
    with deadline():
        code = main(["evaluate", "--pairs", str(pairs), "--fused", str(fused), "--out", str(tmp_path / "t")])
    captured = capsys.readouterr()
    assert code == 2 and "flat" in captured.err and "nan" not in captured.out.lower()
    one_line_error(captured.err)


@pytest.mark.parametrize("size", [(0.0, 1.0), (1.0, -2.0), (float("nan"), 1.0), (float("inf"), 1.0)])
def test_write_image_refuses_bad_pixel_sizes(size, tmp_path):
    with pytest.raises(ValueError, match="pixel size"):
        write_image(tmp_path / "x.tif", np.zeros((16, 16), np.uint8), pixel_size=size, unit="µm")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("unit", ["µm", "μm", "um", "\\u00b5m", "nm", "mm", "m", "furlong", None])
def test_units_are_written_ascii_and_read_back(unit, tmp_path):
    from acnn_fusion.io import read_stack

    path = write_image(
        tmp_path / "x.tif", np.zeros((2, 16, 16), np.uint16), pixel_size=(0.25, 0.5), unit=unit, axes="ZYX"
    )
    stack = read_stack(path)
    assert stack.pixel_size is not None and np.allclose(stack.pixel_size, (0.25, 0.5))


def test_napari_reader_does_not_block_on_a_fifo(tmp_path):
    reader = pytest.importorskip("acnn_fusion.napari._reader")
    os.mkfifo(tmp_path / "pipe.tif")
    with deadline(10):
        assert reader.napari_get_reader(str(tmp_path / "pipe.tif")) is None
        assert reader.read_focal_stack(str(tmp_path / "pipe.tif")) is None


@pytest.mark.slow
def test_more_than_65535_slices_refused_clearly(tmp_path, capsys):
    path = tmp_path / "deep.tif"
    tifffile.imwrite(path, np.zeros((65_536, 16, 16), np.uint8), metadata={"axes": "ZYX"})
    with deadline(300):
        code = main(["stack", str(path), "-o", str(tmp_path / "f.tif"), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "65,535" in err
    one_line_error(err)
