"""Start-up cost of the faces: how long until a process can answer, and whether torch was loaded.

Each probe runs in a fresh interpreter, interleaved over the source trees given (A B A B …),
and the median wall time is reported::

    .venv/bin/python benchmarks/startup.py                       # this checkout
    .venv/bin/python benchmarks/startup.py --src old=/tmp/old/src --src new=src --repeats 7

Writes docs/results/startup.{md,json} (with the machine line and load).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

PROBES = {
    "import acnn_fusion": "import acnn_fusion",
    "acnn-fusion --version": "import sys; sys.argv = ['acnn-fusion', '--version']\n"
    "from acnn_fusion.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass",
    "napari reader module": "import acnn_fusion.napari._reader",
    "pair and stack pipelines": "import acnn_fusion.core.pipeline, acnn_fusion.core.stack",
    "network ready (runtime onnx)": "from acnn_fusion.core.inference import open_network\n"
    "from acnn_fusion.options import FusionOptions\nopen_network(FusionOptions(runtime='onnx'))",
    "network ready (runtime torch)": "from acnn_fusion.core.inference import open_network\n"
    "from acnn_fusion.options import FusionOptions\nopen_network(FusionOptions(runtime='torch'))",
    "import onnxruntime (for scale)": "import onnxruntime",
    "import torch (for scale)": "import torch",
}
CHECK = "\nimport sys; print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"


def run_probe(code: str, src: Path) -> tuple[float, bool]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code + CHECK], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return seconds, done.stdout.strip().endswith("TORCH") and "NO-TORCH" not in done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--src", action="append", help="NAME=PATH of a source tree (default: this one)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/results/startup"))
    args = parser.parse_args()
    trees = dict(s.split("=", 1) for s in args.src) if args.src else {"this": "src"}
    times: dict[tuple[str, str], list[float]] = {}
    torch_loaded: dict[tuple[str, str], bool] = {}
    for _ in range(args.repeats):
        for probe, code in PROBES.items():
            for name, src in trees.items():
                seconds, loaded = run_probe(code, Path(src).resolve())
                times.setdefault((probe, name), []).append(seconds)
                torch_loaded[(probe, name)] = loaded
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        machine = f"{model}, {os.cpu_count()} cores"
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0]
    rows = [
        {
            "probe": probe,
            "tree": name,
            "median_s": statistics.median(times[(probe, name)]),
            "torch_loaded": torch_loaded[(probe, name)],
        }
        for probe in PROBES
        for name in trees
    ]
    lines = [
        f"Machine: {machine}; load average {load:.1f} at the end; {args.repeats} runs each, interleaved.",
        "",
        "| probe | tree | median (s) | loads torch |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['probe']} | {r['tree']} | {r['median_s']:.2f} | {'yes' if r['torch_loaded'] else 'no'} |"
        for r in rows
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(
        json.dumps({"machine": machine, "load": load, "rows": rows}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
