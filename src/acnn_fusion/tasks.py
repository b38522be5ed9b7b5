"""Read → fuse → write, for one pair or one stack: the one task the CLI, batch and napari run.

Every output path is checked against every input before anything is read (:func:`check_outputs`):
an output never replaces an input. Writes are atomic (:func:`~acnn_fusion.io.write_image`).
Also here: scoring a folder of pairs and the sample-data demo, so no face computes anything.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acnn_fusion.io import (
    IMAGE_SUFFIXES,
    StackData,
    find_fused,
    find_pairs,
    read_image,
    read_stack,
    stack_axes,
    write_image,
)
from acnn_fusion.options import FusionOptions

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class PairOutputs:
    """Where a pair's results go; maps are optional."""

    fused: Path
    focus_map: Path | None = None
    decision_map: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.fused, self.focus_map, self.decision_map) if p is not None]


@dataclass(frozen=True)
class StackOutputs:
    """Where a stack's results go; the depth map is optional."""

    fused: Path
    depth_map: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (self.fused, self.depth_map) if p is not None]


def _input_files(inputs: Sequence[Path]) -> set[Path]:
    """Resolved input files; a folder input counts as every file in it."""
    found: set[Path] = set()
    for path in inputs:
        resolved = Path(path).resolve()
        found.add(resolved)
        if resolved.is_dir():
            found.update(p.resolve() for p in resolved.iterdir())
    return found


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """Refuse (ValueError) an output that is an input, or two outputs that are one file."""
    protected = _input_files(inputs)
    seen: dict[Path, Path] = {}
    for out in outputs:
        resolved = Path(out).resolve()
        if resolved in protected or any(resolved == Path(i).resolve() for i in inputs):
            raise ValueError(f"output {out} is one of the inputs; refusing to overwrite an input")
        if resolved in seen:
            raise ValueError(f"outputs {seen[resolved]} and {out} are the same file; give each its own name")
        seen[resolved] = Path(out)
        if out.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{out}: unsupported output type {out.suffix!r} (use .tif or .png)")


