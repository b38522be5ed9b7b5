"""Tiles side by side (``inference.run_tiles``): every tile once, each copy of the network used
by one call at a time, errors and a stop by the caller honoured, and onnxruntime's concurrent
single-threaded copies computing exactly what one multi-threaded session does."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from acnn_fusion import fuse_stack
from acnn_fusion.core.inference import run_tiles
from acnn_fusion.synthetic import sample_stack


class Copies:
    """A stand-in network whose ``concurrent()`` gives ``n`` copies that record their use."""

    def __init__(self, n: int) -> None:
        self.copies = [object() for _ in range(n)]
        self.in_use: set[int] = set()
        self.overlapped = False
        self.most_at_once = 0
        self.lock = threading.Lock()

    def concurrent(self) -> list[object]:
        return self.copies

    def work(self, done: list[int]):
        def run(copy: object, tile: int) -> None:
            with self.lock:
                self.overlapped |= id(copy) in self.in_use
                self.in_use.add(id(copy))
                self.most_at_once = max(self.most_at_once, len(self.in_use))
            time.sleep(0.01)
            with self.lock:
                self.in_use.discard(id(copy))
                done.append(tile)

        return run


def test_every_tile_runs_once_and_no_copy_serves_two_calls_at_once() -> None:
    network = Copies(2)
    done: list[int] = []
    reported = list(run_tiles(network, network.work(done), list(range(12))))
    assert sorted(done) == list(range(12))
    assert reported == list(range(1, 13))
    assert not network.overlapped
    assert network.most_at_once == 2  # both copies did work at the same time


def test_one_copy_runs_the_tiles_in_order_in_this_thread() -> None:
    network = Copies(1)
    threads: list[int] = []
    done: list[int] = []

    def work(copy: object, tile: int) -> None:
        threads.append(threading.get_ident())
        done.append(tile)

    assert list(run_tiles(network, work, [3, 1, 2])) == [1, 2, 3]
    assert done == [3, 1, 2] and set(threads) == {threading.get_ident()}


def test_an_error_in_a_tile_is_raised_to_the_caller() -> None:
    network = Copies(2)

    def work(copy: object, tile: int) -> None:
        if tile == 5:
            raise ValueError("tile 5 is broken")

    with pytest.raises(ValueError, match="tile 5"):
        list(run_tiles(network, work, list(range(8))))


def test_a_stop_by_the_caller_leaves_later_tiles_unstarted() -> None:
    """What the napari Cancel does: the progress callback raises between two tiles."""
    network = Copies(2)
    done: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        for finished in run_tiles(network, network.work(done), list(range(40))):
            if finished == 2:
                raise KeyboardInterrupt
    assert 2 <= len(done) <= 6  # those finished or running when the caller stopped, no more
    time.sleep(0.05)
    assert len(done) <= 6


def test_onnx_concurrent_copies_compute_what_one_session_does() -> None:
    pytest.importorskip("onnxruntime")
    from acnn_fusion.core.onnx_runtime import OnnxNetwork
    from acnn_fusion.core.stack import FocusImage, _score_volume
    from acnn_fusion.core.weights import read_onnx_export

    data = read_onnx_export()[1]
    two, one = OnnxNetwork(data, 2), OnnxNetwork(data, 1)
    copies = two.concurrent()
    assert len(copies) == 2 and all(c.threads == 1 for c in copies) and copies is two.concurrent()
    assert one.concurrent() == [one]
    synthetic = sample_stack()
    grey = FocusImage(synthetic.stack)
    side_by_side = np.array(_score_volume(two, grey, None, 80, "auto", None))  # many tiles
    one_at_a_time = np.array(_score_volume(one, grey, None, 80, "auto", None))
    assert np.array_equal(side_by_side, one_at_a_time)
    pair = [p.astype(np.float32) / 4200 for p in synthetic.stack[[1, 6]]]
    assert np.array_equal(two.score_map(*pair, tile=48), one.score_map(*pair, tile=48))
    result = fuse_stack(synthetic.stack, runtime="onnx", tile=80)
    assert np.mean(np.abs(result.depth_map.astype(int) - synthetic.depth_index) <= 1) > 0.99
