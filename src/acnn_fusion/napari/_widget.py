"""The dock widget: choose two images or a z-stack, set the options, run, then tune.

The network runs in a background thread (:mod:`._runner`). After a pair run the focus map
is kept, so moving β or the minimum region only repeats the cheap decision and blend steps,
on a worker thread (:mod:`._live`); painting the decision or depth map corrects the result
(:mod:`._paint`). The mode follows the data: selecting or opening a z-stack switches to
stack mode, a 2-D layer with a partner of its shape to pair mode (:mod:`._choices`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import Container
from napari.utils.notifications import show_error, show_warning
from qtpy.QtCore import QTimer

from acnn_fusion.core.inference import available_devices
from acnn_fusion.core.pipeline import FusionResult
from acnn_fusion.napari import _choices, _paint, _panel, _session
from acnn_fusion.napari._choices import ChoicesMixin
from acnn_fusion.napari._controls import options_from_controls
from acnn_fusion.napari._jobs import PairJob, StackJob, long_run_warning, pair_job, stack_job
from acnn_fusion.napari._lifecycle import on_close
from acnn_fusion.napari._live import LiveDecider
from acnn_fusion.napari._panel import PAIR, STACK
from acnn_fusion.napari._runner import Cancelled, FusionRunner
from acnn_fusion.napari._status import set_status, show_progress, show_running
from acnn_fusion.napari._tuning import TuningMixin, device_used
from acnn_fusion.options import FusionOptions

if TYPE_CHECKING:
    import napari

__all__ = ["PAIR", "STACK", "FocusFusionWidget"]

#: delay (ms) that merges a burst of slider moves into one request
LIVE_DELAY_MS = 15


class FocusFusionWidget(ChoicesMixin, TuningMixin, Container):
    """Fuse two image layers, or fold a z-stack layer, into an all-in-focus image.

    Attributes a script or test may use: :attr:`runner` (``runner.synchronous = True``
    runs jobs inline), :attr:`live` (the live re-decision worker; ``live.wait()``),
    :meth:`run`, :meth:`cancel`, :meth:`refresh_decision` and :meth:`close_down`.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._alive = True
        self.runner = FusionRunner(on_state=self._set_running, on_progress=self._on_progress)
        self.live = LiveDecider(
            self._apply_decision, on_error=self._live_failed, apply_later=self._apply_fused
        )
        choices = {
            "layer_a": self._a_choices,
            "layer_b": self._b_choices,
            "stack": self._stack_choices,
            "z_axis": self._axis_choices,
        }
        self.extend(_panel.build_controls(available_devices(), choices))
        _panel.add_option_tooltips(self)
        _panel.limit_widths(self)
        _panel.restore(self)

        self.mode.changed.connect(self._update_visibility)
        self.strategy.changed.connect(self._update_visibility)
        self.preset.changed.connect(self._on_preset_changed)
        self.stack.changed.connect(self._on_stack_changed)
        self.layer_a.changed.connect(self._on_a_changed)
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self._on_cancel_clicked)
        self.swap_button.changed.connect(self._on_swap_clicked)
        self.reset_edits_button.changed.connect(self._on_reset_edits_clicked)
        self.defaults_button.changed.connect(self._on_defaults_clicked)
        self.height_button.changed.connect(self._on_height_clicked)
        for name in _panel.REMEMBERED:
            self[name].changed.connect(self._remember)

        self._live_timer = QTimer()
        self._live_timer.setSingleShot(True)
        self._live_timer.setInterval(LIVE_DELAY_MS)
        self._live_timer.timeout.connect(self._request_live)
        self.threshold.changed.connect(self._schedule_refresh)
        self.min_region.changed.connect(self._schedule_refresh)
        self.min_region_px.changed.connect(self._schedule_refresh)

        layers = self._viewer.layers
        self._connections: list[tuple[Any, Any]] = [
            (layers.events.inserted, self._on_layer_inserted),
            (layers.events.removed, self.reset_choices),
            (layers.events.moved, self.reset_choices),
            (layers.selection.events.active, self._on_active_changed),
        ]
        for emitter, callback in self._connections:
            emitter.connect(callback)
        for layer in layers:
            layer.events.name.connect(self.reset_choices)
        _session.listen(self._viewer, self._on_session)
        on_close(self._viewer, self.close_down)

        self.reset_choices()
        self._follow(layers.selection.active)
        self._on_stack_changed()
        self._update_visibility()
        self._adopt_menu_session()

    def _on_session(self, kind: str, origin: str) -> None:
        if kind == "pair" and origin == "menu":
            self._adopt_menu_session()

    # -- runs -----------------------------------------------------------------------------
    def fusion_options(self) -> FusionOptions:
        """The run options the controls show."""
        return options_from_controls(self)

    def run(self) -> bool:
        """Start a fusion with the current choices; False if it could not start."""
        options = self.fusion_options()
        point = self._viewer.dims.point
        job: PairJob | StackJob
        try:
            if self.mode.value == PAIR:
                if self.layer_a.value is None or self.layer_b.value is None:
                    raise ValueError(_choices.no_partner_message(self._viewer.layers, self.layer_a.value))
                layers: tuple[Any, ...] = (self.layer_a.value, self.layer_b.value)
                job = pair_job(self.layer_a.value, self.layer_b.value, point)
            else:
                if self.stack.value is None:
                    raise ValueError("add an image layer with at least 3 axes to fold as a z-stack")
                layers = (self.stack.value,)
                job = stack_job(self.stack.value, self.z_axis.value, point)
        except (ValueError, TypeError) as exc:
            set_status(self.status, str(exc), notify_details=False)
            show_error(str(exc))
            return False
        warning = long_run_warning(job, options.device)
        if warning:
            show_warning(warning)

        def on_result(result: Any, seconds: float) -> None:
            self._show(job, layers, result, seconds, options)

        def on_error(exc: BaseException) -> None:
            set_status(self.status, "cancelled" if isinstance(exc, Cancelled) else f"failed: {exc}")

        set_status(self.status, warning or f"running {job.name} on {options.device}…", notify_details=False)
        return self.runner.start(
            lambda progress: job.run(options, progress),
            description=f"Focus fusion: {job.name}",
            on_result=on_result,
            on_error=on_error,
        )

    def cancel(self) -> None:
        self.runner.cancel()

    def _show(self, job: Any, layers: tuple, result: Any, seconds: float, options: FusionOptions) -> None:
        if isinstance(job, PairJob):
            self.show_pair_result(job, layers, result)
        else:
            self.show_stack_result(job, result)
        set_status(self.status, f"{job.name}: done in {seconds:.1f} s on {device_used(options)}")

    def refresh_decision(self) -> FusionResult | None:
        """Re-decide the current pair now, on this thread, and show it (scripts, tests).

        Moving the sliders does the same on a worker thread. Returns the new result, or
        None when no pair has been fused yet.
        """
        session = self._pair_session()
        if session is None:
            return None
        decision = session.decide(self.fusion_options().settings(), self.live.request_number())
        self._apply_decision(decision)
        self._apply_fused(decision)
        return session.result(decision)

    # -- buttons and state ----------------------------------------------------------------
    def _on_run_clicked(self, *_: Any) -> None:
        self.run()

    def _on_cancel_clicked(self, *_: Any) -> None:
        self.cancel()

    def _on_swap_clicked(self, *_: Any) -> None:
        a, b = self.layer_a.value, self.layer_b.value
        if a is not None and b is not None:
            self.layer_a.value = b
            self.layer_b.reset_choices()
            self.layer_b.value = a
            self._schedule_refresh()

    def _on_reset_edits_clicked(self, *_: Any) -> None:
        if _paint.reset(self._viewer):
            self._schedule_refresh(force=True)
            set_status(self.status, "painted corrections reset", notify_details=False)

    def _on_height_clicked(self, *_: Any) -> None:
        from acnn_fusion.napari._height import show_height_view

        try:
            show_height_view(self._viewer)
        except ValueError as exc:
            set_status(self.status, str(exc), notify_details=False)

    def _on_defaults_clicked(self, *_: Any) -> None:
        _panel.restore_defaults(self)

    def _remember(self, *_: Any) -> None:
        if self._alive:
            _panel.remember(self)

    def _set_running(self, running: bool) -> None:
        if self._alive:
            show_running(self, running)

    def _on_progress(self, done: int, total: int) -> None:
        if self._alive:
            show_progress(self.progress, done, total)

    def close_down(self) -> None:
        """Cancel work and disconnect from the viewer (its window is closing); idempotent."""
        if not self._alive:
            return
        self._alive = False
        self.runner.shutdown()
        self.live.shutdown()
        try:
            self._live_timer.stop()
        except RuntimeError:  # Qt deleted it already (application exit)
            pass
        for emitter, callback in self._connections:
            emitter.disconnect(callback)
        for layer in self._viewer.layers:
            layer.events.name.disconnect(self.reset_choices)
        _session.unlisten(self._viewer, self._on_session)
