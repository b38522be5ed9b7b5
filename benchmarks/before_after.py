"""Whole ``acnn-fusion`` processes with the sources of a revision against this checkout's,
interleaved: what a change bought a user, start-up and all.

    .venv/bin/python benchmarks/before_after.py --before REV [--cases pair_2048 pair_4096]
        [--repeats 3] [--name before_after]

Both runners are the virtualenv's ``acnn-fusion`` console script with default settings; the
revision's ``src`` (checked out into a temporary git worktree) or this checkout's comes first
on ``PYTHONPATH``. Cases as ``runtime_network.py --whole`` names them (``pair_SIZE``,
``stack_SIZExSLICES``, ``metallographic_1_1``). Order reversed every other round; medians,
peak RSS and the load. Writes ``docs/results/{name}.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import wholeprocess as wp
from runtime_network import whole_inputs

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision to compare against")
    parser.add_argument("--cases", nargs="+", default=["pair_2048", "pair_4096"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="before_after")
    args = parser.parse_args()
    info = wp.machine()
    print(info, flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="acnn-before-") as tmp:
        with wp.worktree(args.before, Path(tmp) / "old") as old:
            old_env = wp.ours_env()
            old_env["PYTHONPATH"] = str(old / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")
            inputs = whole_inputs(Path(tmp), tuple(args.cases))
            for r in range(args.repeats):
                for case, (base, _) in inputs.items():
                    runs: wp.Runs = {
                        f"before ({args.before})": ([wp.ours_script(), *base], old_env),
                        "now": ([wp.ours_script(), *base], wp.ours_env()),
                    }
                    wp.run_round(runs, r, {"case": case}, rows)
    info["loadavg_end"] = os.getloadavg()
    results = REPO / "docs" / "results"
    (results / f"{args.name}.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    before = f"before ({args.before})"
    lines = [
        f"Whole `acnn-fusion` processes, default settings, the sources at `{args.before}` against "
        f"this checkout (`benchmarks/before_after.py --before {args.before} --cases {' '.join(args.cases)} "
        f"--repeats {args.repeats}`); {wp.machine_line(info)}; medians, interleaved.",
        "",
        "| case | before s | now s | now / before | peak RSS MB before / now | runs s before; now |",
        "|---|---|---|---|---|---|",
    ]
    for case in inputs:
        old_s, new_s = (
            wp.median_of(rows, case=case, runner=before),
            wp.median_of(rows, case=case, runner="now"),
        )
        if old_s is None or new_s is None:
            continue
        mine = {k: [x for x in rows if x["case"] == case and x["runner"] == k] for k in (before, "now")}
        rss = " / ".join(f"{statistics.median(x['peak_rss_mb'] for x in v):.0f}" for v in mine.values())
        runs = "; ".join(", ".join(f"{x['seconds']:.2f}" for x in v) for v in mine.values())
        lines.append(
            f"| {case} | {old_s[0]:.2f} | {new_s[0]:.2f} | {new_s[0] / old_s[0]:.2f} | {rss} | {runs} |"
        )
    text = "\n".join(lines) + "\n"
    (results / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
