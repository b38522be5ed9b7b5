"""Small array helpers shared by the pipeline, training and metrics."""

from __future__ import annotations

import numpy as np

#: MATLAB ``rgb2gray`` weights, the convention of the fusion literature's metrics.
GREY_WEIGHTS = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def disk_kernel(radius: float) -> np.ndarray:
    """Normalised disk (pill-box) kernel: the defocus point-spread of a thin lens."""
    half = int(np.ceil(radius))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    # anti-aliased edge: coverage falls linearly over one pixel
    kernel = np.clip(radius + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def to_grey(image: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """(Y, X) or (Y, X, 3|4) → (Y, X) luminance in the input's value scale (float64, or ``dtype``)."""
    if image.ndim == 2:
        return image.astype(dtype)
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        return image[..., :3].astype(dtype) @ GREY_WEIGHTS.astype(dtype)
    raise ValueError(f"expected a (Y, X) grey or (Y, X, 3|4) colour image, got shape {image.shape}")


def _percentiles(sample: np.ndarray, low: float, high: float) -> tuple[float, float]:
    """Percentiles of a float64 sample without overflow: scaled by a power of two near ±1e308."""
    peak = float(np.max(np.abs(sample))) if sample.size else 0.0
    scale = float(2.0 ** -int(np.frexp(peak)[1])) if peak > 1e300 else 1.0  # a power of two: exact
    lo, hi = np.percentile(sample * scale if scale != 1.0 else sample, [low, high])
    return float(lo / scale), float(hi / scale)


def _nonempty_span(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) with hi > lo by a margin that survives halving (a constant image's range is empty)."""
    if hi / 2 - lo / 2 > 0:
        return lo, hi
    pad = max(1.0, abs(lo))
    return (lo, lo + pad) if np.isfinite(lo + pad) else (lo - pad, lo)


def unit_range_bounds(
    sample: np.ndarray, source_dtype: np.dtype | type, percentile: float = 0.01
) -> tuple[float, float] | None:
    """Robust (low, high) of ``sample`` for :func:`to_unit_range`; None = uint8's fixed 0–255.

    Finite for any finite sample (values near ±1e308, subnormals, huge offsets), with
    high > low even for a constant sample of any magnitude.
    """
    if np.dtype(source_dtype) == np.uint8:
        return None
    lo, hi = _percentiles(np.asarray(sample, dtype=np.float64).ravel(), percentile, 100.0 - percentile)
    return _nonempty_span(lo, hi)


def _float32_suffices(lo: float, hi: float) -> bool:
    """Whether float32 arithmetic resolves the range ``lo``–``hi`` (no overflow, underflow or offset loss)."""
    magnitude = max(abs(lo), abs(hi))
    span = hi - lo
    return magnitude < 1e30 and span > 1e-20 and span > magnitude * 2.0**-12


def to_unit_range(image: np.ndarray, bounds: tuple[float, float] | None) -> np.ndarray:
    """float32 [0, 1]: ``bounds`` mapped to 0 and 1 and clipped, or /255 for ``None``.

    Ranges that float32 arithmetic cannot resolve (values beyond 1e30, spans below 1e-20 or a
    large offset) are computed in float64, halved first so that nothing overflows, in bands of
    rows (the same result as all at once).
    """
    if bounds is None:
        return image.astype(np.float32) / 255.0
    lo, hi = _nonempty_span(float(bounds[0]), float(bounds[1]))
    if _float32_suffices(lo, hi):
        scale = np.float32(1.0 / (hi - lo))
        return np.clip((image.astype(np.float32) - np.float32(lo)) * scale, 0.0, 1.0)
    out = np.empty(image.shape, np.float32)
    half_lo, half_span = lo / 2, hi / 2 - lo / 2
    flat_in, flat_out = image.reshape(-1), out.reshape(-1)
    step = 1 << 22
    for start in range(0, flat_in.size, step):
        chunk = flat_in[start : start + step].astype(np.float64) / 2
        flat_out[start : start + step] = np.clip((chunk - half_lo) / half_span, 0.0, 1.0)
    return out


def joint_unit_range(
    *images: np.ndarray, source_dtype: np.dtype | type | None = None, percentile: float = 0.01
) -> list[np.ndarray]:
    """Scale images together to float32 [0, 1] using their joint robust min and max.

    The same scale for all keeps their relative brightness; the tails (``percentile`` %
    at each end, e.g. hot pixels in fluorescence) are clipped. uint8 images keep the
    fixed 0–255 scale (pass ``source_dtype`` when the images are derived from uint8 data,
    e.g. their grey conversion).
    """
    dtypes = {np.dtype(source_dtype)} if source_dtype is not None else {img.dtype for img in images}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float64
    bounds = None
    if dtype != np.uint8:
        sample = np.concatenate([img.ravel()[:: max(1, img.size // 1_000_000)] for img in images])
        bounds = unit_range_bounds(sample, dtype, percentile)
    return [to_unit_range(img, bounds) for img in images]


def to_uint8_grey(image: np.ndarray) -> np.ndarray:
    """MATLAB-style grey rounded to uint8 (input scaled to 0–255 first if not uint8)."""
    grey = to_grey(image)
    if image.dtype != np.uint8:
        grey = joint_unit_range(grey, source_dtype=image.dtype)[0] * 255.0
    return np.clip(np.round(grey), 0, 255).astype(np.uint8)


#: Arrays larger than this go to a temporary file instead of memory (:func:`scratch_array`).
SCRATCH_IN_MEMORY_BYTES = 256 * 2**20


def scratch_array(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised array; above ``SCRATCH_IN_MEMORY_BYTES`` backed by an unnamed temporary file.

    For stack-sized intermediates (planes read from a folder, drift-corrected slices): the
    operating system pages them in and out as they are used, so they do not have to fit in
    memory. The file lives in the system temporary folder (``TMPDIR``) and disappears when the
    array does.
    """
    import tempfile

    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size <= SCRATCH_IN_MEMORY_BYTES:
        return np.empty(shape, dtype)
    with tempfile.TemporaryFile(prefix="acnn-fusion-") as backing:  # unlinked at once on POSIX
        return np.memmap(backing, dtype=dtype, mode="w+", shape=shape)
