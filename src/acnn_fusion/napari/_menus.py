"""Layers › Focus fusion menu commands: the widget's two jobs with default settings.

napari injects the current viewer through the ``Viewer`` annotation (no postponed
annotations in this module, so the name resolves at registration).
"""

from collections.abc import Callable
from typing import Any

from napari.layers import Image
from napari.utils.notifications import show_error, show_warning
from napari.viewer import Viewer

from acnn_fusion.napari._jobs import (
    PairJob,
    StackJob,
    pair_job,
    show_pair,
    show_stack,
    stack_job,
)
from acnn_fusion.napari._runner import FusionRunner
from acnn_fusion.options import FusionOptions

# runners of menu commands still in flight (kept alive until they finish)
_RUNNING: set[FusionRunner] = set()


def _start(job: PairJob | StackJob, show: Callable[[Any, Any], object]) -> bool:
    """Run ``job`` with default parameters in the background; ``show(job, result)`` after."""
    options = FusionOptions()
    runner = FusionRunner()
    _RUNNING.add(runner)

    def on_result(result: Any, _seconds: float) -> None:
        _RUNNING.discard(runner)
        show(job, result)

    def on_error(_exc: BaseException) -> None:
        _RUNNING.discard(runner)

    started = runner.start(
        lambda progress: job.run(options, progress),
        description=f"Focus fusion: {job.name}",
        on_result=on_result,
        on_error=on_error,
    )
    if not started:
        _RUNNING.discard(runner)
    return started


def fuse_selected_layers(viewer: Viewer) -> None:
    """Fuse the two selected image layers (the lower one in the layer list is A)."""
    selected = [
        layer for layer in viewer.layers if layer in viewer.layers.selection and isinstance(layer, Image)
    ]
    if len(selected) != 2:
        show_warning(f"Select exactly two image layers to fuse ({len(selected)} selected).")
        return
    try:
        job = pair_job(selected[0], selected[1], viewer.dims.point)
    except (ValueError, TypeError) as exc:
        show_error(f"Cannot fuse: {exc}")
        return
    _start(job, lambda job, result: show_pair(viewer, job, result))


def fold_z_stack(viewer: Viewer) -> None:
    """Fold the active image layer (≥ 3 axes) along its z axis into an all-in-focus image."""
    layer = viewer.layers.selection.active
    if not isinstance(layer, Image) or layer.ndim < 3:
        show_warning("Select one image layer with at least 3 axes (a z-stack) to fold.")
        return
    try:
        job = stack_job(layer, None, viewer.dims.point)
    except (ValueError, TypeError) as exc:
        show_error(f"Cannot fold {layer.name!r}: {exc}")
        return
    _start(job, lambda job, result: show_stack(viewer, job, result))
