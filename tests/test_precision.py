"""Mixed precision: bf16 keeps the decisions; unknown precisions are refused; fp32 is exact."""

import numpy as np
import pytest
import torch

from acnn_fusion import fuse_pair, fuse_stack
from acnn_fusion.core.inference import resolve_precision, select_device


def test_explicit_precisions_resolve_to_their_dtype():
    cpu = select_device("cpu")
    assert resolve_precision("fp32", cpu) == torch.float32
    assert resolve_precision("bf16", cpu) == torch.bfloat16


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_precision_follows_native_bf16(monkeypatch, native, expected):
    from acnn_fusion.core import inference

    monkeypatch.setattr(inference, "_cpu_has_native_bf16", lambda: native)
    assert resolve_precision("auto", select_device("cpu")) == expected


def test_native_bf16_detection_reads_the_cpu_flags(monkeypatch, tmp_path):
    from acnn_fusion.core import inference

    flags = {"with": "flags\t: fpu sse avx512f avx512_bf16 avx2\n", "without": "flags\t: fpu sse avx2 fma\n"}
    for name, text in flags.items():
        (tmp_path / name).write_text(text)
    real_path = inference.Path
    for name, expected in (("with", True), ("without", False)):
        monkeypatch.setattr(inference, "Path", lambda _p, name=name: real_path(tmp_path / name))
        inference._cpu_has_native_bf16.cache_clear()
        assert inference._cpu_has_native_bf16() is expected
    inference._cpu_has_native_bf16.cache_clear()


@pytest.mark.parametrize("call", [fuse_pair, fuse_stack])
def test_unknown_precision_is_refused_by_name(call, camera_pair):
    args = (
        (camera_pair.image_a, camera_pair.image_b)
        if call is fuse_pair
        else (np.stack([camera_pair.image_a, camera_pair.image_b]),)
    )
    with pytest.raises(ValueError, match="precision 'fp8'"):
        call(*args, precision="fp8")


def test_bf16_keeps_the_pair_decisions(camera_pair):
    exact = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="fp32")
    mixed = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="bf16")
    # soft scores move a little (mean 0.008 here), hard decisions hardly at all (0.01 %)
    assert np.abs(exact.focus_map - mixed.focus_map).mean() < 0.02
    assert np.mean(exact.decision_map != mixed.decision_map) < 0.001
    assert not np.array_equal(exact.focus_map, mixed.focus_map)  # bf16 really ran


def test_fp32_is_reproducible(camera_pair):
    first = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="fp32")
    second = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="fp32")
    assert np.array_equal(first.focus_map, second.focus_map)


def test_cli_and_batch_take_the_precision(tmp_path, camera_pair):
    from acnn_fusion.batch import run_batch
    from acnn_fusion.cli import main
    from acnn_fusion.io import read_image, write_image

    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "p_A.tif", camera_pair.image_a)
    write_image(folder / "p_B.tif", camera_pair.image_b)
    assert main(["fuse", str(folder / "p_A.tif"), str(folder / "p_B.tif"), "-o",
                 str(tmp_path / "f.tif"), "--precision", "fp32"]) == 0  # fmt: skip
    expected = fuse_pair(camera_pair.image_a, camera_pair.image_b, precision="fp32").fused
    assert np.array_equal(read_image(tmp_path / "f.tif"), expected)
    report = run_batch(folder, tmp_path / "out", precision="fp32")
    assert report.ok == 1 and report.parameters["precision"] == "fp32"
    with pytest.raises(ValueError, match="precision"):
        run_batch(folder, tmp_path / "out2", precision="half")
