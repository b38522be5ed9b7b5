"""What a batch leaves on disk besides the images: per-input sidecars (resume) and the run report.

A sidecar ``<stem>.done.json`` records the input files (size, modification time), the outputs,
the options, the package version and the model's sha256; a re-run skips an input whose
sidecar still matches and whose outputs exist. ``batch_report.json`` / ``.csv`` end every run.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from acnn_fusion._version import __version__
from acnn_fusion.batch.discovery import Job
from acnn_fusion.io import TEMP_PREFIX, temporaries_of, temporary_path
from acnn_fusion.options import outputs_differ

REPORT_JSON = "batch_report.json"
REPORT_CSV = "batch_report.csv"
SIDECAR_SUFFIX = ".done.json"
#: the output folder's lock (owner PID) and the record of runs whose temporaries may be removed
LOCK_NAME = ".acnn-batch.lock"
MANIFEST_NAME = ".acnn-batch-manifest.json"


@dataclass
class BatchEntry:
    """One input (a stack file or an A/B pair) and what became of it."""

    file: str  # the input's file name (pairs: "A + B")
    status: str  # ok, failed, skipped or cancelled
    error: str = ""  # failed: why; skipped: why, unless done by an earlier run (then outputs are set)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)


@dataclass
class BatchReport:
    """What :func:`~acnn_fusion.batch.run_batch` did; also written as ``batch_report.json``/``.csv``."""

    input_dir: Path
    output_dir: Path
    mode: str  # the mode actually used: stack or pair
    parameters: dict[str, Any]
    model_sha256: str
    version: str
    entries: list[BatchEntry] = field(default_factory=list)
    cancelled: bool = False

    def count(self, status: str) -> int:
        return sum(entry.status == status for entry in self.entries)

    @property
    def failed(self) -> int:
        return self.count("failed")

    @property
    def ok(self) -> int:
        return self.count("ok")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    def summary(self) -> str:
        text = f"{self.ok} fused, {self.skipped} skipped, {self.failed} failed"
        if self.cancelled:
            text += f", {self.count('cancelled')} not run (cancelled)"
        return text


def model_sha256(weights: str | Path | None = None) -> str:
    """The sha256 of the model in use, from its metadata (else hashed from the file)."""
    from acnn_fusion.core.weights import default_weights_path, read_metadata

    try:
        return str(read_metadata(weights)["sha256"])
    except Exception:
        path = Path(weights) if weights is not None else default_weights_path()
        if not path.is_file():
            return "unknown"
        return hashlib.sha256(path.read_bytes()).hexdigest()


def signature(paths: tuple[Path, ...]) -> list[dict[str, Any]]:
    """Name, size and modification time of each input: what a sidecar compares."""
    out = []
    for p in paths:
        st = p.stat()
        out.append({"name": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``path`` through a short, recognisable temporary (:func:`~acnn_fusion.io.temporary_path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)  # the umask applies
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sidecar_path(output_dir: Path, job: Job) -> Path:
    return output_dir / (job.name + SIDECAR_SUFFIX)


def write_sidecar(
    output_dir: Path, job: Job, written: list[str], parameters: dict, sha: str, version: str
) -> None:
    record = {
        "inputs": signature(job.inputs),
        "outputs": written,
        "parameters": parameters,
        "model_sha256": sha,
        "version": version,
    }
    write_text_atomic(sidecar_path(output_dir, job), json.dumps(record, indent=2) + "\n")


def is_done(output_dir: Path, job: Job, parameters: dict, sha: str) -> bool:
    """Whether the job's sidecar matches these inputs, options and model, with its outputs present."""
    try:
        record = json.loads(sidecar_path(output_dir, job).read_text(encoding="utf-8"))
        return (
            not outputs_differ(record.get("parameters", {}), parameters)
            and record.get("model_sha256") == sha
            and record.get("inputs") == signature(job.inputs)
            and all((output_dir / name).is_file() for name in record.get("outputs", []))
            and set(record.get("outputs", [])) >= set(job.output_names(parameters["save_maps"]))
        )
    except (OSError, ValueError, AttributeError, KeyError):
        return False


class OutputFolderBusy(ValueError):
    """Another batch run holds the output folder's lock."""


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


