"""Hashes of fp32 outputs through the API and the command line, to prove a refactor changed nothing.

Run it on two source trees and compare the JSON files::

    PYTHONPATH=/tmp/old/src .venv/bin/python benchmarks/output_hashes.py /tmp/before.json
    PYTHONPATH=src .venv/bin/python benchmarks/output_hashes.py /tmp/after.json
    .venv/bin/python benchmarks/output_hashes.py --compare /tmp/before.json /tmp/after.json

Covers the sample pair (default and paper preset), the sample stack (features and pairwise),
the 20 Lytro pairs (when ../shared is present) and `acnn-fusion fuse` / `stack`.
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

REPO = Path(__file__).resolve().parents[1]
LYTRO = Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared" / "data")) / "eval" / "pairs" / "lytro"


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def output_hashes() -> dict[str, object]:
    import tifffile

    from acnn_fusion import fuse_pair, fuse_stack
    from acnn_fusion.io import read_image, read_stack

    sample = REPO / "sample_data"
    out: dict[str, object] = {}
    a, b = read_image(sample / "pair_A.tif"), read_image(sample / "pair_B.tif")
    r = fuse_pair(a, b, precision="fp32")
    out["sample_pair"] = [digest(r.fused), digest(r.focus_map), digest(r.decision_map)]
    r = fuse_pair(a, b, precision="fp32", preset="paper")
    out["sample_pair_paper"] = [digest(r.fused), digest(r.decision_map)]
    stack = np.asarray(read_stack(sample / "stack.tif").data)
    s = fuse_stack(stack, precision="fp32")
    out["sample_stack"] = [digest(s.fused), digest(s.depth_map), digest(s.confidence)]
    s = fuse_stack(stack, precision="fp32", strategy="pairwise")
    out["sample_stack_pairwise"] = [digest(s.fused), digest(s.depth_map)]
    for i in range(1, 21):
        path_a, path_b = LYTRO / f"lytro-{i:02d}-A.jpg", LYTRO / f"lytro-{i:02d}-B.jpg"
        if path_a.exists():
            out[f"lytro-{i:02d}"] = digest(
                fuse_pair(read_image(path_a), read_image(path_b), precision="fp32").fused
            )
    exe = [sys.executable, "-c", "import sys; from acnn_fusion.cli import main; sys.exit(main())"]
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [*exe, "fuse", sample / "pair_A.tif", sample / "pair_B.tif", "-o", f"{tmp}/f.tif", "--precision",
             "fp32", "--focus-map", f"{tmp}/fm.tif", "--decision-map", f"{tmp}/d.png"],
            check=True,
        )  # fmt: skip
        out["cli_fuse"] = [digest(tifffile.imread(f"{tmp}/f.tif")), digest(tifffile.imread(f"{tmp}/fm.tif")),
                           digest(read_image(f"{tmp}/d.png"))]  # fmt: skip
        subprocess.run(
            [*exe, "stack", sample / "stack.tif", "-o", f"{tmp}/s.tif", "--depth-map", f"{tmp}/dm.tif",
             "--precision", "fp32"],
            check=True,
        )  # fmt: skip
        out["cli_stack"] = [digest(tifffile.imread(f"{tmp}/s.tif")), digest(tifffile.imread(f"{tmp}/dm.tif"))]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="JSON file to write the hashes to")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"), help="compare two runs")
    args = parser.parse_args()
    if args.compare:
        before, after = (json.loads(p.read_text()) for p in args.compare)
        differ = [k for k in before if before[k] != after.get(k)]
        print(f"identical: {len(before) - len(differ)} of {len(before)}; differ: {differ or 'none'}")
        sys.exit(1 if differ else 0)
    if args.out is None:
        parser.error("give the JSON file to write (or --compare BEFORE AFTER)")
    hashes = output_hashes()
    args.out.write_text(json.dumps(hashes, indent=1))
    print(json.dumps(hashes))


if __name__ == "__main__":
    main()
