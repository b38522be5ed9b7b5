"""napari controls bound to :class:`~acnn_fusion.options.FusionOptions` fields by name.

A control named like an option field (``threshold``, ``precision``…) sets that option; a
widget gains an option by adding one control. Values some controls show in other units are
converted here (``min_region`` is shown in % of the image area).
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Container

from acnn_fusion.options import FusionOptions, option_fields

#: factor from an option's value to the value its control shows
DISPLAY_SCALE = {"min_region": 100.0}


def options_from_controls(container: Container, base: FusionOptions | None = None) -> FusionOptions:
    """``base`` (default options) with every option that has a control set from that control."""
    changes: dict[str, Any] = {}
    for f in option_fields():
        control = container.get_widget(f.name)
        if control is None:
            continue
        value = control.value
        if f.name in DISPLAY_SCALE:
            value = float(value) / DISPLAY_SCALE[f.name]
        changes[f.name] = value
    return (base or FusionOptions()).replace(**changes)


def option_tooltip(name: str) -> str:
    """The option's help text (the same words the command line shows)."""
    return next(f.metadata["help"] for f in option_fields() if f.name == name)
