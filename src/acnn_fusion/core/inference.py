"""Dense, tiled evaluation of the ACNN and the per-pixel focus map (paper step 1)."""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch

from acnn_fusion.core.model import ACNN, PATCH_SIZE, SCORE_STRIDE, score_map_shape
from acnn_fusion.options import DEFAULT_TILE, PRECISIONS

ProgressCallback = Callable[[int, int], None]


def select_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; an explicit device must be available."""
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available on this machine")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {device!r} requested but Apple MPS is not available on this machine")
    if not (name == "cpu" or name == "mps" or name.startswith("cuda")):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def available_devices() -> list[str]:
    """Device names that :func:`select_device` accepts on this machine."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names.append("cuda")
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX-512 BF16 or AMX (Linux); elsewhere bf16 would be emulated."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> torch.dtype:
    """The dtype the network runs in: ``torch.bfloat16`` (autocast) or ``torch.float32``.

    bf16 changes 0.05 % of the Lytro-20 decision-map pixels and runs the CPU network ~1.8×
    faster where the CPU has native bf16 (``docs/performance.md``); on CPUs without it, bf16
    is emulated and several times slower, so ``auto`` keeps fp32 there.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {PRECISIONS}")
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if device.type == "cpu" and _cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def _ieee_fp32_convolutions() -> Iterator[None]:
    """cuDNN convolutions in full fp32: by default torch lets them round inputs to TF32."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``dtype`` on ``device``; for fp32, IEEE fp32 (no TF32 on CUDA)."""
    if dtype == torch.float32:
        return _ieee_fp32_convolutions() if device.type == "cuda" else contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def thread_settings() -> dict[str, object]:
    """How the CPU runs the network: torch threads, OpenMP wait policy, usable CPUs (for reports)."""
    from acnn_fusion import core

    return {
        "torch_threads": torch.get_num_threads(),
        "usable_cpus": core.usable_cpus(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "set_by_acnn_fusion": dict(core.OPENMP_DEFAULTS_APPLIED),
    }


def score_tiles(height: int, width: int, tile: int, halo: int = 0) -> list[tuple[slice, slice, slice, slice]]:
    """Split the score map of an image into tiles: (score rows, score cols, input rows, input cols).

    Each tile carries the input rows and columns its patches need, so tiled evaluation
    computes exactly the patches an untiled one does. With ``halo=7`` the tiles cover the
    grid of 2×2-pixel blocks instead ((h + 7, w + 7), :func:`patch_average_grid`) and the
    input also holds the 7 score rows and columns before each tile: every patch covering
    its blocks. A tile's first score row is ``input rows.start // SCORE_STRIDE``.
    """
    if tile < PATCH_SIZE:
        raise ValueError(f"tile must be at least {PATCH_SIZE} pixels, got {tile}")
    h, w = score_map_shape(height, width)
    step = max(1, (tile - PATCH_SIZE) // SCORE_STRIDE + 1 - halo)

    def spans(n: int) -> list[tuple[slice, slice]]:
        out = []
        for start in range(0, n + halo, step):
            stop = min(n + halo, start + step)
            first, last = max(0, start - halo), min(n, stop) - 1  # score rows needed
            out.append((slice(start, stop), slice(SCORE_STRIDE * first, SCORE_STRIDE * last + PATCH_SIZE)))
        return out

    return [(rows, cols, in_rows, in_cols) for rows, in_rows in spans(h) for cols, in_cols in spans(w)]


_PREPARED: weakref.WeakKeyDictionary[ACNN, dict[str, ACNN]] = weakref.WeakKeyDictionary()
_PREPARED_LOCK = threading.Lock()


def prepare(model: ACNN, device: torch.device) -> ACNN:
    """The model laid out for ``device`` (channels-last on the CPU, where it is faster).

    Returns a copy made once per (model, device) and cached; ``model`` itself is never moved
    or changed, so runs on different devices or threads can share one loaded model. The
    network runs in inference mode only, so the copy is safe to use from several threads.
    """
    if getattr(model, "prepared_for", None) == str(device):
        return model
    with _PREPARED_LOCK:
        per_device = _PREPARED.setdefault(model, {})
        if str(device) not in per_device:
            copy = deepcopy(model).to(device)
            if device.type == "cpu":
                copy = copy.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            copy.prepared_for = str(device)
            per_device[str(device)] = copy
        return per_device[str(device)]


def to_input(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, Y, X) float32 numpy → (N, 1, Y, X) tensor on ``device``."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))[:, None].to(device)
    return x.contiguous(memory_format=torch.channels_last) if device.type == "cpu" else x


@torch.inference_mode()
def score_map(
    model: ACNN,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    precision: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Patch scores at stride 2: float32 (h, w), entry (i, j) for the patch at (2i, 2j)."""
    height, width = grey_a.shape
    tiles = score_tiles(height, width, tile)
    model = prepare(model, device)
    dtype = resolve_precision(precision, device)
    scores = np.empty(score_map_shape(height, width), dtype=np.float32)
    for done, (rows, cols, in_rows, in_cols) in enumerate(tiles, start=1):
        x = to_input(np.stack([grey_a[in_rows, in_cols], grey_b[in_rows, in_cols]]), device)
        with autocast(device, dtype):
            features = model.branch(x)
            logits = model.head(features[:1], features[1:])
        n_rows, n_cols = rows.stop - rows.start, cols.stop - cols.start
        scores[rows, cols] = ACNN.score(logits)[0, :n_rows, :n_cols].cpu().numpy()
        if progress is not None:
            progress(done, len(tiles))
    return scores


def _window8_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """Sums of 8 consecutive entries along ``axis``, zero-padded: length n + 7."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (7, 7)
    padded = np.moveaxis(np.pad(values, pad), axis, 0)
    n_out = values.shape[axis] + 7
    total = padded[:n_out].copy()
    for k in range(1, 8):  # slices, not np.take: no index arrays, no copies per term
        total += padded[k : k + n_out]
    return np.moveaxis(total, 0, axis)


def patch_average_grid(values: np.ndarray) -> np.ndarray:
    """Mean of per-patch values over the patches covering each 2×2 pixel block.

    A pixel at row y is covered by the patches of score rows y//2 − 7 … y//2, so the
    average is an 8×8 box sum on the score grid divided by the number of covering
    patches. Returns float64 (h + 7, w + 7); :func:`grid_to_pixels` expands it.
    """
    h, w = values.shape
    return patch_average_blocks(values.astype(np.float64), (0, 0), (slice(0, h + 7), slice(0, w + 7)), (h, w))


def patch_average_blocks(
    values: np.ndarray,
    first_score: tuple[int, int],
    blocks: tuple[slice, slice],
    score_shape: tuple[int, int],
) -> np.ndarray:
    """:func:`patch_average_grid` for the blocks ``blocks`` only, from part of the score grid.

    ``values`` holds the score rows and columns from ``first_score`` on, including every
    patch that covers those blocks (block − 7 … block); ``score_shape`` is the whole grid's,
    for the number of covering patches. The sums run in a fixed order, so a tile computes
    exactly what the whole grid does.
    """
    (first_row, first_col), (rows, cols), (h, w) = first_score, blocks, score_shape
    row_sums = _window8_sum(values, 0)[rows.start - first_row : rows.stop - first_row]
    sums = _window8_sum(row_sums, 1)[:, cols.start - first_col : cols.stop - first_col]
    count_rows = _window8_sum(np.ones(h), 0)[rows]
    count_cols = _window8_sum(np.ones(w), 0)[cols]
    return sums / np.outer(count_rows, count_cols)


def grid_to_pixels(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Expand a per-2×2-block grid to pixels; an odd uncovered margin copies its neighbour."""
    height, width = shape
    full = np.repeat(np.repeat(grid, SCORE_STRIDE, axis=0), SCORE_STRIDE, axis=1)
    covered_h, covered_w = min(height, full.shape[0]), min(width, full.shape[1])
    full = full[:covered_h, :covered_w]
    if (covered_h, covered_w) != (height, width):
        full = np.pad(full, ((0, height - covered_h), (0, width - covered_w)), mode="edge")
    return full


def focus_map_from_scores(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Average of the scores of every 16×16 patch (stride 2) covering each pixel: float32 (Y, X)."""
    # cast on the grid, before expanding to pixels: the same values, a quarter of the memory
    return grid_to_pixels(patch_average_grid(scores).astype(np.float32), shape)


def compute_focus_map(
    model: ACNN,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    precision: str = "auto",
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Focus map S: float32 (Y, X) in [0, 1], near 1 where A is the focused image."""
    scores = score_map(
        model, grey_a, grey_b, device=device, tile=tile, precision=precision, progress=progress
    )
    return focus_map_from_scores(scores, grey_a.shape)
