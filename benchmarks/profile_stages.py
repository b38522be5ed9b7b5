"""Where the whole time of one ``acnn-fusion`` run goes: start-up, I/O, network, decisions, composition.

    .venv/bin/python benchmarks/profile_stages.py [--repeats 2] [--runtimes auto torch] [--cases ...]

Each case runs in a fresh process (``--child``) that does what ``acnn-fusion stack`` /
``acnn-fusion fuse`` do (``tasks.fuse_stack_file`` / ``tasks.fuse_pair_files``: read the
files, fuse, write the outputs) with timers wrapped around the package's own steps, so
the stages add up to the process's wall time (the rest is the interpreter's start and
exit, measured by the parent as wall time minus what the child saw).

The timers are exclusive: a step's time excludes the timed steps it calls.

- ``interpreter``: Python's own start and exit (the parent's wall time − the child's);
- ``imports``: ``acnn_fusion.tasks``, ``core.stack``, ``core.pipeline`` (no torch);
- ``tiles side by side``: the main thread waiting while the network's tiles run on worker
  threads (onnxruntime, ``inference.run_tiles``); what those threads spent is a second table
  in thread-seconds, which overlap in time and do not add up to the wall time;
- ``open network``: the runtime imported, weights verified, session built (``open_network``);
- ``read`` / ``write``: ``read_stack``/``read_image`` and ``write_image``;
- stacks: ``grey`` (the grey blocks the network sees, from the memory-mapped stack, and the
  intensity scale), ``network run`` (onnxruntime's ``session.run``, or torch's whole
  ``reference``/``slice_odds``), ``network head`` (the numpy part of the onnxruntime head:
  fc1's sums, ReLU, fc2's dot product), ``block averaging`` (``patch_average_blocks``),
  ``depth`` (``_fold_volume``: regularisation and pixel depth), ``compose``;
- pairs: ``grey``, ``network run``, ``network head``, ``focus map`` (the tiled focus map's
  own work), ``decisions`` (``decide_in_bands``: regions, boundary, override), ``compose``.

Cases: the 8-slice metallographic stack of ``../shared`` (mufoc_1_1, 8×1000×1600 grey),
a synthetic 1024²×16 uint16 stack and a synthetic 2048² uint8 pair (as ``peers.py`` makes
them), written to TIFF planes in a temporary folder. Runtimes: ``auto`` (what a user gets)
and ``torch`` (torch with ``precision`` auto: bf16 where native, else fp32), interleaved
round by round. Writes ``docs/results/profile_stages.{md,json}`` with the load average.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CASES = ("metallographic", "synthetic1024x16", "pair2048")


class Timers:
    """Exclusive seconds per label (a timed call's time minus that of the timed calls inside it
    on the same thread) and calls per label. Calls on the main thread add up to the time spent
    in timed calls there; calls on worker threads (tiles side by side, ``inference.run_tiles``)
    overlap, so they go to ``thread_seconds`` instead (summed over the threads)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.thread_seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._local = threading.local()  # per thread: seconds spent in timed calls inside each active one
        self._lock = threading.Lock()

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            inner_stack = timers._local.__dict__.setdefault("inner", [])
            inner_stack.append(0.0)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                inner = inner_stack.pop()
                if inner_stack:
                    inner_stack[-1] += elapsed
                main = threading.current_thread() is threading.main_thread()
                with timers._lock:
                    table = timers.seconds if main else timers.thread_seconds
                    table[label] = table.get(label, 0.0) + elapsed - inner
                    timers.calls[label] = timers.calls.get(label, 0) + 1

        setattr(owner, name, timed)

    def get(self, label: str) -> float:
        return self.seconds.get(label, 0.0)


