"""Batch fusion of a folder: failures recorded, resume by sidecar, reports, CLI exit codes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import tifffile

from acnn_fusion import __version__
from acnn_fusion.batch import run_batch
from acnn_fusion.cli import main
from acnn_fusion.core.weights import read_metadata
from acnn_fusion.io import StackData, stack_axes
from acnn_fusion.synthetic import blob_mask, render_pair, sample_stack


@pytest.fixture(scope="module")
def stack64() -> np.ndarray:
    return sample_stack().stack[:, :64, :64]


@pytest.fixture
def stack_folder(tmp_path, stack64):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "one.tif", stack64, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "two.tiff", stack64[::-1].copy(), metadata={"axes": "ZYX"})
    (folder / "corrupt.tif").write_bytes(b"II*\x00 this is not really a TIFF file")
    (folder / "empty.tif").write_bytes(b"")
    return folder


@pytest.fixture(scope="module")
def pair64():
    sharp = sample_stack().sharp[:64, :64]
    return render_pair(sharp, blob_mask(sharp.shape, seed=3), radius=3.0)


def _statuses(report) -> dict[str, str]:
    return {entry.file: entry.status for entry in report.entries}


def test_stack_folder_good_and_bad_inputs(stack_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["batch", str(stack_folder), str(out), "--mode", "stack"]) == 1
    printed = capsys.readouterr().out
    assert "corrupt.tif" in printed and "empty.tif" in printed and "2 fused" in printed

    for stem in ("one", "two"):
        fused = tifffile.imread(out / f"{stem}_fused.tif")
        depth = tifffile.imread(out / f"{stem}_depth.tif")
        assert fused.shape == (64, 64) and fused.dtype == np.uint16
        assert depth.shape == (64, 64) and depth.max() < 8
        sidecar = json.loads((out / f"{stem}.done.json").read_text())
        assert sidecar["version"] == __version__
        assert sidecar["model_sha256"] == read_metadata()["sha256"]
        assert sidecar["parameters"]["threshold"] == 0.5
    assert not (out / "corrupt.done.json").exists()

    report = json.loads((out / "batch_report.json").read_text())
    assert report["counts"] == {"ok": 2, "skipped": 0, "failed": 2, "cancelled": 0}
    failed = {e["file"]: e["error"] for e in report["entries"] if e["status"] == "failed"}
    assert set(failed) == {"corrupt.tif", "empty.tif"} and all(failed.values())
    with open(out / "batch_report.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["file"]: r["status"] for r in rows} == {
        "corrupt.tif": "failed",
        "empty.tif": "failed",
        "one.tif": "ok",
        "two.tiff": "ok",
    }
    assert all(r["model_sha256"] == report["model_sha256"] and r["version"] == __version__ for r in rows)
    assert set(rows[0]) >= {"file", "status", "error", "seconds", "parameters"}

    # re-run: the good ones are skipped and their outputs left untouched
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*_*.tif")}
    again = run_batch(stack_folder, out, mode="stack")
    assert _statuses(again) == {
        "corrupt.tif": "failed",
        "empty.tif": "failed",
        "one.tif": "skipped",
        "two.tiff": "skipped",
    }
    assert again.failed == 2
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*_*.tif")}
    assert after == before


@pytest.mark.parametrize("mode", ["stack", "auto"])
def test_a_2d_tiff_in_a_stack_folder_is_skipped_not_failed(tmp_path, stack64, capsys, mode):
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "stack.tif", stack64, metadata={"axes": "ZYX"})
    tifffile.imwrite(folder / "flat.tif", stack64[0])  # a plain 2-D grey TIFF
    tifffile.imwrite(folder / "photo.tif", np.zeros((32, 48, 3), np.uint8), photometric="rgb")
    out = tmp_path / "out"
    assert main(["batch", str(folder), str(out), "--mode", mode]) == 0  # nothing failed
    printed = capsys.readouterr().out
    assert "1 fused, 2 skipped, 0 failed" in printed
    assert "flat.tif: not a focal stack" in printed
    report = json.loads((out / "batch_report.json").read_text())
    entries = {e["file"]: e for e in report["entries"]}
    assert {name: e["status"] for name, e in entries.items()} == {
        "flat.tif": "skipped",
        "photo.tif": "skipped",
        "stack.tif": "ok",
    }
    assert "one image" in entries["flat.tif"]["error"] and entries["flat.tif"]["outputs"] == []
    assert not (out / "flat_fused.tif").exists() and not (out / "flat.done.json").exists()


def test_changed_parameter_or_missing_output_redoes(stack_folder, tmp_path):
    out = tmp_path / "out"
    first = run_batch(stack_folder, out, mode="stack")
    assert first.ok == 2
    redo = run_batch(stack_folder, out, mode="stack", threshold=0.7)
    assert _statuses(redo)["one.tif"] == "ok" and _statuses(redo)["two.tiff"] == "ok"
    assert json.loads((out / "one.done.json").read_text())["parameters"]["threshold"] == 0.7
    (out / "two_depth.tif").unlink()
    partial = run_batch(stack_folder, out, mode="stack", threshold=0.7)
    assert _statuses(partial)["one.tif"] == "skipped" and _statuses(partial)["two.tiff"] == "ok"
    assert (out / "two_depth.tif").exists()


def test_pair_mode_fails_only_the_mismatched_pair(tmp_path, pair64):
    folder, out = tmp_path / "pairs", tmp_path / "out"
    folder.mkdir()
    tifffile.imwrite(folder / "good_A.tif", pair64.image_a)
    tifffile.imwrite(folder / "good_B.tif", pair64.image_b)
    tifffile.imwrite(folder / "odd_A.tif", pair64.image_a)
    tifffile.imwrite(folder / "odd_B.tif", pair64.image_b[:48, :56])
    tifffile.imwrite(folder / "lonely_A.tif", pair64.image_a)
    report = run_batch(folder, out, save_maps=True)  # auto finds pairs
    assert report.mode == "pair"
    statuses = _statuses(report)
    assert statuses == {
        "good_A.tif + good_B.tif": "ok",
        "odd_A.tif + odd_B.tif": "failed",
        "lonely_A.tif": "failed",
    }
    fused = tifffile.imread(out / "good_fused.tif")
    assert fused.shape == (64, 64)
    assert np.all((fused == pair64.image_a) | (fused == pair64.image_b))
    assert (out / "good_focus.tif").exists() and (out / "good_decision.png").exists()
    assert not (out / "odd_fused.tif").exists()
    errors = {e.file: e.error for e in report.entries}
    assert "lonely_B" in errors["lonely_A.tif"]


def test_pair_suffixes_option(tmp_path, pair64, capsys):
    folder, out = tmp_path / "pairs", tmp_path / "out"
    folder.mkdir()
    tifffile.imwrite(folder / "x_near.tif", pair64.image_a)
    tifffile.imwrite(folder / "x_far.tif", pair64.image_b)
    code = main(["batch", str(folder), str(out), "--mode", "pair", "--pair-suffixes", "_near", "_far"])
    assert code == 0
    assert "1 fused" in capsys.readouterr().out
    assert tifffile.imread(out / "x_fused.tif").shape == (64, 64)
    assert json.loads((out / "x.done.json").read_text())["parameters"]["pair_suffixes"] == ["_near", "_far"]


def test_refuses_output_folder_equal_to_input(stack_folder, capsys):
    with pytest.raises(ValueError, match="input folder"):
        run_batch(stack_folder, stack_folder)
    assert main(["batch", str(stack_folder), str(stack_folder)]) == 2
    assert "input folder" in capsys.readouterr().err
    assert not list(stack_folder.glob("*_fused.tif"))


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "no TIFF stacks" in capsys.readouterr().err


def test_should_stop_cancels_the_rest(stack_folder, tmp_path):
    report = run_batch(stack_folder, tmp_path / "out", mode="stack", should_stop=lambda: True)
    assert report.cancelled and {e.status for e in report.entries} == {"cancelled"}
    assert (tmp_path / "out" / "batch_report.json").exists()


def test_stack_axes_drops_singletons_and_finds_time():
    data, z_axis, channel_axis, time_axis = stack_axes(StackData(np.zeros((1, 5, 2, 16, 16)), "TZCYX"))
    assert data.shape == (5, 2, 16, 16) and (z_axis, channel_axis, time_axis) == (0, 1, None)
    assert stack_axes(StackData(np.zeros((3, 5, 16, 16)), "TZYX"))[1:] == (1, None, 0)
    with pytest.raises(ValueError, match="time axis"):
        stack_axes(StackData(np.zeros((3, 5, 16, 16)), "TZYX"), axis=0, name="movie.tif")


def test_should_stop_during_a_fusion_leaves_no_sidecar(stack_folder, tmp_path):
    calls = []

    def stop() -> bool:  # False for the checks between inputs, True at the first tile
        calls.append(1)
        return len(calls) > 3

    out = tmp_path / "out"
    report = run_batch(stack_folder, out, mode="stack", should_stop=stop)
    assert report.cancelled and report.failed == 2 and report.ok == 0
    assert not list(out.glob("*.done.json"))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(28, "No space left on device"), "disk full"),
        (PermissionError(13, "Permission denied"), "permission denied"),
    ],
)
def test_write_errors_are_reported_and_the_rest_complete(stack_folder, tmp_path, monkeypatch, error, message):
    import acnn_fusion.io.images as io_module

    real_imwrite = io_module.tifffile.imwrite

    def failing_for_one_input(path, *args, **kwargs):
        if "-two_fused" in str(path).rsplit("/", 1)[-1]:  # temporary names carry the output stem
            raise error
        return real_imwrite(path, *args, **kwargs)

    monkeypatch.setattr(io_module.tifffile, "imwrite", failing_for_one_input)
    out = tmp_path / "out"
    report = run_batch(stack_folder, out, mode="stack")
    entries = {e.file: e for e in report.entries}
    assert entries["two.tiff"].status == "failed" and message in entries["two.tiff"].error
    assert entries["one.tif"].status == "ok"
    assert not list(out.glob(".*"))  # the failed write left no temporary file
    assert not (out / "two.done.json").exists()  # so a re-run redoes it


def test_headless_npe2_command_runs_a_batch(stack_folder, tmp_path):
    from npe2 import PluginManager

    manager = PluginManager.instance()
    manager.discover()
    command = manager.get_command("napari-acnn-fusion.batch_fuse")
    result = command.exec(
        kwargs={"input_dir": str(stack_folder), "output_dir": str(tmp_path / "out"), "mode": "stack"}
    )
    assert result["failed"] == 2 and "2 fused" in result["summary"]
    assert (tmp_path / "out" / "one_fused.tif").exists()
