"""Whole-process time with and without one other busy process, for OpenMP wait settings.

    .venv/bin/python benchmarks/contention.py [--repeats 3] [--busy 1] [--peers] [--quick]

Each case runs as a user runs it (``acnn-fusion stack FOLDER -o OUT``, a fresh process),
quiet and while ``--busy`` single-threaded busy loops run (bounded: they stop by themselves
after 15 minutes at the latest, and are stopped after each block). Rounds alternate the
order of the conditions and of the variants (A B … then … B A), so that the drift of a
shared machine hits every variant alike; the table gives medians, busy/quiet ratios and the
1-minute load average seen before the runs. Variants of ours differ only in environment:

- ``before``: ``GOMP_SPINCOUNT=300000``, GNU OpenMP's built-in default when no wait policy
  is set, i.e. the behaviour before ``acnn_fusion.core`` set ``OMP_WAIT_POLICY``;
- ``passive``: nothing set, i.e. the package default (``OMP_WAIT_POLICY=PASSIVE``);
- ``spin10k``: ``GOMP_SPINCOUNT=10000`` (~0.1 ms of spinning);
- ``1-thread``: ``OMP_NUM_THREADS=1`` with the package default;
- ``tile384``, ``tile512``: the package default with ``--tile 384`` or ``512``;
- ``torch``: the package default with ``--runtime torch`` (``auto`` takes torch for large
  inputs on a CPU with native bf16, onnxruntime otherwise on a CPU);
- ``onnx``, ``onnx-spin``, ``onnx-1-thread``: ``--runtime onnx`` with its idle threads
  sleeping (the default), spinning (``OMP_WAIT_POLICY=ACTIVE``), or one intra-op thread;
  ``onnx-tile384``: ``--runtime onnx --tile 384``.

With ``--peers``, focus-stack and enfuse (``benchmarks/peers.py`` says how to get them) run
on the same planes. Writes ``docs/results/NAME.{md,csv,json}`` (``--name``, default ``contention``).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import tempfile
from pathlib import Path

import wholeprocess as wp

VARIANTS = {
    "before": {"GOMP_SPINCOUNT": "300000"},
    "passive": {},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "1-thread": {"OMP_NUM_THREADS": "1"},
    "tile384": {},  # the package default with --tile 384
    "tile512": {},  # the package default with --tile 512 (fewer, larger parallel regions)
    "onnx-tile384": {},  # onnxruntime with --tile 384
    "torch": {},  # the package default on torch (--runtime torch)
    "onnx": {},  # onnxruntime (--runtime onnx), idle threads sleep (the package default)
    "onnx-spin": {"OMP_WAIT_POLICY": "ACTIVE"},  # onnxruntime's threads allowed to spin
    "onnx-1-thread": {"OMP_NUM_THREADS": "1"},  # onnxruntime with one intra-op thread
}
_ONNX = ["--runtime", "onnx"]
#: command-line arguments of a variant beyond the defaults
VARIANT_ARGS = {
    "tile384": ["--tile", "384"],
    "tile512": ["--tile", "512"],
    "onnx-tile384": [*_ONNX, "--tile", "384"],
    "torch": ["--runtime", "torch"],
    "onnx": _ONNX,
    "onnx-spin": _ONNX,
    "onnx-1-thread": _ONNX,
}


def prepare_cases(names: list[str], folder: Path) -> dict[str, list[Path]]:
    """Case name → TIFF planes (one file per slice)."""
    cases: dict[str, list[Path]] = {}
    for name in names:
        if name == "metallographic":
            planes = sorted((wp.STACKS / "metallographic_mufoc" / "mufoc_1_1").glob("*.tif"))
            if not planes:
                print(f"skipping {name}: {wp.STACKS} not found")
                continue
            cases[name] = planes
        elif name.startswith("synthetic"):  # synthetic1024x16
            size, n_slices = (int(v) for v in name.removeprefix("synthetic").split("x"))
            stack = wp.synthetic_stack(size, n_slices)
            cases[name] = wp.write_planes(stack, folder / name)
        else:
            raise SystemExit(f"unknown case {name!r}")
    return cases


def commands(planes: list[Path], out: Path, variants: list[str], peers: bool) -> wp.Runs:
    """Runner name → (command, environment)."""
    runs: wp.Runs = {}
    folder = planes[0].parent
    script = wp.ours_script()
    for variant in variants:
        command = [script, "stack", str(folder), "-o", str(out / f"ours-{variant}.tif")]
        command += VARIANT_ARGS.get(variant, [])
        runs[f"ours-{variant}"] = (command, wp.ours_env(VARIANTS[variant]))
    if peers:
        runs.update(wp.peer_commands(planes, out))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=["metallographic", "synthetic1024x16"])
    parser.add_argument("--variants", nargs="+", default=["before", "passive"], choices=list(VARIANTS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="busy processes in the busy condition")
    parser.add_argument("--peers", action="store_true", help="also focus-stack and enfuse")
    parser.add_argument("--quick", action="store_true", help="metallographic only, 2 rounds")
    parser.add_argument("--name", default="contention")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.repeats = ["metallographic"], 2
    rows: list[dict] = []
    info = wp.machine()
    print(info)
    with tempfile.TemporaryDirectory(prefix="acnn-contention-") as tmp:
        tmp_path = Path(tmp)
        cases = prepare_cases(args.cases, tmp_path)
        for round_index in range(args.repeats):
            conditions = [0, args.busy] if round_index % 2 == 0 else [args.busy, 0]
            for busy in conditions:
                with wp.burners(busy):
                    for case, planes in cases.items():
                        runs = commands(planes, tmp_path, args.variants, args.peers)
                        wp.run_round(runs, round_index, {"case": case, "busy": busy}, rows)
    info["loadavg_end"] = wp.os.getloadavg()
    summary = summarise(rows, args.busy)
    write(args.name, info, rows, summary, args)


def summarise(rows: list[dict], busy: int) -> list[dict]:
    out = []
    keys = list(dict.fromkeys((r["case"], r["runner"]) for r in rows))
    for case, runner in keys:
        mine = [r for r in rows if r["case"] == case and r["runner"] == runner and r["rc"] == 0]
        quiet = [r["seconds"] for r in mine if r["busy"] == 0]
        loaded = [r["seconds"] for r in mine if r["busy"] == busy]
        if not quiet or not loaded:
            continue
        q, b = statistics.median(quiet), statistics.median(loaded)
        out.append(
            {
                "case": case,
                "runner": runner,
                "quiet_s": round(q, 2),
                "busy_s": round(b, 2),
                "busy_over_quiet": round(b / q, 2),
                "worst_busy_over_quiet": round(max(loaded) / q, 2),
                "n": len(quiet),
                "quiet_runs": quiet,
                "busy_runs": loaded,
                "load_quiet": round(statistics.median(r["load1"] for r in mine if r["busy"] == 0), 1),
                "load_busy": round(statistics.median(r["load1"] for r in mine if r["busy"] == busy), 1),
            }
        )
    return out


def write(name: str, info: dict, rows: list[dict], summary: list[dict], args: argparse.Namespace) -> None:
    results = wp.REPO / "docs" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{name}.json").write_text(
        json.dumps({"machine": info, "args": vars(args), "summary": summary, "runs": rows}, indent=1)
    )
    with (results / f"{name}.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"{wp.machine_line(info)}; {args.busy} busy process(es) in the busy runs; "
        f"{args.repeats} rounds, interleaved",
        "",
        "| case | runner | quiet median s | busy median s | busy / quiet | worst busy / quiet median "
        "| load quiet | load busy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['case']} | {s['runner']} | {s['quiet_s']:.2f} | {s['busy_s']:.2f} | "
            f"{s['busy_over_quiet']:.2f} | {s['worst_busy_over_quiet']:.2f} | {s['load_quiet']} | "
            f"{s['load_busy']} |"
        )
    text = "\n".join(lines) + "\n"
    (results / f"{name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
