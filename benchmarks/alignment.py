"""How much ``align=True`` helps: a synthetic stack with known drift, and shifts on real stacks.

.venv/bin/python benchmarks/alignment.py [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from acnn_fusion.core.align import estimate_shifts
from acnn_fusion.core.imageops import joint_unit_range, to_grey
from acnn_fusion.synthetic import render_stack
from real_stacks import _stack_array

REPO = Path(__file__).resolve().parents[1]


def synthetic() -> None:
    sharp = data.astronaut()[::2, ::2, 1]
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    n = 9
    case = render_stack(sharp, (n - 1) * (0.7 * xx + 0.3 * yy), n, radius_per_slice=1.5)
    drift = np.cumsum(np.random.default_rng(0).normal(0, 1.5, (n, 2)), axis=0)
    drifted = np.stack(
        [
            ndimage.shift(p.astype(float), s, order=1, mode="nearest").round().astype(p.dtype)
            for p, s in zip(case.stack, drift, strict=True)
        ]
    )
    truth = ndimage.shift(case.depth_index, drift[n // 2], order=0, mode="nearest").astype(int)
    inner = (slice(16, -16), slice(16, -16))
    for align in (False, True):
        result = fuse_stack(drifted, align=align)
        accuracy = np.mean(np.abs(result.depth_map[inner].astype(int) - truth[inner]) <= 1)
        print(
            f"synthetic, drift up to {np.abs(drift - drift[n // 2]).max():.1f} px, align={align}: "
            f"depth within ±1 slice {accuracy:.1%}"
        )


def real(shared: Path) -> None:
    root = shared / "eval/stacks"
    for name in ("metallographic_mufoc/mufoc_1_1", "macro_pcb", "brightfield_cells_sephace/init_zstack.tif"):
        stack = _stack_array(root / name)
        grey = np.stack(joint_unit_range(*[to_grey(s) for s in stack], source_dtype=stack.dtype))
        shifts = estimate_shifts(grey)
        print(
            f"{name}: estimated shifts (dy, dx) per slice, px: "
            + " ".join(f"({dy:+.1f},{dx:+.1f})" for dy, dx in shifts)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    args = parser.parse_args()
    synthetic()
    if (args.shared / "eval/stacks").is_dir():
        real(args.shared)


if __name__ == "__main__":
    main()
