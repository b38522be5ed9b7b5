"""Live tuning on a real viewer: re-decisions off the GUI thread, latest wins, A/B swaps,
and closing the viewer while a run is in flight."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import acnn_fusion.core.pipeline as pipeline
from acnn_fusion.core.pipeline import FusionSettings, fuse_from_focus_map
from acnn_fusion.napari._widget import FocusFusionWidget

REPO = Path(__file__).resolve().parents[2]


def _pair_viewer(make_napari_viewer, pair):
    viewer = make_napari_viewer()
    viewer.add_image(pair.image_a, name="sample A")
    viewer.add_image(pair.image_b, name="sample B")
    return viewer


def _shown_threshold(viewer) -> float:
    return viewer.layers["sample decision map"].metadata["threshold"]


def test_slider_recompute_runs_off_the_gui_thread(make_napari_viewer, grey_pair, qtbot, monkeypatch):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    assert widget.run()
    on_main = []
    original = pipeline.decide

    def recording(*args, **kwargs):
        on_main.append(threading.current_thread() is threading.main_thread())
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline, "decide", recording)
    widget.threshold.value = 0.3
    qtbot.waitUntil(lambda: _shown_threshold(viewer) == pytest.approx(0.3), timeout=5000)
    widget.live.wait()  # the fused image follows the decision map one event-loop turn later
    assert on_main and not any(on_main)  # decided, and never on the GUI thread
    focus_map = viewer.layers["sample focus map"].data
    expected = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, FusionSettings(0.3))
    assert np.array_equal(viewer.layers["sample fused"].data, expected.fused)


def test_latest_request_wins(make_napari_viewer, grey_pair, qtbot):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    widget.run()
    session = widget._pair_session()
    for beta in (0.2, 0.3, 0.4, 0.5, 0.6, 0.65):
        widget.live.request(session, FusionSettings(threshold=beta))
    widget.live.wait()
    assert widget.live.computed <= 2  # the first, and the newest; the ones between never ran
    assert _shown_threshold(viewer) == pytest.approx(0.65)


def test_swapping_a_and_b_then_moving_beta_decides_the_new_pair(make_napari_viewer, grey_pair, qtbot):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    widget.run()
    focus_map = viewer.layers["sample focus map"].data.copy()
    widget.swap_button.clicked.emit()
    assert widget.layer_a.value is viewer.layers["sample B"]
    assert widget.layer_b.value is viewer.layers["sample A"]
    widget.threshold.value = 0.3
    swapped = fuse_from_focus_map(grey_pair.image_b, grey_pair.image_a, 1.0 - focus_map, FusionSettings(0.3))
    qtbot.waitUntil(lambda: np.array_equal(viewer.layers["sample fused"].data, swapped.fused), timeout=5000)
    old_pair = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, FusionSettings(0.3))
    assert not np.array_equal(old_pair.fused, swapped.fused)  # the test can tell the two apart


def _slow_focus_map(monkeypatch, calls: list):
    original = pipeline.focus_map_in_tiles

    def slow(*args, progress=None, **kwargs):
        for step in range(400):  # a long run: 400 "tiles" of 20 ms
            calls.append(step)
            if progress is not None:
                progress(step, 400)
            time.sleep(0.02)
        return original(*args, progress=progress, **kwargs)

    monkeypatch.setattr(pipeline, "focus_map_in_tiles", slow)


def test_closing_the_viewer_mid_run_cancels_the_worker(make_napari_viewer, grey_pair, qtbot, monkeypatch):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.runner.synchronous = False
    calls: list[int] = []
    _slow_focus_map(monkeypatch, calls)
    assert widget.run()
    qtbot.waitUntil(lambda: len(calls) >= 3, timeout=10_000)
    viewer.close()
    stopped_at = len(calls)
    time.sleep(0.3)
    assert len(calls) <= stopped_at + 1  # the worker stopped at the next tile
    assert stopped_at < 400 and not widget.runner.running
    assert not widget._alive  # disconnected from the viewer


SCRIPT = """
import time
import acnn_fusion.core.pipeline as pipeline
import napari
import numpy as np
from acnn_fusion.napari._widget import FocusFusionWidget

original = pipeline.focus_map_in_tiles

def slow(*args, progress=None, **kwargs):
    for step in range(500):
        progress(step, 500)
        time.sleep(0.02)
    return original(*args, progress=progress, **kwargs)

