"""Which layers the widget offers, and which mode a layer calls for.

Pair mode offers 2-D image layers as A and, as B, only those with A's shape and colour
(a pair must match pixel for pixel); stack mode offers layers with at least 3 axes. Our
own output layers are never offered.
"""

from __future__ import annotations

from typing import Any

from napari.layers import Image, Layer

from acnn_fusion.napari._controls import apply_preset
from acnn_fusion.napari._layers import default_z_axis, full_resolution, image_layers
from acnn_fusion.napari._panel import PAIR, STACK


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


class ChoicesMixin:
    """The widget's choosers and mode, following the viewer's layers and selection.

    Expects the widget's controls, ``_viewer``, ``_alive``, ``runner`` and ``preset``.
    """

    # provided by the widget this is mixed into (annotations only: nothing is defined here)
    _viewer: Any
    _alive: bool
    get_widget: Any
    layer_a: Any
    layer_b: Any
    mode: Any
    preset: Any
    runner: Any
    stack: Any
    strategy: Any
    z_axis: Any

    def _a_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in planes(self._viewer.layers)]

    def _b_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        a = self.get_widget("layer_a")
        found = partners(self._viewer.layers, a.value if a is not None else None)
        return [(layer.name, layer) for layer in found]

    def _stack_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        return [(layer.name, layer) for layer in stacks(self._viewer.layers)]

    def _axis_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        stack_widget = self.get_widget("stack")
        layer = stack_widget.value if stack_widget is not None else None
        if layer is None:
            return []
        shape = layer.data[0].shape if layer.multiscale else layer.data.shape
        return [(f"{k}: {layer.axis_labels[k]} ({shape[k]})", k) for k in range(layer.ndim - 2)]

    def reset_choices(self, *_: Any) -> None:
        if self._alive:
            super().reset_choices()  # type: ignore[misc]  # the Container this is mixed into

    def _on_a_changed(self, *_: Any) -> None:
        self.layer_b.reset_choices()

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self.reset_choices)
        self.reset_choices()
        self._follow(event.value, inserted=True)

    def _on_active_changed(self, event: Any) -> None:
        self._follow(event.value)

    def _follow(self, layer: Any, inserted: bool = False) -> None:
        """Switch mode (and inputs) to what ``layer`` calls for; our outputs are ignored."""
        if not self._alive or self.runner.running:
            return
        if is_stack(layer):
            self.mode.value = STACK
            self.stack.value = layer
        elif is_plane(layer):
            found = partners(self._viewer.layers, layer)
            pair_ok = self.layer_a.value is not None and self.layer_b.value is not None
            if not found or (self.mode.value == PAIR and pair_ok):
                return
            self.mode.value = PAIR
            a, b = (found[0], layer) if inserted else (layer, found[0])
            self.layer_a.value = a
            self.layer_b.reset_choices()
            self.layer_b.value = b

    def _on_stack_changed(self, *_: Any) -> None:
        self.z_axis.reset_choices()
        layer = self.stack.value
        if layer is not None:
            self.z_axis.value = default_z_axis(layer)

    def _on_preset_changed(self, *_: Any) -> None:
        apply_preset(self, self.preset.value)  # type: ignore[arg-type]  # a mixin of a Container

    def _update_visibility(self, *_: Any) -> None:
        pair = self.mode.value == PAIR
        for name in ("layer_a", "layer_b", "swap_button"):
            self.get_widget(name).visible = pair
        stack_only = ("align", "align_model", "depth_smoothing", "seams", "detect_channel", "height_button")
        for name in ("stack", "z_axis", "strategy", *stack_only):
            self.get_widget(name).visible = not pair
        decision_used = pair or self.strategy.value.startswith("pairwise")
        for name in ("threshold", "min_region", "min_region_px"):
            self.get_widget(name).visible = decision_used
