"""The widget's tuning half: sessions of the last run, live re-decisions, paint links.

Kept apart from :mod:`._widget` (inputs, runs, buttons) so each stays readable. The mixin
expects the widget's controls (``layer_a``, ``layer_b``, ``mode``, ``status``), ``_viewer``,
``_alive``, ``runner``, ``live`` and ``_live_timer``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from acnn_fusion.napari import _paint, _session
from acnn_fusion.napari._jobs import FROM_A, FROM_B, PairJob, StackJob
from acnn_fusion.napari._panel import PAIR
from acnn_fusion.napari._session import Decision, PairSession, StackSession
from acnn_fusion.napari._show import output_layer, show_decision, show_fused, show_pair, show_stack
from acnn_fusion.napari._status import set_status
from acnn_fusion.options import FusionOptions


def device_used(options: FusionOptions) -> str:
    """The device and arithmetic a run actually used, e.g. ``cpu (bf16)``."""
    import torch

    from acnn_fusion.core.inference import resolve_precision, select_device

    device = select_device(options.device)
    dtype = resolve_precision(options.precision, device)
    return f"{device} ({'bf16' if dtype == torch.bfloat16 else 'fp32'})"


def _layer_by_id(viewer: Any, layer_id: int) -> Any:
    return next((layer for layer in viewer.layers if id(layer) == layer_id), None)


class TuningMixin:
    # provided by the widget this is mixed into (annotations only: nothing is defined here)
    _viewer: Any
    _alive: bool
    _live_timer: Any
    fusion_options: Any
    layer_a: Any
    layer_b: Any
    live: Any
    mode: Any
    runner: Any
    status: Any

    # -- sessions -------------------------------------------------------------------------
    def _pair_session(self) -> PairSession | None:
        """The viewer's pair session for the chosen A and B (swapped A/B: the swapped session)."""
        session = _session.current(self._viewer, "pair")
        if session is None:
            return None
        a, b = self.layer_a.value, self.layer_b.value
        ids = (id(a), id(b))
        if a is None or b is None or ids == session.layer_ids:
            return session
        if ids == session.layer_ids[::-1]:
            swapped = session.swapped(ids, session.job.swapped())
            return _session.register(self._viewer, "pair", swapped)
        return None  # another pair: it needs a run

    def show_pair_result(self, job: PairJob, layers: tuple, result: Any) -> None:
        session = PairSession(job, result.focus_map, (id(layers[0]), id(layers[1])))
        self.adopt_pair(job, result, session)
        settings = self.fusion_options().settings()
        if session.overrides is not None or settings != result.settings:
            self.live.request(session, settings)  # sliders moved during the run, or painted edits

    def adopt_pair(self, job: PairJob, result: Any, session: PairSession) -> None:
        """Show a pair result and make it the session the sliders and the brush act on."""
        session = _session.register(self._viewer, "pair", session)
        show_pair(self._viewer, job, result)
        computed = np.where(result.decision_map, np.uint8(FROM_A), np.uint8(FROM_B))
        session.computed, session.shown = computed, computed.copy()
        session.prepare()
        _paint.watch(self._viewer, "pair", output_layer(self._viewer, f"{job.name} decision map"))

    def show_stack_result(self, job: StackJob, result: Any) -> None:
        session = _session.register(self._viewer, "stack", StackSession(job, result.depth_map.copy()))
        show_stack(self._viewer, job, result)
        if session.overrides is not None:
            _paint.show_stack_depth(self._viewer, session)
        else:
            session.shown = result.depth_map.copy()
        _paint.watch(self._viewer, "stack", output_layer(self._viewer, f"{job.name} depth map"))

    def _adopt_menu_session(self) -> None:
        """Point A and B at the layers of a pair fused from the menu, so the sliders tune it."""
        session = _session.current(self._viewer, "pair")
        if session is None or not self._alive:
            return
        a, b = (_layer_by_id(self._viewer, i) for i in session.layer_ids)
        if a is None or b is None:
            return
        self.mode.value = PAIR
        self.layer_a.value = a
        self.layer_b.reset_choices()
        if b in list(self.layer_b.choices):
            self.layer_b.value = b

    # -- live re-decisions ----------------------------------------------------------------
    def _schedule_refresh(self, *_: Any, force: bool = False) -> None:
        if not self._alive or self.runner.running or self.mode.value != PAIR:
            return
        if force or _session.current(self._viewer, "pair") is not None:
            self._live_timer.start()

    def _request_live(self) -> None:
        if not self._alive:
            return
        session = self._pair_session()
        if session is None:
            if _session.current(self._viewer, "pair") is not None:
                set_status(self.status, "A and B changed: press Run to fuse this pair", notify_details=False)
            return
        self.live.request(session, self.fusion_options().settings())

    def _apply_decision(self, decision: Decision) -> None:
        """Show a re-decision's map (GUI thread) if its session is still the current one.

        Its fused image follows in :meth:`_apply_fused` (the live decider calls it one
        event-loop turn later).
        """
        session = decision.session
        if not self._alive or _session.current(self._viewer, "pair") is not session:
            return
        job = session.job
        if not show_decision(self._viewer, job, decision.labels, decision.settings):
            show_pair(self._viewer, job, session.result(decision), focus_map=False)
            _paint.watch(self._viewer, "pair", output_layer(self._viewer, f"{job.name} decision map"))
        computed = decision.computed
        session.computed = computed.copy() if decision.labels is computed else computed
        session.shown = decision.labels.copy()
        settings = decision.settings
        text = f"{job.name}: β {settings.threshold:.2f}, min region {100 * settings.min_region:.1f} %"
        if session.overrides is not None and session.overrides.any():
            text += f", {int(np.count_nonzero(session.overrides))} px painted"
        set_status(self.status, text, notify_details=False)

    def _apply_fused(self, decision: Decision) -> None:
        """Show a re-decision's fused image (GUI thread), unless its session was replaced."""
        session = decision.session
        if not self._alive or _session.current(self._viewer, "pair") is not session:
            return
        show_fused(self._viewer, session.job, decision.fused, decision.settings)

    def _live_failed(self, exc: BaseException) -> None:
        if self._alive:
            set_status(self.status, f"re-decision failed: {exc}")
