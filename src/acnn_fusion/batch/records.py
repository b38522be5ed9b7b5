"""What a batch leaves on disk besides the images: per-input sidecars (resume) and the run report.

A sidecar ``<stem>.done.json`` records the input files (size, modification time), the outputs,
the options, the package version and the model's sha256; a re-run skips an input whose
sidecar still matches and whose outputs exist. ``batch_report.json`` / ``.csv`` end every run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from acnn_fusion.batch.discovery import Job
from acnn_fusion.options import outputs_differ

REPORT_JSON = "batch_report.json"
REPORT_CSV = "batch_report.csv"
SIDECAR_SUFFIX = ".done.json"


@dataclass
class BatchEntry:
    """One input (a stack file or an A/B pair) and what became of it."""

    file: str  # the input's file name (pairs: "A + B")
    status: str  # ok, failed, skipped or cancelled
    error: str = ""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
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


def remove_stale_temporaries(output_dir: Path, names: list[str]) -> None:
    """Delete temporary files a killed run left behind (``.<output name>.<random>.<ext>``)."""
    if not output_dir.is_dir():
        return
    for path in output_dir.iterdir():
        if not path.name.startswith(".") or not path.is_file():
            continue
        for name in names:
            prefix = f".{name}."
            if path.name.startswith(prefix) and len(path.name) > len(prefix):
                path.unlink(missing_ok=True)
                break


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
