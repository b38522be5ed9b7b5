"""Composition of the fused image: exact copy against multi-resolution (Laplacian-pyramid) blending.

    .venv/bin/python benchmarks/composition.py [--only pairs|stacks|lytro|seams|speed]
        [--shared ../shared/data] [--out docs/results] [--images docs/images]

The decisions come from the package (``fuse_pair(..., precision="fp32")`` for pairs, its
decision map; ``fuse_stack(..., precision="fp32")`` for stacks, its depth map); only the
composition step differs between the rows (:mod:`acnn_fusion.core.compose`). Scores:

- synthetic pairs (``quality_pairs.synthetic_pairs``) and stacks (``quality_stacks.synthetic_stacks``):
  PSNR / SSIM against the sharp truth;
- Lytro-20: MI and Q^AB/F (``acnn_fusion.metrics.evaluate``);
- provenance, every set: ``new_values_%`` = share of pixels whose value (all channels) is found
  in no source image at that position; ``mean_abs_change`` = mean |blended − copy| over all
  pixels, grey levels on the 0–255 scale;
- seams on real stacks (``brightfield_cells_sephace/init_zstack.tif``, ``macro_pcb``,
  ``metallographic_mufoc/mufoc_1_1``; ACNN rows with ``seams="agree"``, the default, and
  ``seams="off"`` for the copy):
  ``seam_ratio`` = mean |step| between 4-neighbours on either side of a depth-map boundary
  inside flat regions (9×9 local SD of the stack's mean grey below its 30th percentile)
  divided by the mean |step| between flat 4-neighbours of the same slice (1 = no visible
  seam); montages of 4× crops of the worst flat boundaries in ``docs/images/composition_*.png``.

enfuse (``../shared/peers/enfuse_stack.sh``: contrast weight, hard mask, its own pyramid
blending) is added where the ``enfuse`` command exists.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_pair, fuse_stack
from acnn_fusion.core.compose import compose_pair, compose_stack
from acnn_fusion.core.imageops import GREY_WEIGHTS
from acnn_fusion.io import read_image, write_image
from acnn_fusion.metrics import evaluate
from quality_pairs import _means, _write, synthetic_pairs
from quality_stacks import synthetic_stacks

REPO = Path(__file__).resolve().parents[1]
PEERS = REPO.parent / "shared/peers"

#: name → keyword arguments of compose_pair / compose_stack
VARIANTS: dict[str, dict] = {
    "copy": {"mode": "copy"},
    "pyramid": {"mode": "pyramid", "soften": 0.0},  # automatic levels (coarsest ≥ 8 px), hard weights
    "pyramid-L2": {"mode": "pyramid", "levels": 2, "soften": 0.0},
    "pyramid-L4": {"mode": "pyramid", "levels": 4, "soften": 0.0},
    "pyramid-soft2": {"mode": "pyramid", "soften": 2.0},
    "pyramid-soft4": {"mode": "pyramid", "soften": 4.0},
}
#: the variants shown in the seam montages
VARIANTS_SHOWN = ["copy", "pyramid", "pyramid-L2", "pyramid-soft2"]


def _scale(dtype: np.dtype) -> float:
    """Grey levels of ``dtype`` per 0–255 grey level."""
    return np.iinfo(dtype).max / 255.0 if np.dtype(dtype).kind == "u" else 1.0 / 255.0


def _new_values(fused: np.ndarray, sources) -> float:
    """Share of pixels (all channels) equal to no source at that position; sources one at a time."""
    found = np.zeros(fused.shape[:2], bool)
    for source in sources:
        same = fused == np.asarray(source)
        found |= same if same.ndim == 2 else same.all(axis=-1)
    return float(1.0 - found.mean())


def _provenance(fused: np.ndarray, copy: np.ndarray, sources) -> dict[str, float]:
    change = np.abs(fused.astype(np.float64) - copy.astype(np.float64)) / _scale(fused.dtype)
    return {"new_values_%": 100.0 * _new_values(fused, sources), "mean_abs_change": float(change.mean())}


def _truth_scores(sharp: np.ndarray, fused: np.ndarray) -> dict[str, float]:
    data_range = 255 if sharp.dtype == np.uint8 else float(sharp.max())
    channel_axis = -1 if sharp.ndim == 3 else None
    return {
        "PSNR": peak_signal_noise_ratio(sharp, fused, data_range=data_range),
        "SSIM": structural_similarity(sharp, fused, data_range=data_range, channel_axis=channel_axis),
    }


def pairs(out: Path) -> None:
    rows = []
    for name, sharp, pair in synthetic_pairs():
        a, b = pair.image_a, pair.image_b
        decision = fuse_pair(a, b, precision="fp32").decision_map
        copy = compose_pair(a, b, decision, mode="copy")
        for variant, options in VARIANTS.items():
            start = time.perf_counter()
            fused = compose_pair(a, b, decision, **options)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "case": name,
                    "method": f"acnn + {variant}",
                    **_truth_scores(sharp, fused),
                    **_provenance(fused, copy, (a, b)),
                    "seconds": seconds,
                }
            )
        print(name, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows[-len(VARIANTS) :]), flush=True)
    _write(rows, out / "composition_pairs_per_case")
    _write(_means(rows, key="case"), out / "composition_pairs_means")


def lytro(shared: Path, out: Path) -> None:
    rows = []
    for path_a in sorted((shared / "eval/pairs/lytro").glob("lytro-*-A.jpg")):
        name = path_a.name[: -len("-A.jpg")]
        a, b = read_image(path_a), read_image(path_a.with_name(f"{name}-B.jpg"))
        decision = fuse_pair(a, b, precision="fp32").decision_map
        copy = compose_pair(a, b, decision, mode="copy")
        for variant, options in VARIANTS.items():
            fused = compose_pair(a, b, decision, **options)
            scores = evaluate(a, b, fused)
            rows.append(
                {
                    "pair": name,
                    "method": f"acnn + {variant}",
                    "MI": scores["MI"],
                    "Qabf": scores["Qabf"],
                    **_provenance(fused, copy, (a, b)),
                }
            )
        print(name, "  ".join(f"{r['method']} {r['MI']:.3f}/{r['Qabf']:.4f}" for r in rows[-len(VARIANTS) :]))
    _write(rows, out / "composition_lytro_per_pair")
    _write(_means(rows), out / "composition_lytro_means")


def enfuse_available() -> bool:
    return shutil.which("enfuse") is not None and (PEERS / "enfuse_stack.sh").exists()


def enfuse(stack: np.ndarray) -> np.ndarray:
    """The peers' enfuse focus stacking of a (Z, Y, X[, C]) stack, in the stack's dtype."""
    import tifffile

    with tempfile.TemporaryDirectory(prefix="compose-enfuse-") as tmp:
        names = []
        for z, plane in enumerate(stack):
            names.append(f"{tmp}/slice_{z:03d}.tif")
            tifffile.imwrite(names[-1], np.asarray(plane))
        subprocess.run(
            ["bash", str(PEERS / "enfuse_stack.sh"), f"{tmp}/out.tif", *names],
            check=True,
            capture_output=True,
        )
        fused = tifffile.imread(f"{tmp}/out.tif")
    if fused.shape != stack.shape[1:]:  # enfuse adds an alpha channel
        fused = fused[..., 0] if stack.ndim == 3 else fused[..., : stack.shape[-1]]
    return fused.astype(stack.dtype)


def stacks(out: Path) -> None:
    rows = []
    with_enfuse = enfuse_available()
    for name, case in synthetic_stacks():
        stack = case.stack
        result = fuse_stack(stack, precision="fp32")
        copy = compose_stack(stack, result.depth_map, mode="copy")
        assert np.array_equal(copy, result.fused)  # the package's own composition
        methods = {}
        for variant, options in VARIANTS.items():
            start = time.perf_counter()
            fused = compose_stack(stack, result.depth_map, **options)
            methods[f"acnn + {variant}"] = (fused, time.perf_counter() - start)
        if with_enfuse:
            start = time.perf_counter()
            methods["enfuse"] = (enfuse(stack), time.perf_counter() - start)
        for method, (fused, seconds) in methods.items():
            rows.append(
                {
                    "case": name,
                    "method": method,
                    **_truth_scores(case.sharp, fused),
                    **_provenance(fused, copy, stack),
                    "seconds": seconds,
                }
            )
        print(name, "  ".join(f"{r['method']} {r['PSNR']:.2f}" for r in rows[-len(methods) :]), flush=True)
    _write(rows, out / "composition_stacks_per_case")
    _write(_means(rows, key="case"), out / "composition_stacks_means")


def _grey(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64) / _scale(image.dtype)
    return image if image.ndim == 2 else image[..., :3] @ GREY_WEIGHTS


def _local_sd(grey: np.ndarray, size: int = 9) -> np.ndarray:
    mean = ndimage.uniform_filter(grey, size)
    return np.sqrt(np.maximum(ndimage.uniform_filter(grey * grey, size) - mean * mean, 0))


def seam_scores(fused: np.ndarray, depth: np.ndarray, flat: np.ndarray) -> dict[str, float]:
    """Mean |step| across depth boundaries vs within one slice, both inside the flat region, and
    ``flat_blotch``: RMS of the band-pass (Gaussian σ 3 px minus σ 24 px) of the fused grey over
    the flat region, which sees soft-edged patches that a step measure misses (method-independent)."""
    grey = _grey(fused)
    boundary_steps, interior_steps = [], []
    for axis in (0, 1):
        step = np.abs(np.diff(grey, axis=axis))
        crosses = np.diff(depth.astype(np.int32), axis=axis) != 0
        both_flat = flat[1:] & flat[:-1] if axis == 0 else flat[:, 1:] & flat[:, :-1]
        boundary_steps.append(step[crosses & both_flat])
        interior_steps.append(step[~crosses & both_flat])
    boundary, interior = np.concatenate(boundary_steps), np.concatenate(interior_steps)
    if boundary.size == 0:  # the depth map never switches slice inside the flat region
        boundary = np.full(1, np.nan)
    band = ndimage.gaussian_filter(grey, 3.0) - ndimage.gaussian_filter(grey, 24.0)
    return {
        "flat_boundary_step": float(boundary.mean()),
        "flat_interior_step": float(interior.mean()),
        "seam_ratio": float(boundary.mean() / interior.mean()),
        "flat_blotch": float(np.sqrt(np.mean(band[flat] ** 2))),
    }


def _worst_crops(copy: np.ndarray, depth: np.ndarray, flat: np.ndarray, size: int, count: int):
    """Centres of ``count`` non-overlapping windows with the largest seam steps in flat regions."""
    grey = _grey(copy)
    strength = np.zeros(grey.shape)
    for axis in (0, 1):
        step = np.abs(np.diff(grey, axis=axis)) * (np.diff(depth.astype(np.int32), axis=axis) != 0)
        pad = ((0, 1), (0, 0)) if axis == 0 else ((0, 0), (0, 1))
        strength += np.pad(step, pad)
    strength *= ndimage.minimum_filter(flat, 5)  # seams well inside flat regions
    strength = ndimage.uniform_filter(strength, size // 2)
    half = size // 2
    strength[:half], strength[-half:], strength[:, :half], strength[:, -half:] = 0, 0, 0, 0
    centres = []
    for _ in range(count):
        y, x = np.unravel_index(np.argmax(strength), strength.shape)
        if strength[y, x] <= 0:
            break
        centres.append((int(y), int(x)))
        strength[max(0, y - size) : y + size, max(0, x - size) : x + size] = 0
    return centres


def _stretch(crops: list[np.ndarray], reference: np.ndarray) -> list[np.ndarray]:
    """One contrast stretch per row (from the copy crop), so a seam is as visible in each column."""
    ref = _grey(reference) if reference.ndim == 2 else reference.astype(np.float64) / _scale(reference.dtype)
    lo, hi = np.percentile(ref, [1, 99])
    shown = []
    for crop in crops:
        values = crop.astype(np.float64) / _scale(crop.dtype) if crop.dtype != np.float64 else crop
        values = np.clip((values - lo) / max(hi - lo, 1e-9), 0, 1)
        if values.ndim == 2:
            values = np.repeat(values[..., None], 3, -1)
        shown.append(values[..., :3])
    return shown


def seams(shared: Path, out: Path, images: Path) -> None:
    from figures import _heat
    from real_stacks import _stack_array

    stacks_dir = shared / "eval/stacks"
    cases = ["brightfield_cells_sephace/init_zstack.tif", "macro_pcb", "metallographic_mufoc/mufoc_1_1"]
    lines = [
        "# Seams in flat regions of real stacks: exact copy vs pyramid blending",
        "",
        "Written by `benchmarks/composition.py --only seams`. `seam_ratio` = mean |grey step| between "
        "4-neighbours on either side of an ACNN depth-map boundary, divided by the mean step between "
        "neighbours of one slice, both inside flat regions (9×9 local SD of the stack's mean grey below "
        "its 30th percentile); 1 = the boundary is invisible in flat regions. Steps in grey levels "
        "(0–255). enfuse has its own seams, which this measure (at the ACNN's boundaries) does not see; "
        "its `flat_interior_step` is comparable (flat-region roughness). `new_values_%`: pixels whose "
        "value (all channels) is in no slice at that position. `flat_blotch`: RMS of the band-pass "
        "(Gaussian σ 3 px − σ 24 px) of the fused grey over the flat region: soft-edged patches that "
        "the step measure misses; it does not depend on the depth map, so enfuse's is comparable.",
        "",
        'ACNN rows use the default depth map (`seams="agree"`: boundaries moved to where the slices '
        'agree, `core/seams.py`), except `copy, seams off` (its own depth map, `seams="off"`).',
        "",
        "Montages: rows = the 4 flat windows (64×64, shown 4×) where the boundary steps of "
        "`copy, seams off` are largest; columns = "
        + " | ".join([*VARIANTS_SHOWN, "copy, seams off", "enfuse (if installed)", "ACNN depth map"])
        + "; one contrast stretch per row (the copy crop's 1–99 %), so steps look stronger than at "
        "normal contrast.",
        "",
    ]
    csv_rows = []
    for case in cases:
        path = stacks_dir / case
        if not path.exists():
            print(f"{path} not found; skipping")
            continue
        stack = _stack_array(path)
        result = fuse_stack(stack, precision="fp32")
        depth = result.depth_map
        unplaced = fuse_stack(stack, precision="fp32", seams="off").depth_map
        mean_grey = np.zeros(depth.shape)
        for plane in stack:
            mean_grey += _grey(plane) / len(stack)
        sd = _local_sd(mean_grey)
        flat = sd < np.percentile(sd, 30)
        methods = {v: compose_stack(stack, depth, **VARIANTS[v]) for v in VARIANTS_SHOWN}
        methods["copy, seams off"] = compose_stack(stack, unplaced, mode="copy")
        if enfuse_available():
            methods["enfuse"] = enfuse(stack)
        stem = case.replace("/", "_").removesuffix(".tif")
        lines += [
            f"## {case} ({' × '.join(map(str, stack.shape))}, {stack.dtype})",
            "",
            "| method | flat_boundary_step | flat_interior_step | seam_ratio | flat_blotch | new_values_% |",
            "|---|---|---|---|---|---|",
        ]
        for method, fused in methods.items():
            scores = seam_scores(fused, unplaced if method == "copy, seams off" else depth, flat)
            new = 100.0 * _new_values(fused, stack)
            csv_rows.append({"stack": case, "method": method, **scores, "new_values_%": new})
            lines.append(
                f"| {method} | {scores['flat_boundary_step']:.3f} | "
                f"{scores['flat_interior_step']:.3f} | {scores['seam_ratio']:.3f} | "
                f"{scores['flat_blotch']:.3f} | {new:.1f} |"
            )
            print(case, method, scores, f"new {new:.1f} %", flush=True)
        size, zoom = 64, 4
        rows = []
        for y, x in _worst_crops(methods["copy, seams off"], unplaced, flat, size, 4):
            window = (slice(y - size // 2, y + size // 2), slice(x - size // 2, x + size // 2))
            crops = _stretch([m[window] for m in methods.values()], methods["copy"][window])
            crops.append(_heat(depth[window] / max(1, len(stack) - 1)))
            tiles = [np.kron(c, np.ones((zoom, zoom, 1))) for c in crops]
            gap = np.ones((size * zoom, 6, 3))
            rows.append(np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=1))
        name = f"composition_{stem}.png"
        if rows:
            gap = np.ones((6, rows[0].shape[1], 3))
            montage = np.concatenate([r for row in rows for r in (row, gap)][:-1], axis=0)
            write_image(images / name, np.round(montage * 255).astype(np.uint8))
            lines += ["", f"![{case}: {' | '.join([*methods, 'depth'])}](../images/{name})", ""]
        else:  # no seam window to show: say so, and leave no montage of an older depth map behind
            (images / name).unlink(missing_ok=True)
            values, counts = np.unique(depth, return_counts=True)
            slices = ", ".join(f"slice {z}: {n} px" for z, n in zip(values, counts, strict=True))
            lines += ["", f"No flat window with a depth-map boundary to show ({slices}).", ""]
    _write(csv_rows, out / "composition_seams")  # CSV (and a plain table)
    (out / "composition_seams.md").write_text("\n".join(lines) + "\n")


def speed(out: Path) -> None:
    """Composition time on a 32 × 1024² grey uint8 stack whose depth switches often, next to
    the time of ``fuse_stack`` on the same stack."""
    rng = np.random.default_rng(0)
    n_slices, size = 32, 1024
    stack = rng.integers(0, 256, (n_slices, size, size), dtype=np.uint8)
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), 24)
    depth = np.clip((field - field.min()) / np.ptp(field) * n_slices, 0, n_slices - 1).astype(np.uint16)
    rows = []
    start = time.perf_counter()
    fuse_stack(stack)  # the fold itself (default precision), for scale
    rows.append(
        {
            "case": f"{n_slices}x{size}x{size} grey uint8",
            "method": "fuse_stack (fold + copy)",
            "slices_used": n_slices,
            "seconds": time.perf_counter() - start,
        }
    )
    for variant in ("copy", "pyramid", "pyramid-soft2"):
        start = time.perf_counter()
        compose_stack(stack, depth, **VARIANTS[variant])
        rows.append(
            {
                "case": f"{n_slices}x{size}x{size} grey uint8",
                "method": variant,
                "slices_used": len(np.unique(depth)),
                "seconds": time.perf_counter() - start,
            }
        )
        print(rows[-1], flush=True)
    _write(rows, out / "composition_speed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--images", type=Path, default=REPO / "docs/images")
    parser.add_argument("--only", choices=["pairs", "stacks", "lytro", "seams", "speed"])
    args = parser.parse_args()
    if not enfuse_available():
        print("enfuse not installed (apt-get install enfuse): its rows are left out")
    if args.only in (None, "pairs"):
        pairs(args.out)
    if args.only in (None, "stacks"):
        stacks(args.out)
    if args.only in (None, "lytro"):
        if (args.shared / "eval/pairs/lytro").is_dir():
            lytro(args.shared, args.out)
        else:
            print(f"Lytro pairs not found under {args.shared}; skipping")
    if args.only in (None, "seams"):
        seams(args.shared, args.out, args.images)
    if args.only in (None, "speed"):
        speed(args.out)


if __name__ == "__main__":
    main()
