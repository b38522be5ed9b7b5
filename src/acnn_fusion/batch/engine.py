"""The batch engine: one scheduling loop over an executor, in-process or a dask cluster.

:func:`run_batch` finds the jobs, settles those that need no fusion (a lone A, a duplicate
output name, already done), submits the rest to an executor and settles each result as it
arrives; ``should_stop()`` is checked before the first job and after each one, and, in
process, between tiles (the file being fused is then ``cancelled``). One bad input is
recorded as ``failed`` and the others go on. No GUI imports here.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from acnn_fusion._version import __version__
from acnn_fusion.batch.discovery import Job, find_jobs
from acnn_fusion.batch.records import (
    REPORT_CSV,
    REPORT_JSON,
    SIDECAR_SUFFIX,
    BatchEntry,
    BatchReport,
    is_done,
    model_sha256,
    remove_stale_temporaries,
    sidecar_path,
    write_report,
    write_sidecar,
)
from acnn_fusion.options import FusionOptions
from acnn_fusion.tasks import PairOutputs, StackOutputs, fuse_pair_files, fuse_stack_file

ProgressCallback = Callable[[int, int], None]


class BatchStopped(Exception):
    """Raised inside a fusion's progress callback once ``should_stop()`` turns true."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, FileNotFoundError)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while writing outputs ({exc}); free space and re-run to resume"
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc}); check the output folder's permissions"
    return f"{type(exc).__name__}: {exc}"


def fuse_job(
    job: Job,
    output_dir: Path,
    parameters: dict[str, Any],
    options: FusionOptions,
    tile_progress: ProgressCallback | None = None,
) -> list[str]:
    """Fuse one job and write its images (:mod:`acnn_fusion.tasks`); returns the output names."""
    names = job.output_names(parameters["save_maps"])
    paths = [output_dir / name for name in names]
    if job.kind == "stack":
        fuse_stack_file(job.inputs[0], StackOutputs(*paths), options, progress=tile_progress)
    else:
        path_a, path_b = job.inputs
        fuse_pair_files(path_a, path_b, PairOutputs(*paths), options, progress=tile_progress)
    return names


def process_job(
    job: Job,
    output_dir: Path,
    parameters: dict[str, Any],
    options: FusionOptions,
    sha: str,
    version: str,
    torch_threads: int | None = None,
    tile_progress: ProgressCallback | None = None,
) -> BatchEntry:
    """Fuse one input, write its outputs and its sidecar; return its :class:`BatchEntry`.

    A top-level (picklable) function so that it can run as a dask task. Errors of the input
    become a ``failed`` entry; :class:`BatchStopped` from ``tile_progress`` propagates.
    ``torch_threads`` limits torch's intra-op threads in this process (workers of a cluster).
    """
    if torch_threads is not None:
        import torch

        if torch.get_num_threads() != torch_threads:
            torch.set_num_threads(torch_threads)
    start = time.perf_counter()
    try:
        written = fuse_job(job, output_dir, parameters, options, tile_progress)
        write_sidecar(output_dir, job, written, parameters, sha, version)
    except BatchStopped:
        raise
    except Exception as exc:  # one bad input (or a full disk) must not stop the others
        return BatchEntry(job.label, "failed", _error_text(exc), time.perf_counter() - start)
    return BatchEntry(job.label, "ok", seconds=time.perf_counter() - start, outputs=written)


# -- executors ----------------------------------------------------------------------------
Task = Callable[[Job, ProgressCallback | None], BatchEntry]


class Executor(Protocol):
    """Runs jobs and yields ``(job index, entry or exception)`` as each finishes."""

    def results(
        self, work: list[tuple[int, Job]], task: Task
    ) -> Iterator[tuple[int, BatchEntry | BaseException]]: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """One job at a time in this process, each started only when the loop asks for it."""

    def __init__(self, tile_progress: ProgressCallback) -> None:
        self.tile_progress = tile_progress

    def results(
        self, work: list[tuple[int, Job]], task: Task
    ) -> Iterator[tuple[int, BatchEntry | BaseException]]:
        for index, job in work:
            try:
                yield index, task(job, self.tile_progress)
            except BatchStopped as stopped:
                yield index, stopped

    def cancel(self) -> None:
        pass  # nothing runs between two requests of the loop

    def close(self) -> None:
        pass


