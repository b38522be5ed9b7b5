"""Does bf16 inference cost quality? fp32 against bf16 on the synthetic stacks with ground truth.

On a CPU with native bf16, ``precision="auto"`` runs large inputs through torch in bf16 (about
2x faster than fp32 there, ``docs/performance.md``). bf16 changes a share of the depth pixels
on deep stacks (near-ties between neighbouring slices); this benchmark asks whether that costs
anything against the truth: PSNR of the fused image, depth within +-1 slice on textured pixels,
and the share of depth pixels that differ between the two precisions. Both runs use the torch
runtime so that only the precision differs.

    .venv/bin/python benchmarks/precision_quality.py      # writes docs/results/precision_quality.md
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio

from acnn_fusion import fuse_stack
from quality_stacks import _textured, synthetic_stacks

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    args = parser.parse_args()
    rows = []
    for name, case in synthetic_stacks():
        sharp, truth = case.sharp, case.depth_index.astype(int)
        textured = _textured(sharp)
        data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())
        row: dict[str, float | str] = {"case": name}
        depths = {}
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            result = fuse_stack(case.stack, runtime="torch", precision=precision)
            row[f"seconds_{precision}"] = time.perf_counter() - start
            row[f"PSNR_{precision}"] = peak_signal_noise_ratio(sharp, result.fused, data_range=data_range)
            depth = result.depth_map.astype(int)
            row[f"depth_{precision}"] = float(np.mean(np.abs(depth[textured] - truth[textured]) <= 1))
            depths[precision] = depth
        row["depth_pixels_differ"] = float(np.mean(depths["fp32"] != depths["bf16"]))
        rows.append(row)
        print(
            f"{name}: PSNR {row['PSNR_fp32']:.2f} / {row['PSNR_bf16']:.2f} dB, "
            f"depth {row['depth_fp32']:.4f} / {row['depth_bf16']:.4f}, "
            f"differ {row['depth_pixels_differ']:.4%}",
            flush=True,
        )
    keys = ["PSNR_fp32", "PSNR_bf16", "depth_fp32", "depth_bf16", "depth_pixels_differ"]
    means = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    worst_psnr_loss = max(float(r["PSNR_fp32"]) - float(r["PSNR_bf16"]) for r in rows)
    load = os.getloadavg()[0]
    lines = [
        "# bf16 against fp32 on the synthetic stacks (benchmarks/precision_quality.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f} at the end; torch runtime.",
        "",
        "| measure | fp32 | bf16 |",
        "|---|---|---|",
        f"| PSNR, mean of {len(rows)} stacks (dB) | {means['PSNR_fp32']:.2f} | {means['PSNR_bf16']:.2f} |",
        f"| depth within ±1 slice, textured pixels | {means['depth_fp32']:.4f} | {means['depth_bf16']:.4f} |",
        f"| depth pixels that differ from fp32 | – | {means['depth_pixels_differ']:.3%} |",
        f"| worst PSNR loss of bf16 on one stack (dB) | – | {worst_psnr_loss:.3f} |",
        "",
        "| case | PSNR fp32 | PSNR bf16 | depth fp32 | depth bf16 | depth pixels differ |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['PSNR_fp32']:.2f} | {r['PSNR_bf16']:.2f} | {r['depth_fp32']:.4f} "
            f"| {r['depth_bf16']:.4f} | {r['depth_pixels_differ']:.3%} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precision_quality.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
