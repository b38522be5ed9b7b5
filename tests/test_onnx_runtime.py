"""The onnxruntime runtime: same scores and decisions as torch fp32, chosen as documented,
verified on load, and no torch in a process that fuses with it.

Skipped where onnxruntime is not installed (it is a dependency; a broken install skips here
and ``runtime="auto"`` falls back to torch, which the choice tests check).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from acnn_fusion import fuse_pair, fuse_stack
from acnn_fusion.core import inference
from acnn_fusion.core.inference import open_network, resolve_runtime
from acnn_fusion.core.weights import (
    WeightsError,
    default_weights_path,
    onnx_export,
    read_metadata,
    save_weights,
)
from acnn_fusion.options import FusionOptions
from acnn_fusion.synthetic import blob_mask, render_pair, render_stack, sample_stack

pytest.importorskip("onnxruntime")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ambiguous_pair():
    """A grey 160×200 pair whose focus map has many values far from 0 and 1 (weak blur)."""
    rng = np.random.default_rng(5)
    from scipy import ndimage

    sharp = (ndimage.gaussian_filter(rng.random((160, 200)), 1.2) * 255).astype(np.uint8)
    return render_pair(sharp, blob_mask(sharp.shape, seed=4), radius=1.0)


def _copy_shipped(tmp_path: Path) -> Path:
    """The shipped .pt, .json and .onnx copied into ``tmp_path``; returns the .pt copy."""
    source = default_weights_path()
    for suffix in (".pt", ".json", ".onnx"):
        shutil.copy(source.with_suffix(suffix), tmp_path / source.with_suffix(suffix).name)
    return tmp_path / source.name


# -- the same answers as torch -----------------------------------------------------------------


def test_pair_scores_agree_with_torch_and_decisions_are_identical(camera_pair, ambiguous_pair) -> None:
    for pair in (camera_pair, ambiguous_pair):
        on_onnx = fuse_pair(pair.image_a, pair.image_b, runtime="onnx")
        on_torch = fuse_pair(pair.image_a, pair.image_b, runtime="torch", precision="fp32")
        assert np.abs(on_onnx.focus_map - on_torch.focus_map).max() <= 1e-4
        assert np.array_equal(on_onnx.decision_map, on_torch.decision_map)
    # not vacuous: the ambiguous pair's map has many uncertain values, and it still finds the mask
    uncertain = np.mean((on_torch.focus_map > 0.05) & (on_torch.focus_map < 0.95))
    assert uncertain > 0.05
    assert np.mean(on_onnx.decision_map == ambiguous_pair.mask) > 0.8


def test_raw_scores_and_stack_odds_agree_with_torch(ambiguous_pair) -> None:
    import torch

    from acnn_fusion.core.pipeline import grey_pair
    from acnn_fusion.core.weights import load_model

    grey_a, grey_b = grey_pair(ambiguous_pair.image_a, ambiguous_pair.image_b)
    on_onnx = open_network(FusionOptions(runtime="onnx"))
    on_torch = inference.TorchNetwork(load_model(), torch.device("cpu"), "fp32")
    assert on_onnx.runtime == "onnx" and on_torch.runtime == "torch"
    scores = on_onnx.score_map(grey_a, grey_b, tile=64)
    expected = on_torch.score_map(grey_a, grey_b, tile=64)
    assert scores.shape == expected.shape and scores.dtype == np.float32
    assert np.abs(scores - expected).max() <= 1e-4
    odds = on_onnx.slice_odds(grey_b, on_onnx.reference(grey_a))
    expected_odds = on_torch.slice_odds(grey_b, on_torch.reference(grey_a))
    assert odds.shape == expected_odds.shape
    assert np.abs(odds - expected_odds).max() <= 1e-4 * max(1.0, float(np.abs(expected_odds).max()))
    assert np.abs(expected_odds).max() > 1  # real log-odds, not zeros


def test_stack_depth_is_identical_to_torch() -> None:
    synthetic = sample_stack()
    on_onnx = fuse_stack(synthetic.stack, runtime="onnx")
    on_torch = fuse_stack(synthetic.stack, runtime="torch", precision="fp32")
    assert np.array_equal(on_onnx.depth_map, on_torch.depth_map)
    assert np.abs(on_onnx.confidence - on_torch.confidence).max() <= 1e-4
    assert np.array_equal(on_onnx.fused, on_torch.fused)
    assert np.mean(np.abs(on_onnx.depth_map.astype(int) - synthetic.depth_index) <= 1) > 0.99


def test_small_rgb_stack_and_pairwise_fold_match_torch() -> None:
    rng = np.random.default_rng(2)
    from scipy import ndimage

    sharp = (ndimage.gaussian_filter(rng.random((72, 90, 3)), (1.0, 1.0, 0)) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:72, 0:90]
    stack = render_stack(sharp, 4.0 * xx / 89.0 + 0 * yy, 5, radius_per_slice=1.5).stack
    for strategy in ("features", "pairwise"):
        on_onnx = fuse_stack(stack, runtime="onnx", strategy=strategy)
        on_torch = fuse_stack(stack, runtime="torch", precision="fp32", strategy=strategy)
        assert np.array_equal(on_onnx.depth_map, on_torch.depth_map), strategy


def test_tiled_equals_untiled() -> None:
    synthetic = sample_stack()
    whole = fuse_stack(synthetic.stack, runtime="onnx", tile=4096)
    tiled = fuse_stack(synthetic.stack, runtime="onnx", tile=80)
    assert np.array_equal(whole.depth_map, tiled.depth_map)
    assert np.abs(whole.confidence - tiled.confidence).max() <= 1e-5
    pair = synthetic.stack[[1, 6]]
    network = open_network(FusionOptions(runtime="onnx"))
    grey = [p.astype(np.float32) / 4200 for p in pair]
    untiled = network.score_map(*grey, tile=4096)
    assert np.abs(network.score_map(*grey, tile=48) - untiled).max() <= 1e-5


# -- which runtime runs ------------------------------------------------------------------------


@pytest.fixture
def fp32_cpu(monkeypatch):
    """A machine without a GPU whose CPU has no native bf16 (most CPUs)."""
    monkeypatch.setattr(inference, "accelerator_likely", lambda: False)
    monkeypatch.setattr(inference, "_cpu_has_native_bf16", lambda: False)


def test_runtime_choice_is_honoured(monkeypatch, fp32_cpu) -> None:
    assert resolve_runtime(FusionOptions()) == "onnx"  # auto on a CPU-only machine
    assert resolve_runtime(FusionOptions(device="cpu")) == "onnx"
    assert resolve_runtime(FusionOptions(runtime="torch")) == "torch"
    assert resolve_runtime(FusionOptions(precision="bf16")) == "torch"  # onnx runs fp32 only
    assert resolve_runtime(FusionOptions(device="cuda")) == "torch"
    assert open_network(FusionOptions(runtime="torch", device="cpu")).runtime == "torch"
    assert open_network(FusionOptions(device="cpu")).runtime == "onnx"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_runtime(FusionOptions(runtime="onnx", device="cuda"))
    with pytest.raises(ValueError, match="fp32"):
        resolve_runtime(FusionOptions(runtime="onnx", precision="bf16"))
    monkeypatch.setattr(inference, "accelerator_likely", lambda: True)
    assert resolve_runtime(FusionOptions()) == "torch"  # auto device with a GPU: torch
    assert resolve_runtime(FusionOptions(device="cpu")) == "onnx"  # ... unless the CPU is asked for


def test_auto_on_a_native_bf16_cpu_keeps_torch_for_large_inputs(monkeypatch, fp32_cpu) -> None:
    monkeypatch.setattr(inference, "_cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(inference, "_cpu_has_amx_bf16", lambda: True)  # the kind with a finite break-even
    limit = inference.bf16_break_even_megapixels()
    assert resolve_runtime(FusionOptions(), megapixels=0.5) == "onnx"  # start-up dominates
    assert resolve_runtime(FusionOptions(), megapixels=limit) == "onnx"
    assert resolve_runtime(FusionOptions(), megapixels=2 * limit) == "torch"  # bf16 network wins
    assert resolve_runtime(FusionOptions()) == "torch"  # size unknown
    assert resolve_runtime(FusionOptions(precision="fp32"), megapixels=100.0) == "onnx"  # fp32 either way
    # torch is imported in this process: the choice stays the same (results must not depend on it)
    assert "torch" in sys.modules
    assert open_network(FusionOptions(), megapixels=0.5).runtime == "onnx"


def test_the_break_even_follows_the_kind_of_bf16_the_cpu_has(monkeypatch, tmp_path, fp32_cpu) -> None:
    """AMX runs torch's bf16 network about twice as fast as AVX-512 BF16: torch from a smaller input."""
    monkeypatch.setattr(inference, "_cpu_has_native_bf16", lambda: True)
    flags = {
        "amx": "flags\t: avx512f avx512_bf16 amx_bf16 amx_tile\n",
        "avx512": "flags\t: avx512f avx512_bf16\n",
    }
    real_path = inference.Path
    limits = {}
    for name, text in flags.items():
        (tmp_path / name).write_text(text)
        monkeypatch.setattr(inference, "Path", lambda _p, name=name: real_path(tmp_path / name))
        inference._cpu_has_amx_bf16.cache_clear()
        limits[name] = inference.bf16_break_even_megapixels()
    inference._cpu_has_amx_bf16.cache_clear()
    assert limits == {
        "amx": inference.BF16_BREAK_EVEN_MEGAPIXELS["amx_bf16"],
        "avx512": inference.BF16_BREAK_EVEN_MEGAPIXELS["avx512_bf16"],
    }
    assert limits["amx"] < limits["avx512"]
    monkeypatch.setattr(inference, "bf16_break_even_megapixels", lambda: limits["amx"])
    between = 2 * limits["amx"]  # e.g. a 64-slice 1024² stack: 68 MP
    assert resolve_runtime(FusionOptions(), megapixels=between) == "torch"
    monkeypatch.setattr(inference, "bf16_break_even_megapixels", lambda: limits["avx512"])
    assert resolve_runtime(FusionOptions(), megapixels=between) == "onnx"


