"""napari-acnn-fusion: multi-focus image fusion with an all convolutional neural network.

Python API: :func:`fuse_pair` (two images) → :class:`FusionResult`;
:func:`fuse_stack` (a focal stack) → :class:`StackResult`.
"""

from acnn_fusion.core.pipeline import FusionResult, FusionSettings, fuse_pair
from acnn_fusion.core.stack import StackResult, fuse_stack

__version__ = "0.1.0"
__all__ = ["FusionResult", "FusionSettings", "StackResult", "__version__", "fuse_pair", "fuse_stack"]
