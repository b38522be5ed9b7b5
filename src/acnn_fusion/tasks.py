"""Read → fuse → write, for one pair or one stack: the one task the CLI, batch and napari run.

Every output path is checked against every input before anything is read (:func:`check_outputs`):
an output never replaces an input. Writes are atomic (:func:`~acnn_fusion.io.write_image`).
Also here: scoring a folder of pairs and the sample-data demo, so no face computes anything.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from acnn_fusion.io import (
    IMAGE_SUFFIXES,
    LOSSY_SUFFIXES,
    StackData,
    find_fused,
    find_pairs,
    layout,
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


def _resolved(path: Path, role: str) -> Path:
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python < 3.13 raises RuntimeError for a loop
        raise ValueError(f"{role} {path}: symbolic link loop ({exc})") from None


def _identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file: the same for hard links and differently cased names."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _input_files(inputs: Sequence[Path]) -> tuple[set[Path], set[tuple[int, int]]]:
    """Resolved input paths and their file identities; a folder input counts as every file in it."""
    paths: set[Path] = set()
    identities: set[tuple[int, int]] = set()
    for path in inputs:
        resolved = _resolved(Path(path), "input")
        members = [resolved]
        if resolved.is_dir():
            members += list(resolved.iterdir())
        for member in members:
            try:
                member = member.resolve()
            except (RuntimeError, OSError):
                continue  # a link loop inside a folder holds no data to protect
            paths.add(member)
            identity = _identity(member)
            if identity is not None:
                identities.add(identity)
    return paths, identities


def same_file(first: Path, second: Path) -> bool:
    """Whether two paths name one file or folder (resolved paths, or device and inode)."""
    if _resolved(Path(first), "path") == _resolved(Path(second), "path"):
        return True
    one, other = _identity(Path(first)), _identity(Path(second))
    return one is not None and one == other


def refuse_input_overwrite(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """ValueError if an output is a folder or is, resolves to, or is linked to an input file."""
    protected, identities = _input_files(inputs)
    for out in outputs:
        resolved = _resolved(Path(out), "output")
        if resolved.is_dir():
            raise ValueError(f"output {out} is a folder; give a file name")
        identity = _identity(resolved)
        if resolved in protected or (identity is not None and identity in identities):
            raise ValueError(f"output {out} is one of the inputs; refusing to overwrite an input")


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """Refuse (ValueError) before anything runs: an output that is, or is linked to, an input.

    An output is refused when its resolved path (symlinks, ``..``) is an input or a file of an
    input folder, when it is the same file as one (hard links, another spelling on a
    case-insensitive file system: compared by device and inode), when it is a folder, when two
    outputs are one file, or when its format is not one we write losslessly (JPEG: a fused
    image would hold pixels from neither source).
    """
    refuse_input_overwrite(outputs, inputs)
    seen: dict[Path, Path] = {}
    seen_ids: dict[tuple[int, int], Path] = {}
    for out in outputs:
        out = Path(out)
        suffix = out.suffix.lower()
        if suffix in LOSSY_SUFFIXES:
            raise ValueError(
                f"{out}: JPEG is lossy, so the written pixels would come from neither source; "
                "write .tif or .png"
            )
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(f"{out}: unsupported output type {out.suffix!r} (use .tif or .png)")
        resolved = _resolved(out, "output")
        identity = _identity(resolved)
        twin = seen.get(resolved) or (seen_ids.get(identity) if identity is not None else None)
        if twin is not None:
            raise ValueError(f"outputs {twin} and {out} are the same file; give each its own name")
        seen[resolved] = out
        if identity is not None:
            seen_ids[identity] = out


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
    fused_axes, depth_axes = result_axes(stack, axis)
    size, unit = stack.pixel_size, stack.unit
    write_image(outputs.fused, result.fused, axes=fused_axes, pixel_size=size, unit=unit)
    if outputs.depth_map is not None:
        write_image(outputs.depth_map, result.depth_map, axes=depth_axes, pixel_size=size, unit=unit)
    return result, stack


def result_axes(stack: StackData, axis: int | None = None) -> tuple[str, str]:
    """Axes of a folded stack's fused image and depth map: the stack's without the focus axis.

    Time (if any) comes first, as :func:`~acnn_fusion.core.stack.fuse_stack` returns it; the
    other axes keep their order (``ZYXC`` → ``YXC``, ``TZCYX`` → ``TCYX``).
    """
    found = layout(stack.axes, stack.data.shape, axis)
    dropped = {found.z_axis, found.time_axis}
    rest = "".join(a for i, a in enumerate(found.axes) if i not in dropped)
    prefix = "T" if found.time_axis is not None else ""
    return prefix + rest, prefix + "YX"


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
        try:
            scores = evaluate(image_a, image_b, fused)
        except ValueError as exc:
            raise ValueError(f"pair {pair.stem}: {exc}") from None
        row: dict[str, Any] = {"pair": pair.stem, **scores}
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
        say(f"rendering the sample data into {sample_dir}")
        _render_samples_without_replacing(sample_dir)
    outputs = [out / "fused.tif", out / "focus_map.tif", out / "decision_map.png"]
    check_outputs(outputs, [sample_dir])
    image_a, image_b = read_image(sample_dir / "pair_A.tif"), read_image(sample_dir / "pair_B.tif")
    fuse_pair(image_a[:64, :64], image_b[:64, :64], options)  # load the model, warm up
    start = time.perf_counter()
    result = fuse_pair(image_a, image_b, options)
    seconds = time.perf_counter() - start
    for path, image in zip(outputs, (result.fused, result.focus_map, result.decision_map), strict=True):
        write_image(path, image)
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


def _render_samples_without_replacing(sample_dir: Path) -> None:
    """Render the sample data into a private folder, then link each file in; an existing file stays."""
    from acnn_fusion.synthetic import write_sample_data

    sample_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".acnn-tmp-demo-", dir=sample_dir))
    try:
        for rendered in write_sample_data(scratch):
            try:
                os.link(rendered, sample_dir / rendered.name)  # fails if the name exists
            except FileExistsError:
                raise ValueError(
                    f"{sample_dir / rendered.name} exists; refusing to replace it with sample data"
                ) from None
            except OSError:  # no hard links here: copy, still never replacing
                with open(rendered, "rb") as src, open(sample_dir / rendered.name, "xb") as dst:
                    shutil.copyfileobj(src, dst)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
