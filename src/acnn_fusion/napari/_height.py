"""3-D height view: the fused image draped over its depth map, in physical units.

The depth map's slice indices become heights ``z_translate + index × z_scale`` (the z axis's
scale and offset of the stack layer, i.e. the file's z spacing where the reader found one:
heights in µm then; without a z spacing, in slices),
on a grid of at most :data:`MAX_GRID` vertices a side. Each vertex takes the fused image's
colour, and cells whose confidence is below ``min_confidence`` are left out, so regions the
fold was unsure about show as holes instead of spikes. The result is a napari Surface layer.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from acnn_fusion.napari import _session
from acnn_fusion.napari._layers import _ASSIGNED_KEY, OUTPUT_KEY
from acnn_fusion.napari._show import output_layer

#: vertices per side at most (a 2048² image becomes a 256² grid)
MAX_GRID = 256
#: cells with any corner below this confidence are not drawn
MIN_CONFIDENCE = 0.3


def _colours(fused: np.ndarray, contrast: tuple[float, float] | None) -> np.ndarray:
    """RGBA in [0, 1] per pixel of a grey or RGB(A) image."""
    values = fused.astype(np.float32)
    if contrast is None:
        lo, hi = float(values.min()), float(values.max())
    else:
        lo, hi = contrast
    values = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    if values.ndim == 2:
        values = np.repeat(values[..., None], 3, axis=-1)
    rgb = values[..., :3]
    return np.concatenate([rgb, np.ones((*rgb.shape[:2], 1), np.float32)], axis=-1)


def height_mesh(
    depth: np.ndarray,
    fused: np.ndarray,
    confidence: np.ndarray | None,
    *,
    z_scale: float = 1.0,
    z_translate: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    translate: tuple[float, float] = (0.0, 0.0),
    contrast: tuple[float, float] | None = None,
    max_grid: int = MAX_GRID,
    min_confidence: float = MIN_CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vertices (N, 3) as z, y, x in world units, faces (M, 3), vertex colours (N, 4))."""
    height, width = depth.shape
    step = max(1, math.ceil(max(height, width) / max_grid))
    rows, cols = np.arange(0, height, step), np.arange(0, width, step)
    grid_depth = depth[np.ix_(rows, cols)].astype(np.float64)
    yy, xx = np.meshgrid(rows, cols, indexing="ij")
    vertices = np.column_stack(
        [
            (z_translate + grid_depth * z_scale).ravel(),
            (translate[0] + yy * scale[0]).ravel(),
            (translate[1] + xx * scale[1]).ravel(),
        ]
    ).astype(np.float32)
    n_rows, n_cols = len(rows), len(cols)
    index = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()
    c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()
    keep = np.ones(a.shape, bool)
    if confidence is not None:
        sure = (confidence[np.ix_(rows, cols)] >= min_confidence).ravel()
        keep = sure[a] & sure[b] & sure[c] & sure[d]
    faces = np.concatenate([np.column_stack([a, b, c])[keep], np.column_stack([b, d, c])[keep]])
    colours = _colours(fused[np.ix_(rows, cols)], contrast).reshape(-1, 4)
    return vertices, faces.astype(np.int64), colours


def vertical_exaggeration(vertices: np.ndarray, share: float = 0.2) -> float:
    """A display factor for heights so the relief spans at least ``share`` of the image width
    (1 when it already does): shallow stacks would otherwise look flat."""
    relief = float(np.ptp(vertices[:, 0])) if len(vertices) else 0.0
    width = float(max(np.ptp(vertices[:, 1]), np.ptp(vertices[:, 2]))) if len(vertices) else 0.0
    if relief <= 0 or width <= 0:
        return 1.0
    return float(max(1.0, round(share * width / relief, 1)))


def show_height_view(viewer: Any) -> Any:
    """Add (or update) ``<stack> height surface`` for the viewer's last stack and go to 3-D."""
    session = _session.current(viewer, "stack")
    if session is None:
        raise ValueError("fold a z-stack first: the height view drapes its fused image over its depth map")
    job = session.job
    fused = output_layer(viewer, f"{job.name} fused")
    confidence = output_layer(viewer, f"{job.name} confidence")
    depth = session.shown if session.shown is not None else session.corrected()
    if fused is None:
        raise ValueError(f"the layer {job.name!r} fused is gone; run the fold again")
    place = job.placement
    vertices, faces, colours = height_mesh(
        depth,
        np.asarray(fused.data),
        np.asarray(confidence.data) if confidence is not None else None,
        z_scale=job.z_scale,
        z_translate=job.z_translate,
        scale=place.scale,
        translate=place.translate,
        contrast=tuple(fused.contrast_limits) if not job.rgb else None,
    )
    unit = job.z_unit or "slices"
    name = f"{job.name} height surface"
    old = output_layer(viewer, name)
    if old is not None:
        viewer.layers.remove(old)
    layer = viewer.add_surface(
        (vertices, faces),
        name=name,
        vertex_colors=colours,
        shading="smooth",
        units=(job.units if job.units is not None else "pixel", *place.units),
        metadata={
            OUTPUT_KEY: name,
            "description": f"fused image over the depth map; height in {unit} "
            f"(z = {job.z_translate} + slice × {job.z_scale}); cells with confidence below "
            f"{MIN_CONFIDENCE} left out",
            "z_unit": unit,
        },
    )
    layer.metadata[_ASSIGNED_KEY] = layer.name
    exaggeration = vertical_exaggeration(vertices)
    layer.scale = (exaggeration, 1.0, 1.0)  # display only: the vertices keep true heights
    layer.metadata["vertical_exaggeration"] = exaggeration
    viewer.dims.ndisplay = 3
    return layer