def test_without_onnxruntime_auto_falls_back_to_torch(monkeypatch, fp32_cpu) -> None:
    monkeypatch.setattr(inference, "onnxruntime_installed", lambda: False)
    assert resolve_runtime(FusionOptions()) == "torch"
    with pytest.raises(ValueError, match="needs onnxruntime"):
        resolve_runtime(FusionOptions(runtime="onnx"))


def test_weights_without_export_run_on_torch(tmp_path, fp32_cpu) -> None:
    from acnn_fusion.core.weights import load_model

    custom = save_weights(load_model(), tmp_path / "custom.pt")  # a retrained model: no export yet
    assert onnx_export(custom) is None
    assert resolve_runtime(FusionOptions(weights=str(custom))) == "torch"
    with pytest.raises(WeightsError, match="no ONNX export"):
        resolve_runtime(FusionOptions(weights=str(custom), runtime="onnx"))


def test_export_is_reproducible_and_runs(tmp_path, fp32_cpu, ambiguous_pair) -> None:
    pytest.importorskip("onnx")
    from acnn_fusion.core.onnx_runtime import export_onnx
    from acnn_fusion.core.weights import load_model

    shipped = read_metadata()["onnx"]
    copy = _copy_shipped(tmp_path)
    copy.with_suffix(".onnx").unlink()
    written = export_onnx(copy)
    # the shipped file is exactly what the export writes from the shipped weights
    assert hashlib.sha256(written.read_bytes()).hexdigest() == shipped["sha256"]
    assert read_metadata(copy)["onnx"]["sha256"] == shipped["sha256"]
    custom = save_weights(load_model(), tmp_path / "custom.pt")
    export_onnx(custom)
    assert resolve_runtime(FusionOptions(weights=str(custom))) == "onnx"
    a, b = ambiguous_pair.image_a, ambiguous_pair.image_b
    assert np.array_equal(
        fuse_pair(a, b, weights=str(custom), runtime="onnx").decision_map,
        fuse_pair(a, b, runtime="torch", precision="fp32").decision_map,
    )