class DaskExecutor:
    """One task per job on a dask cluster: an existing one (``scheduler``) or a local one."""

    def __init__(self, scheduler: str | None, workers: int | None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError(
                "workers/scheduler need dask.distributed: pip install 'napari-acnn-fusion[distributed]'"
            ) from exc
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler)
        else:
            self.cluster = LocalCluster(
                n_workers=int(workers or 1),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
            self.client = Client(self.cluster)
        self._futures: dict[Any, int] = {}

    def results(
        self, work: list[tuple[int, Job]], task: Task
    ) -> Iterator[tuple[int, BatchEntry | BaseException]]:
        from dask.distributed import as_completed

        # one torch thread per task: worker processes must not oversubscribe the cores
        self._futures = {self.client.submit(task, job, None, pure=False): index for index, job in work}
        for future in as_completed(list(self._futures)):
            index = self._futures.pop(future)
            try:
                yield index, future.result()
            except Exception as exc:  # a worker died, or the task could not run
                yield index, exc

    def cancel(self) -> None:
        if self._futures:
            self.client.cancel(list(self._futures))

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class _JobTask:
    """:func:`process_job` with the run's fixed arguments; picklable for dask."""

    def __init__(
        self, output_dir: Path, parameters: dict, options: FusionOptions, sha: str, threads: int | None
    ):
        self.args = (output_dir, parameters, options, sha, __version__, threads)

    def __call__(self, job: Job, tile_progress: ProgressCallback | None) -> BatchEntry:
        return process_job(job, *self.args, tile_progress=tile_progress)


# -- the run --------------------------------------------------------------------------------
def _check_folders(input_dir: Path, output_dir: Path, jobs: list[Job], save_maps: bool) -> None:
    if not input_dir.exists():
        raise FileNotFoundError(f"no such folder: {input_dir}")
    if not input_dir.is_dir():
        raise ValueError(f"{input_dir}: batch input must be a folder")
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(
            f"output folder {output_dir} is the input folder; choose another folder for the results"
        )
    inputs = {p.resolve() for job in jobs for p in job.inputs}
    for job in jobs:
        for name in [*job.output_names(save_maps), job.name + SIDECAR_SUFFIX]:
            out = (output_dir / name).resolve()
            if out in inputs:
                raise ValueError(f"output {out} would overwrite an input; refusing to overwrite an input")


def run_batch(
    inputs: str | Path,
    output_dir: str | Path,
    options: FusionOptions | None = None,
    *,
    mode: str = "auto",
    pair_suffixes: tuple[str, str] | None = None,
    save_maps: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_entry: Callable[[BatchEntry], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    **changes: Any,
) -> BatchReport:
    """Fuse every stack (``mode="stack"``) or A/B pair (``"pair"``) of the folder ``inputs``.

    ``auto`` uses pairs if any A/B pair is found, else stacks. ``options`` (with ``changes``
    applied, e.g. ``threshold=0.7``) as for :func:`~acnn_fusion.fuse_pair`. Writes
    ``<stem>_fused.tif`` and ``<stem>_depth.tif`` (stacks) or ``<stem>_fused.tif`` [+
    ``_focus.tif``, ``_decision.png`` with ``save_maps``] (pairs) into ``output_dir``, a
    sidecar per input and the run report. ``progress(done, total)`` counts inputs;
    ``on_entry(entry)`` is called as each input is settled. ``workers=N`` runs on a local dask
    cluster of N single-threaded worker processes, ``scheduler=ADDRESS`` on an existing one
    (the ``distributed`` extra). Raises ValueError for usage problems (output folder = input
    folder, an output that would overwrite an input, bad options, no inputs).
    """
    options = (options or FusionOptions()).replace(**changes)
    input_dir, output_dir = Path(inputs), Path(output_dir)
    if not input_dir.is_dir():
        _check_folders(input_dir, output_dir, [], save_maps)
    if scheduler is not None and workers is not None:
        raise ValueError("give either workers (a local cluster) or scheduler (an existing one), not both")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if scheduler is not None and not str(scheduler).strip():
        raise ValueError("scheduler must be a dask scheduler address such as tcp://host:8786")
    kind, jobs = find_jobs(input_dir, mode, pair_suffixes)
    _check_folders(input_dir, output_dir, jobs, save_maps)
    parameters = {
        "mode": kind,
        **options.to_record(kind),
        "pair_suffixes": list(pair_suffixes) if kind == "pair" and pair_suffixes else None,
        "save_maps": bool(save_maps),
    }
    sha = model_sha256(options.weights)
    report = BatchReport(input_dir, output_dir, kind, parameters, sha, __version__)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(
        output_dir,
        [REPORT_JSON, REPORT_CSV]
        + [n for job in jobs for n in [*job.output_names(save_maps), job.name + SIDECAR_SUFFIX]],
    )
    stop = should_stop or (lambda: False)
    entries: dict[int, BatchEntry] = {}

    def settle(index: int, entry: BatchEntry) -> None:
        entries[index] = entry
        if on_entry is not None:
            on_entry(entry)
        if progress is not None:
            progress(len(entries), len(jobs))

    def tile_progress(_done: int, _total: int) -> None:
        if progress is not None:
            progress(len(entries), len(jobs))  # lets a GUI runner notice a cancel mid-file
        if stop():
            raise BatchStopped

    pending = _settle_early(jobs, output_dir, parameters, sha, settle)
    if progress is not None:
        progress(len(entries), len(jobs))
    distributed = scheduler is not None or workers is not None
    if pending and stop():
        report.cancelled = True
    elif pending:
        executor: Executor = (
            DaskExecutor(scheduler, workers) if distributed else InProcessExecutor(tile_progress)
        )
        task = _JobTask(output_dir, parameters, options, sha, 1 if distributed else None)
        try:
            for index, outcome in executor.results(pending, task):
                if isinstance(outcome, BatchStopped):
                    report.cancelled = True
                    settle(
                        index,
                        BatchEntry(
                            jobs[index].label, "cancelled", "run cancelled before this input finished"
                        ),
                    )
                    break
                if isinstance(outcome, BaseException):
                    outcome = BatchEntry(jobs[index].label, "failed", _error_text(outcome))
                settle(index, outcome)
                if len(entries) < len(jobs) and stop():
                    report.cancelled = True
                    executor.cancel()
                    break
        finally:
            executor.close()
    for index, job in enumerate(jobs):  # whatever did not run
        if index not in entries:
            settle(index, BatchEntry(job.label, "cancelled", "run cancelled before this input"))
    report.entries = [entries[i] for i in sorted(entries)]
    write_report(report)
    return report


def _settle_early(
    jobs: list[Job],
    output_dir: Path,
    parameters: dict,
    sha: str,
    settle: Callable[[int, BatchEntry], None],
) -> list[tuple[int, Job]]:
    """Settle the jobs that need no fusion (a problem, a duplicate name, already done); return the rest.

    A stale sidecar of a job about to run is removed first (its outputs are about to change).
    """
    pending = []
    names_seen: set[str] = set()
    for index, job in enumerate(jobs):
        if job.problem:
            settle(index, BatchEntry(job.label, "failed", job.problem))
        elif job.name in names_seen:
            settle(
                index, BatchEntry(job.label, "failed", f"another input already writes {job.name}_fused.tif")
            )
        elif is_done(output_dir, job, parameters, sha):
            names_seen.add(job.name)
            settle(index, BatchEntry(job.label, "skipped", outputs=job.output_names(parameters["save_maps"])))
        else:
            names_seen.add(job.name)
            sidecar_path(output_dir, job).unlink(missing_ok=True)
            pending.append((index, job))
    return pending
