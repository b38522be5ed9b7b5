"""Dock widget for File › IO utilities › Batch fuse TIFF folder…: drives :func:`run_batch`.

The batch runs in a background thread through the plugin's :class:`FusionRunner` (progress
bar counting inputs, Cancel); ``runner.synchronous = True`` or ``ACNN_FUSION_SYNC=1`` runs
it inline, as tests do. Every option of the command line is offered (one control per
:class:`~acnn_fusion.options.FusionOptions` field, tooltips from the fields' help).

The File menu entry and the Plugins menu entry open one and the same panel:
:func:`open_batch_widget` docks the plugin's widget contribution through napari, which
shows the existing dock if there is one. napari injects the viewer through the ``Viewer``
annotation (no postponed annotations in this module).
"""

import threading
from pathlib import Path

from magicgui.types import FileDialogMode
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, PushButton
from napari.plugins import menu_item_template
from napari.utils.notifications import show_error, show_info, show_warning
from napari.viewer import Viewer

from acnn_fusion.batch import MODES, BatchReport, run_batch
from acnn_fusion.napari._controls import apply_preset, option_controls, options_from_controls
from acnn_fusion.napari._lifecycle import on_close
from acnn_fusion.napari._runner import Cancelled, FusionRunner
from acnn_fusion.napari._status import (
    make_progress_bar,
    make_status_label,
    set_status,
    show_progress,
    show_running,
)

PLUGIN = "napari-acnn-fusion"
WIDGET_NAME = "Batch fuse TIFF folder"
#: the name napari docks the panel under (from either menu)
DOCK_NAME = menu_item_template.format(PLUGIN, WIDGET_NAME)


def _devices() -> list[str]:
    from acnn_fusion.core.inference import available_devices

    return available_devices()


class BatchFusionWidget(Container):
    """Fuse every focal stack or A/B pair of a folder into an output folder.

    Attributes a script or test may use: :attr:`runner`, :meth:`run`, :meth:`cancel` and
    :attr:`last_report` (the :class:`~acnn_fusion.batch.BatchReport` of the last run).
    """

    def __init__(self, napari_viewer: Viewer | None = None) -> None:
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._stop = threading.Event()
        self._alive = True
        self.last_report: BatchReport | None = None
        self.runner = FusionRunner(on_state=self._set_running, on_progress=self._on_progress)
        self.runner.label = "Batch fusion"
        self.extend(
            [
                FileEdit(
                    name="input_dir",
                    label="input folder",
                    mode=FileDialogMode.EXISTING_DIRECTORY,
                    tooltip="folder of stacks or pairs",
                ),
                FileEdit(
                    name="output_dir",
                    label="output folder",
                    mode=FileDialogMode.EXISTING_DIRECTORY,
                    tooltip="where results, sidecars and batch_report.csv go (not the input folder)",
                ),
                ComboBox(
                    name="mode",
                    label="inputs",
                    choices=list(MODES),
                    value="auto",
                    tooltip="stack: every TIFF is a focal stack; pair: <stem>_A/<stem>_B files; "
                    "auto: pairs if any are found, else stacks",
                ),
                *option_controls(_devices()),
                CheckBox(
                    name="save_maps",
                    label="save maps",
                    value=False,
                    tooltip="also write the focus and decision maps (pairs) or depth maps (stacks)",
                ),
                PushButton(name="run_button", text="Run", tooltip="fuse every input of the folder"),
                PushButton(
                    name="cancel_button",
                    text="Cancel",
                    enabled=False,
                    tooltip="stop after the current tile; finished inputs keep their outputs",
                ),
                PushButton(
                    name="open_button",
                    text="Open results",
                    enabled=False,
                    tooltip="open the fused images of the last batch in the viewer",
                ),
                make_progress_bar(),
                make_status_label("summary"),
            ]
        )
        self.progress.tooltip = "inputs done so far"
        self.run_button.changed.connect(self._on_run_clicked)
        self.cancel_button.changed.connect(self._on_cancel_clicked)
        self.open_button.changed.connect(self._on_open_clicked)
        self.preset.changed.connect(self._on_preset_changed)
        if napari_viewer is not None:
            on_close(napari_viewer, self._close_down)

    def _on_run_clicked(self, *_args) -> None:
        self.run()

    def _on_cancel_clicked(self, *_args) -> None:
        self.cancel()

    def _on_open_clicked(self, *_args) -> None:
        self.open_results()

    def _on_preset_changed(self, *_args) -> None:
        """A preset sets β and the minimum region to its values (they stay editable)."""
        apply_preset(self, self.preset.value)

    def _close_down(self) -> None:
        self._alive = False
        self._stop.set()
        self.runner.shutdown()

    def _set_running(self, running: bool) -> None:
        if self._alive:
            show_running(self, running)

    def _on_progress(self, done: int, total: int) -> None:
        if self._alive:
            show_progress(self.progress, done, total)

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
        try:
            options = options_from_controls(self)
        except (ValueError, TypeError) as exc:
            set_status(self.summary, f"not run: {exc}")
            return False
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

        set_status(self.summary, "running…", notify_details=False)
        return self.runner.start(
            compute,
            description="batch fusion",
            on_result=self._show_report,
            on_error=self._show_error,
        )

    def _show_report(self, report: BatchReport, seconds: float) -> None:
        self.last_report = report
        failed = [e for e in report.entries if e.status == "failed"]
        text = f"{report.summary()} in {seconds:.1f} s"
        if failed:
            text += "; failed: " + ", ".join(e.file for e in failed)
        not_stacks = [e for e in report.entries if e.status == "skipped" and e.error]
        if not_stacks:
            text += "; skipped as not stacks: " + ", ".join(e.file for e in not_stacks)
        text += f"; report: {report.output_dir / 'batch_report.csv'}"
        set_status(self.summary, text, notify_details=False)
        self.open_button.enabled = any(e.status == "ok" for e in report.entries)
        if failed:
            details = "; ".join(f"{e.file}: {e.error}" for e in failed[:20])
            show_warning(f"Batch fusion: {report.summary()}. {details}")
        else:
            show_info(f"Batch fusion: {report.summary()}")

    def _show_error(self, exc: BaseException) -> None:
        set_status(self.summary, f"not run: {exc}", notify_details=False)

    def open_results(self) -> list:
        """Open the fused outputs of the last batch as layers; returns the layers."""
        if self._viewer is None or self.last_report is None:
            return []
        layers = []
        for entry in self.last_report.entries:
            fused = [p for p in entry.outputs if "_fused" in Path(p).name]
            for path in fused[:1]:
                full = Path(path) if Path(path).is_absolute() else self.last_report.output_dir / path
                layers.extend(self._viewer.open(full, plugin="napari"))
        return layers


def open_batch_widget(viewer: Viewer) -> BatchFusionWidget:
    """File › IO utilities › Batch fuse TIFF folder…: the Plugins menu's panel, docked once."""
    _dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET_NAME)
    return widget
