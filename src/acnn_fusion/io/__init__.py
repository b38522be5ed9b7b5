"""Files in and out: one image reader and atomic writer, one stack reader, one pair naming rule.

Nothing here imports torch or napari.
"""

from acnn_fusion.io.images import (
    IMAGE_SUFFIXES,
    LOSSY_SUFFIXES,
    TEMP_PREFIX,
    TIFF_SUFFIXES,
    check_declared_size,
    check_regular_file,
    read_image,
    temporaries_of,
    temporaries_tagged,
    temporary_path,
    write_image,
)
from acnn_fusion.io.metadata import PhysicalSizes, length_unit
from acnn_fusion.io.pairs import DEFAULT_SUFFIXES, Pair, find_fused, find_pairs
from acnn_fusion.io.stacks import (
    StackData,
    StackLayout,
    folder_planes,
    is_stack_file,
    layout,
    natural_key,
    read_stack,
    stack_axes,
)

__all__ = [
    "DEFAULT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "LOSSY_SUFFIXES",
    "TEMP_PREFIX",
    "TIFF_SUFFIXES",
    "Pair",
    "PhysicalSizes",
    "StackData",
    "StackLayout",
    "check_declared_size",
    "check_regular_file",
    "find_fused",
    "find_pairs",
    "folder_planes",
    "is_stack_file",
    "layout",
    "length_unit",
    "natural_key",
    "read_image",
    "read_stack",
    "stack_axes",
    "temporaries_of",
    "temporaries_tagged",
    "temporary_path",
    "write_image",
]
