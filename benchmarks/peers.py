"""Whole-process speed and peak memory against the C++ peers focus-stack and enfuse.

    .venv/bin/python benchmarks/peers.py [--repeats 2] [--quick] [--cases ...] [--busy 0]

Peers (built outside the repository, once):

    bash ../shared/peers/build_focus_stack.sh /work/peers-bin   # focus-stack, needs libopencv-dev
    apt-get install enfuse                                      # enfuse (../shared/peers/enfuse_stack.sh)

``ACNN_PEERS_DIR`` says where focus-stack was built (default ``/work/peers-bin``); enfuse is
taken from ``PATH``. Every case runs as a user would run it, in a fresh process: ours is
``acnn-fusion stack INPUT -o OUT`` (``fuse A B`` for pairs) with default settings, through the
virtualenv's console script with this checkout's ``src`` on ``PYTHONPATH``; focus-stack with
its defaults (it also aligns the slices, which ours does not by default) and
``--no-opencl``; enfuse through ``../shared/peers/enfuse_stack.sh`` (contrast weight
only, hard mask). ``--with-torch`` adds ours with ``--runtime torch``. Peers read one file
per slice, so multi-page TIFF stacks are written as planes for them (not timed); ours reads
the original file or folder. Runners alternate
order round by round (A B C, C B A, …); the table gives medians, ratios to ours, each
process's peak RSS (``/usr/bin/time``) and the load average before the runs.

Cases: every real stack in ``../shared/data/eval/stacks`` (the 65-slice gacn stack every
4th slice, 17 slices, unless ``--full-gacn``), synthetic uint16 stacks 1024²×16 and
1024²×64 and synthetic grey pairs 2048² and 4096² (:mod:`acnn_fusion.synthetic`, written
as TIFF to a temporary folder). ``--quick``: four cases, 2 rounds (about 5 minutes on a
quiet 2-core machine). Writes ``docs/results/NAME.{md,csv,json}`` (``--name``, default ``peers``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
import tifffile

import wholeprocess as wp

REAL = [
    "metallographic_1_1",
    "metallographic_1_2",
    "lightsheet",
    "gacn",
    "macro_pcb",
    "sephace_fine",
    "sephace_init",
    "skeleton",
]
SYNTHETIC = ["stack1024x16", "stack1024x64", "pair2048", "pair4096"]
QUICK = ["metallographic_1_1", "lightsheet", "stack1024x16", "pair2048"]
#: every runner a table can have (ours-torch with --with-torch)
RUNNERS = ("ours", "ours-torch", "focus-stack", "enfuse")
#: start-up only: what every run of ours pays before any work (imports), whole processes
STARTUP = {
    "python": "pass",
    "import numpy, scipy.ndimage, skimage": (
        "import numpy, scipy.ndimage, skimage.morphology, skimage.registration"
    ),
    "import torch": "import torch",
    "import onnxruntime": "import onnxruntime",
    "import acnn_fusion.core.stack": "import acnn_fusion.core.stack",
    "import acnn_fusion.cli": "import acnn_fusion.cli",
}


class Case:
    """Inputs of one case: what ours reads, the plane files the peers read, and its size."""

    def __init__(
        self, name: str, kind: str, ours_input: list[Path], planes: list[Path], note: str = ""
    ) -> None:
        self.name, self.kind, self.ours_input, self.planes, self.note = name, kind, ours_input, planes, note
        first = tifffile.imread(planes[0]) if planes[0].suffix == ".tif" else None
        if first is None:
            from skimage import io

            first = io.imread(planes[0])
        self.shape = (len(planes), *first.shape)
        self.dtype = str(first.dtype)

    @property
    def megapixel_slices(self) -> float:
        return self.shape[0] * self.shape[1] * self.shape[2] / 1e6


def _linked(paths: list[Path], folder: Path) -> Path:
    """A folder of symlinks to ``paths`` (a subset of a folder, as ours reads folders)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in paths:
        (folder / path.name).symlink_to(path)
    return folder


