"""Does the network earn its place? ACNN focus maps against Laplacian-energy focus maps,
every other step of the pipeline the same; paired statistics and model-to-model spread.

    .venv/bin/python benchmarks/network_value.py tune               # pick the baseline
    .venv/bin/python benchmarks/network_value.py test [--model NAME=weights.pt ...] [--sets ...]
    .venv/bin/python benchmarks/network_value.py stats              # paired differences

Only the focus map changes between the "full pipeline" rows: each goes through
``fuse_from_focus_map(a, b, focus, PRESETS["default"])`` (threshold, confidence-gated
region clean-up, boundary refinement, fine Laplacian override, copy composition), exactly
what ``fuse_pair`` does with the network's map. Laplacian-energy focus maps (grey on the
pipeline's joint [0, 1] scale, E = local mean of ∇²g² in a W×W window):

- ``ratio-W``: S = (E_A + f/2) / (E_A + E_B + f), f = the core's ENERGY_FLOOR: a soft
  map, ½ where neither image has detail (so the confidence gate treats flat areas as
  unsure, as the network's map does);
- ``patch``: the network's own structure with the classifier swapped: each 16×16 patch
  (stride 2) scores 1 if its Laplacian energy is higher in A, 0 if lower, ½ if equal, and
  every pixel averages the scores of the patches covering it (``focus_map_from_scores``);
- ``hard-W``: the binary map E_A > E_B (every region then counts as confident).

Also the baselines of ``quality_pairs.py`` (binary Laplacian map, W = 15 and the issue
filer's W = 7, threshold and the paper's 1 % clean-up only).

``tune`` scores the Laplacian variants on 24 synthetic pairs from eight other pictures
(disjoint from the test pairs) and writes the choice; ``test`` scores every method on the
27 synthetic test pairs of ``quality_pairs.synthetic_pairs`` and Lytro-20; ``stats`` writes
per-case paired differences (mean, SD, 95 % bootstrap CI of the mean, sign test). Network in
fp32. Outputs: ``docs/results/network_value_*.{csv,md}``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage, stats
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion.core.inference import compute_focus_map, select_device
from acnn_fusion.core.pipeline import PRESETS, fuse_from_focus_map, grey_pair
from acnn_fusion.core.weights import load_model
from acnn_fusion.io import read_image
from acnn_fusion.metrics import evaluate
from acnn_fusion.synthetic import blob_mask, render_pair
from baselines import fuse_pair_by_measure, hard_map, patch_map, ratio_map
from quality_pairs import _write, synthetic_pairs

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs/results"
#: the shipped model, the two it replaced, a second training run of the ``acnn-2`` recipe, the
#: occlusion-trained candidate and the ``acnn-3`` recipe at wider widths
#: (``benchmarks/candidates/README.md``)
MODELS = {
    "acnn-4": str(REPO / "src/acnn_fusion/weights/acnn_default.pt"),
    "acnn-3": str(REPO / "benchmarks/previous/acnn_3.pt"),
    "acnn-2": str(REPO / "benchmarks/previous/acnn_2.pt"),
    "acnn-1": str(REPO / "benchmarks/previous/acnn_1.pt"),
    "acnn-2-seed1": str(REPO / "benchmarks/candidates/acnn_2_seed1.pt"),
    "acnn-occl": str(REPO / "benchmarks/candidates/acnn_3_occlusion.pt"),
    "acnn-3-w48": str(REPO / "benchmarks/candidates/acnn_3_widths48.pt"),
}


#: the issue filer's baseline: binary 7×7 Laplacian-energy map, threshold and 1 % clean-up
FILER = "lap-binary-7 (1 % clean-up)"


LAPLACIAN_MAPS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "lap-ratio-7": lambda a, b: ratio_map(a, b, 7),
    "lap-ratio-15": lambda a, b: ratio_map(a, b, 15),
    "lap-patch": patch_map,
    "lap-hard-7": lambda a, b: hard_map(a, b, 7),
    "lap-hard-15": lambda a, b: hard_map(a, b, 15),
}


def methods_for(a: np.ndarray, b: np.ndarray, models: dict[str, str], laplacian: list[str]) -> dict:
    """name → (fused, decision) for every network and Laplacian map, full default pipeline."""
    ga, gb = grey_pair(a, b)
    settings = PRESETS["default"]
    out = {}
    for name, path in models.items():
        focus = compute_focus_map(load_model(path), ga, gb, device=select_device("cpu"), precision="fp32")
        result = fuse_from_focus_map(a, b, focus, settings, grey=(ga, gb))
        out[name] = (result.fused, result.decision_map)
    for name in laplacian:
        result = fuse_from_focus_map(a, b, LAPLACIAN_MAPS[name](ga, gb), settings, grey=(ga, gb))
        out[f"{name} (full pipeline)"] = (result.fused, result.decision_map)
    return out


def tuning_pairs() -> list[tuple[str, np.ndarray, object]]:
    """24 pairs from eight scikit-image pictures not in the test set, other masks and seeds."""
    sources = {
        "camera": data.camera(),
        "coins": data.coins(),
        "moon": data.moon(),
        "clock": data.clock(),
        "text": data.text(),
        "ihc": data.immunohistochemistry(),
        "cell": data.cell()[::2, ::2],
        "motorcycle": data.stereo_motorcycle()[0][::2, ::2],
    }
    cases = []
    for i, (name, image) in enumerate(sources.items()):
        image = image[:384, :384]
        mask = blob_mask(image.shape[:2], seed=100 + i)
        for radius, noise in ((3.0, 0.0), (6.0, 0.0), (4.0, 0.01)):
            pair = render_pair(image, mask, radius=radius, noise=noise, seed=50 + i)
            cases.append((f"{name}-r{radius:g}-n{noise:g}", image, pair))
    return cases


def score_synthetic(cases, method_fn) -> list[dict]:
    rows = []
    for name, sharp, pair in cases:
        grey = sharp.astype(float) if sharp.ndim == 2 else sharp.astype(float).mean(-1)
        sd = np.sqrt(np.maximum(ndimage.uniform_filter(grey**2, 7) - ndimage.uniform_filter(grey, 7) ** 2, 0))
        textured = sd > 4.0  # as quality_pairs.py
        channel_axis = -1 if sharp.ndim == 3 else None
        for method, (fused, decision) in method_fn(pair.image_a, pair.image_b).items():
            rows.append(
                {
                    "set": "synthetic",
                    "case": name,
                    "method": method,
                    "decision_accuracy": float(np.mean(decision[textured] == pair.mask[textured])),
                    "PSNR": peak_signal_noise_ratio(sharp, fused, data_range=255),
                    "SSIM": structural_similarity(sharp, fused, data_range=255, channel_axis=channel_axis),
                }
            )
        print(
            name, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows if r["case"] == name), flush=True
        )
    return rows


def score_lytro(shared: Path, method_fn) -> list[dict]:
    rows = []
    for path_a in sorted((shared / "eval/pairs/lytro").glob("lytro-*-A.jpg")):
        name = path_a.name[: -len("-A.jpg")]
        a, b = read_image(path_a), read_image(path_a.with_name(f"{name}-B.jpg"))
        for method, (fused, _) in method_fn(a, b).items():
            s = evaluate(a, b, fused)
            rows.append({"set": "lytro", "case": name, "method": method, "MI": s["MI"], "Qabf": s["Qabf"]})
        print(
            name, "  ".join(f"{r['method']} {r['Qabf']:.4f}" for r in rows if r["case"] == name), flush=True
        )
    return rows


def score_thin(method_fn) -> list[dict]:
    """The thin-structure / defocus-spread scene of ``thin_structures.py`` at radius 3, 4, 6."""
    from acnn_fusion.synthetic import _wrap_defocus, render_thin_scene

    rows = []
    for radius in (3.0, 4.0, 6.0):
        scene = render_thin_scene(384, radius=radius)
        strong_glow = scene.halo & (_wrap_defocus(scene.mask.astype(np.float64), radius) > 0.2)
        for method, (fused, decision) in method_fn(scene.image_a, scene.image_b).items():
            rows.append(
                {
                    "set": "thin",
                    "case": f"r{radius:g}",
                    "method": method,
                    "thin_accuracy": float(decision[scene.thin].mean()),
                    "strong_glow_to_A": float(decision[strong_glow].mean()),
                    "PSNR": float(peak_signal_noise_ratio(scene.sharp, fused, data_range=255)),
                }
            )
        print(
            radius, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows if r["case"] == f"r{radius:g}")
        )
    return rows


def _read(path: Path) -> list[dict]:
    with open(path) as fh:
        return [
            {k: (v if k in ("set", "case", "method") else float(v)) for k, v in r.items()}
            for r in csv.DictReader(fh)
        ]


def _means(rows: list[dict], metrics: list[str]) -> list[dict]:
    out = []
    for m in dict.fromkeys(r["method"] for r in rows):
        sel = [r for r in rows if r["method"] == m]
        out.append(
            {"method": m, **{k: float(np.mean([r[k] for r in sel])) for k in metrics}, "cases": len(sel)}
        )
    return out


def cmd_tune(args: argparse.Namespace) -> None:
    names = list(LAPLACIAN_MAPS)

    def fn(a, b):
        out = methods_for(a, b, {}, names)
        for w in (7, 15):
            out[f"lap-binary-{w} (1 % clean-up)"] = fuse_pair_by_measure(a, b, "laplacian", window=w)
        return out

    rows = score_synthetic(tuning_pairs(), fn)
    _write(rows, args.out / "network_value_tuning_per_case")
    means = sorted(_means(rows, ["decision_accuracy", "PSNR", "SSIM"]), key=lambda r: -r["PSNR"])
    _write(means, args.out / "network_value_tuning_means")
    full = [r for r in means if r["method"].endswith("(full pipeline)")]
    best = full[0]["method"].removesuffix(" (full pipeline)")
    (args.out / "network_value_baseline.json").write_text(
        json.dumps({"baseline": best, "chosen_by": "highest mean PSNR on the tuning pairs"}, indent=1) + "\n"
    )
    for r in means:
        print(r)
    print("chosen:", best)


def cmd_test(args: argparse.Namespace) -> None:
    models = dict(MODELS)
    for spec in args.model or []:
        name, path = spec.split("=", 1)
        models[name] = path
    models = {k: v for k, v in models.items() if Path(v).exists()}
    baseline = json.loads((args.out / "network_value_baseline.json").read_text())["baseline"]
    laplacian = list(dict.fromkeys([baseline, "lap-ratio-7", "lap-ratio-15", "lap-patch"]))

    if args.add:  # only the --model networks, merged into the existing per-case tables
        models = {k: v for k, v in models.items() if k in {s.split("=", 1)[0] for s in args.model or []}}
        laplacian = []

    def fn(a, b):
        out = methods_for(a, b, models, laplacian)
        if not args.add:
            for w in (7, 15):
                out[f"lap-binary-{w} (1 % clean-up)"] = fuse_pair_by_measure(a, b, "laplacian", window=w)
        return out

    for set_name in args.sets:
        if set_name == "lytro":
            rows = score_lytro(args.shared, fn)
        elif set_name == "thin":
            rows = score_thin(fn)
        else:
            rows = score_synthetic(synthetic_pairs() if set_name == "synthetic" else tuning_pairs(), fn)
            for r in rows:
                r["set"] = set_name
        stem = args.out / f"network_value_{set_name}_per_case"
        if args.add:
            kept = [r for r in _read(stem.with_suffix(".csv")) if r["method"] not in models]
            rows = [*kept, *rows]
        _write(rows, stem)


def paired(rows: list[dict], method: str, reference: str, metric: str, rng: np.random.Generator) -> dict:
    """Per-case differences method − reference: mean, SD, bootstrap CI, sign test."""
    by = {(r["case"], r["method"]): r[metric] for r in rows}
    cases = sorted({r["case"] for r in rows})
    d = np.array([by[(c, method)] - by[(c, reference)] for c in cases])
    boot = d[rng.integers(0, len(d), size=(10000, len(d)))].mean(axis=1)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    p = stats.binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return {
        "method": method,
        "reference": reference,
        "metric": metric,
        "cases": len(d),
        "mean_diff": float(d.mean()),
        "sd_diff": float(d.std(ddof=1)),
        "ci95_low": float(np.percentile(boot, 2.5)),
        "ci95_high": float(np.percentile(boot, 97.5)),
        "wins": wins,
        "losses": losses,
        "sign_test_p": float(p),
    }


def cmd_stats(args: argparse.Namespace) -> None:
    baseline = json.loads((args.out / "network_value_baseline.json").read_text())["baseline"]
    fair = f"{baseline} (full pipeline)"
    out_rows, mean_rows = [], []
    synthetic_metrics = ["PSNR", "decision_accuracy", "SSIM"]
    for set_name, metrics in (
        ("synthetic", synthetic_metrics),
        ("lytro", ["MI", "Qabf"]),
        ("tuning", synthetic_metrics),
        ("thin", ["PSNR", "thin_accuracy", "strong_glow_to_A"]),
    ):
        path = args.out / f"network_value_{set_name}_per_case.csv"
        if not path.exists():
            continue
        rows = _read(path)
        methods = list(dict.fromkeys(r["method"] for r in rows))
        nets = [m for m in methods if m.startswith("acnn")]
        others = [m for m in methods if not m.startswith("acnn")]
        for r in _means(rows, metrics):
            mean_rows.append({"set": set_name, **{k: r.get(k, float("nan")) for k in ["method", *metrics]}})
        for metric in metrics:
            rng = np.random.default_rng(0)
            for net in nets:
                for ref in [fair, *[o for o in others if o != fair]]:
                    out_rows.append({"set": set_name, **paired(rows, net, ref, metric, rng)})
            for i, n1 in enumerate(nets):
                for n2 in nets[i + 1 :]:
                    out_rows.append({"set": set_name, **paired(rows, n1, n2, metric, rng)})
    _write(out_rows, args.out / "network_value_paired")
    _write_means(mean_rows, args.out / "network_value_means")
    # the summary: every network against the fair baseline and against each other
    lines = [
        "| set | metric | comparison | mean Δ | SD of Δ | 95 % CI of mean Δ | wins : losses | sign test p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in out_rows:
        if r["reference"] in (fair, FILER) or r["reference"].startswith("acnn"):
            digits = 2 if r["metric"] == "PSNR" else 4
            lines.append(
                f"| {r['set']} ({r['cases']}) | {r['metric']} | {r['method']} − {r['reference']} | "
                f"{r['mean_diff']:+.{digits}f} | {r['sd_diff']:.{digits}f} | "
                f"{r['ci95_low']:+.{digits}f} … {r['ci95_high']:+.{digits}f} | "
                f"{r['wins']} : {r['losses']} | {r['sign_test_p']:.2g} |"
            )
    (args.out / "network_value_summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _write_means(rows: list[dict], stem: Path) -> None:
    keys = [
        "set",
        "method",
        "decision_accuracy",
        "PSNR",
        "SSIM",
        "MI",
        "Qabf",
        "thin_accuracy",
        "strong_glow_to_A",
    ]
    rows = [{k: r.get(k, float("nan")) for k in keys} for r in rows]
    _write(rows, stem)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["tune", "test", "stats"])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--model", action="append", help="NAME=weights.pt, scored next to the models above")
    parser.add_argument(
        "--add", action="store_true", help="`test`: score only the --model networks, add them to the tables"
    )
    parser.add_argument(
        "--sets",
        nargs="+",
        choices=["synthetic", "lytro", "tuning", "thin"],
        default=["synthetic", "lytro"],
        help="test sets for `test` (tuning: the 24 pairs the baseline was chosen on; thin: the "
        "thin-structure / defocus-spread scene of thin_structures.py, 3 radii)",
    )
    args = parser.parse_args()
    {"tune": cmd_tune, "test": cmd_test, "stats": cmd_stats}[args.command](args)


if __name__ == "__main__":
    main()
