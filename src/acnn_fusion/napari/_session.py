"""What can be tuned after a run: the last pair (focus map kept) or stack (depth map kept).

A session holds the inputs of one run and the user's painted corrections (*overrides*):
for a pair, which source each painted pixel comes from (1 = A, 2 = B, 0 = not painted);
for a stack, which slice (−1 = not painted). Overrides survive threshold changes and re-runs
of the same inputs until reset. The menu commands register their sessions here too, so the
widget can tune a result made from the menu. Computing (``decide``) is safe on a worker
thread; everything that touches layers happens on the GUI thread.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from acnn_fusion.core.pipeline import FusionResult, FusionSettings, blend, fuse_from_focus_map, grey_pair
from acnn_fusion.napari import _decider
from acnn_fusion.napari._jobs import FROM_A, FROM_B, PairJob, StackJob
from acnn_fusion.napari._layers import from_core_dtype

NO_SLICE = -1


def changed_box(data: np.ndarray, shown: np.ndarray | None) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """(pixels that differ from ``shown``, their bounding box), or None if nothing changed."""
    if shown is None or data.shape != shown.shape:
        return None
    changed = data != shown
    if not changed.any():
        return None
    rows, cols = np.nonzero(changed.any(axis=1))[0], np.nonzero(changed.any(axis=0))[0]
    return changed, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


@dataclass
class Decision:
    """One re-decision of a pair, computed off the GUI thread, shown on it."""

    session: PairSession
    settings: FusionSettings
    computed: np.ndarray  # uint8 labels from the focus map alone
    labels: np.ndarray  # uint8 labels with the overrides applied
    fused: np.ndarray  # in the input dtype
    paint_version: int
    request: int = 0
    thread: int = 0  # ident of the thread that computed it
    pid: int = 0  # the process that ran the decision steps (large pairs: a helper process)


@dataclass
class PairSession:
    job: PairJob
    focus_map: np.ndarray
    layer_ids: tuple[int, int]  # id() of the source layers A, B
    overrides: np.ndarray | None = None
    grey: tuple[np.ndarray, np.ndarray] | None = None
    computed: np.ndarray | None = None  # labels of the last decision (no overrides)
    shown: np.ndarray | None = None  # labels as last put into the layer
    paint_version: int = 0
    key: int = field(default_factory=_decider.new_key)  # the inputs' key in the helper process

    def _decide_steps(self, settings: FusionSettings, in_process: bool) -> tuple[np.ndarray, np.ndarray, int]:
        """(decision map, fused, pid): in the helper process for large pairs, else here."""
        a, b = self.job.a, self.job.b
        if in_process:
            return _decider.helper().decide(self.key, a, b, self.focus_map, settings)
        if self.grey is None and settings.refine_radius > 0:
            self.grey = grey_pair(a, b)
        result = fuse_from_focus_map(a, b, self.focus_map, settings, grey=self.grey)
        return result.decision_map, result.fused, os.getpid()

    def decide(
        self, settings: FusionSettings, request: int = 0, *, in_process: bool | None = None
    ) -> Decision:
        """Decision, override and blend for ``settings`` (no network; any thread).

        ``in_process`` (default: for pairs of :data:`._decider.PROCESS_MIN_PIXELS` or more)
        runs the decision steps in the helper process, which keeps napari's interpreter lock
        free while they run.
        """
        if in_process is None:
            in_process = _decider.use_process(self.focus_map.shape)
        version = self.paint_version
        overrides = self.overrides
        decision_map, fused, pid = self._decide_steps(settings, in_process)
        computed = np.where(decision_map, np.uint8(FROM_A), np.uint8(FROM_B))
        if overrides is not None and overrides.any():
            labels = np.where(overrides > 0, overrides, computed)
            fused = blend(self.job.a, self.job.b, labels == FROM_A)
        else:
            labels = computed
        return Decision(
            self,
            settings,
            computed,
            labels,
            from_core_dtype(fused, self.job.dtype),
            version,
            request,
            threading.get_ident(),
            pid,
        )

    def prepare(self) -> None:
        """Send a large pair's inputs to the helper process now, so the first β move is quick."""
        if _decider.use_process(self.focus_map.shape):
            _decider.helper().preload(self.key, self.job.a, self.job.b, self.focus_map)

    def result(self, decision: Decision) -> FusionResult:
        return FusionResult(
            fused=decision.fused,
            focus_map=self.focus_map,
            decision_map=decision.labels == FROM_A,
            settings=decision.settings,
        )

    def swapped(self, layer_ids: tuple[int, int], job: PairJob) -> PairSession:
        """The same pair with A and B exchanged: the focus map is 1 − p, painted sources swap."""
        overrides = None
        if self.overrides is not None:
            overrides = np.choose(self.overrides, [0, FROM_B, FROM_A]).astype(np.uint8)
        grey = (self.grey[1], self.grey[0]) if self.grey is not None else None
        return PairSession(job, 1.0 - self.focus_map, layer_ids, overrides, grey)

    def painted(self, data: np.ndarray) -> tuple[slice, slice] | None:
        """Take painting in the decision layer's ``data`` as overrides; the changed box or None.

        Painting 1 takes A, 2 takes B; any other label (the eraser's 0) removes the override
        there and restores the computed decision.
        """
        if self.computed is None:
            return None
        found = changed_box(data, self.shown)
        if found is None:
            return None
        changed, box = found
        assert self.shown is not None  # changed_box compared against it
        if self.overrides is None:
            self.overrides = np.zeros(data.shape, np.uint8)
        new = data[box]
        part = changed[box]
        valid = part & ((new == FROM_A) | (new == FROM_B))
        self.overrides[box][valid] = new[valid]
        erased = part & ~valid
        self.overrides[box][erased] = 0
        new[erased] = self.computed[box][erased]  # the layer shows the computed source again
        self.shown[box] = new
        self.paint_version += 1
        return box

    def pin(self, mask: np.ndarray, label: int) -> None:
        """Make ``mask`` overrides taking source ``label`` (1 = A, 2 = B) even where unchanged."""
        if label not in (FROM_A, FROM_B) or not mask.any():
            return
        if self.overrides is None:
            self.overrides = np.zeros(mask.shape, np.uint8)
        self.overrides[mask] = label
        self.paint_version += 1

    def fused_box(self, box: tuple[slice, slice]) -> np.ndarray:
        assert self.shown is not None
        part = blend(self.job.a[box], self.job.b[box], self.shown[box] == FROM_A)
        return from_core_dtype(part, self.job.dtype)

    def reset(self) -> None:
        self.overrides = None
        self.paint_version += 1


