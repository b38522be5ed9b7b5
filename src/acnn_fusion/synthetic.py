"""Synthetic multi-focus data with ground truth, rendered from images scikit-image ships.

Used for the bundled ``sample_data/``, napari's sample menu, tests and benchmarks: the
true focus mask (pairs) or depth index (stacks) and the sharp original are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage import data

from acnn_fusion.core.imageops import GREY_WEIGHTS, disk_kernel


@dataclass
class SyntheticPair:
    """Two differently focused images, the sharp original and the true mask (True = A sharp)."""

    image_a: np.ndarray
    image_b: np.ndarray
    sharp: np.ndarray
    mask: np.ndarray


@dataclass
class SyntheticStack:
    """Focal stack (Z, Y, X), the sharp original and the true in-focus slice per pixel."""

    stack: np.ndarray
    sharp: np.ndarray
    depth_index: np.ndarray


def defocus_image(image: np.ndarray, radius: float) -> np.ndarray:
    """Disk (defocus) blur of a (Y, X) or (Y, X, C) image; radius < 0.5 returns a copy."""
    if radius < 0.5:
        return image.astype(np.float64)
    kernel = disk_kernel(radius)
    if image.ndim == 3:
        kernel = kernel[..., None]
    return ndimage.convolve(image.astype(np.float64), kernel, mode="reflect")


def blob_mask(shape: tuple[int, int], seed: int = 0, coverage: float = 0.45) -> np.ndarray:
    """A smooth random region covering about ``coverage`` of the image."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=min(shape) / 8)
    return noise > np.quantile(noise, 1.0 - coverage)


