"""Pair fusion, the paper's four steps: focus map → binary map → decision map → fused image."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from acnn_fusion.core.compose import compose_pair
from acnn_fusion.core.decision import (
    blocks_near,
    boundary_band,
    edge_side_reach,
    fine_energy,
    majority3,
    override_by_fine_measure,
    refine_edge_side,
    remove_unconfident_regions_in_bands,
)
from acnn_fusion.core.geometry import PATCH_SIZE, SCORE_STRIDE, score_map_shape
from acnn_fusion.core.imageops import (
    GREY_WEIGHTS,
    SUPPORTED_DTYPES,
    joint_unit_range,
    to_grey,
    to_unit_range,
    unit_range_bounds,
)
from acnn_fusion.core.inference import (
    Network,
    ProgressCallback,
    cpu_threads,
    open_network,
    patch_average_blocks,
    score_tiles,
)
from acnn_fusion.options import COMPOSITIONS, PRESET_NAMES, FusionOptions, option_names


@dataclass(frozen=True)
class FusionSettings:
    """Decision parameters (defaults measured in ``docs/quality.md``).

    - ``threshold`` (β): focus-map level above which a pixel goes to A.
    - ``min_region_px``: regions of either source of at most this many pixels are
      handed to the other source, unless the focus map is confident about them (next).
      Pixels, not a share of the image, so the result does not depend on image size;
      the default, 4096 px (64×64, sixteen 16×16 patches), is tied to the patch scale
      (capped at a quarter of the image).
    - ``region_confidence``: a small region whose focus-map margin |2S − 1| exceeds this
      somewhere is kept at any size; 1.0 = never (every small region goes).
    - ``min_region``: the paper's rule, a minimum region as a fraction of the image area
      (0 = off). Where both are set, the larger minimum applies.
    - ``refine_radius`` (pixels, 0 = off) and ``refine_window``: :func:`refine_boundary`.
    - ``composition``: how the fused image is assembled (:mod:`acnn_fusion.core.compose`):
      ``copy`` (every pixel from one source) or ``pyramid`` (multi-resolution blending).
    - ``detail_margin``: where the fine focus measure (Laplacian energy in a
      ``refine_window``-pixel window) prefers one source by more than this relative
      margin, it overrides the patch decision (details and thin structures smaller than
      a patch); 1.0 = off.
    - ``detail_robust``: where that margin is unsure, the same test on a step-robust
      (median) energy decides, which keeps a crisp occlusion edge from taking a few pixels
      of the other side (:func:`~acnn_fusion.core.decision.override_by_fine_measure`).
    - ``detail_edge_side``: then, within 3 px of the boundary, a measure that compares the
      sources on the pixel's own side of a step edge (the window beside the edge, not across
      it) re-decides where it is clear and no defocus glow speaks against it
      (:func:`~acnn_fusion.core.decision.refine_edge_side`): the rim of a small detail goes
      to the detail's sharp source. Off with ``detail_margin`` = 1.0.
    """

    threshold: float = 0.5
    min_region: float = 0.0
    refine_radius: int = 4
    refine_window: int = 5
    min_region_px: int = 4096
    region_confidence: float = 0.9
    detail_margin: float = 0.5
    detail_robust: bool = True
    detail_edge_side: bool = True
    composition: str = "copy"

    def __post_init__(self) -> None:
        if self.composition not in COMPOSITIONS:
            raise ValueError(f"unknown composition {self.composition!r}; choose from {COMPOSITIONS}")
        if self.refine_radius < 0 or self.refine_window < 1:
            raise ValueError("refine_radius must be ≥ 0 and refine_window ≥ 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if not 0.0 <= self.min_region < 1.0:
            raise ValueError(f"min_region must be a fraction in [0, 1), got {self.min_region}")
        if self.min_region_px < 0:
            raise ValueError(f"min_region_px must be ≥ 0 pixels, got {self.min_region_px}")
        if not 0.0 <= self.region_confidence <= 1.0:
            raise ValueError(f"region_confidence must lie in [0, 1], got {self.region_confidence}")
        if not 0.0 < self.detail_margin <= 1.0:
            raise ValueError(f"detail_margin must lie in (0, 1], got {self.detail_margin}")

    def min_region_size(self, image_area: int) -> int:
        """The minimum region in pixels for an image of ``image_area`` pixels: the larger
        of the two rules, but never more than a quarter of the image (on images under
        128×128 px a pixel minimum could otherwise swap the whole image)."""
        return min(max(int(self.min_region * image_area), self.min_region_px), image_area // 4)


#: Named settings. ``paper`` is Du & Gao (2018): β = 0.9, every region under 1 % of the image
#: removed, no refinement, no fine override.
PRESETS: dict[str, FusionSettings] = {
    "default": FusionSettings(),
    "paper": FusionSettings(
        threshold=0.9,
        min_region=0.01,
        refine_radius=0,
        min_region_px=0,
        region_confidence=1.0,
        detail_margin=1.0,
    ),
}


def resolve_settings(
    preset: str = "default",
    threshold: float | None = None,
    min_region: float | None = None,
    min_region_px: int | None = None,
) -> FusionSettings:
    """A preset's settings with ``threshold``/``min_region``/``min_region_px`` overridden where given."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
    assert set(PRESETS) == set(PRESET_NAMES)  # the options model lists the same names
    base = PRESETS[preset]
    return replace(
        base,
        threshold=base.threshold if threshold is None else threshold,
        min_region=base.min_region if min_region is None else min_region,
        min_region_px=base.min_region_px if min_region_px is None else min_region_px,
    )


