"""Re-decisions of large pairs in a helper process, so they never hold napari's GIL.

The decision steps after the network (threshold, small-region removal, boundary refinement,
the fine-measure override, composition) spend most of their time in ``scipy.ndimage``
calls that keep Python's global interpreter lock: on a 1536×2048 pair single calls hold it
for 50–180 ms, and a worker *thread* running them stalls napari's event loop just as long
(``benchmarks/event_loop.py``). A worker *process* has its own interpreter lock. One helper
process is shared by all viewers. It is a fresh interpreter (``python -c``) fed pickled
requests through its stdin and answering through its stdout, not a ``multiprocessing`` child:
those re-import the ``__main__`` module, and a napari script without an
``if __name__ == "__main__"`` guard would open a second viewer in it. The helper keeps the
inputs of the last pair it was sent (a copy: about 15 bytes per pixel for an RGB uint8 pair,
with its grey images and focus map), so moving β only sends the new settings and receives
the decision map and the fused image. It runs at a lower priority than napari.

Pairs smaller than :data:`PROCESS_MIN_PIXELS` are decided in the calling thread: their
steps are short, and starting a process would cost more than it saves.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import subprocess
import sys
import threading
from typing import IO, Any

import numpy as np

#: pairs with at least this many pixels are decided in the helper process
PROCESS_MIN_PIXELS = 1_000_000
#: set to "0" to decide every pair in a thread of napari's process
ENV_SWITCH = "ACNN_FUSION_DECIDE_IN_PROCESS"
#: the helper runs this much nicer than napari (POSIX; below-normal priority on Windows), so
#: on a busy machine the interface, not the decision, gets the CPU first
HELPER_NICENESS = 10


class HelperFailed(RuntimeError):
    """The helper process died or answered with an error."""


# -- the helper process's side ------------------------------------------------------------
def _handle(state: dict[str, Any], request: tuple) -> Any:
    from acnn_fusion.core.pipeline import fuse_from_focus_map, grey_pair

    kind = request[0]
    if kind == "load":
        _, key, a, b, focus_map = request
        state.clear()
        state.update(key=key, a=a, b=b, focus_map=focus_map, grey=grey_pair(a, b))
        return os.getpid()
    if kind == "decide":
        _, key, settings = request
        if state.get("key") != key:
            raise LookupError("the helper process holds another pair")
        result = fuse_from_focus_map(state["a"], state["b"], state["focus_map"], settings, grey=state["grey"])
        return result.decision_map, result.fused, os.getpid()
    raise ValueError(f"unknown request {kind!r}")


def serve() -> None:
    """The helper's loop: one pickled request in (stdin), one pickled answer out, until EOF."""
    if hasattr(os, "nice"):
        try:
            os.nice(HELPER_NICENESS)  # napari's own threads win the CPU when it is short
        except OSError:
            pass
    channel_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the channel
    channel_in = sys.stdin.buffer
    import acnn_fusion.core.pipeline  # noqa: F401  (import once, before the first request)

    state: dict[str, Any] = {}
    while True:
        try:
            request = pickle.load(channel_in)
        except EOFError:
            return
        try:
            answer: tuple = ("ok", _handle(state, request))
        except Exception as exc:
            answer = ("error", f"{type(exc).__name__}: {exc}")
        pickle.dump(answer, channel_out, protocol=pickle.HIGHEST_PROTOCOL)
        channel_out.flush()


# -- napari's side --------------------------------------------------------------------------
class DecisionProcess:
    """The helper process: ``decide(key, a, b, focus_map, settings)`` from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._loaded: int | None = None  # key of the pair the helper holds

    def _start(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            self._loaded = None
            self._process = subprocess.Popen(
                [sys.executable, "-c", "from acnn_fusion.napari._decider import serve; serve()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                creationflags=getattr(subprocess, "BELOW_NORMAL_PRIORITY_CLASS", 0),
            )
        return self._process

    def _ask(self, request: tuple) -> Any:
        process = self._start()
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None
        try:
            pickle.dump(request, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
            status, value = pickle.load(stdout)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            self._stop()
            raise HelperFailed(f"the decision helper process stopped ({exc})") from exc
        if status != "ok":
            raise HelperFailed(value)
        return value

    def _load(self, key: int, a: Any, b: Any, focus_map: Any) -> None:
        if self._loaded != key:
            self._loaded = None
            self._ask(("load", key, np.asarray(a), np.asarray(b), np.asarray(focus_map)))
            self._loaded = key

    def preload(self, key: int, a: np.ndarray, b: np.ndarray, focus_map: np.ndarray) -> None:
        """Start the helper and send it a pair's inputs, in a background thread."""

        def load() -> None:
            with self._lock:
                try:
                    self._load(key, a, b, focus_map)
                except HelperFailed:  # the next decide() tries again and reports
                    pass

        threading.Thread(target=load, name="acnn-fusion-preload", daemon=True).start()

    def decide(
        self, key: int, a: np.ndarray, b: np.ndarray, focus_map: np.ndarray, settings: Any
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(decision map, fused, helper pid); the inputs are sent only when ``key`` is new."""
        with self._lock:
            self._load(key, a, b, focus_map)
            return self._ask(("decide", key, settings))

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def _stop(self) -> None:
        process, self._process, self._loaded = self._process, None, None
        if process is None:
            return
        streams: list[IO[bytes] | None] = [process.stdin, process.stdout]
        for stream in streams:
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def shutdown(self) -> None:
        """Stop the helper (it ends when its stdin closes); waits for a running request."""
        with self._lock:
            self._stop()


_PROCESS = DecisionProcess()
_KEYS = itertools.count(1)
atexit.register(_PROCESS.shutdown)


def new_key() -> int:
    """A fresh key for a pair's inputs (each session gets its own)."""
    return next(_KEYS)


def use_process(shape: tuple[int, ...]) -> bool:
    """Whether a pair of this shape is decided in the helper process."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    return int(shape[0]) * int(shape[1]) >= PROCESS_MIN_PIXELS


def helper() -> DecisionProcess:
    return _PROCESS
