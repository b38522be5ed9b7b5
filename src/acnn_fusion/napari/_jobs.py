"""Fusion jobs: arrays cut from layers, one core call, and the result shown as layers.

A job is built on the GUI thread (it reads the layers), :meth:`run` goes to a worker
thread (numpy and torch only), and ``show_*`` puts the result back into the viewer on
the GUI thread. The widget and the menu commands share all three steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Layer
from napari.utils.colormaps import DirectLabelColormap

from acnn_fusion.core.pipeline import FusionResult, FusionSettings, fuse_from_focus_map, fuse_pair
from acnn_fusion.napari._layers import (
    Placement,
    default_z_axis,
    from_core_dtype,
    full_resolution,
    output_base_name,
    plane_index,
    to_core_dtype,
    upsert_layer,
)
from acnn_fusion.options import FusionOptions

ProgressCallback = Callable[[int, int], None]

#: decision map labels: which input each pixel of the fused image comes from
FROM_A, FROM_B = 1, 2


def _decision_colours() -> DirectLabelColormap:
    """A fresh colormap per layer (napari colormaps are mutable models): A orange, B teal."""
    return DirectLabelColormap(
        color_dict={None: "transparent", 0: "transparent", FROM_A: "#ff9f1c", FROM_B: "#2ec4b6"}
    )


def _look(layer: Image) -> dict[str, Any]:
    """Display settings that make the fused image look like its input."""
    look: dict[str, Any] = {"contrast_limits": tuple(layer.contrast_limits), "gamma": layer.gamma}
    if not layer.rgb:
        look["colormap"] = layer.colormap
    return look


@dataclass
class PairJob:
    """Two 2-D planes (Y, X) or (Y, X, C) ready for :func:`fuse_pair`."""

    name: str
    a: np.ndarray
    b: np.ndarray
    dtype: np.dtype
    rgb: bool
    placement: Placement
    look: dict[str, Any]
    sources: tuple[str, str]

    def run(self, options: FusionOptions, progress: ProgressCallback | None = None) -> FusionResult:
        return fuse_pair(self.a, self.b, options, progress=progress)

    def redecide(self, focus_map: np.ndarray, settings: FusionSettings) -> FusionResult:
        """Decision and fused image for new settings from a cached focus map (no network)."""
        return fuse_from_focus_map(self.a, self.b, focus_map, settings)


@dataclass
class StackJob:
    """A focal stack (Z, Y, X) or (Z, Y, X, C) ready for :func:`fuse_stack`."""

    name: str
    stack: np.ndarray
    dtype: np.dtype
    rgb: bool
    axis: int  # the folded axis in the layer's data
    placement: Placement
    look: dict[str, Any]
    z_scale: float
    z_translate: float

    def run(self, options: FusionOptions, progress: ProgressCallback | None = None) -> Any:
        from acnn_fusion.core.stack import fuse_stack

        return fuse_stack(self.stack, options, axis=0, progress=progress)


def _check_pair_layers(layer_a: Layer, layer_b: Layer) -> None:
    for role, layer in (("A", layer_a), ("B", layer_b)):
        if not isinstance(layer, Image):
            raise TypeError(f"image {role} ({getattr(layer, 'name', layer)!r}) is not an image layer")
    if layer_a is layer_b:
        raise ValueError("choose two different layers for A and B")
    if layer_a.rgb != layer_b.rgb:
        raise ValueError(f"{layer_a.name!r} and {layer_b.name!r}: one is RGB, the other is not")


def pair_job(layer_a: Image, layer_b: Image, point: Any = None) -> PairJob:
    """Job for two image layers; layers with more than 2 axes give their current plane.

    ``point`` is the viewer's world position (``viewer.dims.point``).
    """
    _check_pair_layers(layer_a, layer_b)
    planes = []
    for layer in (layer_a, layer_b):
        spatial = (layer.ndim - 2, layer.ndim - 1)
        planes.append(np.asarray(full_resolution(layer)[plane_index(layer, point, spatial)]))
    a, b = planes
    if a.shape != b.shape:
        raise ValueError(f"{layer_a.name!r} {a.shape} and {layer_b.name!r} {b.shape} differ in shape")
    if a.dtype != b.dtype:
        raise ValueError(f"{layer_a.name!r} ({a.dtype}) and {layer_b.name!r} ({b.dtype}) differ in dtype")
    return PairJob(
        name=output_base_name(layer_a.name, layer_b.name),
        a=to_core_dtype(a),
        b=to_core_dtype(b),
        dtype=a.dtype,
        rgb=bool(layer_a.rgb),
        placement=Placement.of(layer_a),
        look=_look(layer_a),
        sources=(layer_a.name, layer_b.name),
    )


def stack_job(layer: Image, axis: int | None = None, point: Any = None) -> StackJob:
    """Job folding ``axis`` of an image layer with at least 3 axes (RGB: 3 besides colour).

    Axes other than z and the last two (Y, X) are taken at the viewer's current position.
    """
    if not isinstance(layer, Image):
        raise TypeError(f"{getattr(layer, 'name', layer)!r} is not an image layer")
    if layer.ndim < 3:
        raise ValueError(f"{layer.name!r} has {layer.ndim} spatial axes; a z-stack needs at least 3")
    axis = default_z_axis(layer) if axis is None else int(axis)
    if not 0 <= axis < layer.ndim - 2:
        raise ValueError(f"axis {axis} of {layer.name!r} is not a non-spatial axis (0 … {layer.ndim - 3})")
    data = full_resolution(layer)
    stack = np.asarray(data[plane_index(layer, point, (axis, layer.ndim - 2, layer.ndim - 1))])
    return StackJob(
        name=layer.name,
        stack=to_core_dtype(stack),
        dtype=stack.dtype,
        rgb=bool(layer.rgb),
        axis=axis,
        placement=Placement.of(layer),
        look=_look(layer),
        z_scale=float(layer.scale[axis]),
        z_translate=float(layer.translate[axis]),
    )


def _focus_map_layer(viewer: Any, name: str, values: np.ndarray, placement: Placement, **meta: Any) -> Layer:
    return upsert_layer(
        viewer,
        f"{name} focus map",
        values,
        "image",
        colormap="magma",
        contrast_limits=(0.0, 1.0),
        metadata=meta,
        **placement.kwargs(),
    )


def show_pair(viewer: Any, job: PairJob, result: FusionResult, *, focus_map: bool = True) -> list[Layer]:
    """Add or update ``<name> focus map``, ``<name> fused`` and ``<name> decision map``.

    ``focus_map=False`` leaves the focus map layer alone (live threshold changes).
    """
    settings = {"threshold": result.settings.threshold, "min_region": result.settings.min_region}
    place = job.placement.kwargs()
    shown = []
    if focus_map:
        shown.append(
            _focus_map_layer(
                viewer,
                job.name,
                result.focus_map,
                job.placement,
                description=f"P(pixel is sharper in {job.sources[0]!r} than in {job.sources[1]!r})",
                sources=list(job.sources),
            )
        )
    shown.append(
        upsert_layer(
            viewer,
            f"{job.name} fused",
            from_core_dtype(result.fused, job.dtype),
            "image",
            rgb=job.rgb,
            metadata={"sources": list(job.sources), **settings},
            **job.look,
            **place,
        )
    )
    labels = np.where(result.decision_map, np.uint8(FROM_A), np.uint8(FROM_B))
    shown.append(
        upsert_layer(
            viewer,
            f"{job.name} decision map",
            labels,
            "labels",
            colormap=_decision_colours(),
            features={"index": [FROM_A, FROM_B], "source": list(job.sources)},
            opacity=0.35,
            metadata={"sources": list(job.sources), **settings},
            **place,
        )
    )
    return shown


def show_stack(viewer: Any, job: StackJob, result: Any) -> list[Layer]:
    """Add or update ``<name> focus map`` (confidence), ``<name> fused``, ``<name> depth map``."""
    n_slices = job.stack.shape[0]
    place = job.placement.kwargs()
    confidence = _focus_map_layer(
        viewer,
        job.name,
        result.confidence,
        job.placement,
        description=(
            "confidence: features fold, share of the covering 16×16 patches whose own best slice "
            "is the pixel's; pairwise folds, the focus-map value of the last decision"
        ),
        strategy=result.strategy,
    )
    depth = upsert_layer(
        viewer,
        f"{job.name} depth map",
        result.depth_map,
        "image",
        colormap="viridis",
        contrast_limits=(0.0, float(max(n_slices - 1, 1))),
        metadata={
            "description": "index of the in-focus slice; depth = z_translate + index × z_scale",
            "z_axis": job.axis,
            "z_scale": job.z_scale,
            "z_translate": job.z_translate,
        },
        **place,
    )
    fused = upsert_layer(
        viewer,
        f"{job.name} fused",
        from_core_dtype(result.fused, job.dtype),
        "image",
        rgb=job.rgb,
        metadata={"source": job.name, "z_axis": job.axis, "strategy": result.strategy},
        **job.look,
        **place,
    )
    return [confidence, depth, fused]
