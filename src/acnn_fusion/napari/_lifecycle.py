"""Hooks for the end of a viewer's or a widget's life: cancel workers, drop connections.

``viewer.close()`` closes the main window (a Close event we watch for), the dock widgets go
with it, and at the end the application may quit: each of these calls the callbacks
registered here once, so that no worker keeps computing for a window that is gone and no
callback reaches a deleted Qt object.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QApplication

_log = logging.getLogger(__name__)


class _CloseWatcher(QObject):
    """Calls ``callback`` once when ``target`` receives a Close event."""

    def __init__(self, target: QObject, callback: Callable[[], None]) -> None:
        super().__init__(target)
        self._callback: Callable[[], None] | None = callback
        target.installEventFilter(self)

    def fire(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:
        if event is not None and event.type() == QEvent.Type.Close:
            self.fire()
        return False


def unwrap(viewer: Any) -> Any:
    """The viewer itself when napari hands plugins a proxy of it."""
    return getattr(viewer, "__wrapped__", viewer)


def main_window(viewer: Any) -> QObject | None:
    """The viewer's Qt main window (None for a headless or already closed viewer).

    napari has no public "window closing" event; its main window's Close event is the one
    moment both ``viewer.close()`` and the window's close button pass through.
    """
    window = getattr(unwrap(viewer), "window", None)
    return getattr(unwrap(window), "_qt_window", None) if window is not None else None


def _strong(callback: Callable[[], None]) -> Callable[[], Callable[[], None]]:
    return lambda: callback


def on_close(viewer: Any, callback: Callable[[], None]) -> None:
    """Call ``callback`` once: when the viewer's window closes or the application quits.

    A bound method is held weakly (a closed widget is not kept alive by the application).
    """
    ref: Callable[[], Callable[[], None] | None] = (
        weakref.WeakMethod(callback) if hasattr(callback, "__self__") else _strong(callback)
    )
    fired = False
    app = QApplication.instance()

    def once(*_: Any) -> None:
        nonlocal fired
        if fired:
            return
        fired = True
        if app is not None:
            try:
                app.aboutToQuit.disconnect(once)
            except (TypeError, RuntimeError):
                pass
        callback = ref()
        if callback is None:
            return
        try:
            callback()
        except Exception:
            _log.debug("cleanup after close failed", exc_info=True)

    target = main_window(viewer)
    if target is not None:
        _CloseWatcher(target, once)
    # (not ``widget.destroyed``: it fires while Python collects the widget, too late to touch it)
    if app is not None:
        app.aboutToQuit.connect(once)
