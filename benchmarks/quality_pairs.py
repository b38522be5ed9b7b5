"""Pair-fusion quality: Lytro-20 metrics and synthetic pairs with ground truth.

    .venv/bin/python benchmarks/quality_pairs.py [--shared ../shared/data] [--out docs/results]

Methods side by side in one run: the ACNN at β=0.5 (default) and β=0.9 (paper preset),
decision-map baselines (local variance, Laplacian energy; threshold and 1 % clean-up), the
Laplacian-energy patch classifier's focus map through the whole default pipeline (the
network's map swapped out, ``benchmarks/network_value.py``), a Laplacian pyramid, and on
Lytro the published fused images of Liu et al.'s CNN, all scored by the same metric code.
Writes CSV and Markdown tables to ``--out``.
The network runs in fp32, so the numbers do not depend on the CPU (bf16, the default
where native, changes 0.05 % of the Lytro-20 decision pixels: ``benchmarks/levers.py``).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import numpy as np
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion.core.inference import compute_focus_map, select_device
from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, grey_pair
from acnn_fusion.core.weights import load_model
from acnn_fusion.io import read_image
from acnn_fusion.metrics import evaluate
from acnn_fusion.synthetic import blob_mask, render_pair
from baselines import fuse_pair_by_measure, fuse_pair_full_pipeline, laplacian_pyramid_fuse

REPO = Path(__file__).resolve().parents[1]


def acnn_fusions(a: np.ndarray, b: np.ndarray, weights: str | None = None) -> dict[str, tuple]:
    """ACNN fused images and decision maps for each preset, one network run."""
    ga, gb = grey_pair(a, b)
    focus = compute_focus_map(load_model(weights), ga, gb, device=select_device("auto"), precision="fp32")
    out = {}
    for preset, settings in PRESETS.items():
        result = fuse_from_focus_map(a, b, focus, settings)
        out[f"acnn-{preset}"] = (result.fused, result.decision_map)
    return out


def all_methods(a: np.ndarray, b: np.ndarray, weights: str | None = None) -> dict[str, tuple]:
    methods = acnn_fusions(a, b, weights)
    for measure in ("variance", "laplacian"):
        methods[measure] = fuse_pair_by_measure(a, b, measure)
    methods["laplacian (full pipeline)"] = fuse_pair_full_pipeline(a, b)
    methods["pyramid"] = (laplacian_pyramid_fuse([a, b]), None)
    return methods


def lytro(shared: Path, out: Path, weights: str | None) -> list[dict]:
    pairs = sorted((shared / "eval/pairs/lytro").glob("lytro-*-A.jpg"))
    reference = shared / "eval/reference/liu2017_cnn_lytro"
    rows = []
    for path_a in pairs:
        name = path_a.name[: -len("-A.jpg")]
        a, b = read_image(path_a), read_image(path_a.with_name(f"{name}-B.jpg"))
        start = time.perf_counter()
        methods = all_methods(a, b, weights)
        seconds = time.perf_counter() - start
        cnn = reference / f"{name}-cnn.png"
        if cnn.exists():
            methods["liu2017-cnn (published)"] = (read_image(cnn), None)
        for method, (fused, decision) in methods.items():
            scores = evaluate(a, b, fused)
            share_a = float(decision.mean()) if decision is not None else float("nan")
            rows.append({"pair": name, "method": method, **scores, "share_A": share_a})
        print(
            f"{name}: {seconds:.1f} s "
            + "  ".join(f"{r['method']} {r['MI']:.3f}/{r['Qabf']:.4f}" for r in rows[-len(methods) :]),
            flush=True,
        )
    _write(rows, out / "lytro_per_pair")
    _write(_means(rows), out / "lytro_means")
    return rows


def synthetic_pairs() -> list[tuple[str, np.ndarray, object]]:
    """Pairs from scikit-image images the model never saw, disk and Gaussian-like blur, noise."""
    sources = {
        "astronaut": data.astronaut(),
        "coffee": data.coffee(),
        "chelsea": data.chelsea(),
        "rocket": data.rocket(),
        "retina": data.retina()[::2, ::2],
        "brick": data.brick(),
        "gravel": data.gravel(),
        "grass": data.grass(),
        "hubble": data.hubble_deep_field()[::2, ::2],
    }
    cases = []
    for i, (name, image) in enumerate(sources.items()):
        image = image[:384, :384]
        mask = blob_mask(image.shape[:2], seed=10 + i)
        for radius, noise in ((3.0, 0.0), (6.0, 0.0), (4.0, 0.01)):
            pair = render_pair(image, mask, radius=radius, noise=noise, seed=i)
            cases.append((f"{name}-r{radius:g}-n{noise:g}", image, pair))
    return cases


def synthetic(out: Path, weights: str | None) -> list[dict]:
    from scipy import ndimage

    rows = []
    for name, sharp, pair in synthetic_pairs():
        grey = sharp.astype(float) if sharp.ndim == 2 else sharp.astype(float).mean(-1)
        local_sd = np.sqrt(
            np.maximum(ndimage.uniform_filter(grey**2, 7) - ndimage.uniform_filter(grey, 7) ** 2, 0)
        )
        textured = local_sd > 4.0
        for method, (fused, decision) in all_methods(pair.image_a, pair.image_b, weights).items():
            channel_axis = -1 if sharp.ndim == 3 else None
            row = {
                "case": name,
                "method": method,
                "decision_accuracy": float(np.mean(decision[textured] == pair.mask[textured]))
                if decision is not None
                else float("nan"),
                "PSNR": peak_signal_noise_ratio(sharp, fused, data_range=255),
                "SSIM": structural_similarity(sharp, fused, data_range=255, channel_axis=channel_axis),
            }
            rows.append(row)
        print(name, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows[-6:]), flush=True)
    _write(rows, out / "synthetic_pairs_per_case")
    _write(_means(rows, key="case"), out / "synthetic_pairs_means")
    return rows


def _means(rows: list[dict], key: str = "pair") -> list[dict]:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    numeric = [k for k in rows[0] if k not in (key, "method")]
    return [
        {"method": m, **{k: float(np.nanmean([r[k] for r in rows if r["method"] == m])) for k in numeric}}
        for m in methods
    ]


def _write(rows: list[dict], stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    with open(stem.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r[k]) for k in keys) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--weights", help="weights file to score instead of the shipped one")
    parser.add_argument("--only", choices=["lytro", "synthetic"])
    args = parser.parse_args()
    if args.only != "synthetic":
        if (args.shared / "eval/pairs/lytro").is_dir():
            for row in _means(lytro(args.shared, args.out, args.weights)):
                print(row)
        else:
            print(f"Lytro pairs not found under {args.shared}; skipping")
    if args.only != "lytro":
        for row in _means(synthetic(args.out, args.weights), key="case"):
            print(row)


if __name__ == "__main__":
    main()