def write_focus_map(path: Path, focus_map: np.ndarray) -> None:
    """Float TIFF, or 8-bit for PNG/JPEG."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        focus_map = np.round(focus_map * 255).astype(np.uint8)
    write_image(path, focus_map)


def fuse_pair_files(
    path_a: Path,
    path_b: Path,
    outputs: PairOutputs,
    options: FusionOptions,
    progress: ProgressCallback | None = None,
) -> Any:
    """Fuse two image files and write the outputs; returns the :class:`FusionResult`."""
    from acnn_fusion.core.pipeline import fuse_pair

    check_outputs(outputs.paths(), [path_a, path_b])
    image_a, image_b = read_image(path_a), read_image(path_b)
    result = fuse_pair(image_a, image_b, options, progress=progress)
    write_image(outputs.fused, result.fused)
    if outputs.focus_map is not None:
        write_focus_map(outputs.focus_map, result.focus_map)
    if outputs.decision_map is not None:
        write_image(outputs.decision_map, result.decision_map.astype(np.uint8) * 255)
    return result


def fuse_stack_file(
    path: Path,
    outputs: StackOutputs,
    options: FusionOptions,
    axis: int | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[Any, StackData]:
    """Fold a stack file or folder and write the outputs; returns (StackResult, what was read)."""
    from acnn_fusion.core.stack import fuse_stack

    check_outputs(outputs.paths(), [path])
    stack = read_stack(path)
    data, z_axis, channel_axis, time_axis = stack_axes(stack, axis, name=path)
    result = fuse_stack(
        data, options, axis=z_axis, channel_axis=channel_axis, time_axis=time_axis, progress=progress
    )
    write_image(outputs.fused, result.fused, pixel_size=stack.pixel_size, unit=stack.unit)
    if outputs.depth_map is not None:
        write_image(outputs.depth_map, result.depth_map, pixel_size=stack.pixel_size, unit=stack.unit)
    return result, stack


# -- scoring ------------------------------------------------------------------------------
def evaluate_folder(
    pairs_dir: Path,
    options: FusionOptions,
    fused_dir: Path | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Score every pair of ``pairs_dir``: its fused image from ``fused_dir``, else fused now.

    Rows hold the pair's stem, MI, Q^AB/F, Q_MI, Q_Y (and seconds when fused now); the last
    row is the mean. Pairs follow :mod:`acnn_fusion.io.pairs`' naming rule.
    """
    from acnn_fusion.metrics import evaluate

    pairs = [p for p in find_pairs(pairs_dir) if not p.problem]
    if not pairs:
        raise ValueError(f"no image pairs named *_A.* / *_B.* (or -A / -B) found in {pairs_dir}")
    rows: list[dict[str, Any]] = []
    for pair in pairs:
        image_a, image_b = (read_image(p) for p in pair.paths)
        start = time.perf_counter()
        if fused_dir is not None:
            fused = read_image(find_fused(fused_dir, pair.stem))
        else:
            from acnn_fusion.core.pipeline import fuse_pair

            fused = fuse_pair(image_a, image_b, options).fused
        row: dict[str, Any] = {"pair": pair.stem, **evaluate(image_a, image_b, fused)}
        if fused_dir is None:
            row["seconds"] = time.perf_counter() - start
        rows.append(row)
        if on_row is not None:
            on_row(row)
    keys = [k for k in rows[0] if k != "pair"]
    rows.append({"pair": "mean", **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
    return rows


def write_tables(rows: list[dict[str, Any]], stem: Path) -> tuple[Path, Path]:
    """Write rows as ``<stem>.csv`` and a Markdown table ``<stem>.md``."""
    keys = [k for k in rows[0] if k != "pair"]
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["pair", *keys])
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| pair | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines += ["| " + r["pair"] + " | " + " | ".join(f"{r[k]:.4f}" for k in keys) + " |" for r in rows]
    md_path.write_text("\n".join(lines) + "\n")
    return csv_path, md_path


def psnr(image: np.ndarray, reference: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB."""
    error = image.astype(np.float64) - reference.astype(np.float64)
    return float(10 * np.log10(peak**2 / max(float(np.mean(error**2)), 1e-12)))


# -- the demo -----------------------------------------------------------------------------
SAMPLE_FILES = ("pair_A.tif", "pair_B.tif", "pair_sharp.tif", "pair_mask.png")


def run_demo(sample_dir: Path, out: Path, options: FusionOptions, say: Callable[[str], None]) -> None:
    """Fuse the sample pair (rendered into an empty ``sample_dir`` if absent) and report scores."""
    from acnn_fusion.core.pipeline import fuse_pair
    from acnn_fusion.metrics import evaluate

    present = [name for name in SAMPLE_FILES if (sample_dir / name).exists()]
    if len(present) < len(SAMPLE_FILES):
        if sample_dir.exists() and any(sample_dir.iterdir()):
            raise ValueError(
                f"{sample_dir} holds other files but not the sample pair ({', '.join(SAMPLE_FILES)}); "
                "give --sample-dir an empty or new folder to render the sample data into"
            )
        from acnn_fusion.synthetic import write_sample_data

        say(f"rendering the sample data into {sample_dir}")
        write_sample_data(sample_dir)
    image_a, image_b = read_image(sample_dir / "pair_A.tif"), read_image(sample_dir / "pair_B.tif")
    fuse_pair(image_a[:64, :64], image_b[:64, :64], options)  # load the model, warm up
    start = time.perf_counter()
    result = fuse_pair(image_a, image_b, options)
    seconds = time.perf_counter() - start
    write_image(out / "fused.tif", result.fused)
    write_image(out / "focus_map.tif", result.focus_map)
    write_image(out / "decision_map.png", result.decision_map)
    scores = evaluate(image_a, image_b, result.fused)
    truth = read_image(sample_dir / "pair_mask.png") > 0
    sharp = read_image(sample_dir / "pair_sharp.tif")
    say(
        f"fused the sample pair {image_a.shape} in {seconds:.2f} s → {out}/fused.tif, "
        "focus_map.tif, decision_map.png"
    )
    say("metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
    say(
        f"against ground truth: decision accuracy {np.mean(result.decision_map == truth):.2%}, "
        f"PSNR {psnr(result.fused, sharp):.2f} dB"
    )
