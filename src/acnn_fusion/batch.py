"""Batch fusion of a folder: every focal stack, or every A/B pair, into an output folder.

:func:`run_batch` is resumable: after an input's outputs are written it writes a JSON
sidecar ``<stem>.done.json`` (parameters, package version, model sha256, input sizes and
modification times); a re-run skips inputs whose sidecar still matches and whose outputs
exist. One bad input is recorded as ``failed`` and the others go on. Every run ends with
``batch_report.json`` and ``batch_report.csv`` in the output folder. No GUI imports here.

With ``workers=N`` (a local dask cluster) or ``scheduler=ADDRESS`` (an existing one) every
input becomes one task (:func:`process_job`); the driver keeps the resume checks and reports.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from acnn_fusion.core.stack import STRATEGIES
from acnn_fusion.io import IMAGE_SUFFIXES, TIFF_SUFFIXES, StackData

MODES = ("auto", "stack", "pair")
REPORT_JSON = "batch_report.json"
REPORT_CSV = "batch_report.csv"
SIDECAR_SUFFIX = ".done.json"
#: parameters that do not change the outputs and so do not force a redo when they change
_NOT_COMPARED = ("device",)

ProgressCallback = Callable[[int, int], None]


class BatchStopped(Exception):
    """Raised inside a fusion's progress callback once ``should_stop()`` turns true."""


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
    """What :func:`run_batch` did; also written as ``batch_report.json``/``.csv``."""

    input_dir: Path
    output_dir: Path
    mode: str  # the mode actually used: stack or pair
    parameters: dict
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


@dataclass
class _Job:
    name: str  # output stem
    kind: str  # stack or pair
    inputs: list[Path]
    problem: str = ""  # set: fails without being read (e.g. an A without its B)

    @property
    def label(self) -> str:
        return " + ".join(p.name for p in self.inputs)


def stack_axes(
    stack: StackData, axis: int | None = None, *, name: str | Path = "stack"
) -> tuple[np.ndarray, int, int | None, int | None]:
    """A read stack with singleton axes dropped: (data, focus axis, channel axis, time axis).

    The focus axis is ``axis`` if given, else the Z axis, else the first.
    """
    data, axes = stack.data, stack.axes
    for i in reversed(range(len(axes))):  # drop singleton axes other than Y and X
        if data.shape[i] == 1 and axes[i] not in "YX":
            # indexing keeps a view (take would copy a memory-mapped stack into memory)
            data, axes = data[(slice(None),) * i + (0,)], axes[:i] + axes[i + 1 :]
    z_axis = axis if axis is not None else (axes.index("Z") if "Z" in axes else 0)
    channel_axis = axes.index("C") if "C" in axes else None
    time_axis = axes.index("T") if "T" in axes else None
    if time_axis is not None and time_axis == z_axis:
        raise ValueError(f"{name}: the focus axis cannot be the time axis (axes {axes})")
    return data, z_axis, channel_axis, time_axis


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


def _visible_files(folder: Path, suffixes: set[str]) -> list[Path]:
    from acnn_fusion.io import natural_key

    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
        ),
        key=natural_key,
    )


def find_pairs(folder: Path, pair_pattern: tuple[str, str] = ("_A", "_B")) -> list[_Job]:
    """Pairs ``<stem><A>.<ext>``/``<stem><B>.<ext>``; a lone A or B is a job that fails."""
    suffix_a, suffix_b = pair_pattern
    if not suffix_a or not suffix_b or suffix_a == suffix_b:
        raise ValueError(f"pair suffixes must be two different non-empty strings, got {pair_pattern}")
    files = _visible_files(folder, IMAGE_SUFFIXES)
    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(path.stem, []).append(path)
    jobs: list[_Job] = []
    used_b: set[Path] = set()
    for path_a in files:
        if not path_a.stem.endswith(suffix_a):
            continue
        stem = path_a.stem[: -len(suffix_a)]
        candidates = by_stem.get(stem + suffix_b, [])
        same_ext = [p for p in candidates if p.suffix.lower() == path_a.suffix.lower()]
        path_b = (same_ext or candidates or [None])[0]
        if path_b is None:
            jobs.append(_Job(stem, "pair", [path_a], f"no matching {stem + suffix_b}.* for {path_a.name}"))
        else:
            used_b.add(path_b)
            jobs.append(_Job(stem, "pair", [path_a, path_b]))
    for path_b in files:
        if path_b.stem.endswith(suffix_b) and path_b not in used_b:
            stem = path_b.stem[: -len(suffix_b)]
            jobs.append(_Job(stem, "pair", [path_b], f"no matching {stem + suffix_a}.* for {path_b.name}"))
    return jobs


