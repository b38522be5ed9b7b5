"""Layers › Focus fusion menu commands: the widget's two jobs with default settings.

One run at a time per viewer (a second command while one runs is refused with a message);
each run says when it starts and when it is done (notifications, plus napari's activity
progress bar). Results are registered as the viewer's session, so the Focus fusion widget
can tune them (β, minimum region, painting) without another network run.

napari injects the current viewer through the ``Viewer`` annotation (no postponed
annotations in this module, so the name resolves at registration).
"""

from typing import Any

import numpy as np
from napari.layers import Image
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer

from acnn_fusion.napari import _paint, _session
from acnn_fusion.napari._choices import plane_shape
from acnn_fusion.napari._jobs import FROM_A, FROM_B, PairJob, StackJob, long_run_warning, pair_job, stack_job
from acnn_fusion.napari._lifecycle import on_close
from acnn_fusion.napari._runner import FusionRunner
from acnn_fusion.napari._session import PairSession, StackSession
from acnn_fusion.napari._show import output_layer, show_pair, show_stack
from acnn_fusion.options import FusionOptions


def menu_runner(viewer: Any) -> FusionRunner:
    """The viewer's one runner for menu commands (cancelled when the viewer closes)."""
    slot = _session._slot(viewer)
    runner = slot.get("menu_runner")
    if runner is None:
        runner = slot["menu_runner"] = FusionRunner()
        on_close(viewer, runner.shutdown)
    return runner


def _start(viewer: Any, job: PairJob | StackJob, layers: tuple) -> bool:
    """Run ``job`` with default options in the background; show and register the result."""
    options = FusionOptions()
    runner = menu_runner(viewer)
    if runner.running:
        show_warning("A focus fusion from the menu is already running; wait for it or cancel it.")
        return False
    warning = long_run_warning(job, options.device)
    show_info(warning or f"Focus fusion: fusing {job.name}… (progress in the activity panel)")

    def on_result(result: Any, seconds: float) -> None:
        if isinstance(job, PairJob):
            pair_session = PairSession(job, result.focus_map, (id(layers[0]), id(layers[1])))
            show_pair(viewer, job, result)
            computed = np.where(result.decision_map, np.uint8(FROM_A), np.uint8(FROM_B))
            pair_session.computed, pair_session.shown = computed, computed.copy()
            _session.register(viewer, "pair", pair_session, origin="menu")
            _paint.watch(viewer, "pair", output_layer(viewer, f"{job.name} decision map"))
            made = "focus map, fused image and decision map"
        else:
            stack_session = StackSession(job, result.depth_map.copy(), shown=result.depth_map.copy())
            show_stack(viewer, job, result)
            _session.register(viewer, "stack", stack_session, origin="menu")
            _paint.watch(viewer, "stack", output_layer(viewer, f"{job.name} depth map"))
            made = "fused image, depth map and confidence"
        show_info(
            f"Focus fusion: {job.name} done in {seconds:.1f} s ({made}); "
            "tune it in Plugins › ACNN focus fusion › Focus fusion"
        )

    return runner.start(
        lambda progress: job.run(options, progress),
        description=f"Focus fusion: {job.name}",
        on_result=on_result,
    )


def fuse_selected_layers(viewer: Viewer) -> None:
    """Fuse the two selected image layers (the lower one in the layer list is A)."""
    selected = [
        layer for layer in viewer.layers if layer in viewer.layers.selection and isinstance(layer, Image)
    ]
    if len(selected) != 2:
        show_warning(f"Select exactly two image layers to fuse ({len(selected)} selected).")
        return
    a, b = selected
    if a.rgb != b.rgb or plane_shape(a)[-3 if a.rgb else -2 :] != plane_shape(b)[-3 if b.rgb else -2 :]:
        show_warning(f"Cannot fuse {a.name!r} and {b.name!r}: their planes differ in shape.")
        return
    try:
        job = pair_job(a, b, viewer.dims.point)
    except (ValueError, TypeError) as exc:
        show_error(f"Cannot fuse: {exc}")
        return
    _start(viewer, job, (a, b))


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
    _start(viewer, job, (layer,))
