"""The network's patch geometry, importable without torch (the ONNX runtime path needs it).

:mod:`acnn_fusion.core.model` re-exports these names; see its docstring for the layer shapes.
"""

from __future__ import annotations

#: edge of the patches the network classifies (pixels)
PATCH_SIZE = 16
#: the dense score map's stride (pixels): one score per 2×2 block of patch positions
SCORE_STRIDE = 2
#: the network's receptive field (pixels), inside the patch
RECEPTIVE_FIELD = 15


def score_map_shape(height: int, width: int) -> tuple[int, int]:
    """Shape of the dense score map for an image of the given size."""
    if height < PATCH_SIZE or width < PATCH_SIZE:
        raise ValueError(f"image {height}×{width} is smaller than a {PATCH_SIZE}×{PATCH_SIZE} patch")
    return (height - PATCH_SIZE) // SCORE_STRIDE + 1, (width - PATCH_SIZE) // SCORE_STRIDE + 1
