"""Batch runs own only what they create: lock, manifest of temporaries, exit status, bounded dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tifffile

from acnn_fusion.batch import LOCK_NAME, MANIFEST_NAME, OutputFolderBusy, run_batch
from acnn_fusion.batch.records import claim_temporaries, output_folder_lock
from acnn_fusion.cli import main
from acnn_fusion.io import temporaries_tagged, write_image

from .conftest import deadline, digest, one_line_error

FP32 = {"precision": "fp32", "device": "cpu"}


@pytest.fixture
def stacks(tmp_path, stack8):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("one", "two"):
        tifffile.imwrite(folder / f"{name}.tif", stack8[:3], metadata={"axes": "ZYX"})
    return folder


# user files whose names look like temporaries of the old naming scheme, or of ours without a manifest
LOOKALIKES = [
    ".batch_report.json.bak",
    ".batch_report.csv.old",
    ".one_fused.tif.abc123.tif",
    ".one.done.json.x.tmp",
    ".acnn-tmp-deadbeef-0123456789ab-one_fused.tif",
    ".acnn-tmp-x-0123456789ab.tif",
    "one_fused.tif.bak",
]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_batch_never_deletes_user_files(name, stacks, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).write_bytes(b"mine")
    with deadline():
        report = run_batch(stacks, out, mode="stack", **FP32)
    assert report.failed == 0
    assert (out / name).read_bytes() == b"mine"
    assert not (out / LOCK_NAME).exists() and not (out / MANIFEST_NAME).exists()


def test_temporaries_of_a_recorded_killed_run_are_removed(stacks, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    with temporaries_tagged("cafe0001"):  # a run that was killed mid-write: its manifest entry stays
        claim_temporaries(out, "cafe0001")
        leftover = Path(str(write_image(out / "x.tif", tifffile.imread(stacks / "one.tif")[0])))
    stale = out / ".acnn-tmp-cafe0001-0123456789ab-one_fused.tif"
    stale.write_bytes(b"half written")
    unrecorded = out / ".acnn-tmp-beef0002-0123456789ab-one_fused.tif"
    unrecorded.write_bytes(b"not ours")
    with deadline():
        run_batch(stacks, out, mode="stack", **FP32)
    assert not stale.exists()
    assert unrecorded.exists() and leftover.exists()


def test_second_run_on_a_locked_folder_is_refused(stacks, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(
            json.dumps({"pid": holder.pid, "host": os.uname().nodename, "started": "now"})
        )
        with deadline():
            code = main(["batch", str(stacks), str(out), "--mode", "stack", "--device", "cpu"])
        err = capsys.readouterr().err
        assert code == 2 and "in use by another batch run" in err and str(holder.pid) in err
        one_line_error(err)
        assert not (out / "one_fused.tif").exists()
    finally:
        holder.kill()
        holder.wait()
    with deadline():  # the owner is gone: its lock is stale and taken over
        report = run_batch(stacks, out, mode="stack", **FP32)
    assert report.ok == 2 and not (out / LOCK_NAME).exists()


def test_lock_is_exclusive_in_process(tmp_path):
    with output_folder_lock(tmp_path):
        with pytest.raises(OutputFolderBusy, match="in use"):
            with output_folder_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_garbage_lock_file_of_a_dead_run_is_taken_over(stacks, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text("garbage")
    old = time.time() - 3600
    os.utime(out / LOCK_NAME, (old, old))
    with deadline():
        assert run_batch(stacks, out, mode="stack", **FP32).ok == 2


def test_batch_exit_status_is_1_when_a_file_failed(stacks, tmp_path, capsys):
    (stacks / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    os.mkfifo(stacks / "pipe.tif")  # not a regular file: never listed, never opened
    with deadline():
        code = main(["batch", str(stacks), str(tmp_path / "out"), "--mode", "stack", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 1 and "2 fused" in out and "1 failed" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("length", [200, 230, 244])
def test_batch_with_long_names(length, tmp_path, stack8):
    folder = tmp_path / "in"
    folder.mkdir()
    name = "n" * (length - len("_fused.tif") + len(".tif") - 4)
    tifffile.imwrite(folder / f"{name}.tif", stack8[:3], metadata={"axes": "ZYX"})
    with deadline():
        report = run_batch(folder, tmp_path / "out", mode="stack", **FP32)
    assert report.ok == 1, report.entries


@pytest.mark.parametrize("alias", ["same", "symlink", "dotdot", "hardlinked_output"])
def test_batch_output_folder_aliasing_input(alias, stacks, tmp_path, capsys):
    before = {p.name: digest(p) for p in stacks.iterdir()}
    if alias == "same":
        out = stacks
    elif alias == "symlink":
        (tmp_path / "alias").symlink_to(stacks)
        out = tmp_path / "alias"
    elif alias == "dotdot":
        out = stacks / ".." / "in"
    else:
        out = tmp_path / "out"
        out.mkdir()
        os.link(stacks / "two.tif", out / "one_fused.tif")  # an output name hard-linked to an input
    with deadline():
        code = main(["batch", str(stacks), str(out), "--mode", "stack", "--device", "cpu"])
    assert code == 2
    one_line_error(capsys.readouterr().err)
    assert {p.name: digest(p) for p in stacks.iterdir()} == before


@pytest.mark.parametrize(
    ("flags", "pattern"),
    [
        (["--scheduler", ""], "scheduler must be"),
        (["--scheduler", "  "], "scheduler must be"),
        (["--workers", "0"], "at least 1"),
        (["--workers", "-3"], "at least 1"),
    ],
)
def test_batch_scheduler_arguments(flags, pattern, stacks, tmp_path, capsys):
    with deadline():
        code = main(["batch", str(stacks), str(tmp_path / "out"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and pattern in err
    one_line_error(err)


def test_pairs_names_are_never_globbed(tmp_path, stack8):
    folder = tmp_path / "pairs"
    folder.mkdir()
    for name in ("img[1]-A", "img1-B", "img*-A", "imgX-B", "img?-A", "img2-B"):
        tifffile.imwrite(folder / f"{name}.tif", stack8[0])
    with deadline():
        report = run_batch(folder, tmp_path / "out", mode="pair", **FP32)
    by_file = {e.file: e for e in report.entries}
    assert report.ok == 0  # no A has a B of exactly its stem
    assert all(e.status == "failed" and "no matching" in e.error for e in by_file.values())


def _big_stacks(folder: Path, count: int) -> None:
    """Stacks large enough (8 × 128 × 128) that a run lasts while the test interferes."""
    import numpy as np

    from acnn_fusion.synthetic import sample_stack

    data = np.ascontiguousarray(sample_stack().stack[:, :128, :128])
    for path in folder.iterdir():
        path.unlink()
    for i in range(count):
        tifffile.imwrite(folder / f"s{i}.tif", data, metadata={"axes": "ZYX"})


@pytest.mark.slow
def test_concurrent_batches_kill_test(stacks, tmp_path):
    """Two real processes on one output folder: the second is refused, the first finishes complete."""
    _big_stacks(stacks, 16)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "acnn_fusion.cli",
        "batch",
        str(stacks),
        str(out),
        "--mode",
        "stack",
        "--device",
        "cpu",
    ]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(1200):
        if (out / LOCK_NAME).exists():
            break
        time.sleep(0.05)
    first.send_signal(signal.SIGSTOP)  # holds its lock, alive, while the second run tries
    try:
        second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    stdout, _ = first.communicate(timeout=300)
    assert second.returncode == 2 and "in use by another batch run" in second.stderr, second
    assert first.returncode == 0 and "16 fused, 0 skipped, 0 failed" in stdout, stdout
    assert json.loads((out / "batch_report.json").read_text())["counts"]["failed"] == 0
    # a run killed mid-way leaves a stale lock and temporaries: the next run takes over and resumes
    (out / "s3.done.json").unlink()
    killed = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(1200):
        if (out / LOCK_NAME).exists():
            break
        time.sleep(0.05)
    killed.kill()
    killed.wait()
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "0 failed" in again.stdout, again.stderr
    assert not [p for p in out.iterdir() if p.name.startswith(".acnn-")]


@pytest.mark.slow
@pytest.mark.parametrize("when", ["while_starting", "while_running"])
def test_dask_driver_losing_all_workers_finishes(when, stacks, tmp_path):
    """Kill every worker process of a local cluster, again and again: the run must end with a report."""
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("dask.distributed")
    _big_stacks(stacks, 12)
    out = tmp_path / "out"
    env = {**os.environ, "ACNN_FUSION_WORKER_GRACE_S": "3", "ACNN_FUSION_WORKER_RESTARTS": "1"}
    command = [
        sys.executable,
        "-m",
        "acnn_fusion.cli",
        "batch",
        str(stacks),
        str(out),
        "--mode",
        "stack",
        "--workers",
        "2",
        "--device",
        "cpu",
    ]
    # output to files, not pipes: dask logs every lost worker, and a full pipe would block the driver
    log = (tmp_path / "driver.log").open("w+")
    driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    parent = psutil.Process(driver.pid)
    started = time.monotonic()
    try:
        while time.monotonic() - started < 60 and not (out / LOCK_NAME).exists():
            time.sleep(0.1)
        if when == "while_running":  # the workers are fusing: the first input is done
            while time.monotonic() - started < 120 and driver.poll() is None:
                if any(out.glob("*.done.json")):
                    break
                time.sleep(0.05)
        while driver.poll() is None and time.monotonic() - started < 200:
            for child in parent.children(recursive=True):  # the workers; the nannies live in the driver
                try:
                    child.kill()
                except psutil.Error:
                    pass
            time.sleep(0.2)
        driver.wait(timeout=60)
        log.seek(0)
        stderr = log.read()
    finally:
        if driver.poll() is None:
            driver.kill()
        log.close()
    assert driver.returncode == 1, stderr[-2000:]
    report = json.loads((out / "batch_report.json").read_text())
    failed = [e for e in report["entries"] if e["status"] == "failed"]
    assert failed and all("dask cluster" in e["error"] or "worker" in e["error"].lower() for e in failed)
    assert report["counts"]["ok"] + report["counts"]["failed"] == 12
    assert not (out / LOCK_NAME).exists()