def child(case: str, runtime: str, folder: Path) -> dict:
    """Run one case as the command line does, with timers; returns the stages."""
    imports_start = time.perf_counter()
    import acnn_fusion.core.pipeline as pipeline
    import acnn_fusion.core.stack as stack
    import acnn_fusion.tasks as tasks
    from acnn_fusion.core import inference, onnx_runtime
    from acnn_fusion.options import FusionOptions

    imports = time.perf_counter() - imports_start
    timers = Timers()
    for module in (stack, pipeline):
        timers.wrap(module, "open_network", "open network")
        timers.wrap(module, "patch_average_blocks", "block averaging")
    timers.wrap(tasks, "read_stack", "read")
    timers.wrap(tasks, "read_image", "read")
    timers.wrap(tasks, "write_image", "write")
    timers.wrap(tasks, "write_focus_map", "write")
    timers.wrap(stack.FocusImage, "__init__", "grey")
    timers.wrap(stack.FocusImage, "block", "grey")
    timers.wrap(pipeline.GreyRows, "__init__", "grey")
    timers.wrap(pipeline.GreyRows, "block", "grey")
    timers.wrap(onnx_runtime.OnnxNetwork, "_run", "network run")
    for cls in (onnx_runtime.OnnxNetwork, inference.TorchNetwork):
        for method in ("reference", "slice_odds", "score_map"):
            timers.wrap(cls, method, "network")
    timers.wrap(stack, "_score_volume", "tiles side by side")
    timers.wrap(stack, "_fold_volume", "depth")
    timers.wrap(stack, "compose_stack", "compose")
    timers.wrap(pipeline, "focus_map_in_tiles", "focus map")
    timers.wrap(pipeline, "decide_in_bands", "decisions")
    timers.wrap(pipeline, "_compose", "compose")
    options = FusionOptions(runtime=runtime)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=folder))
    work_start = time.perf_counter()
    if case == "pair2048":
        outputs = tasks.PairOutputs(out / "fused.tif", None, None)
        tasks.fuse_pair_files(folder / "a.tif", folder / "b.tif", outputs, options)
    else:
        outputs = tasks.StackOutputs(out / "fused.tif", None)
        tasks.fuse_stack_file(folder, outputs, options)
    work = time.perf_counter() - work_start
    used = "onnx" if timers.calls.get("network run") else "torch"
    side_by_side = bool(timers.thread_seconds)
    stages = {
        "imports": imports,
        "open network": timers.get("open network"),
        "read": timers.get("read"),
        "grey": timers.get("grey"),
        # onnxruntime: session.run, then the numpy head; torch: the whole call. With tiles side
        # by side these run on worker threads, and the main thread waits in "tiles side by side"
        "network run": timers.get("network run") if used == "onnx" else timers.get("network"),
        "network head": timers.get("network") if used == "onnx" and not side_by_side else 0.0,
    }
    if case == "pair2048":
        stages["focus map"] = timers.get("focus map") + timers.get("block averaging")
        if side_by_side:  # the score map's own time: waiting for its tiles
            stages["tiles side by side"] = timers.get("network")
        stages["decisions"] = timers.get("decisions")
    else:
        stages["block averaging"] = timers.get("block averaging")
        stages["tiles side by side"] = timers.get("tiles side by side")
        stages["depth"] = timers.get("depth")
    stages["compose"] = timers.get("compose")
    stages["write"] = timers.get("write")
    stages["rest of the work"] = work - sum(stages[k] for k in stages if k != "imports")
    stages["child total"] = time.perf_counter() - _T0
    workers = {f"{label} (thread-seconds)": value for label, value in timers.thread_seconds.items()}
    return {
        "runtime_used": used,
        "network_calls": timers.calls.get("network", 0),
        "stages": stages,
        "workers": workers,
    }


