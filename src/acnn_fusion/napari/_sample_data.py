"""File › Open Sample: the synthetic multi-focus pair and focal stack (ground truth known)."""

from __future__ import annotations

from typing import Any

from acnn_fusion.napari._layers import Z_AXIS_KEY

LayerData = tuple[Any, dict[str, Any], str]


def sample_pair() -> list[LayerData]:
    """Two RGB images of one scene, each sharp where the other is blurred."""
    from acnn_fusion.synthetic import sample_pair as render

    pair = render()
    return [
        (pair.image_a, {"name": "sample A", "rgb": True}, "image"),
        (pair.image_b, {"name": "sample B", "rgb": True}, "image"),
    ]


def sample_stack() -> list[LayerData]:
    """Eight uint16 slices of a tilted, curved specimen (Z, Y, X)."""
    from acnn_fusion.synthetic import sample_stack as render

    stack = render()
    meta = {"name": "sample stack", "axis_labels": ("z", "y", "x"), "metadata": {Z_AXIS_KEY: 0}}
    return [(stack.stack, meta, "image")]
