"""Every option the command line has reaches the core from the napari widget and the batch panel."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from acnn_fusion.core.pipeline import FusionResult
from acnn_fusion.core.stack import StackResult
from acnn_fusion.napari import _jobs
from acnn_fusion.napari._controls import DISPLAY_SCALE
from acnn_fusion.options import FusionOptions, option_fields


@pytest.fixture
def seen(monkeypatch) -> list[FusionOptions]:
    received: list[FusionOptions] = []

    def fake_pair(a, b, options=None, *, progress=None, **changes):
        options = (options or FusionOptions()).replace(**changes)
        received.append(options)
        plane = np.ones(a.shape[:2])
        return FusionResult(a.copy(), plane.astype(np.float32), plane.astype(bool), options.settings())

    def fake_stack(data, options=None, *, axis=0, progress=None, **_layout):
        received.append(options or FusionOptions())
        fused = np.take(data, 0, axis=axis)
        plane = np.zeros(fused.shape[:2])
        return StackResult(fused, plane.astype(np.uint16), plane.astype(np.float32), "fake")

    monkeypatch.setattr(_jobs, "fuse_pair", fake_pair)
    monkeypatch.setattr("acnn_fusion.core.stack.fuse_stack", fake_stack)
    monkeypatch.setattr("acnn_fusion.core.pipeline.fuse_pair", fake_pair)
    return received


def _set(widget, name: str, value) -> None:
    control = widget.get_widget(name)
    assert control is not None, f"no control for option {name}"
    control.value = value * DISPLAY_SCALE[name] if name in DISPLAY_SCALE else value


def test_widget_sends_every_option_to_the_core(make_napari_viewer, grey_pair, small_stack, seen, tmp_path):
    from acnn_fusion.napari._panel import STACK
    from acnn_fusion.napari._widget import FocusFusionWidget

    weights = tmp_path / "custom.pt"
    weights.write_bytes(b"")
    viewer = make_napari_viewer()
    viewer.add_image(grey_pair.image_a, name="A")
    viewer.add_image(grey_pair.image_b, name="B")
    widget = FocusFusionWidget(viewer)
    for f in option_fields("pair"):
        example = str(weights) if f.name == "weights" else f.metadata["example"]
        seen.clear()
        _set(widget, f.name, example)
        assert widget.run()
        assert seen, f"the pair run did not reach the core with {f.name}"
        assert getattr(seen[-1], f.name) == example, f.name
    viewer.add_image(small_stack, name="stack")
    widget.mode.value = STACK
    widget.stack.value = viewer.layers["stack"]
    for f in option_fields("stack"):
        example = str(weights) if f.name == "weights" else f.metadata["example"]
        seen.clear()
        _set(widget, f.name, example)
        assert widget.run()
        assert seen and getattr(seen[-1], f.name) == example, f.name


def test_batch_panel_sends_every_option_to_the_core(make_napari_viewer, grey_pair, seen, tmp_path):
    from acnn_fusion.napari._batch_widget import BatchFusionWidget

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "p_A.tif", grey_pair.image_a)
    tifffile.imwrite(folder / "p_B.tif", grey_pair.image_b)
    panel = BatchFusionWidget(make_napari_viewer())
    panel.input_dir.value = folder
    for f in option_fields("pair"):
        example = f.metadata["example"]
        if f.name == "weights":
            continue  # a weights file must exist and verify before a batch starts
        seen.clear()
        panel.output_dir.value = tmp_path / "out" / f.name
        _set(panel, f.name, example)
        assert panel.run()
        assert seen and getattr(seen[-1], f.name) == example, f.name
