"""Results → layers: add or update the focus/confidence, fused, decision and depth layers.

The decision map (pairs) and the depth map (stacks) are Labels layers, so the user can
paint them; see :mod:`._paint`. Live re-decisions only replace the data of existing layers
(:func:`show_decision`, then :func:`show_fused`), which keeps the GUI thread's share of a
threshold change small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Image, Layer
from napari.utils.colormaps import DirectLabelColormap, ensure_colormap

from acnn_fusion.core.pipeline import FusionResult
from acnn_fusion.napari._jobs import FROM_A, FROM_B, PairJob, StackJob
from acnn_fusion.napari._layers import OUTPUT_KEY, _find_output, from_core_dtype, upsert_layer

#: ``layer.metadata`` key naming the role of an output layer ("fused", "decision", "depth"…)
ROLE_KEY = "acnn_fusion_role"


def _decision_colours() -> DirectLabelColormap:
    """A fresh colormap per layer (napari colormaps are mutable models): A orange, B teal."""
    return DirectLabelColormap(
        color_dict={None: "transparent", 0: "transparent", FROM_A: "#ff9f1c", FROM_B: "#2ec4b6"}
    )


def depth_colours(n_slices: int) -> DirectLabelColormap:
    """viridis over the slices; slice 0 is coloured too (the background value is unused)."""
    viridis = ensure_colormap("viridis")
    top = max(n_slices - 1, 1)
    colours: dict[Any, Any] = {None: "transparent"}
    for k in range(n_slices):
        colours[k] = viridis.map(np.array([k / top]))[0]
    return DirectLabelColormap(color_dict=colours, background_value=n_slices + 1)


def _map_layer(
    viewer: Any, name: str, values: np.ndarray, placement: Any, role: str = "focus map", **meta: Any
) -> Layer:
    """A [0, 1] map shown in magma: a pair's focus map, or a stack's confidence."""
    return upsert_layer(
        viewer,
        f"{name} {role}",
        values,
        "image",
        colormap="magma",
        contrast_limits=(0.0, 1.0),
        metadata={ROLE_KEY: role, **meta},
        **placement.kwargs(),
    )


#: ``metadata`` key of a new fused layer: the names of the layers it covered, hidden then
HID_KEY = "acnn_fusion_hid"


#: blendings under which an opaque layer hides what lies below it
_COVERING = ("translucent", "translucent_no_depth", "opaque")


def hide_covered(viewer: Any, top: Layer) -> list[str]:
    """Hide the image layers an opaque, newly added ``top`` layer covers entirely (2-D view).

    They cannot be seen under it, but napari still draws every visible layer in every frame,
    and on software OpenGL each full-canvas layer costs a frame several ms of CPU
    (``benchmarks/event_loop.py``). Returns their names; showing them again is one click.
    """
    if viewer.dims.ndisplay != 2 or top.opacity < 1.0 or top.blending not in _COVERING:
        return []
    if getattr(top, "rgb", False) and np.asarray(top.data).shape[-1] == 4:
        return []  # an alpha channel may show what lies under it
    position = viewer.layers.index(top)
    box = np.asarray(top.extent.world)[:, -2:]
    hidden = []
    for layer in list(viewer.layers)[:position]:
        if not (isinstance(layer, Image) and layer.visible):
            continue
        extent = np.asarray(layer.extent.world)[:, -2:]
        if np.all(extent[0] >= box[0]) and np.all(extent[1] <= box[1]):
            layer.visible = False
            hidden.append(layer.name)
    top.metadata[HID_KEY] = hidden
    return hidden


def _settings_meta(settings: Any) -> dict[str, float]:
    return {"threshold": settings.threshold, "min_region": settings.min_region}


def show_pair(viewer: Any, job: PairJob, result: FusionResult, *, focus_map: bool = True) -> list[Layer]:
    """Add or update ``<name> focus map``, ``<name> fused`` and ``<name> decision map``.

    ``focus_map=False`` leaves the focus map layer alone (live threshold changes).
    """
    settings = _settings_meta(result.settings)
    place = job.placement.kwargs()
    new = _find_output(viewer, f"{job.name} fused") is None
    shown = []
    if focus_map:
        shown.append(
            _map_layer(
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
            metadata={ROLE_KEY: "fused", "sources": list(job.sources), **settings},
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
            metadata={
                ROLE_KEY: "decision",
                "sources": list(job.sources),
                "description": f"paint {FROM_A} to take {job.sources[0]!r}, {FROM_B} for "
                f"{job.sources[1]!r}, 0 to undo a correction",
                **settings,
            },
            **place,
        )
    )
    if new:
        hide_covered(viewer, shown[-2])
    return shown


def show_decision(viewer: Any, job: PairJob, labels: np.ndarray, settings: Any) -> bool:
    """Replace the data of the pair's decision layer; False if it (or the fused layer) is gone.

    The fused image follows in :func:`show_fused`, one event-loop turn later, so that one
    frame never uploads both images (``benchmarks/event_loop.py``).
    """
    fused_layer = _find_output(viewer, f"{job.name} fused")
    decision_layer = _find_output(viewer, f"{job.name} decision map")
    if fused_layer is None or decision_layer is None:
        return False
    if fused_layer.data.shape[:2] != labels.shape or decision_layer.data.shape != labels.shape:
        return False
    replace_data(decision_layer, labels)
    decision_layer.metadata.update(_settings_meta(settings))
    return True


def show_fused(viewer: Any, job: PairJob, fused: np.ndarray, settings: Any) -> bool:
    """Replace the data of the pair's fused layer; False if it is gone or has another shape."""
    fused_layer = _find_output(viewer, f"{job.name} fused")
    if fused_layer is None or fused_layer.data.shape != fused.shape:
        return False
    replace_data(fused_layer, fused)
    fused_layer.metadata.update(_settings_meta(settings))
    return True