@dataclass
class FusionResult:
    """Result of :func:`fuse_pair`; arrays have the inputs' height and width."""

    fused: np.ndarray  # same shape and dtype as the inputs
    focus_map: np.ndarray  # float32 (Y, X) in [0, 1]: 1 = A in focus
    decision_map: np.ndarray  # bool (Y, X): True = pixel taken from A
    settings: FusionSettings = field(default_factory=FusionSettings)


def validate_image(image: object, name: str) -> np.ndarray:
    """Check one input image; return it as an array or raise TypeError/ValueError naming it."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(f"{name} has unsupported dtype {image.dtype}; use uint8, uint16, float32 or float64")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(
            f"{name} must be (Y, X) grey or (Y, X, 3|4) colour, got shape {image.shape}; "
            "use fuse_stack for z-stacks"
        )
    if image.shape[0] < PATCH_SIZE or image.shape[1] < PATCH_SIZE:
        raise ValueError(
            f"{name} is {image.shape[0]}×{image.shape[1]}, smaller than the "
            f"{PATCH_SIZE}×{PATCH_SIZE} patch the network needs"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return image


def validate_pair(image_a: object, image_b: object) -> tuple[np.ndarray, np.ndarray]:
    a = validate_image(image_a, "image A")
    b = validate_image(image_b, "image B")
    if a.shape != b.shape:
        raise ValueError(f"images A and B differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise TypeError(f"images A and B differ in dtype: {a.dtype} vs {b.dtype}")
    if a.dtype == np.float64:
        _check_float32_resolves(a, b)
    return a, b


def _check_float32_resolves(a: np.ndarray, b: np.ndarray) -> None:
    """Refuse float64 pairs whose values float32 (what the network sees) cannot resolve."""
    samples = [
        img.reshape(-1, *img.shape[2:])[:: max(1, img.shape[0] * img.shape[1] // 500_000)] for img in (a, b)
    ]
    grey = np.concatenate([s if s.ndim == 1 else s[:, :3] @ GREY_WEIGHTS for s in samples])
    magnitude = float(np.max(np.abs(grey)))
    lo, hi = float(np.min(grey)), float(np.max(grey))
    reason = ""
    if magnitude >= 1e38:
        reason = f"values reach {magnitude:.3g}, beyond float32's range (±3.4e38)"
    elif hi > lo and hi - lo < 1e-30:
        reason = f"values vary by only {hi - lo:.3g}, below float32's resolution"
    elif hi > lo and hi - lo < magnitude * 2.0**-12:
        reason = f"values vary by {hi - lo:.3g} on an offset of {magnitude:.3g}, lost in float32"
    if reason:
        raise ValueError(
            f"images A and B (float64): {reason}; the network computes in float32. "
            "Rescale the images (subtract the offset, multiply by a power of ten) first"
        )


def decide(focus_map: np.ndarray, settings: FusionSettings = PRESETS["default"]) -> np.ndarray:
    """Steps 2–3: threshold the focus map, then drop small unconfident regions of either kind.

    Regions of A smaller than ``settings.min_region_size`` are given to B and holes in A
    smaller than that are filled, except where the focus map is confident about them
    (``region_confidence``), so the result is symmetric under swapping A and B (with
    threshold 0.5). Returns a bool (Y, X) map, True = take A. Worked in bands of
    :data:`BAND_PIXELS` pixels (the same map as
    :func:`~acnn_fusion.core.decision.remove_unconfident_regions` on the whole image). The
    clean-up labels :func:`~acnn_fusion.core.inference.cpu_threads` bands at a time, each
    1/threads of a band (or of the image, if smaller) and at least :data:`MIN_CLEANUP_ROWS`
    rows high, so the bands in work hold about one band of pixels, as with one thread.
    """
    band = max(1, BAND_PIXELS // max(1, focus_map.shape[1]))
    decision = np.empty(focus_map.shape, bool)
    for r0 in range(0, focus_map.shape[0], band):
        np.greater(focus_map[r0 : r0 + band], settings.threshold, out=decision[r0 : r0 + band])
    min_size = settings.min_region_size(focus_map.size)
    threads = cpu_threads()
    rows = max(MIN_CLEANUP_ROWS, -(-min(band, focus_map.shape[0]) // threads))
    return remove_unconfident_regions_in_bands(
        decision, focus_map, min_size, settings.region_confidence, rows, in_place=True, threads=threads
    )


#: Edge of the square blocks :func:`refine_boundary` measures in (each with the measure's
#: reach); blocks with no pixel near the decision boundary are skipped.
REFINE_BLOCK = 256


def refine_boundary(
    decision_map: np.ndarray,
    grey_a: np.ndarray,
    grey_b: np.ndarray,
    *,
    radius: int = 4,
    window: int = 5,
    rows_per_chunk: int = 1024,
) -> np.ndarray:
    """Re-decide pixels within ``radius`` of the decision boundary by a fine focus measure.

    The focus map averages 16×16 patches, so boundaries drift by up to half a patch;
    near them, the local Laplacian energy in a ``window``×``window`` neighbourhood picks
    the sharper source wherever it clearly differs (by more than 10 %). Measured in blocks of
    :data:`REFINE_BLOCK` pixels (at most ``rows_per_chunk`` rows) near the boundary only, each
    with the measure's reach: the same result as the whole image, bounded memory.
    """
    band = boundary_band(decision_map, radius)
    refined = decision_map.copy()
    reach = window // 2 + 1  # the Laplacian's and the window's reach
    for block, part, inner in blocks_near(band, min(rows_per_chunk, REFINE_BLOCK), reach):
        energy_a = fine_energy(grey_a[part], window)[inner]
        energy_b = fine_energy(grey_b[part], window)[inner]
        clear = np.abs(energy_a - energy_b) > 0.1 * (energy_a + energy_b) + 1e-12
        pick = band[block] & clear
        refined[block][pick] = energy_a[pick] > energy_b[pick]
    smoothed = majority3(refined)
    refined[band] = smoothed[band]
    return refined


def blend(image_a: np.ndarray, image_b: np.ndarray, decision_map: np.ndarray) -> np.ndarray:
    """Step 4: F = D·A + (1−D)·B, copying source pixels exactly (every channel)."""
    return compose_pair(image_a, image_b, decision_map, mode="copy")


def grey_pair(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luminance of both images on one joint [0, 1] float32 scale (what the network sees)."""
    grey_a, grey_b = to_grey(image_a, np.float32), to_grey(image_b, np.float32)
    ga, gb = joint_unit_range(grey_a, grey_b, source_dtype=image_a.dtype)
    return ga, gb


