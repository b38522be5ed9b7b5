"""Live threshold: re-decisions on a worker thread, the latest request wins.

Moving β or the minimum region asks for a re-decision of the current pair session. At most
one is computed at a time (off the GUI thread); requests arriving meanwhile replace each
other, so only the newest runs next and a result that is no longer the newest is dropped.
The GUI thread only swaps the layers' data, in two event-loop turns: ``apply`` (the decision
map) at once, ``apply_later`` (the fused image) :data:`LATER_MS` later, after napari has
drawn the first, so no frame uploads both images. A decision that is no longer the newest
when its turn comes skips ``apply_later``: while β is being dragged only the decision map
follows, and the fused image is refreshed once the newest decision is in.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from acnn_fusion.core.pipeline import FusionSettings
from acnn_fusion.napari._session import Decision, PairSession

ApplyCallback = Callable[[Decision], None]

#: delay (ms) between showing a decision map and its fused image
LATER_MS = 30


class LiveDecider:
    """Computes :meth:`PairSession.decide` in a worker; ``apply(decision)`` on the GUI thread."""

    def __init__(
        self,
        apply: ApplyCallback,
        on_error: Callable[[BaseException], None] | None = None,
        apply_later: ApplyCallback | None = None,
    ) -> None:
        self._apply = apply
        self._apply_later = apply_later
        self._later: Decision | None = None  # shown, its second half still to come
        self._later_timer: Any = None
        self._on_error = on_error
        self._pending: tuple[int, PairSession, FusionSettings] | None = None
        self._latest = 0  # number of the newest request
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._closed = False
        self.computed = 0  # decisions computed (tests, benchmarks)
        self.dropped = 0  # results dropped as stale

    @property
    def busy(self) -> bool:
        return self._busy or self._pending is not None or self._later is not None

    def request(self, session: PairSession, settings: FusionSettings) -> int:
        """Ask for a decision with ``settings``; returns the request's number."""
        if self._closed:
            return self._latest
        self._latest += 1
        self._pending = (self._latest, session, settings)
        if not self._busy:
            self._start_next()
        return self._latest

    def request_number(self) -> int:
        """A new request number for a decision computed elsewhere; in-flight results go stale."""
        self._latest += 1
        self._pending = None
        self._later = None
        return self._latest

    def is_latest(self, decision: Decision) -> bool:
        return decision.request == self._latest and decision.paint_version == decision.session.paint_version

    def _start_next(self) -> None:
        if self._pending is None or self._closed:
            return
        number, session, settings = self._pending
        self._pending = None
        self._busy = True
        self._idle.clear()

        def compute() -> Decision:
            try:
                return session.decide(settings, number)
            finally:
                self._idle.set()

        from napari.qt.threading import create_worker

        create_worker(
            compute,
            _connect={"returned": self._returned, "errored": self._errored, "finished": self._finished},
        )

    def _returned(self, decision: Decision) -> None:
        self.computed += 1
        if self._closed:
            return
        if self.is_latest(decision):
            self._apply(decision)
            self._schedule_later(decision)
        else:
            self.dropped += 1
            if self._pending is None and decision.request == self._latest:
                # painted while computing: decide again so the new strokes are kept
                self.request(decision.session, decision.settings)

    def _schedule_later(self, decision: Decision) -> None:
        if self._apply_later is None:
            return
        self._later = decision
        if self._later_timer is None:
            from qtpy.QtCore import QTimer

            self._later_timer = QTimer()
            self._later_timer.setSingleShot(True)
            self._later_timer.setInterval(LATER_MS)
            self._later_timer.timeout.connect(self._run_later)
        self._later_timer.start()

    def _run_later(self) -> None:
        decision, self._later = self._later, None
        if decision is None or self._closed or self._apply_later is None:
            return
        if self.is_latest(decision):
            self._apply_later(decision)

    def _errored(self, exc: BaseException) -> None:
        if not self._closed and self._on_error is not None:
            self._on_error(exc)

    def _finished(self) -> None:
        self._busy = False
        if self._pending is not None:
            self._start_next()

    def wait(self, timeout: float = 30.0) -> None:
        """Process events until no decision is pending (tests, scripts, benchmarks)."""
        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.005)
        QApplication.processEvents()

    def shutdown(self, timeout: float = 10.0) -> None:
        """Drop pending requests and wait for the running one (the viewer is closing)."""
        self._closed = True
        self._pending = None
        self._later = None
        if self._later_timer is not None:
            try:
                self._later_timer.stop()
            except RuntimeError:  # Qt deleted it already (application exit)
                pass
        self._idle.wait(timeout)

    def __repr__(self) -> str:
        return f"LiveDecider(latest={self._latest}, busy={self._busy})"
