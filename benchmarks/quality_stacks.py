"""Stack folding against extended-depth-of-field baselines on synthetic stacks with ground truth.

    .venv/bin/python benchmarks/quality_stacks.py [--out docs/results]
    .venv/bin/python benchmarks/quality_stacks.py --speed  # 1024²×32 u16: with/without depth regularisation

Stacks are rendered from scikit-image pictures (256×256) with a smooth tilted depth surface
and an occluding foreground disc in the nearest slice; 5 to 30 slices; uint8 RGB and uint16
grey; with and without noise. Methods: ACNN (``features`` and ``pairwise``), variance and
Sobel projection (15×15 windows), Laplacian-pyramid fusion. Scores: PSNR and SSIM of the
fused image against the sharp original, and depth accuracy (share of textured pixels whose
slice is within ±1 of the truth). The network runs in fp32, so the scores do not depend on
the CPU; the seconds column is fp32 too. ``acnn-features`` is the default fold (regularised
depth, ``depth_smoothing=2``), ``acnn-features-unregularised`` the same fold with
``depth_smoothing=0`` (each 2×2 block takes its own best slice: the fold before issue 13),
``acnn-features-seams-off`` the default with ``seams="off"`` (boundaries not moved to where the
slices agree, :mod:`acnn_fusion.core.seams`).
A second table (``synthetic_stacks_flat_*``) scores stacks with a flat dark region in
uint16 camera noise (:func:`~acnn_fusion.synthetic.render_flat_region_stack`): depth accuracy
inside the flat region, where only the neighbours can tell the depth.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from acnn_fusion.core.imageops import GREY_WEIGHTS
from acnn_fusion.core.stack import STRATEGIES, FocusImage
from acnn_fusion.synthetic import render_flat_region_stack, render_stack
from baselines import laplacian_pyramid_fuse, projection
from quality_pairs import _means, _write

REPO = Path(__file__).resolve().parents[1]


def synthetic_stacks():
    """(name, stack result) pairs covering slice counts, dtypes and noise."""
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    disc = (yy - 0.55) ** 2 + (xx - 0.4) ** 2 < 0.05
    sources = {
        "astronaut-grey16": (data.astronaut()[::2, ::2] @ GREY_WEIGHTS * 16).astype(np.uint16),
        "coffee-rgb8": data.coffee()[:256, 100:356],
        "brick-grey16": (data.brick()[:256, :256].astype(np.float64) * 12).astype(np.uint16),
        "ihc-rgb8": data.immunohistochemistry()[200:456, 200:456],
        "gravel-grey8": data.gravel()[:256, :256],
    }
    cases = []
    for i, (name, sharp) in enumerate(sources.items()):
        for n_slices, noise in ((5, 0.0), (12, 0.0), (30, 0.0), (12, 0.01)):
            depth = (n_slices - 1) * np.clip(0.7 * xx + 0.3 * yy + 0.1 * np.sin(6 * yy), 0, 1)
            depth[disc] = 0.0
            stack = render_stack(
                sharp, depth, n_slices, radius_per_slice=1.2 * 12 / n_slices, noise=noise, seed=i
            )
            cases.append((f"{name}-z{n_slices}-n{noise:g}", stack))
    return cases


def _textured(sharp: np.ndarray) -> np.ndarray:
    grey = sharp.astype(np.float64) if sharp.ndim == 2 else sharp.astype(np.float64) @ GREY_WEIGHTS
    grey = grey / grey.max()
    sd = np.sqrt(np.maximum(ndimage.uniform_filter(grey**2, 7) - ndimage.uniform_filter(grey, 7) ** 2, 0))
    return sd > 0.02


def flat_region_stacks():
    """(name, stack) pairs: the tilted specimens with a flat dark disc, uint16, camera noise."""
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    flat = (yy - 0.45) ** 2 + (xx - 0.6) ** 2 < 0.06
    sources = {
        "astronaut": data.astronaut()[::2, ::2] @ GREY_WEIGHTS,
        "brick": data.brick()[:256, :256].astype(np.float64),
        "gravel": data.gravel()[:256, :256].astype(np.float64),
    }
    cases = []
    for i, (name, grey) in enumerate(sources.items()):
        sharp = (grey / 255.0 * 3000 + 300).astype(np.uint16)
        for n_slices, noise in ((12, 0.005), (30, 0.01)):
            depth = (n_slices - 1) * np.clip(0.7 * xx + 0.3 * yy, 0, 1)
            case = render_flat_region_stack(
                sharp, depth, n_slices, flat, radius_per_slice=1.2 * 12 / n_slices, noise=noise, seed=i
            )
            cases.append((f"{name}-flat-z{n_slices}-n{noise:g}", case))
    return cases


def _flat_table(out: Path, cache: Path | None = None) -> None:
    rows = []
    for name, case in flat_region_stacks():
        truth = case.depth_index.astype(int)
        inner = ndimage.binary_erosion(case.flat, iterations=8)
        ours, plain, _, unplaced = fold_both(
            case.stack, cache=None if cache is None else cache / f"synth_{name}.npy"
        )
        methods = {
            "acnn-features": ours.depth_map,
            "acnn-features-seams-off": unplaced.depth_map,
            "acnn-features-unregularised": plain.depth_map,
            "variance-projection": projection(case.stack, "variance")[1],
            "sobel-projection": projection(case.stack, "sobel")[1],
        }
        for method, depth in methods.items():
            error = np.abs(depth.astype(int) - truth)
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "flat_depth_within_1": float(np.mean(error[inner] <= 1)),
                    "textured_depth_within_1": float(np.mean(error[~case.flat & _textured(case.sharp)] <= 1)),
                    "outliers": depth_outliers(depth),
                }
            )
        print(name, "  ".join(f"{r['method']} {r['flat_depth_within_1']:.3f}" for r in rows[-5:]), flush=True)
    _write(rows, out / "synthetic_stacks_flat_per_case")
    means = _means(rows, key="case")
    _write(means, out / "synthetic_stacks_flat_means")
    for row in means:
        print(row)


def fold_both(stack: np.ndarray, smoothing: float = 2.0, cache: Path | None = None):
    """The ``features`` fold in fp32 with regularised depth (``depth_smoothing=smoothing``, the
    default) and unregularised (``depth_smoothing=0``, each block its own best slice) from one
    network pass: the score volume is computed once and regularised both ways, as
    ``fuse_stack`` does. With ``cache`` the score volume is read from that .npy file if it
    exists, else written there. Returns (default result, unregularised result, seconds of the
    default; the network's share is 0 when the volume came from the cache), default result with
    ``seams="off"``). Unregularised means the fold before issue 13: no seam placement either."""
    import torch

    from acnn_fusion.core.compose import compose_stack
    from acnn_fusion.core.inference import DEFAULT_TILE
    from acnn_fusion.core.stack import StackResult, _fold_volume, _score_volume, _standardise
    from acnn_fusion.core.weights import load_model

    start = time.perf_counter()
    standard = _standardise(stack, 0, -1 if stack.ndim == 4 else None)
    grey = FocusImage(standard)
    if cache is not None and cache.exists():
        volume = np.load(cache)
    else:
        volume = _score_volume(load_model(), grey, torch.device("cpu"), DEFAULT_TILE, "fp32", None)
        if cache is not None:
            np.save(cache, np.asarray(volume))
    network = time.perf_counter() - start
    results, seconds = [], 0.0
    for value, seams in ((smoothing, True), (0.0, False), (smoothing, False)):
        start = time.perf_counter()
        depth, confidence = _fold_volume(volume, value, grey.shape[1:], grey if seams else None)
        results.append(
            StackResult(
                fused=compose_stack(standard, depth),
                depth_map=depth,
                confidence=confidence,
                strategy="features",
            )
        )
        if value == smoothing and seams:
            seconds = network + time.perf_counter() - start
    return results[0], results[1], seconds, results[2]


def depth_outliers(depth: np.ndarray, slices: int = 2, window: int = 9) -> float:
    """Share of isolated depth outliers: pixels whose depth differs by more than ``slices`` from
    the median of their ``window``×``window`` neighbourhood (edges repeated)."""
    median = ndimage.median_filter(depth.astype(np.int32), size=window, mode="nearest")
    return float(np.mean(np.abs(depth.astype(np.int32) - median) > slices))


def speed(before_revision: str | None = None) -> None:
    """The cost of depth regularisation on the speed benchmark's 1024²×32 uint16 stack.

    The two folds share everything up to the score volume (the network); the run times that
    once (default precision, as a user runs it), then, on the same volume, the fold's last
    steps both ways: the per-block maximum (``depth_smoothing=0``, the fold before) and the
    regularisation (``depth_smoothing=2``) with ``seams="off"`` and with the default seam
    placement, each followed by the pixel expansion and the gather. Before = network + plain
    steps, after = network + regularised steps.
    """
    import torch

    from acnn_fusion.core.compose import compose_stack
    from acnn_fusion.core.inference import DEFAULT_TILE, select_device
    from acnn_fusion.core.stack import _fold_volume, _score_volume, _standardise
    from acnn_fusion.core.weights import load_model
    from speed import textured

    stack = textured((32, 1024, 1024), np.uint16, 0)
    model = load_model()
    fuse_stack(stack[:2, :64, :64])  # warm up
    start = time.perf_counter()
    standard = _standardise(stack, 0, None)
    grey = FocusImage(standard)
    volume = _score_volume(model, grey, select_device("auto"), DEFAULT_TILE, "auto", None)
    network = time.perf_counter() - start
    old = None
    if before_revision is not None:  # the regulariser as it was at that revision
        from acnn_fusion.core.inference import grid_to_pixels
        from alignment import _module_at

        old = _module_at(before_revision, "src/acnn_fusion/core/stack.py", "stack_before")

    def last_steps(variant: str) -> None:
        if variant == "before":
            assert old is not None
            depth = grid_to_pixels(old._regularise(volume, 2.0)[0], grey.shape[1:])
        elif variant == "seams-off":
            depth = _fold_volume(volume, 2.0, grey.shape[1:])[0]
        else:
            smoothing = 0.0 if variant == "plain" else 2.0
            depth = _fold_volume(volume, smoothing, grey.shape[1:], grey if variant == "default" else None)[0]
        compose_stack(standard, depth)

    variants = ["plain", "seams-off", "default"] + (["before"] if old is not None else [])
    steps: dict[str, float] = {}
    for variant in variants * 2:  # twice each, interleaved; the faster counts
        start = time.perf_counter()
        last_steps(variant)
        steps[variant] = min(steps.get(variant, np.inf), time.perf_counter() - start)
    plain, after = network + steps["plain"], network + steps["default"]
    line = (
        f"load {os.getloadavg()[0]:.1f}; torch threads {torch.get_num_threads()}; network (score volume) "
        f"{network:.1f} s; last steps: plain {steps['plain']:.2f} s, seams off {steps['seams-off']:.2f} s, "
        f"default {steps['default']:.2f} s; fold ratio default / seams off "
        f"{after / (network + steps['seams-off']):.3f}"
    )
    if old is not None:
        before = network + steps["before"]
        line += f", {before_revision}'s default {steps['before']:.2f} s"
        line += f"; fold ratio now / {before_revision} {after / before:.3f}"
    print(line + f"; fold ratio default / plain {after / plain:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--speed", action="store_true", help="only the speed comparison (see speed())")
    parser.add_argument("--speed-before", metavar="REV", help="with --speed: also core/stack.py at git REV")
    parser.add_argument("--flat-only", action="store_true", help="only the flat-region table")
    parser.add_argument(
        "--volume-cache",
        type=Path,
        help="folder for the ACNN score volumes (synth_<case>.npy): read if there, written if not",
    )
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    args = parser.parse_args()
    if args.speed:
        speed(args.speed_before)
        return
    if args.volume_cache is not None:
        args.volume_cache.mkdir(parents=True, exist_ok=True)
    _flat_table(args.out, args.volume_cache)
    if args.flat_only:
        return
    rows = []
    for name, case in synthetic_stacks():
        sharp, stack, truth = case.sharp, case.stack, case.depth_index.astype(int)
        textured = _textured(sharp)
        data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())
        channel_axis = -1 if sharp.ndim == 3 else None
        methods = {}
        for strategy in args.strategies:
            if strategy == "features":  # both depth settings from one network pass
                cached = None if args.volume_cache is None else args.volume_cache / f"synth_{name}.npy"
                ours, plain, seconds, unplaced = fold_both(stack, cache=cached)
                methods["acnn-features"] = (ours.fused, ours.depth_map, seconds)
                methods["acnn-features-seams-off"] = (unplaced.fused, unplaced.depth_map, seconds)
                methods["acnn-features-unregularised"] = (plain.fused, plain.depth_map, seconds)
                continue
            start = time.perf_counter()
            result = fuse_stack(stack, strategy=strategy, precision="fp32")
            methods[f"acnn-{strategy}"] = (result.fused, result.depth_map, time.perf_counter() - start)
        for measure in ("variance", "sobel"):
            start = time.perf_counter()
            fused, depth = projection(stack, measure)
            methods[f"{measure}-projection"] = (fused, depth, time.perf_counter() - start)
        start = time.perf_counter()
        methods["laplacian-pyramid"] = (
            laplacian_pyramid_fuse(list(stack)),
            None,
            time.perf_counter() - start,
        )
        for method, (fused, depth, seconds) in methods.items():
            rows.append(
                {
                    "case": name,
                    "method": method,
                    "PSNR": peak_signal_noise_ratio(sharp, fused, data_range=data_range),
                    "SSIM": structural_similarity(
                        sharp, fused, data_range=data_range, channel_axis=channel_axis
                    ),
                    "depth_within_1": float(
                        np.mean(np.abs(depth[textured].astype(int) - truth[textured]) <= 1)
                    )
                    if depth is not None
                    else float("nan"),
                    "seconds": seconds,
                }
            )
        print(
            name,
            "  ".join(
                f"{r['method']} {r['PSNR']:.2f}/{r['depth_within_1']:.3f}" for r in rows[-len(methods) :]
            ),
            flush=True,
        )
    _write(rows, args.out / "synthetic_stacks_per_case")
    means = _means(rows, key="case")
    _write(means, args.out / "synthetic_stacks_means")
    for row in means:
        print(row)


if __name__ == "__main__":
    main()
