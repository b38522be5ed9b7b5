"""The dock widget: choose two images or a z-stack, set the decision parameters, run.

The network runs in a background thread (see :mod:`._runner`). After a pair run the
focus map is kept, so moving the threshold or minimum-region controls only repeats the
cheap decision and blend steps of the core and updates the layers in place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSlider,
    FloatSpinBox,
    Label,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.layers import Image
from napari.utils.notifications import show_error
from qtpy.QtCore import QTimer

from acnn_fusion.core.inference import available_devices
from acnn_fusion.core.pipeline import PRESETS, FusionResult
from acnn_fusion.napari._controls import options_from_controls
from acnn_fusion.napari._jobs import PairJob, StackJob, pair_job, show_pair, show_stack, stack_job
from acnn_fusion.napari._layers import default_z_axis, image_layers
from acnn_fusion.napari._runner import Cancelled, FusionRunner
from acnn_fusion.options import DEFAULT_TILE, MIN_TILE, PRECISIONS, STRATEGIES, FusionOptions

if TYPE_CHECKING:
    import napari

PAIR = "two images"
STACK = "z-stack"
#: delay (ms) that merges a burst of slider moves into one re-decision
LIVE_DELAY_MS = 40


class FocusFusionWidget(Container):
    """Fuse two image layers, or fold a z-stack layer, into an all-in-focus image.

    Attributes a script or test may use: :attr:`runner` (``runner.synchronous = True``
    runs jobs inline), :meth:`run`, :meth:`cancel` and :meth:`refresh_decision`.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._cached: tuple[PairJob, Any] | None = None  # last pair job and its focus map
        self.runner = FusionRunner(on_state=self._set_running)

        default = PRESETS["default"]
        widgets = [
            RadioButtons(
                name="mode", label="input", choices=[PAIR, STACK], value=PAIR, orientation="horizontal"
            ),
            ComboBox(name="layer_a", label="image A", choices=self._pair_choices),
            ComboBox(name="layer_b", label="image B", choices=self._pair_choices),
            ComboBox(name="stack", label="z-stack", choices=self._stack_choices),
            ComboBox(name="z_axis", label="fold axis", choices=self._axis_choices),
            ComboBox(
                name="strategy",
                label="stack method",
                choices=list(STRATEGIES),
                value="features",
                tooltip="features: one network pass per slice, each scored against the stack's mean (fast); "
                "pairwise: the paper's fold of successive pair fusions (uses threshold and region size); "
                "pairwise-tree: the same, folded as a balanced tree",
            ),
            FloatSlider(
                name="threshold",
                label="threshold β",
                min=0.0,
                max=1.0,
                step=0.01,
                value=default.threshold,
                tooltip="a pixel is taken from A where the focus map exceeds β",
            ),
            FloatSpinBox(
                name="min_region",
                label="min region (% area)",
                min=0.0,
                max=50.0,
                step=0.1,
                value=round(100 * default.min_region, 3),
                tooltip="regions smaller than this share of the image are given to the other input",
            ),
            ComboBox(name="device", label="device", choices=available_devices(), value="auto"),
            ComboBox(
                name="precision",
                label="precision",
                choices=list(PRECISIONS),
                value="auto",
                tooltip="auto: bf16 where the device computes it natively (faster; 0.05 % of "
                "decision pixels change on Lytro); fp32: bit-reproducible",
            ),
            SpinBox(
                name="tile",
                label="tile (px)",
                min=4 * MIN_TILE,
                max=16384,
                step=64,
                value=DEFAULT_TILE,
                tooltip="images are scored in tiles of this size to bound memory",
            ),
            PushButton(name="run_button", text="Run"),
            PushButton(name="cancel_button", text="Cancel", enabled=False),
            Label(name="status", label="", value=""),
        ]
        self.extend(widgets)

        self.mode.changed.connect(self._update_visibility)
        self.strategy.changed.connect(self._update_visibility)
        self.stack.changed.connect(self._on_stack_changed)
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self._on_cancel_clicked)

        self._live_timer = QTimer()
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self.refresh_decision)
        self.threshold.changed.connect(self._schedule_refresh)
        self.min_region.changed.connect(self._schedule_refresh)

        layer_events = self._viewer.layers.events
        layer_events.inserted.connect(self._on_layer_inserted)
        layer_events.removed.connect(self.reset_choices)
        layer_events.moved.connect(self.reset_choices)
        for layer in self._viewer.layers:
            layer.events.name.connect(self.reset_choices)

        self.reset_choices()
        active = self._viewer.layers.selection.active
        if any(active is layer for layer in self.stack.choices):  # a z-stack is selected
            self.stack.value = active
            self.mode.value = STACK
        self._on_stack_changed()
        self._update_visibility()

    # -- choices --------------------------------------------------------------------------
    def _pair_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in image_layers(self._viewer.layers)]

    def _stack_choices(self, _widget: Any = None) -> list[tuple[str, Image]]:
        return [(layer.name, layer) for layer in image_layers(self._viewer.layers, min_ndim=3)]

    def _axis_choices(self, _widget: Any = None) -> list[tuple[str, int]]:
        stack_widget = self.get_widget("stack")
        layer = stack_widget.value if stack_widget is not None else None
        if layer is None:
            return []
        shape = layer.data[0].shape if layer.multiscale else layer.data.shape
        return [(f"{k}: {layer.axis_labels[k]} ({shape[k]})", k) for k in range(layer.ndim - 2)]

    def reset_choices(self, *_: Any) -> None:
        super().reset_choices()
        self._separate_pair()

    def _separate_pair(self) -> None:
        """Offer two different layers as A and B when there are two to choose from."""
        a, b = self.layer_a.value, self.layer_b.value
        if a is not None and a is b:
            others = [layer for layer in self.layer_b.choices if layer is not a]
            if others:
                self.layer_b.value = others[0]

    def _on_layer_inserted(self, event: Any) -> None:
        event.value.events.name.connect(self.reset_choices)
        self.reset_choices()

    def _on_stack_changed(self, *_: Any) -> None:
        self.z_axis.reset_choices()
        layer = self.stack.value
        if layer is not None:
            self.z_axis.value = default_z_axis(layer)

    def _update_visibility(self, *_: Any) -> None:
        pair = self.mode.value == PAIR
        for name in ("layer_a", "layer_b"):
            self[name].visible = pair
        for name in ("stack", "z_axis", "strategy"):
            self[name].visible = not pair
        decision_used = pair or self.strategy.value.startswith("pairwise")
        self.threshold.visible = decision_used
        self.min_region.visible = decision_used

    # -- parameters and runs --------------------------------------------------------------
    def options(self) -> FusionOptions:
        """The run options the controls show."""
        return options_from_controls(self)

    def run(self) -> bool:
        """Start a fusion with the current choices; False if it could not start."""
        options = self.options()
        point = self._viewer.dims.point
        job: PairJob | StackJob
        try:
            if self.mode.value == PAIR:
                if self.layer_a.value is None or self.layer_b.value is None:
                    raise ValueError("add two image layers (A and B) to fuse")
                job = pair_job(self.layer_a.value, self.layer_b.value, point)
            else:
                if self.stack.value is None:
                    raise ValueError("add an image layer with at least 3 axes to fold as a z-stack")
                job = stack_job(self.stack.value, self.z_axis.value, point)
        except (ValueError, TypeError) as exc:
            self.status.value = str(exc)
            show_error(str(exc))
            return False

        def on_result(result: Any, seconds: float) -> None:
            self._show(job, result, seconds, options)

        def on_error(exc: BaseException) -> None:
            self.status.value = "cancelled" if isinstance(exc, Cancelled) else f"failed: {exc}"

        self.status.value = f"running on {options.device}…"
        return self.runner.start(
            lambda progress: job.run(options, progress),
            description=f"Focus fusion: {job.name}",
            on_result=on_result,
            on_error=on_error,
        )

    def cancel(self) -> None:
        self.runner.cancel()

    def _show(self, job: PairJob | StackJob, result: Any, seconds: float, options: FusionOptions) -> None:
        if isinstance(job, PairJob):
            # the sliders may have moved while the network ran: decide with today's values
            settings = self.options().settings()
            if settings != result.settings:
                result = job.redecide(result.focus_map, settings)
            show_pair(self._viewer, job, result)
            self._cached = (job, result.focus_map)
        else:
            show_stack(self._viewer, job, result)
        self.status.value = f"{job.name}: done in {seconds:.1f} s ({options.device})"

    # -- live threshold -------------------------------------------------------------------
    def _schedule_refresh(self, *_: Any) -> None:
        if self._cached is not None and self.mode.value == PAIR and not self.runner.running:
            self._live_timer.start()

    def refresh_decision(self) -> FusionResult | None:
        """Re-decide the last pair from its cached focus map with the current settings.

        Only the core's ``decide`` and ``blend`` run (no network); the decision map and
        fused layers are updated in place. Returns the new result, or None without one.
        """
        if self._cached is None:
            return None
        job, focus_map = self._cached
        try:
            result = job.redecide(focus_map, self.options().settings())
        except ValueError as exc:
            self.status.value = str(exc)
            return None
        show_pair(self._viewer, job, result, focus_map=False)
        self.status.value = (
            f"{job.name}: β {result.settings.threshold:.2f}, "
            f"min region {100 * result.settings.min_region:.1f} %"
        )
        return result

    # -- buttons --------------------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        self.run()

    def _on_cancel_clicked(self, *_: Any) -> None:
        self.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running
