"""One post-network stage of a revision against this checkout's, on the same inputs, interleaved.

    .venv/bin/python benchmarks/stage_before_after.py --before REV [--repeats 6] [--name stage_before_after]
        [--stages decisions seams seams-synthetic]

Whole processes (``before_after.py``) hide a change of a few per cent on this machine, whose
speed drifts by 10–50 % within minutes; this times the stages themselves, in fresh processes
that alternate between the two source trees (A B B A …), each the best of three calls:

- ``decisions``: ``pipeline.decide_in_bands`` (clean-up, boundary refinement, fine override,
  edge-side test) on a synthetic 2048² grey pair (``wholeprocess.synthetic_pair``) with its
  focus map;
- ``seams``: ``seams.place_seams`` of the fold of the 8-slice metallographic stack of
  ``../shared`` (mufoc_1_1, 1000×1600), skipped if absent;
- ``seams-synthetic``: the same on the synthetic 1024²×16 uint16 stack of ``peers.py``
  (``wholeprocess.synthetic_stack``), whose depth changes almost everywhere.

The network runs once, in this checkout (fp32), and its focus map / score volume is handed to
both trees, so only the stage's own code differs; each child also hashes its output, and the
table says whether the two trees' outputs are identical. Writes
``docs/results/{name}.{md,json}``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import wholeprocess as wp

REPO = Path(__file__).resolve().parents[1]
METALLOGRAPHIC = wp.SHARED / "data" / "eval" / "stacks" / "metallographic_mufoc" / "mufoc_1_1"


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def prepare(folder: Path, wanted: list[str] | None = None) -> list[str]:
    """The inputs of the ``wanted`` stages (default all) in ``folder`` (network run here, once);
    returns those of them that are available."""
    from acnn_fusion import fuse_pair
    from acnn_fusion.core import stack
    from acnn_fusion.core.inference import open_network
    from acnn_fusion.options import FusionOptions

    stages = []
    if not wanted or "decisions" in wanted:
        a, b = wp.synthetic_pair(2048)
        focus = fuse_pair(a, b, precision="fp32").focus_map
        np.savez(folder / "decisions.npz", a=a, b=b, focus=focus)
        stages.append("decisions")
    network = open_network(FusionOptions(precision="fp32"), 1.0)
    stacks = {"seams-synthetic": lambda: wp.synthetic_stack(1024, 16)}
    if METALLOGRAPHIC.exists():
        from real_stacks import _stack_array

        stacks = {"seams": lambda: _stack_array(METALLOGRAPHIC), **stacks}
    for stage, make in stacks.items():
        if wanted and stage not in wanted:
            continue
        standard = stack._standardise(make(), 0, None)
        grey = stack.FocusImage(standard, None)
        np.save(folder / f"{stage}_stack.npy", standard)
        np.save(folder / f"{stage}_volume.npy", stack._score_volume(network, grey, None, 256, "fp32", None))
        stages.append(stage)
    return stages


def child(stage: str, folder: Path) -> dict:
    """Best of three timed calls of ``stage`` with this process's sources; the output's hash."""
    import time

    if stage == "decisions":
        from acnn_fusion.core import pipeline

        inputs = np.load(folder / "decisions.npz")
        greys = pipeline.GreyRows(inputs["a"], inputs["b"])

        def call() -> np.ndarray:
            return pipeline.decide_in_bands(inputs["focus"], greys, pipeline.PRESETS["default"])
    else:
        from acnn_fusion.core import inference, seams, stack

        standard = np.load(folder / f"{stage}_stack.npy")
        volume = np.load(folder / f"{stage}_volume.npy")
        grey = stack.FocusImage(standard, None)
        best, confidence, parts = stack._regularise_parts(volume, 2.0)
        depth = stack._pixel_depth(volume, best, parts, grey.shape[1:])
        confidence = inference.grid_to_pixels(confidence, grey.shape[1:])

        def call() -> np.ndarray:
            return seams.place_seams(depth, confidence, grey, volume, tile=seams.seam_tile(256))

    seconds = []
    for _ in range(3):
        start = time.perf_counter()
        out = call()
        seconds.append(time.perf_counter() - start)
    return {"seconds": min(seconds), "hash": _digest(out)}


def run_child(stage: str, folder: Path, src: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + os.pathsep + str(Path(__file__).parent)
    command = [sys.executable, __file__, "--child", stage, "--folder", str(folder)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{stage} with {src} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="git revision to compare against")
    parser.add_argument("--repeats", type=int, default=6, help="child processes per tree and stage")
    parser.add_argument("--name", default="stage_before_after")
    parser.add_argument(
        "--stages", nargs="+", choices=["decisions", "seams", "seams-synthetic"], help="only these stages"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return
    if not args.before:
        parser.error("--before REV is required")
    info = wp.machine()
    print(info, flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="acnn-stage-") as tmp:
        folder = Path(tmp)
        stages = prepare(folder, args.stages)
        with wp.worktree(args.before, folder / "old") as old:
            trees = {f"before ({args.before})": old / "src", "now": REPO / "src"}
            for index in range(args.repeats):
                order = list(trees) if index % 2 == 0 else list(trees)[::-1]
                for stage in stages:
                    for label in order:
                        row = {
                            "stage": stage,
                            "tree": label,
                            "round": index,
                            **run_child(stage, folder, trees[label]),
                        }
                        rows.append(row)
                        print(row, flush=True)
    info["loadavg_end"] = os.getloadavg()
    before = f"before ({args.before})"
    lines = [
        f"Post-network stages, the sources at `{args.before}` against this checkout "
        f"(`benchmarks/stage_before_after.py --before {args.before} --repeats {args.repeats}"
        + (f" --stages {' '.join(args.stages)}" if args.stages else "")
        + f" --name {args.name}`); "
        f"{wp.machine_line(info)}. Each run: a fresh process, best of 3 calls; the table gives the "
        "median over the runs, trees alternating A B B A ….",
        "",
        "| stage | input | before s | now s | now / before | outputs identical |",
        "|---|---|---|---|---|---|",
    ]
    inputs = {
        "decisions": "2048² synthetic pair",
        "seams": "metallographic mufoc_1_1, 8×1000×1600",
        "seams-synthetic": "synthetic 16×1024² uint16",
    }
    for stage in dict.fromkeys(r["stage"] for r in rows):
        mine = {k: [r for r in rows if r["stage"] == stage and r["tree"] == k] for k in (before, "now")}
        old_s, new_s = (float(np.median([r["seconds"] for r in v])) for v in mine.values())
        same = len({r["hash"] for v in mine.values() for r in v}) == 1
        lines.append(
            f"| {stage} | {inputs[stage]} | {old_s:.3f} | {new_s:.3f} | {new_s / old_s:.2f} | "
            f"{'yes' if same else 'NO'} |"
        )
    text = "\n".join(lines) + "\n"
    results = REPO / "docs" / "results"
    (results / f"{args.name}.md").write_text(text)
    (results / f"{args.name}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
