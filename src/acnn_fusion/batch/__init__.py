"""Batch fusion of a folder: every focal stack, or every A/B pair, into an output folder.

:mod:`.discovery` finds the jobs, :mod:`.records` keeps sidecars (resume) and reports,
:mod:`.engine` runs them in one loop over an executor (in-process or a dask cluster).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from acnn_fusion.batch.discovery import MODES, Job, find_jobs
from acnn_fusion.batch.engine import BatchStopped, ClusterLost, process_job, run_batch
from acnn_fusion.batch.records import (
    LOCK_NAME,
    MANIFEST_NAME,
    REPORT_CSV,
    REPORT_JSON,
    SIDECAR_SUFFIX,
    BatchEntry,
    BatchReport,
    OutputFolderBusy,
)

__all__ = [
    "LOCK_NAME",
    "MANIFEST_NAME",
    "MODES",
    "REPORT_CSV",
    "REPORT_JSON",
    "SIDECAR_SUFFIX",
    "BatchEntry",
    "BatchReport",
    "BatchStopped",
    "ClusterLost",
    "Job",
    "OutputFolderBusy",
    "batch_fuse_command",
    "find_jobs",
    "process_job",
    "run_batch",
]


def batch_fuse_command(input_dir: str, output_dir: str, **options: Any) -> dict[str, Any]:
    """npe2 command ``napari-acnn-fusion.batch_fuse``: :func:`run_batch`, report as a dict.

    Callable without a viewer, e.g.
    ``npe2.PluginManager.instance().get_command("napari-acnn-fusion.batch_fuse").exec(kwargs=...)``.
    """
    report = run_batch(input_dir, output_dir, **options)
    return {
        "summary": report.summary(),
        "failed": report.failed,
        "entries": [asdict(entry) for entry in report.entries],
    }
