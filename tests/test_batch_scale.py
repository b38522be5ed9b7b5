"""Batch at scale: a run killed with SIGKILL resumes to the same result; dask workers agree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from acnn_fusion.batch import run_batch
from acnn_fusion.synthetic import sample_stack

N_STACKS = 6


@pytest.fixture(scope="module")
def stack_folder(tmp_path_factory) -> Path:
    """Six small, different focal stacks (4 slices of 48×48, uint16)."""
    folder = tmp_path_factory.mktemp("stacks")
    stack = sample_stack().stack[::2]
    for i in range(N_STACKS):
        y, x = 24 * (i % 3), 40 * (i // 3)
        crop = np.ascontiguousarray(stack[:, y : y + 48, x : x + 48])
        tifffile.imwrite(folder / f"stack_{i}.tif", crop, metadata={"axes": "ZYX"})
    return folder


@pytest.fixture(scope="module")
def clean_run(stack_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    report = run_batch(stack_folder, out, mode="stack")
    assert report.ok == N_STACKS, report.summary()
    return out


def _result_files(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: tifffile.imread(p) for p in sorted(folder.glob("*.tif"))}


def _assert_same_results(out: Path, reference: Path) -> None:
    got, want = _result_files(out), _result_files(reference)
    assert sorted(got) == sorted(want)
    assert len(want) == 2 * N_STACKS
    for name, image in want.items():
        assert got[name].dtype == image.dtype, name
        np.testing.assert_array_equal(got[name], image, err_msg=name)
    assert sorted(p.name for p in out.glob("*.done.json")) == sorted(
        p.name for p in reference.glob("*.done.json")
    )


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp")


def _finished_sidecars(folder: Path) -> list[Path]:
    """Sidecars that were renamed into place (a kill can leave a ``.acnn-tmp-…done.json``)."""
    return [p for p in folder.glob("*.done.json") if not p.name.startswith(".")]


def _batch_command(stack_folder: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "acnn_fusion.cli", "batch", str(stack_folder), str(out), "--mode", "stack"]


def test_sigkill_then_resume_equals_clean_run(stack_folder, clean_run, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _batch_command(stack_folder, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    try:
        while not (out.is_dir() and _finished_sidecars(out)):
            assert proc.poll() is None, f"batch ended before it could be killed: {proc.stderr.read()!r}"
            assert time.monotonic() < deadline, "no sidecar appeared within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done_at_kill = len(_finished_sidecars(out))
    assert 1 <= done_at_kill < N_STACKS, "the kill came too late to prove anything"
    assert not (out / "batch_report.json").exists()
    # what a kill in the middle of a write leaves behind: a temporary of the killed run (its
    # tag is in the folder's manifest) next to an output, and its lock
    killed_tag = json.loads((out / ".acnn-batch-manifest.json").read_text())["runs"][-1]
    (out / f".acnn-tmp-{killed_tag}-0123456789ab-stack_5_fused.tif").write_bytes(b"II*\x00partial")

    resumed = subprocess.run(
        _batch_command(stack_folder, out), env=env, capture_output=True, text=True, timeout=180
    )
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "batch_report.json").read_text())
    assert report["counts"]["skipped"] >= done_at_kill
    assert report["counts"]["ok"] + report["counts"]["skipped"] == N_STACKS
    _assert_same_results(out, clean_run)
    assert _temporaries(out) == []


try:
    import distributed  # noqa: F401

    HAVE_DISTRIBUTED = True
except ImportError:
    HAVE_DISTRIBUTED = False


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_DISTRIBUTED, reason="dask.distributed is not installed")
def test_local_cluster_two_workers_equals_serial(stack_folder, clean_run, tmp_path):
    out = tmp_path / "dask"
    seen = []
    report = run_batch(stack_folder, out, mode="stack", workers=2, on_entry=seen.append)
    assert report.ok == N_STACKS, report.summary()
    assert [e.file for e in report.entries] == [f"stack_{i}.tif" for i in range(N_STACKS)]
    assert len(seen) == N_STACKS
    _assert_same_results(out, clean_run)
    assert _temporaries(out) == []
    # the driver's resume check also holds for a cluster run
    again = run_batch(stack_folder, out, mode="stack", workers=1)
    assert again.skipped == N_STACKS


def test_workers_and_scheduler_are_exclusive(stack_folder, tmp_path):
    with pytest.raises(ValueError, match="not both"):
        run_batch(stack_folder, tmp_path / "x", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="at least 1"):
        run_batch(stack_folder, tmp_path / "x", workers=0)
