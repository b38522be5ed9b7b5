"""Layers ↔ arrays: what the core needs from a napari layer, and how results become layers.

Nothing here knows about the network; it only cuts planes out of layers, converts dtypes
the core does not take, and adds or updates output layers in place of earlier results.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Layer

#: ``layer.metadata`` key a reader (or the user) sets to say which data axis is z.
Z_AXIS_KEY = "acnn_fusion_z_axis"
#: ``layer.metadata`` key on every layer this plugin creates: the name it was created for.
OUTPUT_KEY = "acnn_fusion_output"
#: the name napari actually gave the output layer (differs if the user renames it).
_ASSIGNED_KEY = "acnn_fusion_layer_name"

CORE_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)

#: keyword arguments napari only takes when a layer is created
_CREATE_ONLY = frozenset({"rgb", "multiscale"})


@dataclass(frozen=True)
class Placement:
    """Where 2-D results go in the world: the spatial part of an input layer's transform."""

    scale: tuple[float, float]
    translate: tuple[float, float]
    units: tuple[Any, Any]
    axis_labels: tuple[str, str]

    @classmethod
    def of(cls, layer: Layer) -> Placement:
        """The last two (Y, X) axes of ``layer``'s scale, translate, units and labels."""
        return cls(
            scale=(float(layer.scale[-2]), float(layer.scale[-1])),
            translate=(float(layer.translate[-2]), float(layer.translate[-1])),
            units=tuple(layer.units[-2:]),
            axis_labels=tuple(layer.axis_labels[-2:]),
        )

    def kwargs(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "translate": self.translate,
            "units": self.units,
            "axis_labels": self.axis_labels,
        }


def is_output(layer: Layer) -> bool:
    """True for layers this plugin created (they are not offered as inputs)."""
    return OUTPUT_KEY in getattr(layer, "metadata", {})


def image_layers(layers: Iterable[Layer], *, min_ndim: int = 2) -> list[Image]:
    """Image layers (not our own outputs) with at least ``min_ndim`` non-RGB axes."""
    return [
        layer
        for layer in layers
        if isinstance(layer, Image) and not is_output(layer) and layer.ndim >= min_ndim
    ]


def default_z_axis(layer: Layer) -> int:
    """The axis to fold: the reader's mark, else an axis labelled z, else the first non-spatial."""
    n_choices = max(layer.ndim - 2, 1)
    marked = layer.metadata.get(Z_AXIS_KEY)
    if isinstance(marked, (int, np.integer)) and 0 <= int(marked) < n_choices:
        return int(marked)
    labels = [str(label).lower() for label in layer.axis_labels[:n_choices]]
    return labels.index("z") if "z" in labels else 0


def full_resolution(layer: Layer) -> Any:
    """The layer's data, the finest level of a multiscale pyramid."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def plane_index(layer: Layer, point: Iterable[float] | None, keep: Iterable[int]) -> tuple:
    """Index into the layer's data: all of the ``keep`` axes, the current position on the rest.

    ``point`` is the viewer's world position (``viewer.dims.point``); without a viewer the
    first index of every other axis is taken. An RGB layer's colour axis is always kept.
    """
    keep = set(keep)
    shape = full_resolution(layer).shape[: layer.ndim]
    if point is None:
        position = np.zeros(layer.ndim)
    else:
        coords = tuple(point)
        if len(coords) < layer.ndim:
            coords = (0.0,) * (layer.ndim - len(coords)) + coords
        position = np.asarray(layer.world_to_data(coords[-layer.ndim :]), dtype=float)
    index: list[int | slice] = []
    for axis, size in enumerate(shape):
        if axis in keep:
            index.append(slice(None))
        else:
            index.append(int(np.clip(np.round(position[axis]), 0, size - 1)))
    return tuple(index)


def to_core_dtype(array: Any) -> np.ndarray:
    """A numpy array in a dtype the core takes: bool → uint8, other kinds → float64.

    Every fused pixel is copied from a source, so :func:`from_core_dtype` restores the
    original values exactly (float64 holds every integer up to 2**53).
    """
    array = np.asarray(array)
    if array.dtype.type in CORE_DTYPES:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"cannot fuse images of dtype {array.dtype}")
    return array.astype(np.float64)


def from_core_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return array if array.dtype == dtype else array.astype(dtype)


def _find_output(viewer: Any, name: str) -> Layer | None:
    """Our earlier output layer for ``name``, unless the user has renamed it since."""
    for layer in viewer.layers:
        meta = layer.metadata
        if meta.get(OUTPUT_KEY) == name and meta.get(_ASSIGNED_KEY) == layer.name:
            return layer
    return None


def _compatible(layer: Layer, layer_type: str, data: np.ndarray, kwargs: dict[str, Any]) -> bool:
    if layer._type_string != layer_type or full_resolution(layer).ndim != data.ndim:
        return False
    return not (layer_type == "image" and bool(kwargs.get("rgb", False)) != bool(layer.rgb))


def upsert_layer(viewer: Any, name: str, data: np.ndarray, layer_type: str, **kwargs: Any) -> Layer:
    """Update our layer called ``name`` in place, or add it: re-runs never duplicate layers.

    Layers the user made or renamed are left alone. A layer whose type, dimensionality or
    RGB-ness no longer fits is replaced at the same position in the layer list.
    """
    metadata = {**kwargs.pop("metadata", {}), OUTPUT_KEY: name}
    existing = _find_output(viewer, name)
    if existing is not None and _compatible(existing, layer_type, data, kwargs):
        existing.data = data
        for key, value in kwargs.items():
            if key not in _CREATE_ONLY:
                setattr(existing, key, value)
        existing.metadata.update(metadata)
        return existing
    layer = Layer.create(data, {**kwargs, "name": name, "metadata": metadata}, layer_type)
    if existing is not None:
        position = viewer.layers.index(existing)
        viewer.layers.remove(existing)
        viewer.layers.insert(position, layer)
    else:
        viewer.layers.append(layer)
    layer.metadata[_ASSIGNED_KEY] = layer.name
    return layer


def output_base_name(name_a: str, name_b: str) -> str:
    """Common stem of two layer names, in whole words ("pair_A", "pair_B" → "pair").

    Falls back to ``"A + B"`` when the names share no whole word.
    """
    separators = " _-.,"
    length = 0
    for char_a, char_b in zip(name_a, name_b, strict=False):
        if char_a != char_b:
            break
        length += 1
    prefix = name_a[:length]

    def at_boundary(name: str) -> bool:
        return length == len(name) or name[length] in separators

    if not (prefix.endswith(tuple(separators)) or (at_boundary(name_a) and at_boundary(name_b))):
        cut = max(prefix.rfind(sep) for sep in separators)
        prefix = prefix[: cut + 1] if cut >= 0 else ""
    prefix = prefix.rstrip(separators)
    return prefix if prefix else f"{name_a} + {name_b}"
