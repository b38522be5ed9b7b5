"""The batch engine: one scheduling loop over an executor, in-process or a dask cluster.

:func:`run_batch` finds the jobs, settles those that need no fusion (a lone A, a duplicate
output name, already done), submits the rest to an executor and settles each result as it
arrives; ``should_stop()`` is checked before the first job and after each one, and, in
process, between tiles (the file being fused is then ``cancelled``). One bad input is
recorded as ``failed`` and the others go on. No GUI imports here.
"""

from __future__ import annotations

import errno
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from acnn_fusion._version import __version__
from acnn_fusion.batch.discovery import Job, find_jobs
from acnn_fusion.batch.records import (
    SIDECAR_SUFFIX,
    BatchEntry,
    BatchReport,
    claim_temporaries,
    is_done,
    model_sha256,
    output_folder_lock,
    release_temporaries,
    sidecar_path,
    write_report,
    write_sidecar,
)
from acnn_fusion.io import temporaries_tagged
from acnn_fusion.options import FusionOptions
from acnn_fusion.tasks import (
    PairOutputs,
    StackOutputs,
    fuse_pair_files,
    fuse_stack_file,
    refuse_input_overwrite,
    same_file,
)

ProgressCallback = Callable[[int, int], None]


class BatchStopped(Exception):
    """Raised inside a fusion's progress callback once ``should_stop()`` turns true."""


