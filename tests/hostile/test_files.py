"""Hostile files through every reader and the CLI: FIFOs, link loops, crafted and exotic TIFFs.

Each file is given to ``read_image``, ``read_stack``, the napari reader's header check
(``is_stack_file``) and the CLI's ``fuse`` / ``stack``; each must answer (an image, a stack,
or one clear error line, exit status 2) within the deadline, never hang, never trace back.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile

from acnn_fusion.cli import main
from acnn_fusion.io import is_stack_file, read_image, read_stack

from .conftest import crafted_tiff, deadline, expect_error, one_line_error

# name → (maker(folder, stack) → path, error pattern for read_image or "" if it reads, same for read_stack)
MAKERS: dict = {}


def maker(name: str, image_error: str, stack_error: str):
    def register(f):
        MAKERS[name] = (f, image_error, stack_error)
        return f

    return register


@maker("fifo_tif", "FIFO", "FIFO")
def _fifo(folder, stack):
    path = folder / "pipe.tif"
    os.mkfifo(path)
    return path


@maker("fifo_png", "FIFO", "FIFO|TIFF")
def _fifo_png(folder, stack):
    path = folder / "pipe.png"
    os.mkfifo(path)
    return path


@maker("symlink_to_fifo", "FIFO", "FIFO")
def _link_fifo(folder, stack):
    os.mkfifo(folder / "real_pipe")
    (folder / "linked.tif").symlink_to(folder / "real_pipe")
    return folder / "linked.tif"


@maker("symlink_loop", "link loop", "no such|loop")
def _loop(folder, stack):
    (folder / "loop_a.tif").symlink_to(folder / "loop_b.tif")
    (folder / "loop_b.tif").symlink_to(folder / "loop_a.tif")
    return folder / "loop_a.tif"


@maker("dangling_link", "no such file", "no such")
def _dangling(folder, stack):
    (folder / "dangling.tif").symlink_to(folder / "nowhere.tif")
    return folder / "dangling.tif"


@maker("device", "device", "device")
def _device(folder, stack):
    (folder / "null.tif").symlink_to("/dev/null")
    return folder / "null.tif"


@maker("folder_named_tif", "folder", "at least two")
def _dir(folder, stack):
    (folder / "dir.tif").mkdir()
    return folder / "dir.tif"


@maker("zero_tif", "empty|0 bytes", "cannot read|not a TIFF")
def _zero_tif(folder, stack):
    (folder / "zero.tif").write_bytes(b"")
    return folder / "zero.tif"


@maker("zero_png", "empty|0 bytes", "TIFF file or a folder")
def _zero_png(folder, stack):
    (folder / "zero.png").write_bytes(b"")
    return folder / "zero.png"


@maker("zero_jpg", "empty|0 bytes", "TIFF file or a folder")
def _zero_jpg(folder, stack):
    (folder / "zero.jpg").write_bytes(b"")
    return folder / "zero.jpg"


@maker("garbage_png", "cannot read", "TIFF file or a folder")
def _garbage_png(folder, stack):
    (folder / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"nonsense" * 10)
    return folder / "garbage.png"


@maker("garbage_tif", "cannot read", "cannot read")
def _garbage(folder, stack):
    (folder / "garbage.tif").write_bytes(b"II*\x00 this is not a TIFF at all")
    return folder / "garbage.tif"


@maker("text_named_tif", "cannot read", "cannot read")
def _text(folder, stack):
    (folder / "notes.tif").write_text("hello\n" * 50)
    return folder / "notes.tif"


@maker("truncated", "truncated|cannot read", "truncated|cannot read")
def _truncated(folder, stack):
    tifffile.imwrite(folder / "full.tif", stack, metadata={"axes": "ZYX"})
    raw = (folder / "full.tif").read_bytes()
    (folder / "truncated.tif").write_bytes(raw[: len(raw) // 3])
    return folder / "truncated.tif"


@maker("huge_uncompressed", "truncated", "truncated")
def _huge(folder, stack):
    (folder / "huge.tif").write_bytes(crafted_tiff(100_000, 100_000))
    return folder / "huge.tif"


@maker("huge_zlib_20000", "corrupt", "corrupt")
def _huge_zlib(folder, stack):
    import zlib

    (folder / "bomb.tif").write_bytes(
        crafted_tiff(20_000, 20_000, compression=8, payload=zlib.compress(b"\x00" * 4096))
    )
    return folder / "bomb.tif"


@maker("huge_packbits", "corrupt", "corrupt")
def _huge_packbits(folder, stack):
    (folder / "packbits.tif").write_bytes(
        crafted_tiff(20_000, 20_000, compression=32773, payload=b"\x81\x00" * 8)
    )
    return folder / "packbits.tif"


@maker("huge_lzw", "corrupt", "corrupt")
def _huge_lzw(folder, stack):
    (folder / "lzw.tif").write_bytes(
        crafted_tiff(20_000, 20_000, compression=5, payload=b"\x80\x00\x20\x20" * 4)
    )
    return folder / "lzw.tif"


@maker("compressed_no_data", "no pixel data", "no pixel data")
def _no_data(folder, stack):
    (folder / "nodata.tif").write_bytes(crafted_tiff(64, 64, compression=8, payload=b"", count=0, offset=0))
    return folder / "nodata.tif"


@maker("data_past_end", "past the end|truncated", "past the end|truncated")
def _past_end(folder, stack):
    (folder / "pastend.tif").write_bytes(crafted_tiff(64, 64, compression=8, payload=b"\x78\x9c", count=5000))
    return folder / "pastend.tif"


@maker("one_bit", "", "single slice|not a focal stack")
def _one_bit(folder, stack):
    tifffile.imwrite(folder / "bits1.tif", stack[0] > stack[0].mean())
    return folder / "bits1.tif"


@maker("twelve_bit", "", "single slice|not a focal stack")
def _twelve_bit(folder, stack):
    values = (stack[0].astype(np.float64) / stack[0].max() * 4095).astype(np.uint16)
    tifffile.imwrite(folder / "bits12.tif", values, bitspersample=12, compression=None)
    return folder / "bits12.tif"


@maker("one_bit_stack", "", "")
def _one_bit_stack(folder, stack):
    tifffile.imwrite(folder / "bits1_stack.tif", stack > stack.mean(), metadata={"axes": "ZYX"})
    return folder / "bits1_stack.tif"


@maker("palette", "", "palette")
def _palette(folder, stack):
    index = (stack[0] % 256).astype(np.uint8)
    colormap = (np.random.default_rng(0).random((3, 256)) * 255).astype(np.uint16) * 257
    tifffile.imwrite(folder / "palette.tif", index, photometric="palette", colormap=colormap)
    return folder / "palette.tif"


@maker("cmyk", "", "CMYK")
def _cmyk(folder, stack):
    ink = np.stack([stack[0] % 256] * 4, -1).astype(np.uint8)
    tifffile.imwrite(folder / "cmyk.tif", ink, photometric="separated")
    return folder / "cmyk.tif"


@maker("planar_rgb", "", "colour image|single slice")
def _planar(folder, stack):
    rgb = np.stack([stack[0], stack[1], stack[2]]).astype(np.uint16)
    tifffile.imwrite(folder / "planar.tif", rgb, photometric="rgb", planarconfig="separate")
    return folder / "planar.tif"


@maker("one_slice_imagej", "", "single slice")
def _one_slice(folder, stack):
    tifffile.imwrite(folder / "one.tif", stack[:1], imagej=True, metadata={"axes": "ZYX"})
    return folder / "one.tif"


@maker("ome_um", "", "")
def _ome(folder, stack):
    tifffile.imwrite(
        folder / "ome.ome.tif",
        stack,
        ome=True,
        metadata={
            "axes": "ZYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeY": 0.5,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
        },
    )
    return folder / "ome.ome.tif"


@maker("ome_zero_size", "", "")
def _ome_zero(folder, stack):
    tifffile.imwrite(
        folder / "omezero.ome.tif",
        stack,
        ome=True,
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.0, "PhysicalSizeY": -1.0, "PhysicalSizeZ": -2.0},
    )
    return folder / "omezero.ome.tif"


@maker("imagej_zero_spacing", "", "")
def _ij_zero(folder, stack):
    tifffile.imwrite(
        folder / "ijzero.tif",
        stack,
        imagej=True,
        resolution=(1e-9, 1e-9),
        metadata={"axes": "ZYX", "spacing": 0.0, "unit": "micron"},
    )
    return folder / "ijzero.tif"


@maker("zyxc_two_channels", "", "")
def _zyxc(folder, stack):
    tifffile.imwrite(
        folder / "zyxc.tif",
        np.stack([stack, stack[:, ::-1]], -1),
        metadata={"axes": "ZYXC"},
        photometric="minisblack",
    )
    return folder / "zyxc.tif"


@maker("tzcyx", "", "")
def _tzcyx(folder, stack):
    data = np.stack([np.stack([stack, stack[:, ::-1]], 1)] * 2)
    tifffile.imwrite(folder / "tzcyx.tif", data, imagej=True, metadata={"axes": "TZCYX"})
    return folder / "tzcyx.tif"


@maker("uppercase_suffix", "", "")
def _upper(folder, stack):
    tifffile.imwrite(folder / "STACK.TIFF", stack, metadata={"axes": "ZYX"})
    return folder / "STACK.TIFF"


@maker("unicode_name", "", "")
def _unicode(folder, stack):
    tifffile.imwrite(folder / "stäck µm 日本.tif", stack, metadata={"axes": "ZYX"})
    return folder / "stäck µm 日本.tif"


@maker("long_name", "", "")
def _long(folder, stack):
    path = folder / ("s" * 240 + ".tif")
    tifffile.imwrite(path, stack, metadata={"axes": "ZYX"})
    return path


@pytest.fixture
def hostile(tmp_path, stack8):
    def make(name: str) -> Path:
        return MAKERS[name][0](tmp_path, stack8)

    return make


NAMES = sorted(MAKERS)


@pytest.mark.parametrize("name", NAMES)
def test_read_image(name, hostile):
    path = hostile(name)
    pattern = MAKERS[name][1]
    with deadline(10):
        try:
            image = read_image(path)
        except Exception as exc:
            assert pattern, f"refused a readable image: {type(exc).__name__}: {exc}"
            expect_error(exc, pattern)
            return
    assert not pattern, f"read {image.shape} {image.dtype} from a file that must be refused"
    assert image.dtype in (np.uint8, np.uint16, np.float32, np.float64)


@pytest.mark.parametrize("name", NAMES)
def test_read_stack(name, hostile):
    path = hostile(name)
    pattern = MAKERS[name][2]
    from acnn_fusion.io import stack_axes

    with deadline(10):
        try:
            stack = read_stack(path)
            stack_axes(stack, name=path)
        except Exception as exc:
            assert pattern, f"refused a readable stack: {type(exc).__name__}: {exc}"
            expect_error(exc, pattern)
            return
    assert not pattern, f"read {stack.data.shape} ({stack.axes}) from a file that must be refused"


@pytest.mark.parametrize("name", NAMES)
def test_napari_header_check(name, hostile):
    """The napari reader asks is_stack_file first: it must answer, never block."""
    path = hostile(name)
    with deadline(10):
        try:
            answer = is_stack_file(path)
        except Exception as exc:
            expect_error(exc, ".")
            return
    assert isinstance(answer, bool)


def _cli(argv: list, capsys) -> tuple[int, str]:
    with deadline():
        code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_cli_stack(name, hostile, tmp_path, capsys):
    path = hostile(name)
    out = tmp_path / "out" / "fused.tif"
    code, err = _cli(
        ["stack", path, "-o", out, "--depth-map", tmp_path / "out" / "depth.tif", "--device", "cpu"], capsys
    )
    if MAKERS[name][2]:
        assert code == 2
        one_line_error(err)
        assert not out.exists()
    else:
        assert code == 0, err
        fused = tifffile.TiffFile(out)
        assert fused.series[0].shape  # readable


@pytest.mark.parametrize("name", NAMES)
def test_cli_fuse(name, hostile, tmp_path, capsys, stack8):
    path = hostile(name)
    other = tmp_path / "other.tif"
    image = read_image(path) if not MAKERS[name][1] else stack8[0]
    if (image.ndim == 3 and image.shape[-1] in (3, 4)) or image.ndim == 2:
        tifffile.imwrite(other, image[::-1].copy(), photometric="rgb" if image.ndim == 3 else None)
    else:
        tifffile.imwrite(other, stack8[0])
    out = tmp_path / "fused.tif"
    code, err = _cli(["fuse", path, other, "-o", out, "--device", "cpu"], capsys)
    if code == 0:
        assert not MAKERS[name][1] and out.exists()
    else:
        assert code == 2
        one_line_error(err)


def test_planar_rgb_image_is_colour(hostile):
    image = read_image(hostile("planar_rgb"))
    assert image.shape[-1] == 3 and image.ndim == 3


def test_palette_becomes_its_colours(hostile, tmp_path):
    path = hostile("palette")
    with tifffile.TiffFile(path) as tif:
        index, colormap = tif.asarray(), tif.pages.first.colormap
    image = read_image(path)
    assert image.shape == (*index.shape, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, (colormap[:, index] // 257).transpose(1, 2, 0))


def test_cmyk_becomes_rgb(hostile):
    image = read_image(hostile("cmyk"))
    assert image.shape[-1] == 3  # not RGB + alpha


def test_packed_bits_read_exactly(hostile, stack8):
    bits = read_image(hostile("one_bit"))
    np.testing.assert_array_equal(bits, (stack8[0] > stack8[0].mean()).astype(np.uint8) * 255)
    twelve = read_image(hostile("twelve_bit"))
    assert twelve.max() <= 4095 and twelve.dtype == np.uint16


@pytest.mark.parametrize(
    ("name", "axes", "shape_of"),
    [
        ("zyxc_two_channels", "CYX", lambda s: (2, *s.shape[1:])),
        ("tzcyx", "TCYX", lambda s: (2, 2, *s.shape[1:])),
    ],
)
def test_stack_outputs_keep_axes(name, axes, shape_of, hostile, tmp_path, capsys, stack8):
    code, err = _cli(
        [
            "stack",
            hostile(name),
            "-o",
            tmp_path / "f.tif",
            "--depth-map",
            tmp_path / "d.tif",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, err
    with tifffile.TiffFile(tmp_path / "f.tif") as tif:
        assert tif.series[0].axes == axes and tif.series[0].shape == shape_of(stack8)
    with tifffile.TiffFile(tmp_path / "d.tif") as tif:
        assert tif.series[0].axes == ("TYX" if "T" in axes else "YX")


@pytest.mark.parametrize("via", ["stack", "batch"])
def test_ome_micrometre_round_trips(via, hostile, tmp_path, capsys):
    source = hostile("ome_um")
    if via == "stack":
        out = tmp_path / "f.tif"
        code, err = _cli(["stack", source, "-o", out, "--device", "cpu"], capsys)
    else:
        folder = tmp_path / "in"
        folder.mkdir()
        os.replace(source, folder / "ome.tif")
        code, err = _cli(["batch", folder, tmp_path / "out", "--mode", "stack", "--device", "cpu"], capsys)
        out = tmp_path / "out" / "ome_fused.tif"
    assert code == 0, err
    from acnn_fusion.io.metadata import physical_sizes

    with tifffile.TiffFile(out) as tif:
        sizes = physical_sizes(tif)
    assert sizes.unit == "micrometer" and np.allclose(sizes.pixel_size, (0.5, 0.5))