def replace_data(layer: Layer, data: np.ndarray) -> None:
    """Put new pixels into ``layer``: copied into its own array when shape and dtype match
    (napari then only re-slices; assigning ``layer.data`` also re-checks dims and extent,
    ~10 ms more of GUI-thread work per 1536×2048 layer), else assigned."""
    current = layer.data
    if (
        isinstance(current, np.ndarray)
        and current.flags.writeable
        and current.shape == data.shape
        and current.dtype == data.dtype
        and not np.may_share_memory(current, data)
    ):
        current[...] = data
        layer.refresh()
    else:
        layer.data = data


def show_stack(viewer: Any, job: StackJob, result: Any) -> list[Layer]:
    """Add or update ``<name> confidence``, ``<name> depth (µm)`` (when the z spacing is
    known), ``<name> depth map`` (slice index, paintable) and ``<name> fused``."""
    n_slices = job.stack.shape[0]
    place = job.placement.kwargs()
    new = _find_output(viewer, f"{job.name} fused") is None
    confidence = _map_layer(
        viewer,
        job.name,
        result.confidence,
        job.placement,
        role="confidence",
        description=(
            "confidence: features fold, how clearly the pixel's own focus evidence picks its slice "
            "(0 = depth taken from confident neighbours); pairwise folds, the focus-map value of "
            "the last decision"
        ),
        strategy=result.strategy,
    )
    unit = job.z_unit
    physical = physical_depth_name(job)
    if physical is not None:
        show_physical_depth(viewer, job, result.depth_map)
        values = f"slice index; the same depth in {unit} is the layer {physical!r}"
    else:
        values = "slice index: no z spacing is known, so depth is counted in slices"
    depth = upsert_layer(
        viewer,
        f"{job.name} depth map",
        result.depth_map,
        "labels",
        colormap=depth_colours(n_slices),
        opacity=0.7,
        metadata={
            ROLE_KEY: "depth",
            "values": values,
            "description": "index of the in-focus slice (paint a slice index to take that slice); "
            "z = z_translate + index × z_scale",
            "z_axis": job.axis,
            "z_scale": job.z_scale,
            "z_translate": job.z_translate,
            "z_unit": unit,
            "z_spacing": job.z_scale if unit is not None else None,
            "n_slices": int(n_slices),
        },
        **place,
    )
    fused = upsert_layer(
        viewer,
        f"{job.name} fused",
        from_core_dtype(result.fused, job.dtype),
        "image",
        rgb=job.rgb,
        metadata={ROLE_KEY: "fused", "source": job.name, "z_axis": job.axis, "strategy": result.strategy},
        **job.look,
        **place,
    )
    if new:
        hide_covered(viewer, fused)
    return [confidence, depth, fused]


def physical_depth_name(job: StackJob) -> str | None:
    """``<stack> depth (µm)``: the depth map in the stack's z unit; None without a z spacing."""
    unit = job.z_unit
    return None if unit is None else f"{job.name} depth ({unit})"


def show_physical_depth(
    viewer: Any, job: StackJob, depth: np.ndarray, box: tuple[slice, slice] | None = None
) -> Layer | None:
    """Add or update the depth map in physical units (float32 z of each pixel's slice).

    ``box`` updates only that region (after a paint stroke). The paintable layer stays the
    slice-index ``<stack> depth map``; this one follows it. None when z has no unit.
    """
    name = physical_depth_name(job)
    if name is None:
        return None
    if box is not None:
        layer = _find_output(viewer, name)
        if layer is not None and layer.data.shape == depth.shape:
            layer.data[box] = job.depth_values(depth[box])
            layer.refresh()
            return layer
    top = job.depth_values(np.array([0, job.stack.shape[0] - 1]))
    low, high = float(top.min()), float(top.max())
    return upsert_layer(
        viewer,
        name,
        job.depth_values(depth),
        "image",
        colormap="viridis",
        contrast_limits=(low, high if high > low else low + 1.0),
        metadata={
            ROLE_KEY: "z_depth",
            "description": f"z of the in-focus slice, in {job.z_unit} "
            f"(z = {job.z_translate} + slice × {job.z_scale}); paint slice indices in "
            f"{job.name + ' depth map'!r}",
            "z_unit": job.z_unit,
            "z_spacing": job.z_scale,
            "z_translate": job.z_translate,
            "slice_index_layer": f"{job.name} depth map",
            "n_slices": int(job.stack.shape[0]),
        },
        **job.placement.kwargs(),
    )


def output_layer(viewer: Any, name: str) -> Layer | None:
    """Our output layer called ``name`` (None if removed or renamed by the user)."""
    layer = _find_output(viewer, name)
    return layer if layer is not None and OUTPUT_KEY in layer.metadata else None