def _lock_owner(lock: Path) -> dict[str, Any] | None:
    """The lock's owner record, or None when it is unreadable (being written, or garbage)."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _owner_alive(lock: Path) -> dict[str, Any] | None:
    """The owner record if the lock's owner may still run, None if the lock is stale."""
    owner = _lock_owner(lock)
    if owner is None:
        try:  # a lock being written right now is younger than a few seconds
            young = time.time() - lock.stat().st_mtime < 5.0
        except OSError:
            return None
        return {"pid": "?", "host": "?", "started": "just now"} if young else None
    if owner.get("host") != socket.gethostname():
        return owner  # another machine: cannot tell, so it may well run
    return owner if _process_alive(owner["pid"]) else None


@contextlib.contextmanager
def output_folder_lock(folder: Path) -> Iterator[None]:
    """Hold ``<folder>/.acnn-batch.lock`` (owner PID, host, start) for the block.

    A second run on the same folder raises :class:`OutputFolderBusy` naming the owner while the
    owner lives; a lock left by a killed run (its PID gone) is taken over.
    """
    lock = folder / LOCK_NAME
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "version": __version__,
    }
    for _attempt in range(5):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _owner_alive(lock)
            if owner is not None:
                raise OutputFolderBusy(
                    f"output folder {folder} is in use by another batch run (PID {owner.get('pid')} on "
                    f"{owner.get('host')}, since {owner.get('started')}); wait for it to finish or choose "
                    f"another folder (delete {LOCK_NAME} there if no run is active)"
                ) from None
            stale = folder / f"{TEMP_PREFIX}stale-{secrets.token_hex(6)}.lock"
            with contextlib.suppress(OSError):  # whoever renames it first takes it over
                os.rename(lock, stale)
                stale.unlink()
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        break
    else:
        raise OutputFolderBusy(f"output folder {folder}: cannot take the lock {LOCK_NAME}")
    try:
        yield
    finally:
        owner = _lock_owner(lock)
        if owner is not None and owner.get("pid") == os.getpid() and owner.get("host") == record["host"]:
            lock.unlink(missing_ok=True)


def _read_manifest(folder: Path) -> list[str]:
    try:
        runs = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8")).get("runs", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [r for r in runs if isinstance(r, str) and r.isalnum()]


def claim_temporaries(folder: Path, tag: str) -> list[Path]:
    """Record run ``tag`` in the folder's manifest; delete temporaries of earlier recorded runs.

    Only files named ``.acnn-tmp-<tag>-<hex>…`` whose tag a run wrote into the manifest are
    ever deleted (call this while holding :func:`output_folder_lock`): a user's file, whatever
    its name, is never one of them. Returns the files removed.
    """
    removed: list[Path] = []
    remaining = []
    for old in _read_manifest(folder):
        for path in temporaries_of(folder, old):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                remaining.append(old)
    runs = [*sorted(set(remaining)), tag]
    write_text_atomic(folder / MANIFEST_NAME, json.dumps({"runs": runs}, indent=2) + "\n")
    return removed


def release_temporaries(folder: Path, tag: str) -> None:
    """At the end of run ``tag``: remove its leftovers and its manifest entry."""
    for path in temporaries_of(folder, tag):
        path.unlink(missing_ok=True)
    runs = [r for r in _read_manifest(folder) if r != tag]
    if runs:
        write_text_atomic(folder / MANIFEST_NAME, json.dumps({"runs": runs}, indent=2) + "\n")
    else:
        (folder / MANIFEST_NAME).unlink(missing_ok=True)


def write_report(report: BatchReport) -> tuple[Path, Path]:
    """Write ``batch_report.json`` and ``batch_report.csv`` into the report's output folder."""
    params_text = json.dumps(report.parameters, sort_keys=True)
    document = {
        "input_dir": str(report.input_dir),
        "output_dir": str(report.output_dir),
        "mode": report.mode,
        "version": report.version,
        "model_sha256": report.model_sha256,
        "parameters": report.parameters,
        "cancelled": report.cancelled,
        "counts": {s: report.count(s) for s in ("ok", "skipped", "failed", "cancelled")},
        "entries": [asdict(e) for e in report.entries],
    }
    json_path = report.output_dir / REPORT_JSON
    csv_path = report.output_dir / REPORT_CSV
    write_text_atomic(json_path, json.dumps(document, indent=2) + "\n")
    buffer = io.StringIO()
    columns = ["file", "status", "error", "seconds", "outputs", "parameters", "model_sha256", "version"]
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for e in report.entries:
        writer.writerow(
            {
                "file": e.file,
                "status": e.status,
                "error": e.error,
                "seconds": f"{e.seconds:.3f}",
                "outputs": ";".join(e.outputs),
                "parameters": params_text,
                "model_sha256": report.model_sha256,
                "version": report.version,
            }
        )
    write_text_atomic(csv_path, buffer.getvalue())
    return json_path, csv_path
