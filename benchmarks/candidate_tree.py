"""A checkout of this repository whose shipped weights are a candidate model's, so that every
benchmark scores the candidate exactly as it would ship (its ONNX export included).

    .venv/bin/python benchmarks/candidate_tree.py CANDIDATE.pt /tmp/candidate [--revision HEAD]
    PYTHONPATH=/tmp/candidate/src .venv/bin/python /tmp/candidate/benchmarks/quality_stacks.py --out OUT
    git worktree remove --force /tmp/candidate

The candidate's ``.pt`` and ``.json`` (what ``acnn-fusion train`` wrote) replace
``src/acnn_fusion/weights/acnn_default.{pt,json}`` in a detached worktree at ``--revision``;
``acnn-fusion export-onnx`` then writes and records the ONNX export there, as for a release.
Nothing in this checkout changes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import wholeprocess as wp

WEIGHTS = Path("src/acnn_fusion/weights")


def make_candidate_tree(candidate: Path, tree: Path, revision: str = "HEAD") -> Path:
    """Check out ``revision`` at ``tree`` with ``candidate`` installed as the shipped weights."""
    meta_path = candidate.with_suffix(".json")
    if not candidate.is_file() or not meta_path.is_file():
        raise SystemExit(f"{candidate}: the .pt and its .json are both needed")
    wp.add_worktree(revision, tree)
    shipped = tree / WEIGHTS
    for old in shipped.glob("acnn_default.*"):
        old.unlink()
    shutil.copyfile(candidate, shipped / "acnn_default.pt")
    meta = json.loads(meta_path.read_text())
    meta.pop("onnx", None)  # an export of other weights never applies
    meta["model_version"] = f"candidate {candidate.stem}"
    (shipped / "acnn_default.json").write_text(json.dumps(meta, indent=2))
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    code = "from acnn_fusion.cli import main; raise SystemExit(main(['export-onnx']))"
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=tree)
    return tree


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("candidate", type=Path, help="weights .pt (with its .json beside it)")
    parser.add_argument("tree", type=Path, help="where to check out (must not exist)")
    parser.add_argument("--revision", default="HEAD")
    args = parser.parse_args()
    tree = make_candidate_tree(args.candidate.resolve(), args.tree.resolve(), args.revision)
    print(f"candidate tree: {tree}\nrun benchmarks with PYTHONPATH={tree / 'src'}")


if __name__ == "__main__":
    main()