def find_stacks(folder: Path) -> list[_Job]:
    """Every ``*.tif``/``*.tiff`` file of ``folder`` as a focal stack."""
    return [_Job(p.stem, "stack", [p]) for p in _visible_files(folder, TIFF_SUFFIXES)]


def _output_names(job: _Job, save_maps: bool) -> list[str]:
    if job.kind == "stack":
        return [f"{job.name}_fused.tif", f"{job.name}_depth.tif"]
    names = [f"{job.name}_fused.tif"]
    if save_maps:
        names += [f"{job.name}_focus.tif", f"{job.name}_decision.png"]
    return names


def _signature(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        st = p.stat()
        out.append({"name": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return out


def _write_text_atomic(path: Path, text: str) -> None:
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


def _comparable(parameters: dict) -> dict:
    return {k: v for k, v in parameters.items() if k not in _NOT_COMPARED}


def _is_done(sidecar: Path, job: _Job, parameters: dict, sha: str, output_dir: Path) -> bool:
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
        return (
            _comparable(record.get("parameters", {})) == _comparable(parameters)
            and record.get("model_sha256") == sha
            and record.get("inputs") == _signature(job.inputs)
            and all((output_dir / name).is_file() for name in record.get("outputs", []))
            and set(record.get("outputs", [])) >= set(_output_names(job, parameters["save_maps"]))
        )
    except (OSError, ValueError, AttributeError, KeyError):
        return False


def _check_outputs(jobs: list[_Job], input_dir: Path, output_dir: Path, save_maps: bool) -> None:
    if output_dir.resolve() == input_dir.resolve():
        raise ValueError(
            f"output folder {output_dir} is the input folder; choose another folder for the results"
        )
    inputs = {p.resolve() for job in jobs for p in job.inputs}
    for job in jobs:
        for name in [*_output_names(job, save_maps), job.name + SIDECAR_SUFFIX]:
            out = (output_dir / name).resolve()
            if out in inputs:
                raise ValueError(f"output {out} would overwrite an input; refusing to overwrite an input")


def _fuse_job(
    job: _Job, output_dir: Path, parameters: dict, options: dict, tile_progress: ProgressCallback
) -> list[str]:
    from acnn_fusion.io import read_image, read_stack, write_image

    names = _output_names(job, parameters["save_maps"])
    if job.kind == "stack":
        from acnn_fusion.core.stack import fuse_stack

        stack = read_stack(job.inputs[0])
        data, z_axis, channel_axis, time_axis = stack_axes(stack, name=job.inputs[0])
        result = fuse_stack(
            data,
            axis=z_axis,
            channel_axis=channel_axis,
            time_axis=time_axis,
            strategy=parameters["strategy"],
            progress=tile_progress,
            **options,
        )
        meta = {"pixel_size": stack.pixel_size, "unit": stack.unit}
        write_image(output_dir / names[0], result.fused, **meta)
        write_image(output_dir / names[1], result.depth_map, **meta)
        return names

    from acnn_fusion.core.pipeline import fuse_pair

    image_a, image_b = (read_image(p) for p in job.inputs)
    result = fuse_pair(image_a, image_b, progress=tile_progress, **options)
    write_image(output_dir / names[0], result.fused)
    if parameters["save_maps"]:
        write_image(output_dir / names[1], result.focus_map)
        write_image(output_dir / names[2], result.decision_map.astype(np.uint8) * 255)
    return names


def _error_text(exc: BaseException) -> str:
    import errno

    if isinstance(exc, (ValueError, TypeError, FileNotFoundError)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"disk full while writing outputs ({exc}); free space and re-run to resume"
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc}); check the output folder's permissions"
    return f"{type(exc).__name__}: {exc}"


def _remove_stale_temporaries(output_dir: Path, names: list[str]) -> None:
    """Delete temporary files a killed run left behind (``.<output name>.<random>.<ext>``)."""
    if not output_dir.is_dir():
        return
    wanted = set(names)
    for path in output_dir.iterdir():
        if not path.name.startswith(".") or not path.is_file():
            continue
        for name in wanted:
            prefix = f".{name}."
            if path.name.startswith(prefix) and len(path.name) > len(prefix):
                path.unlink(missing_ok=True)
                break


def process_job(
    job: _Job,
    output_dir: Path,
    parameters: dict,
    options: dict,
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
        written = _fuse_job(job, output_dir, parameters, options, tile_progress or (lambda _d, _t: None))
        record = {
            "inputs": _signature(job.inputs),
            "outputs": written,
            "parameters": parameters,
            "model_sha256": sha,
            "version": version,
        }
        _write_text_atomic(output_dir / (job.name + SIDECAR_SUFFIX), json.dumps(record, indent=2) + "\n")
    except BatchStopped:
        raise
    except Exception as exc:  # one bad input (or a full disk) must not stop the others
        return BatchEntry(job.label, "failed", _error_text(exc), time.perf_counter() - start)
    return BatchEntry(job.label, "ok", seconds=time.perf_counter() - start, outputs=written)


def _open_client(scheduler: str | None, workers: int | None):
    """A dask Client on ``scheduler``, or on a new loopback LocalCluster of ``workers`` processes."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError(
            "workers/scheduler need dask.distributed: pip install 'napari-acnn-fusion[distributed]'"
        ) from exc
    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(
        n_workers=int(workers),
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    return Client(cluster), cluster


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
    _write_text_atomic(json_path, json.dumps(document, indent=2) + "\n")
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
    _write_text_atomic(csv_path, buffer.getvalue())
    return json_path, csv_path


def run_batch(
    inputs: str | Path,
    output_dir: str | Path,
    *,
    mode: str = "auto",
    pair_pattern: tuple[str, str] = ("_A", "_B"),
    threshold: float | None = None,
    min_region: float | None = None,
    preset: str = "default",
    device: str = "auto",
    tile: int | None = None,
    precision: str = "auto",
    strategy: str = "features",
    weights: str | Path | None = None,
    save_maps: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_entry: Callable[[BatchEntry], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> BatchReport:
    """Fuse every stack (``mode="stack"``) or A/B pair (``"pair"``) of the folder ``inputs``.

    ``auto`` uses pairs if any A/B pair is found, else stacks. Writes ``<stem>_fused.tif``
    and ``<stem>_depth.tif`` (stacks) or ``<stem>_fused.tif`` [+ ``_focus.tif``,
    ``_decision.png`` with ``save_maps``] (pairs) into ``output_dir``, a sidecar per input
    and the run report. ``progress(done, total)`` counts inputs; ``should_stop()`` is polled
    between inputs and tiles and ends the run early (the rest are ``cancelled``).
    ``on_entry(entry)`` is called as each input is settled. ``workers=N`` runs the inputs
    on a local dask cluster of N single-threaded worker processes; ``scheduler=ADDRESS``
    on an existing dask cluster (needs the ``distributed`` extra). Raises ValueError for usage
    problems (output folder = input folder, an output that would overwrite an input, bad
    options, no inputs).
    """
    from acnn_fusion import __version__
    from acnn_fusion.core.inference import DEFAULT_TILE, PRECISIONS
    from acnn_fusion.core.pipeline import resolve_settings

    input_dir, output_dir = Path(inputs), Path(output_dir)
    if not input_dir.exists():
        raise FileNotFoundError(f"no such folder: {input_dir}")
    if not input_dir.is_dir():
        raise ValueError(f"{input_dir}: batch input must be a folder")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {list(MODES)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {list(STRATEGIES)}")
    settings = resolve_settings(preset, threshold, min_region)  # refuses an unknown preset
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {list(PRECISIONS)}")
    if scheduler is not None and workers is not None:
        raise ValueError("give either workers (a local cluster) or scheduler (an existing one), not both")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    pair_pattern = (str(pair_pattern[0]), str(pair_pattern[1]))
    tile = DEFAULT_TILE if tile is None else int(tile)

    pairs = find_pairs(input_dir, pair_pattern) if mode in ("auto", "pair") else []
    if mode == "pair" or (mode == "auto" and any(not j.problem for j in pairs)):
        kind, jobs = "pair", pairs
    else:
        kind, jobs = "stack", find_stacks(input_dir)
    if not jobs:
        wanted = f"*{pair_pattern[0]}.* / *{pair_pattern[1]}.* pairs" if kind == "pair" else "TIFF stacks"
        raise ValueError(f"no {wanted} found in {input_dir}")
    _check_outputs(jobs, input_dir, output_dir, save_maps)

    parameters = {
        "mode": kind,
        "preset": preset,
        "threshold": settings.threshold,
        "min_region": settings.min_region,
        "strategy": strategy if kind == "stack" else None,
        "pair_suffixes": list(pair_pattern) if kind == "pair" else None,
        "save_maps": bool(save_maps),
        "tile": tile,
        "device": device,
        "precision": precision,
        "weights": str(weights) if weights is not None else None,
    }
    options = {
        "threshold": threshold,
        "min_region": min_region,
        "preset": preset,
        "device": device,
        "tile": tile,
        "precision": precision,
        "weights": str(weights) if weights is not None else None,
    }
    sha = model_sha256(weights)
    report = BatchReport(input_dir, output_dir, kind, parameters, sha, __version__)
    output_dir.mkdir(parents=True, exist_ok=True)

    stop = should_stop or (lambda: False)
    total = len(jobs)
    done_count = 0

    def tile_progress(_done: int, _total: int) -> None:
        if progress is not None:
            progress(done_count, total)  # lets a GUI runner notice a cancel mid-file
        if stop():
            raise BatchStopped

    def settle(entry: BatchEntry) -> None:
        report.entries.append(entry)
        if on_entry is not None:
            on_entry(entry)

    names_seen: set[str] = set()
    _remove_stale_temporaries(
        output_dir,
        [REPORT_JSON, REPORT_CSV]
        + [n for job in jobs for n in [*_output_names(job, save_maps), job.name + SIDECAR_SUFFIX]],
    )
    if scheduler is not None or workers is not None:
        _run_distributed(
            jobs, output_dir, parameters, options, sha, report, settle, progress, stop, scheduler, workers
        )
        write_report(report)
        return report
    for index, job in enumerate(jobs):
        done_count = index
        if progress is not None:
            progress(index, total)
        if stop():
            report.cancelled = True
            for rest in jobs[index:]:
                settle(BatchEntry(rest.label, "cancelled", "run cancelled before this input"))
            break
        early = _settle_early(job, names_seen, parameters, sha, output_dir, save_maps)
        if early is not None:
            settle(early)
            continue
        try:
            entry = process_job(
                job, output_dir, parameters, options, sha, __version__, tile_progress=tile_progress
            )
        except BatchStopped:
            report.cancelled = True
            for rest in jobs[index:]:
                settle(BatchEntry(rest.label, "cancelled", "run cancelled before this input finished"))
            break
        settle(entry)
    if progress is not None and not report.cancelled:
        progress(total, total)
    write_report(report)
    return report


def _settle_early(
    job: _Job, names_seen: set[str], parameters: dict, sha: str, output_dir: Path, save_maps: bool
) -> BatchEntry | None:
    """The entry of a job that needs no fusion (a problem, a duplicate name, already done).

    Otherwise None, after removing a stale sidecar (its outputs are about to change).
    """
    if job.problem:
        return BatchEntry(job.label, "failed", job.problem)
    if job.name in names_seen:
        return BatchEntry(job.label, "failed", f"another input already writes {job.name}_fused.tif")
    names_seen.add(job.name)
    sidecar = output_dir / (job.name + SIDECAR_SUFFIX)
    if _is_done(sidecar, job, parameters, sha, output_dir):
        return BatchEntry(job.label, "skipped", outputs=_output_names(job, save_maps))
    sidecar.unlink(missing_ok=True)  # outputs about to change: no stale "done" record
    return None


def _run_distributed(
    jobs: list[_Job],
    output_dir: Path,
    parameters: dict,
    options: dict,
    sha: str,
    report: BatchReport,
    settle: Callable[[BatchEntry], None],
    progress: ProgressCallback | None,
    stop: Callable[[], bool],
    scheduler: str | None,
    workers: int | None,
) -> None:
    """Run the jobs as dask tasks, one per input; entries end up in input order."""
    from acnn_fusion import __version__

    total = len(jobs)
    entries: dict[int, BatchEntry] = {}
    names_seen: set[str] = set()
    pending: list[tuple[int, _Job]] = []
    for index, job in enumerate(jobs):
        early = _settle_early(job, names_seen, parameters, sha, output_dir, parameters["save_maps"])
        if early is None:
            pending.append((index, job))
        else:
            entries[index] = early
            settle(early)

    if pending and not stop():
        from dask.distributed import as_completed

        client, cluster = _open_client(scheduler, workers)
        try:
            futures = {}
            for index, job in pending:
                future = client.submit(
                    process_job,
                    job,
                    output_dir,
                    parameters,
                    options,
                    sha,
                    __version__,
                    1,  # one torch thread per task: worker processes must not oversubscribe
                    pure=False,
                )
                futures[future] = (index, job)
            if progress is not None:
                progress(len(entries), total)
            completed = as_completed(list(futures))
            for future in completed:
                index, job = futures.pop(future)
                try:
                    entry = future.result()
                except Exception as exc:  # a worker died, or the task could not run
                    entry = BatchEntry(job.label, "failed", _error_text(exc))
                entries[index] = entry
                settle(entry)
                if progress is not None:
                    progress(len(entries), total)
                if futures and stop():
                    report.cancelled = True
                    client.cancel(list(futures))
                    for index_left, job_left in futures.values():
                        entry = BatchEntry(job_left.label, "cancelled", "run cancelled before this input")
                        entries[index_left] = entry
                        settle(entry)
                    break
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        for index, job in pending:
            report.cancelled = True
            entries[index] = BatchEntry(job.label, "cancelled", "run cancelled before this input")
            settle(entries[index])
    report.entries = [entries[i] for i in sorted(entries)]
    if progress is not None and not report.cancelled:
        progress(total, total)


def batch_fuse_command(input_dir: str, output_dir: str, **options) -> dict:
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
