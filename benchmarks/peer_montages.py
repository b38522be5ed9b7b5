"""Montages of ours, enfuse, focus-stack and the variance projection on every real stack.

    .venv/bin/python benchmarks/peer_montages.py [--stacks NAME ...] [--shared ../shared]

For each real stack in ``../shared/data/eval/stacks`` (override with ``--shared`` or
``ACNN_SHARED``) this runs, on the same slices:

- ours: :func:`acnn_fusion.fuse_stack` with default options and ``precision="fp32"``, on the
  array that :func:`acnn_fusion.io.read_stack` (or the plane reader) gives; fused + depth map
  + confidence. The model is loaded by a tiny warm-up call before the clock starts.
- enfuse: ``../shared/peers/enfuse_stack.sh`` (contrast weight only, hard mask) on one TIFF
  per slice written to a temporary folder (writing is not timed).
- focus-stack: ``focus-stack --no-opencl --threads=2 --align-keep-size --depthmap=…`` on the
  same TIFFs. focus-stack has no option to skip alignment: it always aligns the slices (ours
  does not by default); ``--align-keep-size`` keeps the input's size so pixels line up. Its
  depth map is an 8-bit PNG, smoothed and inpainted by design, scaled as
  ``value = (slice + 1) · 255 / N`` (0 = unknown); it is converted back to (fractional) slice
  indices. focus-stack reads 16-bit TIFFs as 8 bits (the high byte), so uint16 stacks reach it
  as 8-bit slices stretched over the stack's 0.1/99.9 percentiles (enfuse reads 16 bits).
- variance: ``projection(stack, "variance")`` from ``benchmarks/baselines.py``.

One PNG per stack in ``docs/images/peers/<stack>.png``, fixed panel order (no labels in the
picture; the caption in ``docs/stacks.md`` names them):

- row 1, fused: ours | enfuse | focus-stack | variance [| reference ``expected.jpg`` for
  macro_pcb]. uint8 shown as is; uint16 scaled by one range for all (0.5/99.5 percentiles of
  ours). The crop of row 3 is outlined in ours.
- row 2: ours depth | ours confidence (enfuse has no depth map) | focus-stack depth |
  variance depth. Depth: slice 0 black → last slice yellow; confidence 0 black → 1 yellow.
- row 3: 4× nearest-neighbour crops of the same window in each fused image, the window where
  ours and the variance projection disagree most in depth (mean |Δdepth|).

Depth outliers: share of pixels whose depth differs by more than 2 slices (1 slice for stacks
of ≤ 4 slices) from the median of their 9×9 neighbourhood. Writes
``docs/results/peer_montages.{md,csv}``. Stacks whose data is absent are skipped; a missing
peer binary leaves its panels grey and its cells empty.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from skimage.io import imread, imsave
from skimage.transform import resize

from acnn_fusion import fuse_stack
from acnn_fusion.io import read_image, read_stack
from baselines import projection
from figures import _heat
from wholeprocess import write_planes

ROOT = Path(__file__).resolve().parent.parent
STACKS = {
    "metallographic_1_1": "metallographic_mufoc/mufoc_1_1",
    "metallographic_1_2": "metallographic_mufoc/mufoc_1_2",
    "lightsheet": "lightsheet_mitochondria_uint16",
    "gacn": "gacn_v4_component",
    "macro_pcb": "macro_pcb",
    "sephace_fine": "brightfield_cells_sephace/fine_zstack.tif",
    "sephace_init": "brightfield_cells_sephace/init_zstack.tif",
    "skeleton": "brightfield_skeleton_edf/stack.tif",
}
#: gacn: every 4th of its 65 slices and the central half in each direction (time on 2 cores)
GACN_STEP, GACN_CROP = 4, (600, 800)
PANEL = 384  # width of one row-1/row-2 panel, pixels
ZOOM = 4
GAP = 6


def focus_stack_binary() -> str | None:
    peers = Path(os.environ.get("ACNN_PEERS_DIR", "/work/peers-bin"))
    candidate = peers / "focus-stack" / "build" / "focus-stack"
    return str(candidate) if candidate.exists() else shutil.which("focus-stack")


def load(name: str, stacks: Path) -> tuple[np.ndarray, str, np.ndarray | None] | None:
    """(Z, Y, X[, 3]) array, a note, and the reference result (macro_pcb) or None."""
    path = stacks / STACKS[name]
    if not path.exists():
        return None
    if name == "gacn":
        planes = sorted(path.glob("*.jpg"))[::GACN_STEP]
        data = np.stack([read_image(p) for p in planes])
        height, width = data.shape[1:3]
        top, left = (height - GACN_CROP[0]) // 2, (width - GACN_CROP[1]) // 2
        data = np.ascontiguousarray(data[:, top : top + GACN_CROP[0], left : left + GACN_CROP[1]])
        return data, f"every {GACN_STEP}th of 65 slices, central {GACN_CROP[1]}×{GACN_CROP[0]} crop", None
    if name == "macro_pcb":
        planes = sorted(p for p in path.glob("*.jpg") if p.stem != "expected")
        reference = path / "expected.jpg"
        return (
            np.stack([read_image(p) for p in planes]),
            "",
            read_image(reference) if reference.exists() else None,
        )
    stack = read_stack(path)
    data = np.asarray(stack.data)
    axes = stack.axes
    for z_name in "ZI":
        if z_name in axes and axes.index(z_name) != 0:
            data = np.moveaxis(data, axes.index(z_name), 0)
            break
    return np.ascontiguousarray(data), "", None


def run_ours(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    fuse_stack(stack[:2, :64, :64], precision="fp32")  # loads the model outside the clock
    start = time.perf_counter()
    result = fuse_stack(stack, precision="fp32")
    return result.fused, result.depth_map.astype(np.int32), result.confidence, time.perf_counter() - start


def run_enfuse(planes: list[Path], out: Path) -> tuple[np.ndarray | None, float | None]:
    script = Path(os.environ.get("ACNN_SHARED", ROOT.parent / "shared")) / "peers" / "enfuse_stack.sh"
    if not shutil.which("enfuse") or not script.exists():
        return None, None
    target = out / "enfuse.tif"
    start = time.perf_counter()
    subprocess.run(["bash", str(script), str(target), *map(str, planes)], check=True, capture_output=True)
    return tifffile.imread(target), time.perf_counter() - start


def run_focus_stack(
    planes: list[Path], out: Path
) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    binary = focus_stack_binary()
    if binary is None:
        return None, None, None
    fused_path, depth_path = out / "focus-stack.tif", out / "focus-stack-depth.png"
    command = [
        binary,
        "--no-opencl",
        "--threads=2",
        "--align-keep-size",
        f"--output={fused_path}",
        f"--depthmap={depth_path}",
        *map(str, planes),
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    raw = imread(depth_path)
    raw = raw[..., 0] if raw.ndim == 3 else raw
    n = len(planes)
    # fractional slice index: the map is smoothed, so rounding would hide its gradations
    depth = np.clip(raw.astype(np.float64) * n / 255 - 1, 0, n - 1)
    return tifffile.imread(fused_path), depth, seconds


def focus_stack_of(
    stack: np.ndarray, planes: list[Path], folder: Path
) -> tuple[np.ndarray | None, np.ndarray | None, float | None]:
    """focus-stack on ``planes`` (the slices of ``stack`` as files in ``folder``).

    focus-stack reads through OpenCV as 8 bits (the high byte: 0–2 for a dim light sheet), so a
    uint16 stack gets 8-bit slices stretched over the stack's 0.1/99.9 percentiles (one range
    for all slices), as a user would convert them; its result is mapped back.
    """
    if stack.dtype != np.uint16:
        return run_focus_stack(planes, folder)
    low, high = (float(v) for v in np.percentile(stack, [0.1, 99.9]))
    eight = [
        np.clip((plane.astype(np.float64) - low) / (high - low) * 255, 0, 255).round().astype(np.uint8)
        for plane in stack
    ]
    eight_planes = write_planes(eight, folder / "eight")
    fused, depth, seconds = run_focus_stack(eight_planes, folder)
    if fused is not None:
        fused = low + fused.astype(np.float64) / 255 * (high - low)
    return fused, depth, seconds


def outlier_share(depth: np.ndarray, slices: int, window: int = 9) -> float:
    depth = depth.astype(np.float64)
    median = ndimage.median_filter(depth, size=window, mode="nearest")
    return float(np.mean(np.abs(depth - median) > slices))


def matched(image: np.ndarray | None, like: np.ndarray) -> np.ndarray | None:
    """A peer's output in ours' shape, dtype range and channel count (None stays None)."""
    if image is None:
        return None
    image = image.astype(np.float64)
    if image.ndim == 3 and image.shape[-1] in (2, 4):
        image = image[..., :-1]  # enfuse writes an alpha channel
    if like.ndim == 2 and image.ndim == 3:
        image = image[..., :3].mean(axis=-1)
    if like.ndim == 3 and image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    if image.ndim == 3:
        image = image[..., :3]
    if image.shape[:2] != like.shape[:2]:
        image = resize(image, like.shape[:2] + image.shape[2:], order=1, preserve_range=True)
    return image


def display(image: np.ndarray | None, lo: float, hi: float, shape: tuple[int, int]) -> np.ndarray:
    if image is None:
        return np.full((*shape, 3), 0.5)
    image = np.clip((image.astype(np.float64) - lo) / (hi - lo), 0, 1)
    return image if image.ndim == 3 else np.repeat(image[..., None], 3, -1)


def shrink(image: np.ndarray, width: int) -> np.ndarray:
    height = max(1, round(image.shape[0] * width / image.shape[1]))
    return resize(image, (height, width, 3), anti_aliasing=image.shape[1] > width, order=1)


def worst_window(depth_a: np.ndarray, depth_b: np.ndarray, image: np.ndarray, size: int) -> tuple[int, int]:
    """Top-left corner of the size×size window with the largest mean |depth_a − depth_b| times
    mean gradient magnitude of ``image``, among the windows in the top quarter of gradient, so
    the crop shows a boundary rather than flat background where only noise decides depth."""
    grey = image.astype(np.float64)
    grey = grey.mean(axis=-1) if grey.ndim == 3 else grey
    gradient = ndimage.uniform_filter(np.hypot(ndimage.sobel(grey, 0), ndimage.sobel(grey, 1)), size=size)
    disagreement = ndimage.uniform_filter(np.abs(depth_a - depth_b).astype(np.float64), size=size)
    disagreement *= gradient / max(float(gradient.max()), 1e-12)  # noise in flat regions counts less
    disagreement[gradient < np.percentile(gradient, 75)] = -1
    half = size // 2
    inner = disagreement[half : disagreement.shape[0] - half, half : disagreement.shape[1] - half]
    if inner.size == 0:
        return 0, 0
    row, col = np.unravel_index(np.argmax(inner), inner.shape)
    return int(row), int(col)


def outline(image: np.ndarray, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    image = image.copy()
    top, left, bottom, right = (round(v * scale) for v in box)
    bottom, right = min(bottom, image.shape[0] - 1), min(right, image.shape[1] - 1)
    colour = np.array([0.0, 1.0, 1.0])
    for width in range(2):
        image[top + width, left:right] = colour
        image[bottom - width, left:right] = colour
        image[top:bottom, left + width] = colour
        image[top:bottom, right - width] = colour
    return image


def montage(rows: list[list[np.ndarray]]) -> np.ndarray:
    width = max(sum(p.shape[1] for p in row) + GAP * (len(row) - 1) for row in rows)
    height = sum(max(p.shape[0] for p in row) for row in rows) + GAP * (len(rows) - 1)
    canvas = np.ones((height, width, 3))
    y = 0
    for row in rows:
        x = 0
        for piece in row:
            canvas[y : y + piece.shape[0], x : x + piece.shape[1]] = piece
            x += piece.shape[1] + GAP
        y += max(p.shape[0] for p in row) + GAP
    return (canvas * 255).round().astype(np.uint8)


def one_stack(name: str, stacks: Path, images: Path) -> dict | None:
    loaded = load(name, stacks)
    if loaded is None:
        print(f"{name}: data absent, skipped")
        return None
    stack, note, reference = loaded
    n = stack.shape[0]
    print(f"{name}: {stack.shape} {stack.dtype}", flush=True)
    fused, depth, confidence, ours_s = run_ours(stack)
    start = time.perf_counter()
    var_fused, var_depth = projection(stack, "variance")
    var_s = time.perf_counter() - start
    var_depth = var_depth.astype(np.int32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        planes = write_planes(stack, folder)
        enfuse, enfuse_s = run_enfuse(planes, folder)
        fs_fused, fs_depth, fs_s = focus_stack_of(stack, planes, folder)
    if fs_depth is not None and fs_depth.shape != depth.shape:
        fs_depth = np.rint(resize(fs_depth.astype(float), depth.shape, order=0, preserve_range=True)).astype(
            np.int32
        )
    fused_all = [fused, matched(enfuse, fused), matched(fs_fused, fused), var_fused]
    if stack.dtype == np.uint16:
        lo, hi = (float(v) for v in np.percentile(fused, [0.5, 99.5]))
    else:
        lo, hi = 0.0, 255.0
    shape = fused.shape[:2]
    shown = [display(f, lo, hi, shape) for f in fused_all]
    crop = max(8, min(PANEL // ZOOM, min(shape) // 2))
    top, left = worst_window(depth, var_depth, fused, crop)
    scale = PANEL / shape[1]
    row1 = [shrink(s, PANEL) for s in shown]
    row1[0] = outline(row1[0], (top, left, top + crop, left + crop), scale)
    if reference is not None:
        row1.append(shrink(display(matched(reference, fused), lo, hi, shape), PANEL))
    depth_shown = [
        _heat(depth / max(n - 1, 1)),
        _heat(confidence.astype(np.float64)),
        _heat(fs_depth / max(n - 1, 1)) if fs_depth is not None else np.full((*shape, 3), 0.5),
        _heat(var_depth / max(n - 1, 1)),
    ]
    row2 = [shrink(d, PANEL) for d in depth_shown]
    row3 = [np.repeat(np.repeat(s[top : top + crop, left : left + crop], ZOOM, 0), ZOOM, 1) for s in shown]
    images.mkdir(parents=True, exist_ok=True)
    imsave(images / f"{name}.png", montage([row1, row2, row3]), check_contrast=False)
    limit = 1 if n <= 4 else 2
    return {
        "stack": name,
        "shape": "×".join(map(str, stack.shape)) + f" {stack.dtype}",
        "note": note,
        "outlier_rule": f">{limit} slice{'s' if limit > 1 else ''}",
        "outliers_ours_pct": round(100 * outlier_share(depth, limit), 3),
        "outliers_focus_stack_pct": (
            round(100 * outlier_share(fs_depth, limit), 3) if fs_depth is not None else ""
        ),
        "outliers_variance_pct": round(100 * outlier_share(var_depth, limit), 3),
        "ours_s": round(ours_s, 2),
        "enfuse_s": round(enfuse_s, 2) if enfuse_s is not None else "",
        "focus_stack_s": round(fs_s, 2) if fs_s is not None else "",
        "variance_s": round(var_s, 2),
        "crop_yx": f"{top},{left} {crop}px",
    }


def write(rows: list[dict], results: Path) -> None:
    """Write the table; rows of stacks not run this time are kept from the previous CSV."""
    results.mkdir(parents=True, exist_ok=True)
    previous = results / "peer_montages.csv"
    if previous.exists():
        with open(previous, newline="") as handle:
            kept = {r["stack"]: r for r in csv.DictReader(handle)}
        kept.update({r["stack"]: r for r in rows})
        rows = [kept[name] for name in STACKS if name in kept]
    with open(results / "peer_montages.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Load average at end: {os.getloadavg()[0]:.1f} (2 cores, shared). "
        "Depth outliers: % of pixels whose depth differs from their 9×9 median by more than the "
        "rule's slices. focus-stack always aligns; its depth map is smoothed and inpainted.",
        "",
        "| stack | shape | outlier rule | ours % | focus-stack % | variance % | ours s | enfuse s "
        "| focus-stack s | variance s | crop (y,x) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape = r["shape"] + (f" ({r['note']})" if r["note"] else "")
        lines.append(
            f"| {r['stack']} | {shape} | {r['outlier_rule']} | {r['outliers_ours_pct']} | "
            f"{r['outliers_focus_stack_pct']} | {r['outliers_variance_pct']} | {r['ours_s']} | "
            f"{r['enfuse_s']} | {r['focus_stack_s']} | {r['variance_s']} | {r['crop_yx']} |"
        )
    (results / "peer_montages.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stacks", nargs="+", choices=list(STACKS), default=list(STACKS))
    parser.add_argument(
        "--shared", type=Path, default=Path(os.environ.get("ACNN_SHARED", ROOT.parent / "shared"))
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    os.environ["ACNN_SHARED"] = str(args.shared)
    stacks = args.shared / "data" / "eval" / "stacks"
    if not stacks.exists():
        print(f"{stacks} absent: nothing to do")
        return
    rows = [row for name in args.stacks if (row := one_stack(name, stacks, args.out / "images" / "peers"))]
    if rows:
        write(rows, args.out / "results")
        print((args.out / "results" / "peer_montages.md").read_text())


if __name__ == "__main__":
    main()
