"""Which layers the widget offers, and which mode a layer calls for.

Pair mode offers 2-D image layers as A and, as B, only those with A's shape and colour
(a pair must match pixel for pixel); stack mode offers layers with at least 3 axes. Our
own output layers are never offered.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Layer

from acnn_fusion.napari._layers import full_resolution, image_layers


def is_stack(layer: Layer | None) -> bool:
    return layer is not None and bool(image_layers([layer], min_ndim=3))


def is_plane(layer: Layer | None) -> bool:
    return layer is not None and bool(image_layers([layer])) and layer.ndim == 2


def plane_shape(layer: Image) -> tuple[int, ...]:
    return tuple(full_resolution(layer).shape)


def planes(layers: Any) -> list[Image]:
    return [layer for layer in image_layers(layers) if layer.ndim == 2]


def partners(layers: Any, a: Image | None) -> list[Image]:
    """Layers that can be image B for ``a``: 2-D, same shape and RGB-ness, not ``a``."""
    if a is None:
        return []
    shape = plane_shape(a)
    return [
        layer
        for layer in planes(layers)
        if layer is not a and layer.rgb == a.rgb and plane_shape(layer) == shape
    ]


def stacks(layers: Any) -> list[Image]:
    return image_layers(layers, min_ndim=3)


def no_partner_message(layers: Any, a: Image | None) -> str:
    """Why no pair can be fused (for the status line)."""
    if a is None:
        return "add two 2-D image layers of the same shape (A and B) to fuse"
    others = [layer for layer in planes(layers) if layer is not a]
    if not others:
        return f"add a second 2-D image layer with the shape of {a.name!r} {plane_shape(a)} to fuse"
    other = others[0]
    return (
        f"image B must have the shape of image A: {a.name!r} {plane_shape(a)} and "
        f"{other.name!r} {plane_shape(other)} differ in shape"
    )
