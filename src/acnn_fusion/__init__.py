"""napari-acnn-fusion: multi-focus image fusion with an all convolutional neural network.

Python API: :func:`fuse_pair` (two images) returning a :class:`FusionResult`.
"""

from acnn_fusion.core.pipeline import FusionResult, FusionSettings, fuse_pair

__version__ = "0.1.0"
__all__ = ["FusionResult", "FusionSettings", "__version__", "fuse_pair"]