def build_case(name: str, tmp: Path, full_gacn: bool) -> Case | None:
    stacks = wp.STACKS
    if name.startswith("metallographic"):
        planes = sorted((stacks / "metallographic_mufoc" / f"mufoc_{name[-3:]}").glob("*.tif"))
        return Case(name, "stack", [planes[0].parent], planes) if planes else None
    if name == "lightsheet":
        planes = sorted((stacks / "lightsheet_mitochondria_uint16").glob("*.tif"))
        return Case(name, "stack", [planes[0].parent], planes) if planes else None
    if name == "gacn":
        planes = sorted((stacks / "gacn_v4_component").glob("*.jpg"))
        if not planes:
            return None
        note = "" if full_gacn else f"every 4th of {len(planes)} slices"
        planes = planes if full_gacn else planes[::4]
        return Case(name, "stack", [_linked(planes, tmp / name)], planes, note)
    if name == "macro_pcb":
        planes = sorted((stacks / "macro_pcb").glob("pcb_*.jpg"))
        return Case(name, "stack", [_linked(planes, tmp / name)], planes) if planes else None
    if name.startswith(("sephace", "skeleton")):
        source = {
            "sephace_fine": stacks / "brightfield_cells_sephace" / "fine_zstack.tif",
            "sephace_init": stacks / "brightfield_cells_sephace" / "init_zstack.tif",
            "skeleton": stacks / "brightfield_skeleton_edf" / "stack.tif",
        }[name]
        if not source.exists():
            return None
        planes = wp.write_planes(tifffile.imread(source), tmp / name)
        return Case(name, "stack", [source], planes)
    if name.startswith("stack"):  # stack1024x16
        size, n_slices = (int(v) for v in name.removeprefix("stack").split("x"))
        planes = wp.write_planes(wp.synthetic_stack(size, n_slices), tmp / name)
        return Case(name, "stack", [planes[0].parent], planes, "synthetic uint16")
    if name.startswith("pair"):
        size = int(name.removeprefix("pair"))
        a, b = wp.synthetic_pair(size)
        planes = wp.write_planes([a, b], tmp / name)
        return Case(name, "pair", planes, planes, "synthetic grey")
    raise SystemExit(f"unknown case {name!r}")


def runners(case: Case, out: Path, with_torch: bool = False) -> wp.Runs:
    """Ours (default settings: runtime auto), optionally ours on torch, and the peers found."""
    script = wp.ours_script()
    if case.kind == "pair":
        ours = [script, "fuse", *map(str, case.ours_input), "-o", str(out / "ours.tif")]
    else:
        ours = [script, "stack", str(case.ours_input[0]), "-o", str(out / "ours.tif")]
    found: wp.Runs = {"ours": (ours, wp.ours_env())}
    if with_torch:
        found["ours-torch"] = ([*ours, "--runtime", "torch"], wp.ours_env())
    found.update(wp.peer_commands(case.planes, out))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", nargs="+", default=REAL + SYNTHETIC, choices=REAL + SYNTHETIC)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help=f"cases {' '.join(QUICK)}, 2 rounds")
    parser.add_argument("--full-gacn", action="store_true", help="all 65 gacn slices")
    parser.add_argument("--busy", type=int, default=0, help="busy processes running meanwhile")
    parser.add_argument("--name", default="peers")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up (import) rows")
    parser.add_argument("--with-torch", action="store_true", help="also ours with --runtime torch")
    args = parser.parse_args()
    if args.quick:
        args.cases, args.repeats = QUICK, 2
    info = wp.machine()
    print(info, flush=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="acnn-peers-") as tmp, wp.burners(args.busy):
        tmp_path = Path(tmp)
        cases = [c for c in (build_case(n, tmp_path, args.full_gacn) for n in args.cases) if c is not None]
        out = tmp_path / "out"
        out.mkdir()
        for round_index in range(args.repeats):
            for case in cases:
                wp.run_round(runners(case, out, args.with_torch), round_index, {"case": case.name}, rows)
            if not args.no_startup:
                imports = {
                    label: ([wp.sys.executable, "-c", code], wp.ours_env()) for label, code in STARTUP.items()
                }
                wp.run_round(imports, round_index, {"case": "startup"}, rows)
    info["loadavg_end"] = wp.os.getloadavg()
    write(args, info, cases, rows)