def prepare(case: str, root: Path) -> Path:
    """The case's input files in ``root/case`` (written once)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import wholeprocess as wp

    folder = root / case
    if folder.exists():
        return folder
    if case == "metallographic":
        source = wp.SHARED / "data" / "eval" / "stacks" / "metallographic_mufoc" / "mufoc_1_1"
        folder.mkdir(parents=True)
        for plane in sorted(source.glob("*.tif")):
            (folder / plane.name).symlink_to(plane)
    elif case == "synthetic1024x16":
        wp.write_planes(wp.synthetic_stack(1024, 16), folder)
    elif case == "pair2048":
        import tifffile

        folder.mkdir(parents=True)
        a, b = wp.synthetic_pair(2048)
        tifffile.imwrite(folder / "a.tif", a)
        tifffile.imwrite(folder / "b.tif", b)
    else:
        raise SystemExit(f"unknown case {case}")
    return folder


def run_child(case: str, runtime: str, folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, __file__, "--child", case, "--runtime", runtime, "--folder", str(folder)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{case} ({runtime}) failed:\n{done.stderr}")
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stages"]["interpreter"] = wall - result["stages"]["child total"]
    result.update(wall=wall, load1=os.getloadavg()[0], case=case, runtime=runtime)
    return result


ORDER = (
    "interpreter",
    "imports",
    "open network",
    "read",
    "grey",
    "network run",
    "network head",
    "block averaging",
    "tiles side by side",
    "focus map",
    "depth",
    "decisions",
    "compose",
    "write",
    "rest of the work",
)


def write(rows: list[dict], info: dict, name: str) -> str:
    import wholeprocess as wp

    results = REPO / "docs" / "results"
    (results / f"{name}.json").write_text(json.dumps({"machine": info, "runs": rows}, indent=1))
    lines = [
        f"Whole-process time by stage (`benchmarks/profile_stages.py`), medians of "
        f"{max(r['round'] for r in rows) + 1} interleaved rounds; {wp.machine_line(info)}.",
        "",
    ]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["case"], row["runtime"]), []).append(row)
    header = ["stage"]
    columns = []
    for (case, runtime), runs in groups.items():
        header.append(f"{case} `{runtime}` ({runs[0]['runtime_used']}) s")
        header.append("%")
        columns.append(runs)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in (*ORDER, "wall"):
        cells = [f"**{stage}**" if stage == "wall" else stage]
        present = False
        for runs in columns:
            values = [r["wall"] if stage == "wall" else r["stages"].get(stage) for r in runs]
            if values[0] is None:
                cells += ["–", "–"]
                continue
            present = True
            median = statistics.median(values)
            wall = statistics.median(r["wall"] for r in runs)
            cells += [f"{median:.2f}", f"{100 * median / wall:.0f}"]
        if present:
            lines.append("| " + " | ".join(cells) + " |")
    worker_labels = sorted({label for r in rows for label in r.get("workers", {})})
    if worker_labels:
        lines += [
            "",
            "On the worker threads of tiles side by side (`inference.run_tiles`), inside the row "
            "*tiles side by side* above: seconds summed over the threads, so they overlap in time.",
            "",
            "| " + " | ".join(["work", *(h for h in header[1::2])]) + " |",
            "|" + "---|" * (1 + len(columns)),
        ]
        for label in worker_labels:
            cells = [label]
            for runs in columns:
                values = [r.get("workers", {}).get(label) for r in runs]
                cells.append("–" if values[0] is None else f"{statistics.median(values):.2f}")
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Loads during the runs: " + ", ".join(f"{r['load1']:.1f}" for r in rows) + "."]
    text = "\n".join(lines) + "\n"
    (results / f"{name}.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--runtimes", nargs="+", default=["auto", "torch"])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--name", default="profile_stages")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--runtime", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.folder is None:
            parser.error("--child needs --folder (the case's input files)")
        print(json.dumps(child(args.child, args.runtime, args.folder)))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    import wholeprocess as wp

    info = wp.machine()
    print(info, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="profile-stages-") as tmp:
        folders = {case: prepare(case, Path(tmp)) for case in args.cases}
        runs = [(case, runtime) for case in args.cases for runtime in args.runtimes]
        for round_index in range(args.repeats):
            for case, runtime in runs if round_index % 2 == 0 else runs[::-1]:
                row = run_child(case, runtime, folders[case])
                row["round"] = round_index
                rows.append(row)
                print({k: v for k, v in row.items() if k != "stages"}, flush=True)
    info["loadavg_end"] = os.getloadavg()
    print(write(rows, info, args.name))


if __name__ == "__main__":
    main()
