"""Paint to correct: painting the decision map or the depth map re-fuses that region now.

The decision map (labels 1 = A, 2 = B) and the depth map (label = slice index) of the
current session are watched; after each stroke the painted pixels become overrides of the
session (:mod:`._session`) and only the changed box of the fused layer is recomputed from
the chosen source or slice: no network runs. Overrides are kept across threshold changes
and re-runs of the same inputs until reset.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import numpy as np
from napari.layers import Labels
from qtpy.QtCore import QTimer

from acnn_fusion.napari import _session
from acnn_fusion.napari._session import PairSession, StackSession
from acnn_fusion.napari._show import output_layer, show_physical_depth

#: layers whose paint events are connected (id → layer), so each is connected once
_WATCHED: weakref.WeakValueDictionary[int, Labels] = weakref.WeakValueDictionary()


def _on_paint(viewer_ref: weakref.ref, kind: str, layer_ref: weakref.ref) -> None:
    viewer, layer = viewer_ref(), layer_ref()
    if viewer is None or layer is None:
        return
    session = _session.current(viewer, kind)
    if session is None:
        return
    apply_paint(viewer, session, layer)


#: the editable layer of each kind of session
_EDITABLE = {PairSession: "decision map", StackSession: "depth map"}


def apply_paint(
    viewer: Any, session: PairSession | StackSession, layer: Labels
) -> tuple[slice, slice] | None:
    """Take the strokes in ``layer`` (the session's decision or depth map) as overrides and
    re-fuse their box from the chosen source or slice; returns the box."""
    if layer.name != f"{session.job.name} {_EDITABLE[type(session)]}":
        return None
    box = session.painted(layer.data)
    if box is None:
        return None
    layer.refresh()
    fused = output_layer(viewer, f"{session.job.name} fused")
    shown = session.shown
    if fused is not None and shown is not None and fused.data.shape[:2] == shown.shape:
        if isinstance(session, PairSession):
            fused.data[box] = session.fused_box(box)
        else:
            fused.data[box] = session.fused_box(shown, box)
        fused.refresh()
    if isinstance(session, StackSession) and shown is not None:
        show_physical_depth(viewer, session.job, shown, box)
    return box


def watch(viewer: Any, kind: str, layer: Any) -> None:
    """Re-fuse on every stroke painted into ``layer`` (the session's decision or depth map)."""
    if not isinstance(layer, Labels) or id(layer) in _WATCHED:
        return
    _WATCHED[id(layer)] = layer
    viewer_ref, layer_ref = weakref.ref(viewer), weakref.ref(layer)
    pending: list[Any] = []

    def run() -> None:
        pending.clear()
        _on_paint(viewer_ref, kind, layer_ref)

    def on_paint(_event: Any) -> None:
        # napari announces an edit before writing it into the data: look once it is written
        if not pending:
            pending.append(True)
            QTimer.singleShot(0, run)

    layer.events.paint.connect(on_paint)

    def on_drag(dragged: Any, event: Any):  # a generator: napari feeds it press, moves, release
        if dragged.mode != "paint":
            return
        label, radius = int(dragged.selected_label), float(np.floor(dragged.brush_size / 2) + 0.5)
        points = [np.asarray(dragged.world_to_data(event.position), float)[-2:]]
        yield
        while event.type == "mouse_move":
            points.append(np.asarray(dragged.world_to_data(event.position), float)[-2:])
            yield
        QTimer.singleShot(0, lambda: _pin(viewer_ref, kind, layer_ref, points, radius, label))

    layer.mouse_drag_callbacks.append(on_drag)


def stroke_mask(shape: tuple[int, int], points: list[np.ndarray], radius: float) -> np.ndarray:
    """The pixels a round brush of ``radius`` covers along the polyline through ``points``."""
    mask = np.zeros(shape, bool)
    dense = [points[0]]
    for start, end in itertools.pairwise(points):
        steps = max(1, int(np.ceil(np.linalg.norm(end - start) / max(radius / 2, 0.5))))
        dense.extend(start + (end - start) * t for t in np.linspace(0, 1, steps + 1)[1:])
    r = int(np.floor(radius))
    offsets = np.arange(-r, r + 1)
    disc = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    for y, x in (np.round(p).astype(int) for p in dense):
        y0, x0 = max(y - r, 0), max(x - r, 0)
        y1, x1 = min(y + r + 1, shape[0]), min(x + r + 1, shape[1])
        if y0 < y1 and x0 < x1:
            mask[y0:y1, x0:x1] |= disc[y0 - (y - r) : y1 - (y - r), x0 - (x - r) : x1 - (x - r)]
    return mask


def _pin(
    viewer_ref: weakref.ref, kind: str, layer_ref: weakref.ref, points: list, radius: float, label: int
) -> None:
    """Keep every pixel under a finished stroke on the painted source, changed or not."""
    viewer, layer = viewer_ref(), layer_ref()
    if viewer is None or layer is None or layer.data.ndim != 2:
        return
    session = _session.current(viewer, kind)
    if session is None or session.shown is None or session.shown.shape != layer.data.shape:
        return
    covered = stroke_mask(layer.data.shape, points, radius) & (layer.data == label)
    session.pin(covered, label)


def reset(viewer: Any) -> bool:
    """Forget the painted corrections of the viewer's sessions; True if there were any."""
    had = False
    for kind in ("pair", "stack"):
        session = _session.current(viewer, kind)
        if session is not None and session.overrides is not None:
            session.reset()
            had = True
    stack = _session.current(viewer, "stack")
    if stack is not None and had:
        show_stack_depth(viewer, stack)
    return had


def show_stack_depth(viewer: Any, session: StackSession) -> None:
    """Put the session's corrected depth map and the matching fused image into the layers."""
    depth = session.corrected()
    session.shown = depth.copy()
    layer = output_layer(viewer, f"{session.job.name} depth map")
    fused = output_layer(viewer, f"{session.job.name} fused")
    if layer is None or fused is None:
        return
    layer.data = depth
    full = (slice(0, depth.shape[0]), slice(0, depth.shape[1]))
    fused.data = session.fused_box(depth, full)
    show_physical_depth(viewer, session.job, depth)