def _cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "u":
        info = np.iinfo(dtype)
        return np.clip(np.round(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def render_pair(
    sharp: np.ndarray, mask: np.ndarray, *, radius: float = 4.0, noise: float = 0.0, seed: int = 0
) -> SyntheticPair:
    """A is sharp inside ``mask`` and defocused outside; B the other way round.

    The defocused foreground is rendered with its blur spilling over the sharp background
    edge (the blurred image is composited by a blurred mask), as a real lens would.
    """
    rng = np.random.default_rng(seed)
    blurred = defocus_image(sharp, radius)
    soft = defocus_image(mask.astype(np.float64), radius)
    if sharp.ndim == 3:
        soft = soft[..., None]
        hard = mask[..., None]
    else:
        hard = mask
    base = sharp.astype(np.float64)
    # A: foreground (mask) sharp, background blurred
    image_a = np.where(hard, base, blurred)
    # B: background sharp, foreground blurred and spilling over the background
    image_b = soft * blurred + (1.0 - soft) * np.where(hard, blurred, base)
    scale = float(sharp.max()) or 1.0  # noise relative to the data range, not the dtype
    if noise > 0:
        image_a = image_a + rng.normal(0, noise * scale, image_a.shape)
        image_b = image_b + rng.normal(0, noise * scale, image_b.shape)
    return SyntheticPair(
        image_a=_cast_like(image_a, sharp.dtype),
        image_b=_cast_like(image_b, sharp.dtype),
        sharp=sharp,
        mask=mask,
    )


def render_stack(
    sharp: np.ndarray,
    depth: np.ndarray,
    n_slices: int,
    *,
    radius_per_slice: float = 1.5,
    noise: float = 0.0,
    seed: int = 0,
) -> SyntheticStack:
    """Focal stack of a (Y, X) image with a depth map (in slice units, 0 … n_slices−1).

    Slice z shows each pixel defocused by a disk of radius ``radius_per_slice·|depth − z|``.
    """
    rng = np.random.default_rng(seed)
    depth_index = np.clip(np.round(depth), 0, n_slices - 1).astype(np.uint16)
    # one blurred copy per integer defocus distance, then pick per pixel
    levels = np.stack([defocus_image(sharp, radius_per_slice * d) for d in range(n_slices)])
    stack = np.empty((n_slices, *sharp.shape), dtype=sharp.dtype)
    scale = float(sharp.max()) or 1.0  # noise relative to the data range, not the dtype
    for z in range(n_slices):
        distance = np.abs(depth_index.astype(int) - z)
        index = distance.reshape(1, *distance.shape, *([1] * (sharp.ndim - 2)))
        plane = np.take_along_axis(levels, index, axis=0)[0]
        if noise > 0:
            plane = plane + rng.normal(0, noise * scale, plane.shape)
        stack[z] = _cast_like(plane, sharp.dtype)
    return SyntheticStack(stack=stack, sharp=sharp, depth_index=depth_index)


def sample_pair() -> SyntheticPair:
    """The bundled sample pair: immunohistochemistry (RGB uint8, 384×384), disk blur r=4."""
    sharp = data.immunohistochemistry()[:384, :384]
    return render_pair(sharp, blob_mask(sharp.shape[:2], seed=3), radius=4.0)


def sample_stack() -> SyntheticStack:
    """The bundled sample stack: 8 uint16 slices (256×256) of a tilted, curved specimen.

    The specimen is the grey of scikit-image's immunohistochemistry image, scaled to a
    12-bit camera range.
    """
    grey = data.immunohistochemistry()[128:384, 128:384].astype(np.float64) @ GREY_WEIGHTS
    sharp = np.round(grey / 255.0 * 4000.0 + 100.0).astype(np.uint16)
    yy, xx = np.mgrid[0:256, 0:256] / 255.0
    depth = 7.0 * np.clip(0.6 * xx + 0.4 * yy + 0.3 * np.sin(3 * yy), 0, 1)
    return render_stack(sharp, depth, 8, radius_per_slice=1.5)


def write_sample_data(folder: str | Path) -> list[Path]:
    """Render the sample pair and stack with their ground truth into ``folder``."""
    from acnn_fusion.io import write_image

    folder = Path(folder)
    pair, stack = sample_pair(), sample_stack()
    written = [
        write_image(folder / "pair_A.tif", pair.image_a),
        write_image(folder / "pair_B.tif", pair.image_b),
        write_image(folder / "pair_sharp.tif", pair.sharp),
        write_image(folder / "pair_mask.png", pair.mask),
        write_image(folder / "stack.tif", stack.stack, metadata={"axes": "ZYX"}),
        write_image(folder / "stack_sharp.tif", stack.sharp),
        write_image(folder / "stack_depth.tif", stack.depth_index),
    ]
    return written


# ---------------------------------------------------------------------------------------
# Pair cases for the decision step (issues 18 and 13): small sharp details inside an area
# focused in the other image, rendered at any size; thin structures and occluders with
# defocus spread. Everything is periodic, so one cell is rendered and tiled.
# ---------------------------------------------------------------------------------------

#: Edge of the periodic cell of :func:`render_detail_scene`, pixels.
DETAIL_CELL = 512
#: Round details as (row, column, diameter) in the cell: sharp in A, in B's area (the corners) …
DETAILS_IN_B = ((72, 72, 100), (72, 440, 40), (440, 72, 20), (440, 440, 10))
#: … and sharp in B, inside A's central island.
DETAILS_IN_A = ((196, 196, 56), (316, 316, 80), (196, 316, 28), (316, 196, 14))


@dataclass
class DetailScene(SyntheticPair):
    """A :class:`SyntheticPair` with the mask of the small details (True on their pixels)."""

    details: np.ndarray = None  # type: ignore[assignment]


def _wrap_defocus(image: np.ndarray, radius: float) -> np.ndarray:
    """Disk blur with periodic borders (a tiled copy blurs the same in its interior)."""
    if radius < 0.5:
        return image.astype(np.float64)
    return ndimage.convolve(image.astype(np.float64), disk_kernel(radius), mode="wrap")


def _seamless_texture(image: np.ndarray, size: int) -> np.ndarray:
    """Grey ``size``×``size`` texture, periodic and continuous across its borders: the
    image shrunk to half the size, mirrored into the four quadrants."""
    from skimage.transform import resize

    grey = image.astype(np.float64) @ GREY_WEIGHTS if image.ndim == 3 else image.astype(np.float64)
    edge = min(grey.shape)
    half = resize(grey[:edge, :edge], (size // 2, size // 2), anti_aliasing=True, preserve_range=True)
    top = np.hstack([half, half[:, ::-1]])
    return np.vstack([top, top[::-1]])


def _render_cell(sharp: np.ndarray, mask: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """render_pair's lens model on one periodic cell: A sharp on ``mask``; B's blurred
    foreground (the mask) spills over its sharp background."""
    blurred = _wrap_defocus(sharp, radius)
    soft = _wrap_defocus(mask.astype(np.float64), radius)
    image_a = np.where(mask, sharp, blurred)
    image_b = soft * blurred + (1.0 - soft) * np.where(mask, blurred, sharp)
    return image_a, image_b


def render_detail_scene(size: int, *, radius: float = 4.0) -> DetailScene:
    """The same scene at any size: a periodic tiling of one 512×512 cell (grey uint8).

    Each cell holds a central island (wavy edge, radius 150–170 px) sharp in A, the rest
    sharp in B. Round objects of another texture, 10–100 px across, sit in the area
    focused in the other image: :data:`DETAILS_IN_B` (sharp in A) in the corners and
    :data:`DETAILS_IN_A` (sharp in B) in the island. The textures are seamless, so only
    the image size changes between sizes, never the content or its pixel scale: a
    decision that does not depend on image size scores the same at every size.
    ``size`` must be a multiple of 256.
    """
    if size % (DETAIL_CELL // 2):
        raise ValueError(f"size must be a multiple of {DETAIL_CELL // 2}, got {size}")
    n = DETAIL_CELL
    background = _seamless_texture(data.astronaut(), n)
    gravel = _seamless_texture(data.gravel(), n)
    objects = np.clip(1.2 * (gravel - gravel.mean()) + 150.0, 0, 255)
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    angle = np.arctan2(yy - n / 2, xx - n / 2)
    island = np.hypot(yy - n / 2, xx - n / 2) < 160 + 10 * np.sin(5 * angle)
    details = np.zeros((n, n), bool)
    for row, col, diameter in (*DETAILS_IN_B, *DETAILS_IN_A):
        details |= (yy - row) ** 2 + (xx - col) ** 2 <= (diameter / 2) ** 2
    mask = island ^ details
    sharp = np.where(details, objects, background)
    image_a, image_b = _render_cell(sharp, mask, radius)
    reps = (size + n - 1) // n

    def tile(cell: np.ndarray, dtype: type) -> np.ndarray:
        return np.ascontiguousarray(np.tile(_cast_like(cell, np.dtype(dtype)), (reps, reps))[:size, :size])

    return DetailScene(
        image_a=tile(image_a, np.uint8),
        image_b=tile(image_b, np.uint8),
        sharp=tile(sharp, np.uint8),
        mask=tile(mask, bool),
        details=tile(details, bool),
    )


#: Widths (pixels) of the thin in-focus structures of :func:`render_thin_scene`.
THIN_WIDTHS = (2, 3, 4, 6, 8)


@dataclass
class ThinScene(SyntheticPair):
    """A :class:`SyntheticPair` with the thin structures' pixels and the defocus-spread band
    (background pixels that B's blurred foreground spills over)."""

    thin: np.ndarray = None  # type: ignore[assignment]
    halo: np.ndarray = None  # type: ignore[assignment]


def render_thin_scene(
    size: int = 384, *, radius: float = 4.0, widths: tuple[int, ...] = THIN_WIDTHS
) -> ThinScene:
    """Thin bright structures and a bright occluder, sharp in A, before a textured background
    sharp in B (grey uint8, ``size``×``size``).

    Straight wires of the given ``widths`` at several angles, one curved stem 3 px wide and a
    bright round occluder. Two-layer lens model: A shows the foreground sharp over the
    blurred background; B shows the background sharp, attenuated where the foreground's
    blur covers it, plus the foreground's blurred light, which spreads over the background
    next to it (the defocus spread effect). Periodic borders. In the spread band
    (``halo``) neither image is right; A's blurred background is the nearer one where the
    glow is strong.
    """
    n = size
    texture = _seamless_texture(data.astronaut(), n)
    background = 0.6 * (texture - texture.mean()) + 95.0  # darker and calmer than the objects
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    thin = np.zeros((n, n), bool)
    angles = np.linspace(0.15, np.pi - 0.15, len(widths), endpoint=True)
    for k, (width, angle) in enumerate(zip(widths, angles, strict=True)):
        cy, cx = n * (0.2 + 0.6 * k / max(1, len(widths) - 1)), n * 0.35
        distance = np.abs(-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle))
        along = np.abs((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle))
        thin |= (distance < width / 2) & (along < n * 0.12)
    stem = np.abs(xx - (0.62 * n + 0.05 * n * np.sin(yy / n * 2 * np.pi * 1.5))) < 1.5
    thin |= stem & (yy > 0.1 * n) & (yy < 0.9 * n)
    occluder = np.hypot(yy - 0.5 * n, xx - 0.85 * n) < 0.09 * n
    foreground = thin | occluder
    stripes = 20.0 * np.sin(xx / 3.0) * np.sin(yy / 5.0)  # the objects' own fine texture
    front = np.where(foreground, 200.0 + stripes, 0.0)
    sharp = np.where(foreground, front, background)
    soft = _wrap_defocus(foreground.astype(np.float64), radius)
    image_a = np.where(foreground, front, _wrap_defocus(background, radius))
    image_b = _wrap_defocus(front, radius) + (1.0 - soft) * background
    return ThinScene(
        image_a=_cast_like(image_a, np.dtype(np.uint8)),
        image_b=_cast_like(image_b, np.dtype(np.uint8)),
        sharp=_cast_like(sharp, np.dtype(np.uint8)),
        mask=foreground,
        thin=thin,
        halo=(soft > 0.02) & ~foreground,
    )


# ---------------------------------------------------------------------------------------------
# Stack cases (issue 13: coherent depth, alignment beyond translation)
# ---------------------------------------------------------------------------------------------


@dataclass
class FlatRegionStack(SyntheticStack):
    """A focal stack whose specimen has a flat (featureless) region; ``flat`` marks it."""

    flat: np.ndarray


def render_flat_region_stack(
    sharp: np.ndarray,
    depth: np.ndarray,
    n_slices: int,
    flat: np.ndarray,
    *,
    level: float | None = None,
    radius_per_slice: float = 1.5,
    noise: float = 0.01,
    seed: int = 0,
) -> FlatRegionStack:
    """:func:`render_stack` of ``sharp`` with the region ``flat`` set to one ``level``.

    The default level is dark (the 5th percentile of ``sharp``): a flat dark region such as
    the background of a fluorescence stack, where only the camera ``noise`` differs between
    slices. The true depth there is ``depth``'s (the flat part lies on the same surface), which
    no focus measure can see: a good fold takes it from the textured neighbours.
    """
    scene = sharp.astype(np.float64).copy()
    scene[flat] = np.percentile(scene, 5) if level is None else level
    stack = render_stack(
        _cast_like(scene, sharp.dtype),
        depth,
        n_slices,
        radius_per_slice=radius_per_slice,
        noise=noise,
        seed=seed,
    )
    return FlatRegionStack(stack=stack.stack, sharp=stack.sharp, depth_index=stack.depth_index, flat=flat)


@dataclass
class BreathingStack(SyntheticStack):
    """A focal stack with a magnification change between slices (focus breathing).

    ``magnification[z]``: the scale of slice z against the middle slice (1 there);
    ``transforms[z]``: the 3×3 map of the middle slice's (row, col, 1) onto slice z's.
    ``depth_index`` and ``sharp`` are on the middle slice's grid.
    """

    magnification: np.ndarray
    transforms: np.ndarray


def render_breathing_stack(
    sharp: np.ndarray,
    depth: np.ndarray,
    n_slices: int,
    *,
    scale_per_slice: float = 0.01,
    rotation_per_slice: float = 0.0,
    radius_per_slice: float = 1.5,
    noise: float = 0.0,
    seed: int = 0,
) -> BreathingStack:
    """:func:`render_stack`, then slice z magnified by (1 + ``scale_per_slice``)^(z − Z//2) and
    turned by ``rotation_per_slice``·(z − Z//2) radians about the image centre (linear resampling)."""
    base = render_stack(sharp, depth, n_slices, radius_per_slice=radius_per_slice, noise=noise, seed=seed)
    height, width = sharp.shape[:2]
    centre = (np.array([height, width], float) - 1) / 2
    steps = np.arange(n_slices) - n_slices // 2
    magnification = (1.0 + scale_per_slice) ** steps
    transforms = np.tile(np.eye(3), (n_slices, 1, 1))
    stack = np.empty_like(base.stack)
    for z in range(n_slices):
        angle = rotation_per_slice * steps[z]
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        forward = magnification[z] * rotation  # middle-slice offset from the centre → slice z's
        transforms[z, :2, :2] = forward
        transforms[z, :2, 2] = centre - forward @ centre
        inverse = np.linalg.inv(forward)  # slice z's pixel x shows the scene at centre + inverse (x − centre)
        plane = base.stack[z].astype(np.float64)
        channels = [plane] if plane.ndim == 2 else [plane[..., c] for c in range(plane.shape[-1])]
        moved = [
            ndimage.affine_transform(c, inverse, offset=centre - inverse @ centre, order=1, mode="nearest")
            for c in channels
        ]
        stack[z] = _cast_like(moved[0] if plane.ndim == 2 else np.stack(moved, -1), sharp.dtype)
    return BreathingStack(
        stack=stack,
        sharp=base.sharp,
        depth_index=base.depth_index,
        magnification=magnification,
        transforms=transforms,
    )
