"""Fold the real focal stacks in ../shared/data/eval/stacks; montages and timings.

    .venv/bin/python benchmarks/real_stacks.py [--shared ../shared/data] [--out docs]

For each stack: the ACNN (``features`` strategy) and the variance-projection baseline,
wall time of each, and a PNG montage (a middle slice, ACNN fused, ACNN depth, variance
fused, variance depth) in ``docs/images/stacks/``; a Markdown table in ``docs/stacks.md``.
No ground truth exists for these stacks: the montages are for looking.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from skimage.transform import resize

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from acnn_fusion.io import read_stack, write_image
from baselines import projection
from figures import _heat

REPO = Path(__file__).resolve().parents[1]
STACKS = [
    "brightfield_skeleton_edf/stack.tif",
    "brightfield_cells_sephace/fine_zstack.tif",
    "brightfield_cells_sephace/init_zstack.tif",
    "metallographic_mufoc/mufoc_1_1",
    "metallographic_mufoc/mufoc_1_2",
    "lightsheet_mitochondria_uint16",
    "macro_pcb",
    "gacn_v4_component",
]


def _show(image: np.ndarray, width: int) -> np.ndarray:
    image = image.astype(np.float64)
    lo, hi = np.percentile(image, [0.5, 99.5])
    image = np.clip((image - lo) / max(hi - lo, 1e-9), 0, 1)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    height = round(image.shape[0] * width / image.shape[1])
    return resize(image[..., :3], (height, width), anti_aliasing=True)


def _stack_array(path: Path) -> np.ndarray:
    if path.is_dir() and "macro_pcb" in path.name:  # skip the reference result in that folder
        planes = [p for p in sorted(path.iterdir()) if p.stem != "expected"]
        from acnn_fusion.io import read_image

        return np.stack([read_image(p) for p in planes])
    stack = read_stack(path)
    data, axes = stack.data, stack.axes
    if "Z" in axes and axes.index("Z") != 0:
        data = np.moveaxis(data, axes.index("Z"), 0)
    if data.ndim == 4 and data.shape[-1] not in (3, 4):
        data = data[..., 0]
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--only", nargs="*")
    args = parser.parse_args()
    root = args.shared / "eval/stacks"
    if not root.is_dir():
        print(f"no stacks under {root}; nothing to do")
        return
    lines = [
        "| stack | slices × size, dtype | ACNN s | variance projection s | ACNN vs variance depth ±1 |",
        "|---|---|---|---|---|",
    ]
    for name in args.only or STACKS:
        data = _stack_array(root / name)
        start = time.perf_counter()
        result = fuse_stack(data)
        acnn_s = time.perf_counter() - start
        start = time.perf_counter()
        var_fused, var_depth = projection(data, "variance")
        var_s = time.perf_counter() - start
        agree = float(np.mean(np.abs(result.depth_map.astype(int) - var_depth) <= 1))
        n = max(1, data.shape[0] - 1)
        tiles = [
            _show(data[data.shape[0] // 2], 320),
            _show(result.fused, 320),
            resize(_heat(result.depth_map / n), (_show(result.fused, 320).shape[:2])),
            _show(var_fused, 320),
            resize(_heat(var_depth / n), (_show(var_fused, 320).shape[:2])),
        ]
        montage = np.concatenate(tiles, axis=1)
        slug = name.replace("/", "_").replace(".tif", "")
        write_image(args.out / "images/stacks" / f"{slug}.png", np.round(montage * 255).astype(np.uint8))
        shape = "×".join(map(str, data.shape))
        lines.append(f"| {name} | {shape}, {data.dtype} | {acnn_s:.1f} | {var_s:.1f} | {agree:.1%} |")
        lines.append("")
        print(lines[-2], flush=True)
        lines[-1] = f"![{name}](images/stacks/{slug}.png)\n"
    header = (
        "# Real focal stacks\n\nWritten by `benchmarks/real_stacks.py`. Each montage: a middle slice, "
        "ACNN fused, ACNN depth map, variance-projection fused, variance-projection depth map "
        "(depth: dark = first slice, yellow = last). No ground truth exists for these stacks.\n\n"
    )
    table = [line for line in lines if line.startswith("|")]
    images = [line for line in lines if line.startswith("!")]
    images = [line.replace("](images/", "](../images/") for line in images]
    (args.out / "results/real_stacks.md").write_text(header + "\n".join(table) + "\n\n" + "\n".join(images))


if __name__ == "__main__":
    main()
