"""Status lines that never widen a panel: wrapped, cut to a few lines, full text in the tooltip.

Long messages (a batch with many failures, a long path) would otherwise make the dock and
the window wider than the screen. The label keeps a short version; the whole text goes to
its tooltip and, where it was cut, to a napari notification.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label, ProgressBar
from napari.utils.notifications import show_info

#: the widest a status line may make its panel (pixels)
MAX_STATUS_WIDTH = 320
#: characters kept in the label; the rest is in the tooltip and the notification
MAX_STATUS_CHARS = 160


def make_status_label(name: str = "status") -> Label:
    label = Label(name=name, label="", value="", tooltip="what the last action did (full text here when cut)")
    native = label.native
    native.setWordWrap(True)
    native.setMaximumWidth(MAX_STATUS_WIDTH)
    from qtpy.QtWidgets import QSizePolicy

    native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


def shorten(text: str, limit: int = MAX_STATUS_CHARS) -> str:
    """``text`` cut at ``limit`` characters (at a word where one is near) with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + " …"


def set_status(label: Label, text: str, *, notify_details: bool = True) -> None:
    """Show ``text`` in ``label`` (shortened if long; the full text in its tooltip)."""
    short = shorten(text)
    label.value = short
    label.tooltip = text
    if notify_details and short != " ".join(text.split()):
        show_info(text)


def make_progress_bar(name: str = "progress") -> ProgressBar:
    bar = ProgressBar(name=name, label="", value=0, min=0, max=1, visible=False)
    bar.tooltip = "tiles scored so far"
    return bar


def show_progress(bar: ProgressBar, done: int, total: int) -> None:
    if total > 0:
        bar.max = total
        bar.value = min(done, total)


def show_running(panel: Any, running: bool) -> None:
    """Run off and Cancel on (or back) while a job runs; the progress bar shows only then."""
    panel.run_button.enabled = not running
    panel.cancel_button.enabled = running
    panel.progress.visible = running
    panel.progress.value = 0