# -- verified on load --------------------------------------------------------------------------


def test_shipped_export_is_recorded_and_verified() -> None:
    found = onnx_export()
    assert found is not None
    path, digest = found
    assert path == default_weights_path().with_suffix(".onnx")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert read_metadata()["onnx"]["weights_sha256"] == read_metadata()["sha256"]


def test_altered_export_is_refused(tmp_path, ambiguous_pair) -> None:
    copy = _copy_shipped(tmp_path)
    data = bytearray(copy.with_suffix(".onnx").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    copy.with_suffix(".onnx").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        fuse_pair(ambiguous_pair.image_a, ambiguous_pair.image_b, weights=str(copy), runtime="onnx")


def test_loaded_export_is_cached_and_verified_again_when_the_file_changes(tmp_path, monkeypatch) -> None:
    from acnn_fusion.core import onnx_runtime

    copy = _copy_shipped(tmp_path)
    reads = []
    verify = onnx_runtime.read_onnx_export
    monkeypatch.setattr(onnx_runtime, "read_onnx_export", lambda w=None: reads.append(w) or verify(w))
    first = onnx_runtime.load_onnx_network(copy)
    assert onnx_runtime.load_onnx_network(copy) is first and len(reads) == 1  # not read or hashed again
    target = copy.with_suffix(".onnx")
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a new mtime however coarse
    with pytest.raises(WeightsError, match="sha256"):
        onnx_runtime.load_onnx_network(copy)


def test_export_of_other_weights_is_not_used(tmp_path, fp32_cpu) -> None:
    copy = _copy_shipped(tmp_path)
    meta = json.loads(copy.with_suffix(".json").read_text())
    meta["onnx"]["weights_sha256"] = "0" * 64  # exported from other weights than this .pt
    copy.with_suffix(".json").write_text(json.dumps(meta))
    assert onnx_export(copy) is None
    assert resolve_runtime(FusionOptions(weights=str(copy))) == "torch"


# -- threads -----------------------------------------------------------------------------------


def test_thread_settings_reach_the_session(monkeypatch) -> None:
    from acnn_fusion.core.onnx_runtime import load_onnx_network

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    network = load_onnx_network()
    assert network.threads == 1 and network.spinning is False
    session_options = network.session.get_session_options()
    assert session_options.intra_op_num_threads == 1
    assert session_options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    from acnn_fusion import core

    busy = load_onnx_network()
    assert busy.threads == core.usable_cpus() and busy.spinning is True
    busy_options = busy.session.get_session_options()
    assert busy_options.get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_batch_workers_limit_onnx_threads(monkeypatch) -> None:
    import torch

    from acnn_fusion import core
    from acnn_fusion.core.onnx_runtime import load_onnx_network

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    torch_threads = torch.get_num_threads()
    inference.set_cpu_threads(1)  # what a batch worker does (batch.engine.process_job)
    try:
        assert load_onnx_network().session.get_session_options().intra_op_num_threads == 1
        assert torch.get_num_threads() == 1  # torch was loaded here: limited at once
    finally:
        inference.set_cpu_threads(None)
        torch.set_num_threads(torch_threads)
    assert inference.cpu_threads() == core.usable_cpus()


# -- no torch ----------------------------------------------------------------------------------

_RUN_WITHOUT_TORCH = """
import sys
from acnn_fusion.cli import main
rc = main(sys.argv[1:])
assert rc == 0, rc
loaded = sorted(name for name in sys.modules if name == "torch" or name.startswith("torch."))
print("TORCH_LOADED" if loaded else "NO_TORCH", "onnxruntime" in sys.modules)
"""


@pytest.mark.slow
def test_cli_fuses_pair_and_stack_without_importing_torch(tmp_path, ambiguous_pair) -> None:
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", ambiguous_pair.image_a)
    tifffile.imwrite(tmp_path / "b.tif", ambiguous_pair.image_b)
    tifffile.imwrite(tmp_path / "stack.tif", sample_stack().stack[:, :96, :96])
    commands = [
        ["fuse", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "-o", str(tmp_path / "f.tif")],
        ["stack", str(tmp_path / "stack.tif"), "-o", str(tmp_path / "s.tif"), "--device", "cpu"],
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-c", _RUN_WITHOUT_TORCH, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "NO_TORCH True", done.stdout
    assert tifffile.imread(tmp_path / "f.tif").shape == ambiguous_pair.image_a.shape
    # the same process with runtime torch does load torch: the check above can fail
    done = subprocess.run(
        [sys.executable, "-c", _RUN_WITHOUT_TORCH, *commands[0], "--runtime", "torch"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "TORCH_LOADED False"


# -- on a GPU ----------------------------------------------------------------------------------


def test_auto_uses_torch_on_cuda_and_agrees_with_onnx() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    assert inference.accelerator_likely()
    assert resolve_runtime(FusionOptions()) == "torch"
    network = open_network(FusionOptions())
    assert network.runtime == "torch" and "cuda" in network.describe()
    synthetic = sample_stack()
    on_gpu = fuse_stack(synthetic.stack, device="cuda", precision="fp32", tile=1024)
    on_onnx = fuse_stack(synthetic.stack, runtime="onnx")
    assert np.mean(on_gpu.depth_map != on_onnx.depth_map) <= 1e-3
