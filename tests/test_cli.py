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
    code = main(["fuse", str(a), str(b), "-o", str(out), "--focus-map", str(tmp_path / "fm.tif"),
                 "--decision-map", str(tmp_path / "dm.png"), "--threshold", "0.5"])
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
