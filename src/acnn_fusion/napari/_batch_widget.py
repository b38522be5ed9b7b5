"""Dock widget for File › IO utilities › Batch fuse TIFF folder…: drives :func:`run_batch`.

The batch runs in a background thread through the plugin's :class:`FusionRunner` (napari
progress bar counting inputs, Cancel); ``runner.synchronous = True`` or
``ACNN_FUSION_SYNC=1`` runs it inline, as tests do.

napari lists widget contributions only under Plugins, so the File menu entry is a separate
command, :func:`open_batch_widget`, that docks the same widget. napari injects the viewer
through the ``Viewer`` annotation (no postponed annotations in this module).
"""

import threading
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSlider, Label, PushButton
from napari.utils.notifications import show_error, show_info
from napari.viewer import Viewer

from acnn_fusion.batch import MODES, BatchReport, run_batch
from acnn_fusion.core.pipeline import PRESETS
from acnn_fusion.napari._controls import options_from_controls
from acnn_fusion.napari._runner import Cancelled, FusionRunner

DOCK_NAME = "Batch fuse TIFF folder"


class BatchFusionWidget(Container):
    """Fuse every focal stack or A/B pair of a folder into an output folder.

    Attributes a script or test may use: :attr:`runner`, :meth:`run`, :meth:`cancel` and
    :attr:`last_report` (the :class:`~acnn_fusion.batch.BatchReport` of the last run).
    """

    def __init__(self, napari_viewer: Viewer | None = None) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._stop = threading.Event()
        self.last_report: BatchReport | None = None
        self.runner = FusionRunner(on_state=self._set_running)
        self.extend(
            [
                FileEdit(name="input_dir", label="input folder", mode="d"),
                FileEdit(name="output_dir", label="output folder", mode="d"),
                ComboBox(
                    name="mode",
                    label="inputs",
                    choices=list(MODES),
                    value="auto",
                    tooltip="stack: every TIFF is a focal stack; pair: <stem>_A/<stem>_B files; "
                    "auto: pairs if any are found, else stacks",
                ),
                FloatSlider(
                    name="threshold",
                    label="threshold β",
                    min=0.0,
                    max=1.0,
                    step=0.01,
                    value=PRESETS["default"].threshold,
                ),
                CheckBox(
                    name="save_maps", label="save maps", value=False, tooltip="pairs: focus and decision maps"
                ),
                PushButton(name="run_button", text="Run"),
                PushButton(name="cancel_button", text="Cancel", enabled=False),
                Label(name="summary", label="", value=""),
            ]
        )
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self._on_cancel_clicked)

    def _on_run_clicked(self, *_args) -> None:
        self.run()

    def _on_cancel_clicked(self, *_args) -> None:
        self.cancel()

    def _set_running(self, running: bool) -> None:
        self.run_button.enabled = not running
        self.cancel_button.enabled = running

    def cancel(self) -> None:
        """Stop after the current tile; finished inputs keep their outputs and sidecars."""
        self._stop.set()
        self.runner.cancel()

    def run(self) -> bool:
        """Start the batch; False if the folders are not set or a run is going on."""
        input_dir, output_dir = Path(self.input_dir.value), Path(self.output_dir.value)
        if not str(self.input_dir.value) or not input_dir.is_dir() or input_dir == Path("."):
            show_error("Batch fusion: choose an input folder.")
            return False
        if not str(self.output_dir.value) or output_dir == Path("."):
            show_error("Batch fusion: choose an output folder.")
            return False
        if self.runner.running:
            show_info("A batch is already running; cancel it or wait for it to finish.")
            return False
        self._stop.clear()
        options = options_from_controls(self)
        mode, save_maps = str(self.mode.value), bool(self.save_maps.value)
        stop = self._stop

        def compute(progress):
            def relay(done: int, total: int) -> None:
                try:
                    progress(done, total)
                except Cancelled:  # the napari progress bar's own cancel button
                    stop.set()

            return run_batch(
                input_dir,
                output_dir,
                options,
                mode=mode,
                save_maps=save_maps,
                progress=relay,
                should_stop=stop.is_set,
            )

        self.summary.value = "running…"
        return self.runner.start(
            compute,
            description="batch fusion",
            on_result=self._show_report,
            on_error=self._show_error,
        )

    def _show_report(self, report: BatchReport, seconds: float) -> None:
        self.last_report = report
        text = f"{report.summary()} in {seconds:.1f} s; report: {report.output_dir / 'batch_report.csv'}"
        failed = [e for e in report.entries if e.status == "failed"]
        if failed:
            text += "\nfailed: " + "; ".join(f"{e.file} ({e.error})" for e in failed[:5])
            if len(failed) > 5:
                text += f"; … {len(failed) - 5} more"
        self.summary.value = text
        show_info(f"Batch fusion: {report.summary()}")

    def _show_error(self, exc: BaseException) -> None:
        self.summary.value = f"not run: {exc}"


def open_batch_widget(viewer: Viewer) -> BatchFusionWidget:
    """File › IO utilities › Batch fuse TIFF folder…: dock the batch widget (once)."""
    existing = viewer.window.dock_widgets.get(DOCK_NAME)
    if isinstance(existing, BatchFusionWidget):
        existing.native.parentWidget().show()
        return existing
    batch = BatchFusionWidget(viewer)
    viewer.window.add_dock_widget(batch, name=DOCK_NAME, area="right")
    return batch
