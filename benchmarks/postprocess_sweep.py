"""Sweep the decision step (threshold, region size, boundary refinement) on Lytro-20.

    .venv/bin/python benchmarks/postprocess_sweep.py [--shared ../shared/data]

The network runs once per pair (focus maps cached in memory); each variant of the
decision step is then scored with MI and Q^AB/F. Prints one line per variant (means).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from acnn_fusion.core.inference import compute_focus_map, select_device
from acnn_fusion.core.pipeline import FusionSettings, blend, decide, grey_pair
from acnn_fusion.core.weights import load_model
from acnn_fusion.io import read_image
from acnn_fusion.metrics import fusion_mi, q_abf, to_metric_grey

REPO = Path(__file__).resolve().parents[1]


def variants() -> dict[str, dict]:
    out = {}
    for threshold in (0.5, 0.7, 0.9):
        for min_region in (0.005, 0.01, 0.02):
            out[f"beta={threshold} region={min_region}"] = {
                "settings": FusionSettings(threshold=threshold, min_region=min_region)
            }
    for radius in (2, 4, 8):
        for window in (3, 5, 7):
            out[f"beta=0.5 region=0.01 refine r={radius} w={window}"] = {
                "settings": FusionSettings(),
                "refine": {"radius": radius, "window": window},
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--weights")
    args = parser.parse_args()
    from acnn_fusion.core.pipeline import refine_boundary

    lytro = args.shared / "eval/pairs/lytro"
    model, device = load_model(args.weights), select_device("auto")
    cases = []
    for path_a in sorted(lytro.glob("lytro-*-A.jpg")):
        a, b = read_image(path_a), read_image(Path(str(path_a).replace("-A.jpg", "-B.jpg")))
        ga, gb = grey_pair(a, b)
        cases.append((a, b, ga, gb, compute_focus_map(model, ga, gb, device=device)))
    for name, variant in variants().items():
        mi, qabf = [], []
        for a, b, ga, gb, focus in cases:
            decision = decide(focus, variant["settings"])
            if "refine" in variant:
                decision = refine_boundary(decision, ga, gb, **variant["refine"])
            fused = blend(a, b, decision)
            ma, mb, mf = to_metric_grey(a), to_metric_grey(b), to_metric_grey(fused)
            mi.append(fusion_mi(ma, mb, mf))
            qabf.append(q_abf(ma, mb, mf))
        print(
            f"{name:45s} MI {np.mean(mi):.4f}  Qabf {np.mean(qabf):.4f}  "
            f"min dQabf-vs-first {np.min(qabf):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