def summarise(cases: list, rows: list[dict]) -> list[dict]:
    table = []
    for case in cases:
        entry: dict[str, object] = {
            "case": case.name,
            "kind": case.kind,
            "shape": "×".join(map(str, case.shape)),
            "dtype": case.dtype,
            "megapixel_slices": round(case.megapixel_slices, 2),
            "note": case.note,
        }
        for runner in RUNNERS:
            mine = [r for r in rows if r["case"] == case.name and r["runner"] == runner and r["rc"] == 0]
            if mine:
                entry[f"{runner}_s"] = round(statistics.median(r["seconds"] for r in mine), 2)
                entry[f"{runner}_rss_mb"] = round(max(r["peak_rss_mb"] for r in mine))
                entry[f"{runner}_n"] = len(mine)
        if "ours_s" in entry and "ours-torch_s" in entry:
            entry["ours_over_ours-torch"] = round(float(entry["ours_s"]) / float(entry["ours-torch_s"]), 2)
        for peer in ("focus-stack", "enfuse"):
            if "ours_s" in entry and f"{peer}_s" in entry:
                entry[f"ours_over_{peer}"] = round(float(entry["ours_s"]) / float(entry[f"{peer}_s"]), 2)
        loads = [r["load1"] for r in rows if r["case"] == case.name]
        entry["load_median"] = round(statistics.median(loads), 1) if loads else math.nan
        table.append(entry)
    return table


def slope(table: list[dict], runner: str) -> float | None:
    """Least-squares seconds per megapixel·slice over the stack cases (intercept = start-up)."""
    points = [
        (t["megapixel_slices"], t[f"{runner}_s"])
        for t in table
        if t["kind"] == "stack" and f"{runner}_s" in t
    ]
    if len(points) < 3:
        return None
    x, y = np.array(points).T
    return float(np.polyfit(x, y, 1)[0])


def write(args: argparse.Namespace, info: dict, cases: list, rows: list[dict]) -> None:
    table = summarise(cases, rows)
    fits = {runner: slope(table, runner) for runner in RUNNERS}
    results = wp.REPO / "docs" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{args.name}.json").write_text(
        json.dumps(
            {
                "machine": info,
                "args": vars(args),
                "seconds_per_megapixel_slice": fits,
                "table": table,
                "runs": rows,
            },
            indent=1,
        )
    )
    with (results / f"{args.name}.csv").open("w", newline="") as handle:
        fields = list(dict.fromkeys(key for entry in table for key in entry))
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(table)

    def cell(entry: dict, key: str, fmt: str = "{:.2f}") -> str:
        return fmt.format(entry[key]) if key in entry else "–"

    torch_column = args.with_torch
    lines = [
        f"{wp.machine_line(info)}; {args.repeats} rounds, interleaved; {args.busy} extra busy "
        "process(es). "
        "ours = `acnn-fusion` with default settings (runtime auto)"
        + ("; ours-torch = the same with `--runtime torch`." if torch_column else "."),
        "",
        "| case | shape | MP·slices | ours s | "
        + ("ours-torch s | " if torch_column else "")
        + "focus-stack s | enfuse s | ours / focus-stack | ours / enfuse "
        + "| RSS MB ours / fs / enfuse | load |",
        "|---|---|---|---|" + ("---|" if torch_column else "") + "---|---|---|---|---|---|",
    ]
    for t in table:
        note = f" ({t['note']})" if t["note"] else ""
        rss = " / ".join(cell(t, f"{r}_rss_mb", "{:.0f}") for r in ("ours", "focus-stack", "enfuse"))
        lines.append(
            f"| {t['case']}{note} | {t['shape']} {t['dtype']} | {t['megapixel_slices']:.1f} | "
            f"{cell(t, 'ours_s')} | "
            + (f"{cell(t, 'ours-torch_s')} | " if torch_column else "")
            + f"{cell(t, 'focus-stack_s')} | {cell(t, 'enfuse_s')} | "
            f"{cell(t, 'ours_over_focus-stack')} | {cell(t, 'ours_over_enfuse')} | {rss} | "
            f"{t['load_median']} |"
        )
    startup = [r for r in rows if r["case"] == "startup" and r["rc"] == 0]
    if startup:
        lines += [
            "",
            "Start-up (a fresh Python process that only imports):",
            "",
            "| process | median s | peak RSS MB |",
            "|---|---|---|",
        ]
        for label in STARTUP:
            mine = [r for r in startup if r["runner"] == label]
            if mine:
                median = statistics.median(r["seconds"] for r in mine)
                lines.append(f"| `{label}` | {median:.2f} | {max(r['peak_rss_mb'] for r in mine):.0f} |")
    lines.append("")
    lines.append(
        "Seconds per megapixel·slice (least-squares slope over the stack cases): "
        + ", ".join(f"{k} {v:.3f}" for k, v in fits.items() if v is not None)
    )
    text = "\n".join(lines) + "\n"
    (results / f"{args.name}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
