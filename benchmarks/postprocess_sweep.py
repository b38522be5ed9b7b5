"""Sweep the decision step (threshold, region size, boundary refinement) on Lytro-20.

    .venv/bin/python benchmarks/postprocess_sweep.py [--shared ../shared/data] [--weights W]
        [--set basic|extra|all] [--threads 1]

The network runs once per pair (focus maps cached in memory); each variant of the
decision step is then scored with MI and Q^AB/F. Prints one line per variant: the means,
the worst pair's Q^AB/F and the worst per-pair margin against the published CNN
(``liu2017_cnn_lytro``, when present).

``extra`` holds the variants tried for issue 3 beyond the original sweep (all symmetric
under swapping A and B): smoothing the focus map before the threshold, handing pixels
where neither source is clearly sharper to the image's majority source, and a soft
guided-filter boundary (fused pixels are then blends, not exact copies).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from acnn_fusion.core.inference import compute_focus_map, select_device
from acnn_fusion.core.pipeline import FusionSettings, blend, decide, grey_pair, refine_boundary
from acnn_fusion.core.weights import load_model
from acnn_fusion.io import read_image
from acnn_fusion.metrics import fusion_mi, q_abf, to_metric_grey

REPO = Path(__file__).resolve().parents[1]
DEFAULT = FusionSettings()


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide), box windows of side 2·radius+1."""
    size = 2 * radius + 1

    def box(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size, mode="reflect")

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i**2
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


def soft_blend(image_a: np.ndarray, image_b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    w = np.clip(weight, 0.0, 1.0)
    w = w if image_a.ndim == 2 else w[..., None]
    fused = w * image_a.astype(np.float64) + (1 - w) * image_b.astype(np.float64)
    if image_a.dtype.kind in "ui":
        fused = np.clip(np.round(fused), 0, np.iinfo(image_a.dtype).max)
    return fused.astype(image_a.dtype)


def laplacian_energy(grey: np.ndarray, window: int) -> np.ndarray:
    return ndimage.uniform_filter(ndimage.laplace(grey) ** 2, window)


def decision(case: dict, variant: dict) -> np.ndarray:
    """The decision map of one variant (bool, True = A)."""
    focus, ga, gb = case["focus"], case["ga"], case["gb"]
    settings = variant.get("settings", DEFAULT)
    if variant.get("smooth"):
        focus = ndimage.gaussian_filter(focus, variant["smooth"])
    if "ambiguous" in variant:
        window, rel = variant["ambiguous"]
        key = ("energy", window)
        if key not in case:
            case[key] = (laplacian_energy(ga, window), laplacian_energy(gb, window))
        ea, eb = case[key]
        binary = focus > settings.threshold
        majority = bool(binary.mean() >= 0.5)
        unclear = np.abs(ea - eb) <= rel * (ea + eb) + 1e-9
        focus = np.where(unclear, float(majority), focus)
    d = decide(focus, settings)
    if settings.refine_radius > 0:
        d = refine_boundary(d, ga, gb, radius=settings.refine_radius, window=settings.refine_window)
    return d


def variants(which: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    if which in ("basic", "all"):
        for threshold in (0.5, 0.7, 0.9):
            for min_region in (0.005, 0.01, 0.02):
                out[f"beta={threshold} region={min_region} no refine"] = {
                    "settings": FusionSettings(threshold=threshold, min_region=min_region, refine_radius=0)
                }
        for radius in (2, 4, 8):
            for window in (3, 5, 7):
                out[f"beta=0.5 region=0.01 refine r={radius} w={window}"] = {
                    "settings": FusionSettings(refine_radius=radius, refine_window=window)
                }
    if which in ("extra", "all"):
        out["default (beta=0.5 region=0.01 refine r4 w5)"] = {}
        for min_region in (0.02, 0.03, 0.05):
            out[f"region={min_region} refine r4 w5"] = {"settings": FusionSettings(min_region=min_region)}
        for sigma in (2, 4, 8):
            out[f"smooth focus sigma={sigma}"] = {"smooth": sigma}
        for window in (9, 15, 31):
            for rel in (0.05, 0.1, 0.2):
                out[f"unclear->majority w={window} rel={rel}"] = {"ambiguous": (window, rel)}
        for window, rel in ((15, 0.1), (31, 0.1)):
            for min_region in (0.02, 0.05):
                out[f"unclear->majority w={window} rel={rel} region={min_region}"] = {
                    "ambiguous": (window, rel),
                    "settings": FusionSettings(min_region=min_region),
                }
        for radius, eps in ((2, 0.01), (4, 0.01), (8, 0.1), (8, 0.01)):
            out[f"guided soft boundary r={radius} eps={eps}"] = {"guided": (radius, eps)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--weights")
    parser.add_argument("--set", choices=["basic", "extra", "all"], default="all")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    lytro = args.shared / "eval/pairs/lytro"
    reference = args.shared / "eval/reference/liu2017_cnn_lytro"
    model, device = load_model(args.weights), select_device("auto")
    cases = []
    for path_a in sorted(lytro.glob("lytro-*-A.jpg")):
        name = path_a.name[: -len("-A.jpg")]
        a, b = read_image(path_a), read_image(path_a.with_name(f"{name}-B.jpg"))
        ga, gb = grey_pair(a, b)
        ma, mb = to_metric_grey(a), to_metric_grey(b)
        case = {"a": a, "b": b, "ga": ga, "gb": gb, "ma": ma, "mb": mb}
        case["focus"] = compute_focus_map(model, ga, gb, device=device, precision="fp32")
        cnn = reference / f"{name}-cnn.png"
        case["cnn_qabf"] = q_abf(ma, mb, to_metric_grey(read_image(cnn))) if cnn.exists() else np.nan
        cases.append(case)
    for name, variant in variants(args.set).items():
        mi, qabf, margin = [], [], []
        for case in cases:
            d = decision(case, variant)
            if "guided" in variant:
                radius, eps = variant["guided"]
                weight = guided_filter(case["ga"].astype(np.float64), d.astype(np.float64), radius, eps)
                fused = soft_blend(case["a"], case["b"], weight)
            else:
                fused = blend(case["a"], case["b"], d)
            mf = to_metric_grey(fused)
            mi.append(fusion_mi(case["ma"], case["mb"], mf))
            qabf.append(q_abf(case["ma"], case["mb"], mf))
            margin.append(qabf[-1] - case["cnn_qabf"])
        print(
            f"{name:50s} MI {np.mean(mi):.4f}  Qabf {np.mean(qabf):.4f}  "
            f"worst pair Qabf {np.min(qabf):.4f}  worst vs CNN {np.nanmin(margin):+.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