#: Pixels per band (rows × width) of the pair path's decision steps, and per tile of its focus
#: map: the memory those steps need beyond the result's own arrays is bounded by this, not by
#: the image (``docs/quality.md``, "Decisions that do not depend on image size").
BAND_PIXELS = 1 << 21
#: Bands of the decision passes run side by side only if each stays this many halos high
#: (else the halos' extra work and memory outweigh the second core): :func:`_each_band`.
MIN_BAND_HALOS = 4
#: Fewest rows of a clean-up band when a band is shared out between threads (:func:`decide`).
MIN_CLEANUP_ROWS = 64


class GreyRows:
    """:func:`grey_pair` of a pair, computed block by block on demand (the same values).

    ``grey``: the whole pair's greys, if the caller has them (then blocks are slices). Else
    the joint [0, 1] scale is fixed once from the same sample :func:`joint_unit_range` takes
    (gathered band by band), and each block is converted from the inputs when asked for.
    """

    def __init__(
        self, image_a: np.ndarray, image_b: np.ndarray, grey: tuple[np.ndarray, np.ndarray] | None = None
    ) -> None:
        self.images, self.grey = (image_a, image_b), grey
        self.bounds = None if grey is not None else self._joint_bounds()

    def _joint_bounds(self) -> tuple[float, float] | None:
        image_a = self.images[0]
        if image_a.dtype == np.uint8:
            return None
        height, width = image_a.shape[:2]
        step = max(1, height * width // 1_000_000)  # joint_unit_range's sample: every step-th pixel
        rows = max(1, BAND_PIXELS // width)
        samples: list[list[np.ndarray]] = [[], []]
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            first = -(-r0 * width // step) * step - r0 * width  # first sampled pixel in the band
            for sample, image in zip(samples, self.images, strict=True):
                sample.append(to_grey(image[r0:r1], np.float32).ravel()[first::step])
        return unit_range_bounds(np.concatenate(samples[0] + samples[1]), image_a.dtype)

    def block(self, rows: slice, cols: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """Both greys (float32, joint [0, 1] scale) of ``rows`` × ``cols``."""
        if self.grey is not None:
            return self.grey[0][rows, cols], self.grey[1][rows, cols]
        grey_a, grey_b = (
            to_unit_range(to_grey(img[rows, cols], np.float32), self.bounds) for img in self.images
        )
        return grey_a, grey_b


def focus_map_in_tiles(
    network: Network,
    greys: GreyRows,
    shape: tuple[int, int],
    *,
    tile: int,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """:func:`~acnn_fusion.core.inference.compute_focus_map` in tiles of about
    :data:`BAND_PIXELS` pixels, greys made per tile: float32 (Y, X). The network step
    :func:`fuse_pair` calls (tests and benchmarks replace ``pipeline.focus_map_in_tiles``
    to count, slow down or skip network runs).

    Each tile scores the patches covering its 2×2 blocks (a 7-score halo) with the
    ``network`` (:func:`~acnn_fusion.core.inference.open_network`, which has applied the
    options' runtime, device and precision) and averages them as the whole map does; the
    network itself runs in ``tile``-pixel tiles inside.
    """
    height, width = shape
    grid_shape = score_map_shape(height, width)
    last_row, last_col = grid_shape[0] + 6, grid_shape[1] + 6  # the block grid's last row and column
    edge = max(PATCH_SIZE + 14 * SCORE_STRIDE, int(BAND_PIXELS**0.5))
    crops = score_tiles(height, width, edge, halo=7)
    steps = [len(score_tiles(r.stop - r.start, c.stop - c.start, tile)) for _, _, r, c in crops]
    total = sum(steps)
    focus = np.empty(shape, np.float32)
    done = 0
    for (block_rows, block_cols, in_rows, in_cols), n_steps in zip(crops, steps, strict=True):
        grey_a, grey_b = greys.block(in_rows, in_cols)

        def report(k: int, _total: int, base: int = done) -> None:
            if progress is not None:
                progress(base + k, total)

        scores = network.score_map(grey_a, grey_b, tile=tile, progress=report)
        done += n_steps
        first = (in_rows.start // SCORE_STRIDE, in_cols.start // SCORE_STRIDE)
        grid = patch_average_blocks(scores.astype(np.float64), first, (block_rows, block_cols), grid_shape)
        # block (i, j) covers pixels 2i, 2i + 1 (× 2j, 2j + 1); an odd last row/column copies its neighbour
        ys = np.arange(
            SCORE_STRIDE * block_rows.start,
            height if block_rows.stop > last_row else SCORE_STRIDE * block_rows.stop,
        )
        xs = np.arange(
            SCORE_STRIDE * block_cols.start,
            width if block_cols.stop > last_col else SCORE_STRIDE * block_cols.stop,
        )
        pick_y = np.minimum(ys // SCORE_STRIDE, last_row) - block_rows.start
        pick_x = np.minimum(xs // SCORE_STRIDE, last_col) - block_cols.start
        focus[ys[0] : ys[-1] + 1, xs[0] : xs[-1] + 1] = grid.astype(np.float32)[np.ix_(pick_y, pick_x)]
    return focus


def _refine_and_override(
    decision_map: np.ndarray, grey_a: np.ndarray, grey_b: np.ndarray, settings: FusionSettings
) -> np.ndarray:
    """Steps after the clean-up: boundary refinement, then the fine-measure override."""
    if settings.refine_radius > 0:
        decision_map = refine_boundary(
            decision_map, grey_a, grey_b, radius=settings.refine_radius, window=settings.refine_window
        )
    return override_by_fine_measure(
        decision_map,
        grey_a,
        grey_b,
        margin=settings.detail_margin,
        window=settings.refine_window,
        robust=settings.detail_robust,
    )


def decision_bands(settings: FusionSettings, width: int) -> tuple[int, int]:
    """(rows per band, halo rows) of :func:`decide_in_bands` for images ``width`` px wide."""
    halo = settings.refine_radius + 2 * settings.refine_window + 6  # > both steps' reach together
    return max(halo, BAND_PIXELS // max(1, width)), halo


def decide_in_bands(focus_map: np.ndarray, greys: GreyRows, settings: FusionSettings) -> np.ndarray:
    """Steps 2–3 and the refinements, band by band: the same map as :func:`decide`, then
    :func:`refine_boundary`, :func:`~acnn_fusion.core.decision.override_by_fine_measure` and
    :func:`~acnn_fusion.core.decision.refine_edge_side` on the whole image.

    The clean-up joins regions across bands (any region size); the refinements are local
    (a few pixels), so each band is worked with a halo of its neighbours' rows, kept as they
    were before the pass; bands run side by side (:func:`_each_band`). The edge-side test is
    a second pass over the bands (its own halo), so the first pass's windows do not grow by
    its reach. Memory beyond the returned bool map: a few bands of :data:`BAND_PIXELS` pixels.
    """
    band, halo = decision_bands(settings, focus_map.shape[1])
    decision = decide(focus_map, settings)
    if settings.refine_radius == 0 and settings.detail_margin >= 1.0:
        return decision
    _each_band(decision, greys, band, halo, lambda d, ga, gb: _refine_and_override(d, ga, gb, settings))
    if settings.detail_edge_side and settings.detail_margin < 1.0:
        window = settings.refine_window

        def edge_side(d: np.ndarray, ga: np.ndarray, gb: np.ndarray) -> np.ndarray:
            return refine_edge_side(d, ga, gb, window=window, rows_per_chunk=d.shape[0])

        _each_band(decision, greys, band, edge_side_reach(window), edge_side)
    return decision


def _each_band(
    decision: np.ndarray, greys: GreyRows, band: int, halo: int, step: Any, threads: int | None = None
) -> None:
    """``decision[r0:r1] = step(window, grey_a, grey_b)`` for bands of rows, each window the
    band with ``halo`` rows either side as they were before this pass. In place.

    Bands run ``threads`` at a time (default :func:`~acnn_fusion.core.inference.cpu_threads`;
    scipy.ndimage and numpy release the GIL), each ``band / threads`` rows, so the windows in
    work hold about one band of ``band`` rows; one at a time where that would leave a band
    less than :data:`MIN_BAND_HALOS` halos high. The halo rows a group of bands reads from its
    neighbours are copied before the group or the one before it writes them, so the result is
    the same for any band height and thread count."""
    height = decision.shape[0]
    workers = max(1, cpu_threads() if threads is None else threads)
    rows = -(-band // workers)
    if workers == 1 or rows < MIN_BAND_HALOS * halo:
        workers, rows = 1, band
    bands = [(r0, min(height, r0 + rows)) for r0 in range(0, height, rows)]
    edges: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def keep(index: int) -> None:  # this pass's input rows around band ``index``
        if index < len(bands) and index not in edges:
            r0, r1 = bands[index]
            edges[index] = (decision[max(0, r0 - halo) : r0].copy(), decision[r1 : r1 + halo].copy())

    def work(index: int) -> None:
        (r0, r1), (above, below) = bands[index], edges.pop(index)
        window = np.concatenate([above, decision[r0:r1], below])  # its own rows: written only by itself
        grey_a, grey_b = greys.block(slice(r0 - len(above), r1 + len(below)))
        decision[r0:r1] = step(window, grey_a, grey_b)[len(above) : len(above) + r1 - r0]

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for first in range(0, len(bands), workers):
            group = range(first, min(len(bands), first + workers))
            for index in [*group, group.stop]:  # the next group's first band reads this group's rows
                keep(index)
            if pool is None:
                work(first)
            else:
                list(pool.map(work, group))  # re-raises a band's error
    finally:
        if pool is not None:
            pool.shutdown()


def _compose(image_a: np.ndarray, image_b: np.ndarray, decision_map: np.ndarray, mode: str) -> np.ndarray:
    """:func:`compose_pair`; ``copy`` in bands into one output array (no full-size temporaries)."""
    if mode != "copy":
        return compose_pair(image_a, image_b, decision_map, mode=mode)  # multi-resolution: whole image
    fused = np.empty(image_a.shape, image_a.dtype.newbyteorder("="))  # native byte order, as compose_pair
    band = max(1, BAND_PIXELS // max(1, image_a.shape[1]))
    for r0 in range(0, image_a.shape[0], band):
        rows = slice(r0, r0 + band)
        fused[rows] = compose_pair(image_a[rows], image_b[rows], decision_map[rows], mode="copy")
    return fused


def fuse_from_focus_map(
    image_a: np.ndarray,
    image_b: np.ndarray,
    focus_map: np.ndarray,
    settings: FusionSettings,
    grey: tuple[np.ndarray, np.ndarray] | GreyRows | None = None,
) -> FusionResult:
    """Steps 2–4 from a focus map: decide, refine the boundary, let the fine focus measure
    override it where it is clear, blend. No network runs, so an interactive threshold can
    call this on a cached focus map. ``grey``: the pair's :func:`grey_pair` or
    :class:`GreyRows`, if the caller has them already (else they are made band by band).
    Worked in bands (:func:`decide_in_bands`)."""
    greys = grey if isinstance(grey, GreyRows) else GreyRows(image_a, image_b, grey)
    decision_map = decide_in_bands(focus_map, greys, settings)
    return FusionResult(
        fused=_compose(image_a, image_b, decision_map, settings.composition),
        focus_map=focus_map,
        decision_map=decision_map,
        settings=settings,
    )


def fuse_pair(
    image_a: np.ndarray,
    image_b: np.ndarray,
    options: FusionOptions | None = None,
    *,
    progress: ProgressCallback | None = None,
    **changes: Any,
) -> FusionResult:
    """Fuse two images of one scene focused at different depths.

    ``image_a``/``image_b``: (Y, X) or (Y, X, 3|4), uint8, uint16, float32 or float64, same
    shape and dtype. ``options`` (:class:`~acnn_fusion.options.FusionOptions`, default
    settings if omitted) with ``changes`` applied, e.g. ``fuse_pair(a, b, threshold=0.7,
    precision="fp32")``: β and the minimum region (``min_region_px`` pixels, or the paper's
    ``min_region`` fraction of the image) override the ``preset`` (``default`` or ``paper``);
    ``precision`` ``auto`` uses bf16 where the device has it natively, ``fp32`` is
    bit-reproducible. Returns a :class:`FusionResult`; ``fused`` has the inputs' shape and
    dtype and every pixel is copied from A or B.
    """
    stack_only = sorted(set(changes) - set(option_names("pair")) & set(option_names()))
    if stack_only:
        raise TypeError(f"fuse_pair does not take the stack option(s) {', '.join(stack_only)}")
    options = (options or FusionOptions()).replace(**changes)
    settings = options.settings()
    a, b = validate_pair(image_a, image_b)
    network = open_network(options, 2 * a.shape[0] * a.shape[1] / 1e6)  # runtime, device, weights
    greys = GreyRows(a, b)
    focus_map = focus_map_in_tiles(network, greys, a.shape[:2], tile=options.tile, progress=progress)
    return fuse_from_focus_map(a, b, focus_map, settings, grey=greys)


def __getattr__(name: str) -> Any:
    # the tiled focus map was also exported as ``compute_focus_map``, which shadowed
    # ``inference.compute_focus_map`` (a different signature); fail loudly, so a test that
    # replaces the old name does not silently replace nothing
    if name == "compute_focus_map":
        raise AttributeError(
            "acnn_fusion.core.pipeline.compute_focus_map was renamed focus_map_in_tiles "
            "(the whole-image map is acnn_fusion.core.inference.compute_focus_map)"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
