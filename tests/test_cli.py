"""The command line: outputs written, one-line errors with exit status 2, inputs never overwritten."""

import numpy as np
import pytest

from acnn_fusion import __version__
from acnn_fusion.cli import main
from acnn_fusion.io import read_image, write_image


@pytest.fixture
def pair_files(tmp_path, camera_pair):
    a = write_image(tmp_path / "scene-A.tif", camera_pair.image_a)
    b = write_image(tmp_path / "scene-B.png", camera_pair.image_b)
    return a, b


def test_fuse_writes_fused_and_maps(pair_files, tmp_path, capsys, camera_pair):
    a, b = pair_files
    out = tmp_path / "out" / "fused.tif"
    code = main(
        [
            "fuse",
            str(a),
            str(b),
            "-o",
            str(out),
            "--focus-map",
            str(tmp_path / "fm.tif"),
            "--decision-map",
            str(tmp_path / "dm.png"),
            "--threshold",
            "0.5",
        ]
    )
    assert code == 0
    fused = read_image(out)
    assert fused.dtype == np.uint8 and fused.shape == camera_pair.image_a.shape
    assert read_image(tmp_path / "fm.tif").dtype == np.float32
    assert set(np.unique(read_image(tmp_path / "dm.png"))) <= {0, 255}
    assert "fused scene-A.tif" in capsys.readouterr().out
    assert not list(out.parent.glob(".*"))  # no temporary files left behind


def test_evaluate_prints_metrics(pair_files, capsys):
    a, b = pair_files
    assert main(["evaluate", str(a), str(b), str(a)]) == 0
    assert "Qabf" in capsys.readouterr().out


def test_evaluate_pairs_folder_writes_tables(pair_files, tmp_path):
    assert main(["evaluate", "--pairs", str(tmp_path), "--out", str(tmp_path / "table")]) == 0
    assert "scene" in (tmp_path / "table.csv").read_text()
    assert "| mean |" in (tmp_path / "table.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fuse", "missing-A.tif", "missing-B.tif", "-o", "x.tif"], "no such file"),
        (["fuse", "{a}", "{a}", "-o", "{a}"], "refusing to overwrite an input"),
        (["fuse", "{a}", "{small}", "-o", "{out}"], "differ in shape"),
        (["fuse", "{a}", "{a}", "-o", "{out}", "--device", "tpu"], "unknown device"),
        (["fuse", "{a}", "{broken}", "-o", "{out}"], "cannot read image"),
    ],
)
def test_errors_are_one_line_with_exit_status_2(pair_files, tmp_path, capsys, args, message):
    a, _ = pair_files
    small = write_image(tmp_path / "small.tif", np.zeros((20, 20), np.uint8))
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00garbage")
    paths = {"a": a, "small": small, "broken": broken, "out": tmp_path / "o.tif"}
    before = a.read_bytes()
    code = main([arg.format(**paths) for arg in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and err.count("\n") == 1
    assert a.read_bytes() == before


def test_version_and_info(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and __version__ in capsys.readouterr().out
    assert main(["info"]) == 0
    assert "verified" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_stack():
    from acnn_fusion.synthetic import sample_stack

    s = sample_stack()
    return s.stack[:, :96, :96], s.depth_index[:96, :96]


def test_stack_from_imagej_hyperstack_keeps_pixel_size(tmp_path, small_stack):
    import tifffile

    stack, _ = small_stack
    two_channels = np.stack([stack, stack // 2], axis=1)  # (Z, C, Y, X)
    path = tmp_path / "hyper.tif"
    tifffile.imwrite(
        path,
        two_channels,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "ZCYX", "unit": "um"},
    )
    out, depth = tmp_path / "fused.tif", tmp_path / "depth.tif"
    assert main(["stack", str(path), "-o", str(out), "--depth-map", str(depth)]) == 0
    with tifffile.TiffFile(out) as tif:
        fused = tif.asarray()
        x_res = tif.pages.first.tags["XResolution"].value
    assert fused.shape == (2, 96, 96) and fused.dtype == np.uint16
    assert x_res[1] / x_res[0] == pytest.approx(0.25)
    assert read_image(depth).max() < stack.shape[0]


def test_stack_from_folder_of_planes_in_natural_order(tmp_path, small_stack):
    stack, truth = small_stack
    folder = tmp_path / "planes"
    for z, plane in enumerate(stack):
        write_image(folder / f"plane{z + 1}.png", plane)  # plane10 would sort before plane2
    out, depth = tmp_path / "fused.tif", tmp_path / "depth.tif"
    assert main(["stack", str(folder), "-o", str(out), "--depth-map", str(depth)]) == 0
    from acnn_fusion.io import natural_key

    names = [p.name for p in sorted(folder.iterdir(), key=natural_key)]
    assert names[:2] == ["plane1.png", "plane2.png"]
    found = read_image(depth).astype(int)
    assert np.mean(np.abs(found - truth) <= 1) > 0.8


def test_stack_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    assert main(["stack", str(tmp_path / "empty"), "-o", str(tmp_path / "x.tif")]) == 2
    assert main(["stack", str(tmp_path / "nothing.tif"), "-o", str(tmp_path / "x.tif")]) == 2


def test_stack_time_lapse_hyperstack(tmp_path, small_stack):
    import tifffile

    stack, _ = small_stack
    movie = np.stack([stack, stack], axis=0)  # (T, Z, Y, X)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TZYX"})
    out, depth = tmp_path / "fused.tif", tmp_path / "depth.tif"
    assert main(["stack", str(path), "-o", str(out), "--depth-map", str(depth)]) == 0
    fused, depth_map = read_image(out), read_image(depth)
    assert fused.shape == (2, 96, 96) and depth_map.shape == (2, 96, 96)
    assert np.array_equal(depth_map[0], depth_map[1])
