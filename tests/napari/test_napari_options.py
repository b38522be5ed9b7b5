"""Every option the command line has reaches the core from the napari widget and the batch panel."""

from __future__ import annotations

import tifffile

from acnn_fusion.napari import _jobs  # noqa: F401  # imported before the core fakes are set
from acnn_fusion.napari._controls import DISPLAY_SCALE
from acnn_fusion.options import option_fields


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
