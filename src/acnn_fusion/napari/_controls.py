"""napari controls bound to :class:`~acnn_fusion.options.FusionOptions` fields by name.

A control named like an option field (``threshold``, ``precision``…) sets that option; a
widget gains an option by adding one control, and :func:`option_control` makes the control
a field calls for (choices from its Literal type, tooltip from its help), so the batch
panel offers exactly what the command line offers. Values some controls show in other
units are converted here (``min_region`` is shown in % of the image area); optional fields
have a control value meaning "not set" (:data:`UNSET`).
"""

from __future__ import annotations

from typing import Any

from magicgui.types import FileDialogMode
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSlider,
    FloatSpinBox,
    SpinBox,
    Widget,
)

from acnn_fusion.options import DEFAULT_TILE, MIN_TILE, FusionOptions, choices, option_fields, option_type

#: factor from an option's value to the value its control shows
DISPLAY_SCALE = {"min_region": 100.0}
#: control values that mean "not set" (None) for optional options
UNSET: dict[str, Any] = {"detect_channel": -1, "weights": ""}


def _control_value(name: str, value: Any) -> Any:
    if name in UNSET:
        if name == "weights":
            text = str(value) if value is not None else ""
            return None if text in ("", ".") else text
        return None if value == UNSET[name] else value
    if name in DISPLAY_SCALE:
        return float(value) / DISPLAY_SCALE[name]
    return value


def options_from_controls(container: Container, base: FusionOptions | None = None) -> FusionOptions:
    """``base`` (default options) with every option that has a control set from that control."""
    changes: dict[str, Any] = {}
    for f in option_fields():
        control = container.get_widget(f.name)
        if control is None:
            continue
        changes[f.name] = _control_value(f.name, control.value)
    return (base or FusionOptions()).replace(**changes)


def option_tooltip(name: str) -> str:
    """The option's help text (the same words the command line shows)."""
    return next(f.metadata["help"] for f in option_fields() if f.name == name)


def option_control(name: str, devices: list[str] | None = None) -> Widget:
    """The control for option ``name``: its choices, default and help as tooltip."""
    from acnn_fusion.core.pipeline import PRESETS

    label = name.replace("_", " ")
    tip = option_tooltip(name)
    allowed = choices(name)
    kind = option_type(name)
    if name == "threshold":
        value = PRESETS["default"].threshold
        return FloatSlider(
            name=name, label="threshold β", min=0.0, max=1.0, step=0.01, value=value, tooltip=tip
        )
    if name == "min_region":
        value = round(100 * PRESETS["default"].min_region, 3)
        tip += " (in % of the image area)"
        return FloatSpinBox(
            name=name, label="min region (% area)", min=0.0, max=50.0, step=0.1, value=value, tooltip=tip
        )
    if name == "min_region_px":
        value = PRESETS["default"].min_region_px
        return SpinBox(
            name=name, label="min region (px)", min=0, max=10**8, step=256, value=value, tooltip=tip
        )
    if name == "device":
        return ComboBox(name=name, label=label, choices=devices or ["auto", "cpu"], value="auto", tooltip=tip)
    if name == "tile":
        return SpinBox(
            name=name,
            label="tile (px)",
            min=4 * MIN_TILE,
            max=16384,
            step=64,
            value=DEFAULT_TILE,
            tooltip=tip,
        )
    if name == "detect_channel":
        return SpinBox(name=name, label="channel", min=-1, max=64, value=-1, tooltip=tip + "; −1 = not set")
    if name == "weights":
        return FileEdit(
            name=name, label="weights", mode=FileDialogMode.EXISTING_FILE, filter="*.pt", tooltip=tip
        )
    if allowed is not None:
        default = getattr(FusionOptions(), name)
        return ComboBox(name=name, label=label, choices=list(allowed), value=default, tooltip=tip)
    if kind is float:
        default = float(getattr(FusionOptions(), name))
        return FloatSpinBox(name=name, label=label, min=0.0, max=100.0, step=0.5, value=default, tooltip=tip)
    if kind is bool:
        return CheckBox(name=name, label=label, value=bool(getattr(FusionOptions(), name)), tooltip=tip)
    raise TypeError(f"no control for option {name!r} of type {kind}")


def apply_preset(container: Container, preset: str) -> None:
    """Set the decision controls a container has to the values of ``preset`` (still editable)."""
    from acnn_fusion.core.pipeline import PRESETS

    settings = PRESETS[preset]
    shown = {
        "threshold": settings.threshold,
        "min_region": round(DISPLAY_SCALE["min_region"] * settings.min_region, 3),
        "min_region_px": settings.min_region_px,
    }
    for name, value in shown.items():
        control = container.get_widget(name)
        if control is not None:
            control.value = value


def option_controls(devices: list[str] | None = None) -> list[Widget]:
    """One control per option field, in the options model's order."""
    return [option_control(f.name, devices) for f in option_fields()]