@dataclass
class StackSession:
    job: StackJob
    depth: np.ndarray  # uint16 depth map of the run (no overrides)
    overrides: np.ndarray | None = None  # int32, NO_SLICE where not painted
    shown: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def corrected(self) -> np.ndarray:
        if self.overrides is None:
            return self.depth
        return np.where(self.overrides >= 0, self.overrides, self.depth).astype(np.uint16)

    def fused_box(self, depth: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
        """The fused pixels of ``box`` taken from the slices ``depth`` names."""
        stack = self.job.stack
        rows, cols = box
        part = np.asarray(stack[:, rows, cols])
        index = depth[box].astype(np.intp)[None]
        if part.ndim == 4:
            index = index[..., None]
        taken = np.take_along_axis(part, index, axis=0)[0]
        return from_core_dtype(taken, self.job.dtype)

    def painted(self, data: np.ndarray) -> tuple[slice, slice] | None:
        """Take painting in the depth layer's ``data`` as overrides (slice indices)."""
        found = changed_box(data, self.shown)
        if found is None:
            return None
        changed, box = found
        assert self.shown is not None  # changed_box compared against it
        if self.overrides is None:
            self.overrides = np.full(data.shape, NO_SLICE, np.int32)
        top = self.job.stack.shape[0] - 1
        new = np.minimum(data[box], top)
        data[box] = new  # labels beyond the last slice mean the last slice
        part = changed[box]
        self.overrides[box][part] = new[part]
        self.shown[box] = new
        return box

    def pin(self, mask: np.ndarray, label: int) -> None:
        """Make ``mask`` overrides taking slice ``label`` even where the depth was that already."""
        if not 0 <= label < self.job.stack.shape[0] or not mask.any():
            return
        if self.overrides is None:
            self.overrides = np.full(mask.shape, NO_SLICE, np.int32)
        self.overrides[mask] = label

    def reset(self) -> None:
        self.overrides = None


# -- per-viewer registry (the widget tunes what the menu made) ----------------------------
_SESSIONS: dict[int, dict[str, Any]] = {}


def _slot(viewer: Any) -> dict[str, Any]:
    from acnn_fusion.napari._lifecycle import unwrap

    viewer = unwrap(viewer)  # plugins may get a proxy of the viewer
    key = id(viewer)
    if key not in _SESSIONS:
        _SESSIONS[key] = {}
        try:
            weakref.finalize(viewer, _SESSIONS.pop, key, None)
        except TypeError:
            pass
    return _SESSIONS[key]


def current(viewer: Any, kind: str) -> Any:
    """The viewer's last ``"pair"`` or ``"stack"`` session, or None."""
    return _slot(viewer).get(kind)


def register(viewer: Any, kind: str, session: Any, origin: str = "widget") -> Any:
    """Make ``session`` the viewer's current one; overrides of the same inputs carry over.

    Listeners (:func:`listen`) hear of it with the ``origin`` ("widget" or "menu").
    """
    slot = _slot(viewer)
    old = slot.get(kind)
    if old is not None and old.overrides is not None and _same_inputs(old, session):
        session.overrides = old.overrides
    slot[kind] = session
    for listener in list(slot.get("listeners", [])):
        listener(kind, origin)
    return session


def listen(viewer: Any, listener: Any) -> None:
    """Call ``listener(kind, origin)`` whenever a session is registered for ``viewer``."""
    _slot(viewer).setdefault("listeners", []).append(listener)


def unlisten(viewer: Any, listener: Any) -> None:
    listeners = _slot(viewer).get("listeners", [])
    if listener in listeners:
        listeners.remove(listener)


def forget(viewer: Any) -> None:
    from acnn_fusion.napari._lifecycle import unwrap

    _SESSIONS.pop(id(unwrap(viewer)), None)


def _same_inputs(old: Any, new: Any) -> bool:
    if isinstance(old, PairSession) and isinstance(new, PairSession):
        return old.job.name == new.job.name and old.focus_map.shape == new.focus_map.shape
    if isinstance(old, StackSession) and isinstance(new, StackSession):
        return old.job.name == new.job.name and old.depth.shape == new.depth.shape
    return False
