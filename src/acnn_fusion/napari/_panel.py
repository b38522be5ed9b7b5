"""The focus-fusion widget's controls: inputs, basic and advanced options, buttons, status.

Option controls are named like :class:`~acnn_fusion.options.FusionOptions` fields and take
their tooltips from the fields' help (the words the command line shows); see
:mod:`._controls`. Every control has a tooltip.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import (
    ComboBox,
    Label,
    PushButton,
    RadioButtons,
    Widget,
)

from acnn_fusion.core.pipeline import PRESETS
from acnn_fusion.napari._controls import option_control, option_tooltip
from acnn_fusion.napari._status import make_progress_bar, make_status_label
from acnn_fusion.options import DEFAULT_TILE

PAIR = "two images"
STACK = "z-stack"

#: what "Restore defaults" sets, by control name (the options' defaults, in display units)
DEFAULTS: dict[str, Any] = {
    "preset": "default",
    "strategy": "features",
    "threshold": PRESETS["default"].threshold,
    "min_region": round(100 * PRESETS["default"].min_region, 3),
    "min_region_px": PRESETS["default"].min_region_px,
    "composition": "copy",
    "align_model": "similarity",
    "depth_smoothing": 2.0,
    "seams": "agree",
    "align": False,
    "device": "auto",
    "precision": "auto",
    "tile": DEFAULT_TILE,
    "detect_channel": -1,  # not set: luminance or all channels
    "weights": "",  # not set: the shipped model
}
#: controls whose values are remembered when the widget is closed and docked again
REMEMBERED = tuple(DEFAULTS)


def _heading(name: str, text: str, tooltip: str) -> Label:
    return Label(name=name, label=f"<b>{text}</b>", value="", tooltip=tooltip)


def build_controls(devices: list[str], choices: dict[str, Any]) -> list[Widget]:
    """The widget's controls in display order; ``choices`` maps chooser names to callables."""
    return [
        RadioButtons(  # type: ignore[call-arg]  # value= is accepted; the stubs miss it
            name="mode",
            label="input",
            choices=[PAIR, STACK],
            value=PAIR,
            orientation="horizontal",
            tooltip="fuse two 2-D images of one scene, or fold a z-stack layer (follows the selection)",
        ),
        ComboBox(
            name="layer_a",
            label="image A",
            choices=choices["layer_a"],
            tooltip="first image: a 2-D image layer (the focus map is P(A is sharper))",
        ),
        ComboBox(
            name="layer_b",
            label="image B",
            choices=choices["layer_b"],
            tooltip="second image: only 2-D layers of A's shape are offered",
        ),
        PushButton(name="swap_button", text="Swap A ⇄ B", tooltip="exchange images A and B"),
        ComboBox(
            name="stack",
            label="z-stack",
            choices=choices["stack"],
            tooltip="an image layer with at least 3 axes to fold",
        ),
        ComboBox(
            name="z_axis",
            label="fold axis",
            choices=choices["z_axis"],
            tooltip="the focus (z) axis; other non-spatial axes are taken at the viewer's position",
        ),
        _heading("basic_heading", "decision", "settings that change which input each pixel comes from"),
        *(option_control(name, devices) for name in ("preset", "strategy", "threshold", "min_region_px")),
        option_control("min_region"),
        option_control("align"),
        option_control("align_model"),
        option_control("depth_smoothing"),
        option_control("seams"),
        option_control("composition"),
        _heading("advanced_heading", "advanced", "hardware and memory: these do not change the decision"),
        *(option_control(name, devices) for name in ("device", "runtime", "precision", "tile")),
        option_control("detect_channel"),
        option_control("weights"),
        PushButton(name="run_button", text="Run", tooltip="run the network and show the results as layers"),
        PushButton(
            name="cancel_button", text="Cancel", enabled=False, tooltip="stop the run after the current tile"
        ),
        PushButton(
            name="reset_edits_button",
            text="Reset painted corrections",
            tooltip="forget what was painted into the decision or depth map and show the computed result",
        ),
        PushButton(
            name="height_button",
            text="3-D height view",
            tooltip="show the fused image draped over the depth map (heights in the z unit) in 3-D; "
            "low-confidence regions are left out",
        ),
        PushButton(
            name="defaults_button",
            text="Restore defaults",
            tooltip="set every option back to its default (β 0.5, min region 4096 px, auto device…)",
        ),
        make_progress_bar(),
        make_status_label(),
    ]


def add_option_tooltips(container: Any) -> None:
    """Tooltips of option controls from the options model's help texts."""
    for name in DEFAULTS:
        widget = container.get_widget(name)
        if widget is not None:
            text = option_tooltip(name)
            if name == "min_region":
                text += " (shown in % of the image area)"
            if name in ("threshold", "min_region", "min_region_px"):
                text += "; moving it re-decides the last pair at once (no network run)"
            widget.tooltip = text


def limit_widths(container: Any, names: tuple[str, ...] = ("layer_a", "layer_b", "stack", "z_axis")) -> None:
    """Layer choosers show long layer names elided instead of widening the panel."""
    from qtpy.QtWidgets import QComboBox

    for name in names:
        native = container[name].native
        native.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        native.setMinimumContentsLength(14)


# -- remembered settings ------------------------------------------------------------------
_MEMORY: dict[str, Any] = {}


def remember(container: Any) -> None:
    """Store the current option values (restored by the next widget of this session)."""
    for name in REMEMBERED:
        widget = container.get_widget(name)
        if widget is not None:
            _MEMORY[name] = widget.value


def restore(container: Any) -> None:
    for name, value in _MEMORY.items():
        widget = container.get_widget(name)
        if widget is None:
            continue
        try:
            widget.value = value
        except (ValueError, TypeError):  # e.g. a device not on this machine any more
            pass


def restore_defaults(container: Any) -> None:
    for name, value in DEFAULTS.items():
        widget = container.get_widget(name)
        if widget is not None:
            widget.value = value
    _MEMORY.clear()


def forget_remembered() -> None:
    """Clear remembered values (tests)."""
    _MEMORY.clear()
