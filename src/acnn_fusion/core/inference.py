"""Dense, tiled evaluation of the ACNN and the per-pixel focus map (paper step 1)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from acnn_fusion.core.model import ACNN, PATCH_SIZE, SCORE_STRIDE, score_map_shape

#: Default tile edge in pixels: bounds memory (≈ 0.4 GB of activations for the default widths).
DEFAULT_TILE = 1024

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


def _tile_starts(n_scores: int, tile_scores: int) -> list[int]:
    return list(range(0, n_scores, tile_scores))


@torch.inference_mode()
def score_map(
    model: ACNN,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Patch scores at stride 2: float32 (h, w), entry (i, j) for the patch at (2i, 2j).

    Tiles are cut in score space, each with the input rows its patches need, so a tiled
    run computes exactly the same patches as an untiled one.
    """
    if tile < PATCH_SIZE:
        raise ValueError(f"tile must be at least {PATCH_SIZE} pixels, got {tile}")
    h, w = score_map_shape(*grey_a.shape)
    tile_scores = (tile - PATCH_SIZE) // SCORE_STRIDE + 1
    model = model.to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    pair = np.stack([grey_a, grey_b]).astype(np.float32, copy=False)
    scores = np.empty((h, w), dtype=np.float32)
    rows, cols = _tile_starts(h, tile_scores), _tile_starts(w, tile_scores)
    done, total = 0, len(rows) * len(cols)
    for r0 in rows:
        r1 = min(h, r0 + tile_scores)
        for c0 in cols:
            c1 = min(w, c0 + tile_scores)
            crop = pair[
                :,
                SCORE_STRIDE * r0 : SCORE_STRIDE * (r1 - 1) + PATCH_SIZE,
                SCORE_STRIDE * c0 : SCORE_STRIDE * (c1 - 1) + PATCH_SIZE,
            ]
            x = torch.from_numpy(np.ascontiguousarray(crop))[:, None].to(device)
            if device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            features = model.branch(x)
            logits = model.head(features[:1], features[1:])
            tile_scores_map = ACNN.score(logits)[0, : r1 - r0, : c1 - c0]
            scores[r0:r1, c0:c1] = tile_scores_map.cpu().numpy()
            done += 1
            if progress is not None:
                progress(done, total)
    return scores


def _window8_sum(values: np.ndarray, axis: int) -> np.ndarray:
    """Sums of 8 consecutive entries along ``axis``, zero-padded: length n + 7."""
    pad = [(0, 0)] * values.ndim
    pad[axis] = (7, 7)
    padded = np.pad(values, pad)
    n_out = values.shape[axis] + 7
    total = np.zeros_like(np.take(padded, np.arange(n_out), axis=axis))
    for k in range(8):
        total += np.take(padded, np.arange(k, k + n_out), axis=axis)
    return total


def focus_map_from_scores(scores: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Average of the scores of every 16×16 patch (stride 2) covering each pixel.

    A pixel at row y is covered by the patches of score rows y//2 − 7 … y//2, so the
    average is an 8×8 box sum on the score grid, repeated ×2 in each direction, divided
    by the number of covering patches. Pixels beyond the last patch (odd margins) take
    the value of their nearest covered neighbour.
    """
    height, width = shape
    sums = _window8_sum(_window8_sum(scores.astype(np.float64), 0), 1)
    count_rows = _window8_sum(np.ones(scores.shape[0]), 0)
    count_cols = _window8_sum(np.ones(scores.shape[1]), 0)
    mean = sums / np.outer(count_rows, count_cols)
    full = np.repeat(np.repeat(mean, SCORE_STRIDE, axis=0), SCORE_STRIDE, axis=1)
    covered_h = min(height, full.shape[0])
    covered_w = min(width, full.shape[1])
    full = full[:covered_h, :covered_w]
    if (covered_h, covered_w) != (height, width):
        full = np.pad(full, ((0, height - covered_h), (0, width - covered_w)), mode="edge")
    return full.astype(np.float32)


def compute_focus_map(
    model: ACNN,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    device: torch.device,
    tile: int = DEFAULT_TILE,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """Focus map S: float32 (Y, X) in [0, 1], near 1 where A is the focused image."""
    scores = score_map(model, grey_a, grey_b, device=device, tile=tile, progress=progress)
    return focus_map_from_scores(scores, grey_a.shape)