pipeline.focus_map_in_tiles = slow
viewer = napari.Viewer(show=False)
rng = np.random.default_rng(0)
viewer.add_image(rng.integers(0, 255, (64, 64), dtype=np.uint8), name="x_A")
viewer.add_image(rng.integers(0, 255, (64, 64), dtype=np.uint8), name="x_B")
widget = FocusFusionWidget(viewer)
viewer.window.add_dock_widget(widget)
widget.runner.synchronous = False
widget.run()
from qtpy.QtWidgets import QApplication
end = time.time() + 1.0
while time.time() < end:
    QApplication.processEvents()
viewer.close()
print("closed", widget.runner.running)
"""


def test_script_closing_a_viewer_mid_run_exits_cleanly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "ACNN_FUSION_SYNC": "0"}
    script = tmp_path / "close_mid_run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output  # no SIGABRT at exit
    assert "closed False" in done.stdout
    assert "has been deleted" not in output


def test_large_pairs_are_decided_in_a_helper_process(make_napari_viewer, grey_pair, qtbot, monkeypatch):
    from acnn_fusion.napari import _decider

    monkeypatch.setattr(_decider, "PROCESS_MIN_PIXELS", 0)  # this small pair counts as large
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    assert widget.run()
    shown = []
    apply = widget.live._apply
    widget.live._apply = lambda decision: (shown.append(decision), apply(decision))
    for beta in (0.3, 0.7):
        widget.threshold.value = beta
        qtbot.waitUntil(lambda beta=beta: _shown_threshold(viewer) == pytest.approx(beta), timeout=60_000)
        widget.live.wait()
        focus_map = viewer.layers["sample focus map"].data
        expected = fuse_from_focus_map(grey_pair.image_a, grey_pair.image_b, focus_map, FusionSettings(beta))
        assert np.array_equal(viewer.layers["sample fused"].data, expected.fused)
        assert np.array_equal(viewer.layers["sample decision map"].data == 1, expected.decision_map)
    helper = _decider.helper().pid
    assert helper is not None and helper != os.getpid()
    assert {decision.pid for decision in shown} == {helper}  # one helper, kept between requests


def test_the_fused_image_follows_the_decision_map_a_turn_later(make_napari_viewer, grey_pair, qtbot):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    widget = FocusFusionWidget(viewer)
    assert widget.run()
    decision, fused = viewer.layers["sample decision map"], viewer.layers["sample fused"]
    old_fused = fused.data.copy()
    seen = []
    decision.events.set_data.connect(lambda _e: seen.append(("decision", fused.data.copy())))
    fused.events.set_data.connect(lambda _e: seen.append(("fused", decision.data.copy())))
    widget.threshold.value = 0.2
    qtbot.waitUntil(lambda: _shown_threshold(viewer) == pytest.approx(0.2), timeout=5000)
    widget.live.wait()
    assert [kind for kind, _ in seen] == ["decision", "fused"]
    assert np.array_equal(seen[0][1], old_fused)  # when the map changed, the image had not yet
    expected = fuse_from_focus_map(
        grey_pair.image_a, grey_pair.image_b, viewer.layers["sample focus map"].data, FusionSettings(0.2)
    )
    assert not np.array_equal(expected.fused, old_fused)
    assert np.array_equal(fused.data, expected.fused)
    assert fused.metadata["threshold"] == pytest.approx(0.2)


def test_a_new_fused_image_hides_the_layers_it_covers(make_napari_viewer, grey_pair):
    viewer = _pair_viewer(make_napari_viewer, grey_pair)
    small = viewer.add_image(grey_pair.image_a[:40, :50], name="crop", translate=(200, 300))
    viewer.layers.move(viewer.layers.index(small), 0)
    widget = FocusFusionWidget(viewer)
    widget.layer_a.value, widget.layer_b.value = viewer.layers["sample A"], viewer.layers["sample B"]
    assert widget.run()
    hidden = {layer.name for layer in viewer.layers if not layer.visible}
    assert hidden == {"sample A", "sample B", "sample focus map"}  # all under the opaque fused image
    assert viewer.layers["crop"].visible  # lies outside it
    assert viewer.layers["sample decision map"].visible and viewer.layers["sample fused"].visible
    viewer.layers["sample A"].visible = True  # the user's choice stands on a re-run
    assert widget.run()
    assert viewer.layers["sample A"].visible
