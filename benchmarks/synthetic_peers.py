"""Ours against enfuse and focus-stack on the synthetic stacks with ground truth.

The 20 synthetic focal stacks of ``quality_stacks.py`` (five pictures, 5/12/30 slices, uint8
colour and uint16 grey, with and without noise) go through ours with default options (fp32,
so the table does not depend on the CPU), the peers as ``peer_montages.py`` runs them
(enfuse through ``../shared/peers/enfuse_stack.sh``; focus-stack with ``--align-keep-size``,
8-bit slices for the uint16 stacks, mapped back) and the variance projection. Scores: PSNR
and SSIM of the fused image against the sharp truth, and the share of textured pixels whose
depth is within ±1 slice of the truth (enfuse makes no depth map).

    .venv/bin/python benchmarks/synthetic_peers.py    # writes docs/results/synthetic_peers.{md,csv}
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from baselines import projection
from peer_montages import focus_stack_binary, focus_stack_of, run_enfuse
from quality_stacks import _textured, synthetic_stacks
from wholeprocess import write_planes

REPO = Path(__file__).resolve().parents[1]
METHODS = ("ours (default, copy)", "enfuse", "focus-stack", "variance projection")


def peers_on(stack: np.ndarray) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    """Fused image and depth map of each peer for one (Z, Y, X[, C]) stack."""
    with tempfile.TemporaryDirectory(prefix="synthetic-peers-") as tmp:
        folder = Path(tmp)
        planes = write_planes(stack, folder)
        enfused, _ = run_enfuse(planes, folder)
        if enfused is not None and enfused.shape != stack.shape[1:]:  # enfuse adds alpha
            enfused = enfused[..., 0] if stack.ndim == 3 else enfused[..., : stack.shape[-1]]
        fs_fused, fs_depth, _ = focus_stack_of(stack, planes, folder)
        if fs_fused is not None and stack.dtype == np.uint16:
            fs_fused = np.clip(fs_fused, 0, 65535)
    if fs_fused is not None and fs_fused.ndim == 3 and stack.ndim == 3:
        fs_fused = fs_fused[..., 0]
    return {"enfuse": (enfused, None), "focus-stack": (fs_fused, fs_depth)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    if focus_stack_binary() is None:
        print("focus-stack not built (bash ../shared/peers/build_focus_stack.sh /work/peers-bin)")
    rows = []
    for name, case in synthetic_stacks():
        sharp, truth, stack = case.sharp, case.depth_index.astype(int), case.stack
        textured = _textured(sharp)
        data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())
        channel_axis = -1 if sharp.ndim == 3 else None
        ours = fuse_stack(stack, precision="fp32")
        methods: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {
            METHODS[0]: (ours.fused, ours.depth_map),
            **peers_on(stack),
            METHODS[3]: projection(stack, "variance"),
        }
        for method, (fused, depth) in methods.items():
            if fused is None:
                continue
            fused = np.asarray(fused, dtype=np.float64)
            within = float("nan")
            if depth is not None:
                error = np.abs(np.rint(np.asarray(depth, dtype=np.float64)).astype(int) - truth)
                within = float(np.mean(error[textured] <= 1))
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "PSNR": peak_signal_noise_ratio(sharp.astype(np.float64), fused, data_range=data_range),
                    "SSIM": structural_similarity(
                        sharp.astype(np.float64), fused, data_range=data_range, channel_axis=channel_axis
                    ),
                    "depth_within_1": within,
                }
            )
        print(
            name, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows if r["case"] == name), flush=True
        )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "synthetic_peers_per_case.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Synthetic stacks: ours against enfuse and focus-stack (benchmarks/synthetic_peers.py)",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs. Means over the stacks each method ran on.",
        "",
        "| method | stacks | PSNR (dB) | SSIM | depth within ±1 slice (textured pixels) "
        "| stacks where ours has the higher PSNR |",
        "|---|---|---|---|---|---|",
    ]
    ours_psnr = {r["case"]: r["PSNR"] for r in rows if r["method"] == METHODS[0]}
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        depth = [r["depth_within_1"] for r in mine if r["depth_within_1"] == r["depth_within_1"]]
        wins = (
            "–"
            if method == METHODS[0]
            else f"{sum(ours_psnr[r['case']] > r['PSNR'] for r in mine)} of {len(mine)}"
        )
        lines.append(
            f"| {method} | {len(mine)} | {np.mean([r['PSNR'] for r in mine]):.2f} "
            f"| {np.mean([r['SSIM'] for r in mine]):.4f} "
            f"| {np.mean(depth):.4f} | {wins} |"
            if depth
            else f"| {method} | {len(mine)} | {np.mean([r['PSNR'] for r in mine]):.2f} "
            f"| {np.mean([r['SSIM'] for r in mine]):.4f} | – | {wins} |"
        )
    (args.out / "synthetic_peers.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
