"""napari-acnn-fusion: multi-focus image fusion with an all convolutional neural network.

Python API: :func:`fuse_pair` (two images) → :class:`FusionResult`;
:func:`fuse_stack` (a focal stack) → :class:`StackResult`; :class:`FusionOptions` holds
every run setting. Names are imported on first use (PEP 562), so ``import acnn_fusion``,
the napari reader and ``acnn-fusion --version`` do not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from acnn_fusion import core as _core  # noqa: F401  # sets OpenMP defaults before torch can load
from acnn_fusion._version import __version__

if TYPE_CHECKING:
    from acnn_fusion.core.pipeline import FusionResult as FusionResult
    from acnn_fusion.core.pipeline import FusionSettings as FusionSettings
    from acnn_fusion.core.pipeline import fuse_pair as fuse_pair
    from acnn_fusion.core.stack import StackResult as StackResult
    from acnn_fusion.core.stack import fuse_stack as fuse_stack
    from acnn_fusion.options import FusionOptions as FusionOptions

#: public name → module that defines it
_LAZY = {
    "FusionResult": "acnn_fusion.core.pipeline",
    "FusionSettings": "acnn_fusion.core.pipeline",
    "fuse_pair": "acnn_fusion.core.pipeline",
    "StackResult": "acnn_fusion.core.stack",
    "fuse_stack": "acnn_fusion.core.stack",
    "FusionOptions": "acnn_fusion.options",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'acnn_fusion' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
