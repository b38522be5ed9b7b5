"""Results → layers: add or update the focus/confidence, fused, decision and depth layers.

The decision map (pairs) and the depth map (stacks) are Labels layers, so the user can
paint them; see :mod:`._paint`. Live re-decisions only replace the data of existing layers
(:func:`show_decision`), which keeps the GUI thread's share of a threshold change small.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from napari.layers import Layer
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


def _settings_meta(settings: Any) -> dict[str, float]:
    return {"threshold": settings.threshold, "min_region": settings.min_region}


def show_pair(viewer: Any, job: PairJob, result: FusionResult, *, focus_map: bool = True) -> list[Layer]:
    """Add or update ``<name> focus map``, ``<name> fused`` and ``<name> decision map``.

    ``focus_map=False`` leaves the focus map layer alone (live threshold changes).
    """
    settings = _settings_meta(result.settings)
    place = job.placement.kwargs()
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
    return shown


def show_decision(viewer: Any, job: PairJob, labels: np.ndarray, fused: np.ndarray, settings: Any) -> bool:
    """Replace the data of the pair's fused and decision layers; False if either is gone."""
    fused_layer = _find_output(viewer, f"{job.name} fused")
    decision_layer = _find_output(viewer, f"{job.name} decision map")
    if fused_layer is None or decision_layer is None:
        return False
    if fused_layer.data.shape != fused.shape or decision_layer.data.shape != labels.shape:
        return False
    meta = _settings_meta(settings)
    fused_layer.data = fused
    decision_layer.data = labels
    fused_layer.metadata.update(meta)
    decision_layer.metadata.update(meta)
    return True


def show_stack(viewer: Any, job: StackJob, result: Any) -> list[Layer]:
    """Add or update ``<name> confidence``, ``<name> fused`` and ``<name> depth map``."""
    n_slices = job.stack.shape[0]
    place = job.placement.kwargs()
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
    depth = upsert_layer(
        viewer,
        f"{job.name} depth map",
        result.depth_map,
        "labels",
        colormap=depth_colours(n_slices),
        opacity=0.7,
        metadata={
            ROLE_KEY: "depth",
            "description": "index of the in-focus slice (paint a slice index to take that slice); "
            "depth = z_translate + index × z_scale",
            "z_axis": job.axis,
            "z_scale": job.z_scale,
            "z_translate": job.z_translate,
            "z_unit": str(job.units) if job.units is not None else None,
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
    return [confidence, depth, fused]


def output_layer(viewer: Any, name: str) -> Layer | None:
    """Our output layer called ``name`` (None if removed or renamed by the user)."""
    layer = _find_output(viewer, name)
    return layer if layer is not None and OUTPUT_KEY in layer.metadata else None