class ClusterLost(RuntimeError):
    """The dask cluster has had no worker for too long, restarts included."""


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, FileNotFoundError, ClusterLost)):
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
    temp_tag: str | None = None,
) -> BatchEntry:
    """Fuse one input, write its outputs and its sidecar; return its :class:`BatchEntry`.

    A top-level (picklable) function so that it can run as a dask task. Errors of the input
    become a ``failed`` entry; :class:`BatchStopped` from ``tile_progress`` propagates.
    ``torch_threads`` limits torch's intra-op threads in this process (workers of a cluster);
    ``temp_tag`` (the run's id) goes into the names of the temporary files it writes.
    """
    if temp_tag is not None:
        with temporaries_tagged(temp_tag):
            return process_job(
                job, output_dir, parameters, options, sha, version, torch_threads, tile_progress
            )
    if torch_threads is not None:  # torch's and onnxruntime's, without importing torch
        from acnn_fusion.core.inference import set_cpu_threads

        set_cpu_threads(torch_threads)
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


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class DaskExecutor:
    """One task per job on a dask cluster: an existing one (``scheduler``) or a local one.

    Waiting is bounded: when the cluster has had no lasting worker (one still there a poll
    later) for ``grace_s`` seconds
    (``ACNN_FUSION_WORKER_GRACE_S``, default 60), a local cluster is restarted, at most
    ``restarts`` times (``ACNN_FUSION_WORKER_RESTARTS``, default 2); then every job still
    outstanding fails with :class:`ClusterLost` and the run finishes its report. A job whose
    worker keeps dying fails on its own (dask's allowed failures).
    """

    poll_s = 1.0

    def __init__(self, scheduler: str | None, workers: int | None) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError as exc:
            raise ImportError(
                "workers/scheduler need dask.distributed: pip install 'napari-acnn-fusion[distributed]'"
            ) from exc
        self.grace_s = _env_number("ACNN_FUSION_WORKER_GRACE_S", 60.0)
        self.restarts = int(_env_number("ACNN_FUSION_WORKER_RESTARTS", 2))
        self.n_workers = int(workers or 1)
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=_env_number("ACNN_FUSION_CONNECT_TIMEOUT_S", 30.0))
            except (OSError, TimeoutError, ValueError, TypeError) as exc:
                raise ValueError(f"cannot reach the dask scheduler {scheduler!r} ({exc})") from None
        else:
            try:
                self.cluster = LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                )
                self.client = Client(self.cluster)
            except Exception as exc:  # workers died while starting, no ports, …
                first = (str(exc).strip().splitlines() or [""])[0]
                raise ClusterLost(
                    f"not run: could not start a local dask cluster of {self.n_workers} worker(s) "
                    f"({type(exc).__name__}: {first})"
                ) from None
        self._futures: dict[Any, int] = {}

    def _workers(self) -> set[str]:
        try:
            return set(self.client.nthreads())
        except Exception:  # the scheduler itself is gone or not answering
            return set()

    def _restart(self) -> None:
        if self.cluster is None:
            return
        try:
            self.cluster.scale(0)
            self.cluster.scale(self.n_workers)
        except Exception:
            pass  # the next grace period tells whether it worked

    def results(
        self, work: list[tuple[int, Job]], task: Task
    ) -> Iterator[tuple[int, BatchEntry | BaseException]]:
        from dask.distributed import wait

        # one torch thread per task: worker processes must not oversubscribe the cores
        self._futures = {self.client.submit(task, job, None, pure=False): index for index, job in work}
        restarts, empty_since, previous = 0, None, self._workers()
        while self._futures:
            try:
                done, _ = wait(list(self._futures), timeout=self.poll_s, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            for future in done:
                # a result held by a worker that then died is lost, and dask runs the task
                # again: the future is pending once more, and result() would wait for it
                if future.status not in ("finished", "error", "cancelled"):
                    continue
                try:
                    value: BatchEntry | BaseException = future.result(timeout=max(self.grace_s, 10.0))
                except TimeoutError:
                    continue  # lost between the two looks; it stays outstanding
                except Exception as exc:  # a worker died, or the task could not run
                    value = exc
                yield self._futures.pop(future), value
            # a worker counts once it is still there at the next poll: workers that die as
            # they start (killed, out of memory) and are restarted again and again by their
            # nannies never leave the list empty, but they never do any work either
            workers = self._workers()
            lasting, previous = workers & previous, workers
            if done or lasting:
                empty_since = None
                continue
            now = time.monotonic()
            empty_since = empty_since if empty_since is not None else now
            if now - empty_since < self.grace_s:
                continue
            if restarts < self.restarts and self.cluster is not None:
                restarts += 1
                self._restart()
                empty_since = time.monotonic()
                continue
            lost = ClusterLost(
                f"not run: the dask cluster has had no workers for {self.grace_s:.0f} s"
                + (f" after {restarts} restart(s)" if self.cluster is not None else "")
                + "; check the workers' memory and logs, then re-run to resume"
            )
            for future, index in list(self._futures.items()):
                self._futures.pop(future)
                yield index, lost
            self.cancel_all(list(self._futures))

    def cancel_all(self, futures: list[Any]) -> None:
        if futures:
            try:
                self.client.cancel(futures)
            except Exception:
                pass

    def cancel(self) -> None:
        self.cancel_all(list(self._futures))

    def close(self) -> None:
        for close in (lambda: self.client.close(timeout=10), lambda: self.cluster and self.cluster.close(10)):
            try:
                close()
            except Exception:
                pass  # a cluster that lost its workers may not close cleanly; never hang here


class _JobTask:
    """:func:`process_job` with the run's fixed arguments; picklable for dask."""

    def __init__(
        self,
        output_dir: Path,
        parameters: dict,
        options: FusionOptions,
        sha: str,
        threads: int | None,
        temp_tag: str | None = None,
    ):
        self.args = (output_dir, parameters, options, sha, __version__, threads)
        self.temp_tag = temp_tag

    def __call__(self, job: Job, tile_progress: ProgressCallback | None) -> BatchEntry:
        return process_job(job, *self.args, tile_progress=tile_progress, temp_tag=self.temp_tag)


# -- the run --------------------------------------------------------------------------------
def _check_folders(input_dir: Path, output_dir: Path, jobs: list[Job], save_maps: bool) -> None:
    if not input_dir.exists():
        raise FileNotFoundError(f"no such folder: {input_dir}")
    if not input_dir.is_dir():
        raise ValueError(f"{input_dir}: batch input must be a folder")
    if same_file(output_dir, input_dir):
        raise ValueError(
            f"output folder {output_dir} is the input folder; choose another folder for the results"
        )
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"output folder {output_dir} is a file; give a folder for the results")
    outputs = [
        output_dir / name
        for job in jobs
        for name in [*job.output_names(save_maps), job.name + SIDECAR_SUFFIX]
    ]
    refuse_input_overwrite(outputs, [p for job in jobs for p in job.inputs])


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
    tag = secrets.token_hex(4)
    with output_folder_lock(output_dir), temporaries_tagged(tag):
        claim_temporaries(output_dir, tag)  # only temporaries of runs recorded in the manifest
        try:
            _run_jobs(
                jobs,
                report,
                options,
                parameters,
                sha,
                tag,
                progress=progress,
                should_stop=should_stop,
                on_entry=on_entry,
                scheduler=scheduler,
                workers=workers,
            )
        finally:
            release_temporaries(output_dir, tag)
    return report


def _run_jobs(
    jobs: list[Job],
    report: BatchReport,
    options: FusionOptions,
    parameters: dict,
    sha: str,
    tag: str,
    *,
    progress: ProgressCallback | None,
    should_stop: Callable[[], bool] | None,
    on_entry: Callable[[BatchEntry], None] | None,
    scheduler: str | None,
    workers: int | None,
) -> None:
    """Settle every job into ``report`` (the output folder is locked) and write the report."""
    output_dir = report.output_dir
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
        try:
            executor: Executor = (
                DaskExecutor(scheduler, workers) if distributed else InProcessExecutor(tile_progress)
            )
        except ClusterLost as lost:
            for index, job in pending:
                settle(index, BatchEntry(job.label, "failed", str(lost)))
            pending = []
            executor = InProcessExecutor(tile_progress)
        task = _JobTask(output_dir, parameters, options, sha, 1 if distributed else None, tag)
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
        elif job.skip:
            settle(index, BatchEntry(job.label, "skipped", job.skip))
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
