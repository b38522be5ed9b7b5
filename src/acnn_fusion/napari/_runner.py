"""Run one fusion job at a time off the GUI thread, with progress and Cancel.

The core reports progress through ``progress(done, total)`` callbacks called on the
worker thread; they are relayed to the GUI thread by a queued Qt signal, and raise
:class:`Cancelled` once the user cancels, which stops the core between two tiles.
:meth:`FusionRunner.shutdown` (called when the viewer closes) cancels and waits for the
worker thread, so no thread outlives the window and no callback reaches a deleted widget.

Set ``ACNN_FUSION_SYNC=1`` (or ``runner.synchronous = True``) to run jobs inline on the
calling thread, as tests do.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from napari.utils.notifications import show_error, show_info, show_warning
from napari.utils.progress import cancelable_progress
from qtpy.QtCore import QObject, Signal

SYNC_ENV = "ACNN_FUSION_SYNC"
_log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside the core's progress callback when the user cancels a run."""


class _Relay(QObject):
    """Carries progress from the worker thread to the GUI thread."""

    progressed = Signal(int, int)


def sync_requested() -> bool:
    return os.environ.get(SYNC_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _message(exc: BaseException) -> str:
    if isinstance(exc, (ValueError, TypeError, FileNotFoundError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class FusionRunner:
    """Starts jobs, shows their progress, and cancels them; one job at a time.

    ``on_state(running: bool)`` is called when a job starts and when it ends (the widget
    enables its Run and Cancel buttons with it); ``on_progress(done, total)`` on the GUI
    thread as tiles finish.
    """

    def __init__(
        self,
        on_state: Callable[[bool], None] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.synchronous: bool | None = None  # None: follow $ACNN_FUSION_SYNC
        self.label = "Focus fusion"  # how notifications name the work
        self._on_state = on_state
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self._computing = threading.Event()  # set while a worker thread is inside compute
        self._relay = _Relay()
        self._relay.progressed.connect(self._show_progress)
        self._pbar: cancelable_progress | None = None
        self._worker: Any = None
        self._running = False
        self._closed = False
        self._run_id = 0

    @property
    def running(self) -> bool:
        return self._running

    def cancel(self) -> None:
        """Ask the running job to stop at the next tile; the result is discarded."""
        if self._running:
            self._cancel.set()
            if self._pbar is not None:
                self._pbar.set_description("cancelling…")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel, wait (up to ``timeout`` s) for the worker thread, and drop all callbacks."""
        self._closed = True
        self._on_state = self._on_progress = None
        if not self._running:
            return
        self._cancel.set()
        deadline = time.monotonic() + timeout
        while self._computing.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._finish(self._run_id)

    def start(
        self,
        compute: Callable[[Callable[[int, int], None]], Any],
        *,
        description: str,
        on_result: Callable[[Any, float], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bool:
        """Run ``compute(progress)`` and hand its result and run time to ``on_result``.

        Returns False (and does nothing) while another job is running or after shutdown.
        """
        if self._closed:
            return False
        if self._running:
            show_info("A fusion is already running; cancel it or wait for it to finish.")
            return False
        self._running = True
        self._run_id += 1
        run_id = self._run_id
        self._cancel.clear()
        self._pbar = cancelable_progress(total=0, desc=description, cancel_callback=self.cancel)
        if self._on_state is not None:
            self._on_state(True)
        t0 = time.perf_counter()

        def returned(result: Any) -> None:
            if run_id == self._run_id and not self._closed:
                on_result(result, time.perf_counter() - t0)

        def errored(exc: BaseException) -> None:
            if run_id == self._run_id and not self._closed:
                self._report(exc, on_error)

        def guarded(progress: Callable[[int, int], None]) -> Any:
            self._computing.set()
            try:
                return compute(progress)
            finally:
                self._computing.clear()

        synchronous = sync_requested() if self.synchronous is None else self.synchronous
        if synchronous:
            try:
                try:
                    result = guarded(self._progress)
                except Exception as exc:  # reported like a worker's error
                    errored(exc)
                else:
                    returned(result)
            finally:
                self._finish(run_id)
            return True

        from napari.qt.threading import create_worker

        # connecting "errored" ourselves stops superqt from re-raising in the GUI thread
        worker = create_worker(
            guarded,
            self._progress,
            _start_thread=False,
            _connect={"returned": returned, "errored": errored, "finished": lambda: self._finish(run_id)},
        )
        self._worker = worker
        self._computing.set()  # before the thread starts: shutdown() must wait for it
        worker.start()
        return True

    def wait(self, timeout: float = 60.0) -> None:
        """Process events until the running job (if any) has finished (tests, scripts)."""
        from qtpy.QtWidgets import QApplication

        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)
        if self._running:
            raise TimeoutError(f"fusion still running after {timeout} s")

    # -- worker thread -------------------------------------------------------------------
    def _progress(self, done: int, total: int) -> None:
        if self._cancel.is_set() or (self._pbar is not None and self._pbar.is_canceled):
            raise Cancelled
        self._relay.progressed.emit(int(done), int(total))

    # -- GUI thread ----------------------------------------------------------------------
    def _show_progress(self, done: int, total: int) -> None:
        pbar = self._pbar
        if pbar is None:
            return
        if pbar.total != total:
            pbar.total = total
        pbar.update(done - pbar.n)
        if self._on_progress is not None:
            self._on_progress(done, total)

    def _report(self, exc: BaseException, on_error: Callable[[BaseException], None] | None) -> None:
        if isinstance(exc, Cancelled):
            show_info(f"{self.label} cancelled.")
        elif isinstance(exc, (ValueError, TypeError, FileNotFoundError)):
            show_warning(f"{self.label} not run: {_message(exc)}")  # the input, not a fault
        else:
            _log.error("%s failed", self.label, exc_info=exc)
            show_error(f"{self.label} failed: {_message(exc)}")
        if on_error is not None:
            on_error(exc)

    def _finish(self, run_id: int) -> None:
        if run_id != self._run_id or not self._running:
            return  # already finished (shutdown, then the worker's own signal)
        if self._pbar is not None:
            try:
                self._pbar.close()
            except RuntimeError:  # its Qt side went with the window
                pass
            self._pbar = None
        self._worker = None
        self._running = False
        if self._on_state is not None:
            self._on_state(False)
