"""napari face of acnn_fusion: widget, menu commands, reader and sample data.

Everything here only translates between napari layers and the numpy arrays of
:mod:`acnn_fusion.core`; the fusion itself lives in the core, which never imports Qt or
napari. Modules are imported lazily by napari through ``napari.yaml``.
"""
