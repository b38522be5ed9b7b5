"""How much ``align=True`` helps: synthetic stacks with known drift and focus breathing, and the
registration left over on the real macro stacks.

    .venv/bin/python benchmarks/alignment.py [--shared ../shared/data] [--out docs/results]

Synthetic: a random-walk drift (translation), and a magnification change of 1.5 % per slice
with a 0.2° turn per slice (9 slices, ±6 % at the ends); per motion model, the largest error of
the recovered scale, depth accuracy (±1 slice) and PSNR of the fused image against the sharp
picture, inside a 24-px margin. Real (``macro_pcb``, ``gacn_v4_component``; no ground truth):
per model, the magnification it finds across the stack, and the displacement still left
between neighbouring slices after alignment, measured by phase correlation in a grid of windows
(median and 90th percentile over windows and neighbour pairs, px): what shows as double contours.
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
from skimage.metrics import peak_signal_noise_ratio

sys.path.insert(0, str(Path(__file__).parent))
from acnn_fusion import fuse_stack
from acnn_fusion.core.align import (
    ALIGN_MODELS,
    _local_shifts,
    _patch_grid,
    apply_transforms,
    estimate_transforms,
)
from acnn_fusion.core.imageops import joint_unit_range, to_grey
from acnn_fusion.synthetic import render_breathing_stack, render_stack
from real_stacks import _stack_array

REPO = Path(__file__).resolve().parents[1]


def _scale(transforms: np.ndarray) -> np.ndarray:
    return np.sqrt(np.abs(np.linalg.det(transforms[:, :2, :2])))


def synthetic(lines: list[str]) -> None:
    sharp = data.astronaut()[::2, ::2, 1]
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    n = 9
    depth = (n - 1) * (0.7 * xx + 0.3 * yy)
    inner = (slice(24, -24), slice(24, -24))
    drift_case = render_stack(sharp, depth, n, radius_per_slice=1.5)
    drift = np.cumsum(np.random.default_rng(0).normal(0, 1.5, (n, 2)), axis=0)
    drifted = np.stack(
        [
            ndimage.shift(p.astype(float), s, order=1, mode="nearest").round().astype(p.dtype)
            for p, s in zip(drift_case.stack, drift, strict=True)
        ]
    )
    drift_truth = ndimage.shift(drift_case.depth_index, drift[n // 2], order=0, mode="nearest").astype(int)
    drift_sharp = ndimage.shift(sharp.astype(float), drift[n // 2], order=1, mode="nearest")
    breathing = render_breathing_stack(
        sharp, depth, n, scale_per_slice=0.015, rotation_per_slice=np.deg2rad(0.2), radius_per_slice=1.5
    )
    cases = {
        "drift (translation)": (drifted, drift_truth, drift_sharp, np.ones(n)),
        "breathing 1.5 %/slice + 0.2°/slice": (
            breathing.stack,
            breathing.depth_index.astype(int),
            breathing.sharp.astype(float),
            breathing.magnification,
        ),
    }
    lines += [
        "| synthetic case | align | max scale error | depth ±1 | PSNR (dB) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for label, (stack, truth, reference, magnification) in cases.items():
        for model in (None, *ALIGN_MODELS):
            start = time.perf_counter()
            if model is None:
                result = fuse_stack(stack, precision="fp32")
            else:
                result = fuse_stack(stack, precision="fp32", align=True, align_model=model)
            seconds = time.perf_counter() - start
            accuracy = np.mean(np.abs(result.depth_map[inner].astype(int) - truth[inner]) <= 1)
            psnr = peak_signal_noise_ratio(
                reference[inner], result.fused[inner].astype(float), data_range=255
            )
            scale_error = (
                "—"
                if result.transforms is None
                else f"{np.abs(_scale(result.transforms) / magnification - 1).max():.3%}"
            )
            lines.append(
                f"| {label} | {model or 'off'} | {scale_error} | {accuracy:.1%} | {psnr:.2f} "
                f"| {seconds:.1f} |"
            )
            print(lines[-1], flush=True)


def _residual(grey: np.ndarray) -> np.ndarray:
    """Window displacements (px) left between neighbouring slices of an aligned grey stack."""
    window, centres = _patch_grid(grey.shape[1:])
    margin = window  # ignore the repeated edges the resampling leaves at the border
    keep = (
        (centres[:, 0] >= margin)
        & (centres[:, 0] <= grey.shape[1] - margin)
        & (centres[:, 1] >= margin)
        & (centres[:, 1] <= grey.shape[2] - margin)
    )
    left = []
    for z in range(1, len(grey)):
        shifts, textured = _local_shifts(grey[z - 1], grey[z], window, centres[keep], 10)
        left.append(np.linalg.norm(shifts[textured], axis=1))
    return np.concatenate(left)


def real(
    shared: Path,
    lines: list[str],
    stacks: tuple[tuple[str, int], ...] = (("macro_pcb", 1), ("gacn_v4_component", 2)),
    models: tuple[str | None, ...] = (None, *ALIGN_MODELS),
) -> None:
    root = shared / "eval/stacks"
    lines += [
        "",
        "| real stack | align | magnification first → last | residual median | residual 90 % | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, step in stacks:
        stack = _stack_array(root / name)
        grey = np.stack(joint_unit_range(*[to_grey(s, np.float32) for s in stack], source_dtype=stack.dtype))
        if step > 1:  # half resolution (block means) to keep the 65-slice run short
            z, h, w = grey.shape
            grey = grey[:, : h // step * step, : w // step * step]
            grey = grey.reshape(z, h // step, step, w // step, step).mean((2, 4))
        for model in models:
            start = time.perf_counter()
            if model is None:
                aligned, magnification = grey, "—"
            else:
                transforms = estimate_transforms(grey, model)
                aligned = apply_transforms(grey, transforms)
                scale = _scale(transforms)
                magnification = f"{scale[0]:.4f} → {scale[-1]:.4f}"
            seconds = time.perf_counter() - start
            left = _residual(aligned)
            size = f" (grey at 1/{step} resolution)" if step > 1 else ""
            lines.append(
                f"| {name}{size} | {model or 'off'} | {magnification} | {np.median(left):.2f} | "
                f"{np.percentile(left, 90):.2f} | {seconds:.1f} |"
            )
            print(lines[-1], flush=True)


def _module_at(revision: str, path: str, name: str):
    """The module at ``path`` as it was at git ``revision`` (for before/after timings)."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout
    folder = Path(tempfile.mkdtemp())
    (folder / f"{name}.py").write_text(source)
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def before_after(shared: Path, revision: str, model: str, out: Path) -> None:
    """``macro_pcb`` (full size): ``model`` alignment with ``src/acnn_fusion/core/align.py`` at
    git ``revision`` and as it is now, interleaved (before, after, before, after; the faster
    run of each counts): seconds, magnification and residual shift → ``alignment_speed.md``."""
    from acnn_fusion.core import align as now

    before = _module_at(revision, "src/acnn_fusion/core/align.py", "align_before")
    stack = _stack_array(shared / "eval/stacks/macro_pcb")
    grey = np.stack(joint_unit_range(*[to_grey(s, np.float32) for s in stack], source_dtype=stack.dtype))
    runs: dict[str, list] = {"before": [], "after": []}
    for label, module in (("before", before), ("after", now)) * 2:
        start = time.perf_counter()
        transforms = module.estimate_transforms(grey, model)
        aligned = module.apply_transforms(grey, transforms)
        seconds = time.perf_counter() - start
        left = _residual(aligned)
        scale = _scale(transforms)
        runs[label].append((seconds, scale, left, os.getloadavg()[0]))
        print(label, f"{seconds:.1f} s", f"{scale[0]:.4f} → {scale[-1]:.4f}", flush=True)
    lines = [
        "# Alignment speed: coarse-to-fine",
        "",
        f"Written by `benchmarks/alignment.py --before-after {revision}` on `macro_pcb` "
        f"({grey.shape[0]}×{grey.shape[1]}×{grey.shape[2]} grey), `{model}`: estimate + resample, "
        "before (`align.py` at that revision) and after (this tree), interleaved twice; the "
        "faster run of each; 1-min load average during the runs.",
        "",
        "| align.py | seconds (faster of 2) | both runs | load | magnification first → last "
        "| residual median (px) | residual 90 % (px) |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, results in runs.items():
        seconds, scale, left, _ = min(results, key=lambda r: r[0])
        loads = ", ".join(f"{r[3]:.1f}" for r in results)
        lines.append(
            f"| {label} | {seconds:.1f} | {', '.join(f'{r[0]:.1f}' for r in results)} | {loads} "
            f"| {scale[0]:.4f} → {scale[-1]:.4f} | {np.median(left):.2f} | {np.percentile(left, 90):.2f} |"
        )
    ratio = min(r[0] for r in runs["before"]) / min(r[0] for r in runs["after"])
    lines += ["", f"Speed-up (before / after, faster runs): {ratio:.2f}×."]
    (out / "alignment_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def montage(shared: Path, out: Path) -> None:
    """``macro_pcb`` at half resolution: the first and last slice overlaid (red = first, cyan =
    last) in a corner crop, without alignment, translation, similarity: coloured double
    contours are misregistration."""
    from acnn_fusion.io import write_image

    stack = _stack_array(shared / "eval/stacks/macro_pcb")
    grey = np.stack(joint_unit_range(*[to_grey(s, np.float32) for s in stack], source_dtype=stack.dtype))
    z, h, w = grey.shape
    grey = grey.reshape(z, h // 2, 2, w // 2, 2).mean((2, 4))  # half resolution: a short run
    crop = (slice(20, 260), slice(20, 340))  # top-left corner: where a magnification change shows most
    tiles = []
    for model in (None, "translation", "similarity"):
        aligned = grey if model is None else apply_transforms(grey, estimate_transforms(grey, model))
        first, last = aligned[0][crop], aligned[-1][crop]
        tiles.append(np.stack([first, last, last], -1))
        print(model or "off", flush=True)
    image = np.concatenate([np.pad(t, ((4, 4), (4, 4), (0, 0)), constant_values=1) for t in tiles], 1)
    write_image(
        out / "images/stacks/macro_pcb_alignment.png", np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED_DATA", REPO.parent / "shared/data"))
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs/results")
    parser.add_argument("--real-only", action="store_true")
    parser.add_argument(
        "--real",
        nargs="+",
        metavar="STACK:STEP",
        help="real stacks and grey block-mean steps (default: macro_pcb:1 gacn_v4_component:2)",
    )
    parser.add_argument("--models", nargs="+", default=["off", *ALIGN_MODELS], choices=["off", *ALIGN_MODELS])
    parser.add_argument(
        "--montage", action="store_true", help="only docs/images/stacks/macro_pcb_alignment.png"
    )
    parser.add_argument(
        "--before-after",
        metavar="REV",
        help="only: macro_pcb similarity timed with align.py at git REV and now → alignment_speed.md",
    )
    args = parser.parse_args()
    if args.before_after:
        before_after(args.shared, args.before_after, "similarity", args.out)
        return
    if args.montage:
        montage(args.shared, args.out.parent)
        return
    lines: list[str] = ["# Alignment", "", "Written by `benchmarks/alignment.py`.", ""]
    if not args.real_only:
        synthetic(lines)
    if (args.shared / "eval/stacks").is_dir():
        stacks = tuple((n.split(":")[0], int(n.split(":")[1])) for n in args.real) if args.real else None
        models = tuple(None if m == "off" else m for m in args.models)
        real(args.shared, lines, *([stacks] if stacks else []), models=models)
    name = "alignment.md" if not args.real_only else "alignment_real.md"
    (args.out / name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
