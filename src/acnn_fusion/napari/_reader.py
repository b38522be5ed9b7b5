"""Reader for focal stacks: napari's face of :func:`acnn_fusion.io.read_stack`.

It takes what the command line takes (ImageJ hyperstacks, OME-TIFF, plain multi-page TIFFs,
folders of planes) and declines, by returning None, whatever is not a focal stack, so that
napari's own reader opens it. The stack is read once (memory-mapped where the file allows):
layer scale and units come from the file's physical sizes, channels become separate
layers, RGB stays RGB, and ``metadata["acnn_fusion_z_axis"]`` tells the widget which axis
to fold. A broken file gives a napari error notification, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error

from acnn_fusion.io import (
    TIFF_SUFFIXES,
    StackData,
    folder_planes,
    is_stack_file,
    layout,
    natural_key,
    read_stack,
)
from acnn_fusion.io.stacks import inspect_plane, squeezed
from acnn_fusion.napari._layers import Z_AXIS_KEY

SOURCE_KEY = "acnn_fusion_source"
LayerData = tuple[Any, dict[str, Any], str]

__all__ = ["napari_get_reader", "natural_key", "read_focal_stack"]


def _notify(path: str | Path, exc: BaseException) -> None:
    show_error(f"ACNN focus fusion cannot read {Path(path).name}: {exc}")


def _single(path: str | Sequence[str]) -> Path | None:
    if isinstance(path, (list, tuple)):
        return Path(path[0]) if len(path) == 1 else None
    return Path(str(path))


def _is_ours(path: Path) -> bool:
    """Whether ``path`` is a focal stack; raises for files that claim to be TIFF but are broken."""
    if path.is_dir():
        planes, _ = folder_planes(path)
        if len(planes) < 2:
            return False
        shapes = {inspect_plane(p) for p in planes}
        shape, _dtype = next(iter(shapes))
        return len(shapes) == 1 and (len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4)))
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    return is_stack_file(path)


def napari_get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData] | None] | None:
    """Return a reader for a focal-stack TIFF or a folder of focal planes, else None."""
    single = _single(path)
    if single is None:
        return None
    try:
        return read_focal_stack if _is_ours(single) else None
    except Exception as exc:  # a broken file must not take napari down
        _notify(single, exc)
        return None


def read_focal_stack(path: str | Sequence[str]) -> list[LayerData] | None:
    """Read a focal-stack TIFF or folder of planes into layer data (None after an error)."""
    single = _single(path)
    if single is None:
        return None
    try:
        return layer_data(read_stack(single), single)
    except Exception as exc:  # a broken file must not take napari down
        _notify(single, exc)
        return None


def _base_name(path: Path) -> str:
    base = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)]
    return base


def layer_data(stack: StackData, path: Path) -> list[LayerData]:
    """One image layer (or one per channel) for a read stack, placed by its physical sizes."""
    found = layout(stack.axes, stack.data.shape)
    data = squeezed(stack)
    axes = found.axes
    rgb = axes.endswith("S") and found.channel_axis is None
    channel_axis = found.channel_axis
    layer_axes = "".join(a for i, a in enumerate(axes) if i != channel_axis and not (rgb and a == "S"))
    sizes = stack.sizes
    unit = sizes.unit or "pixel"
    metadata: dict[str, Any] = {Z_AXIS_KEY: layer_axes.index(axes[found.z_axis]), SOURCE_KEY: str(path)}
    metadata["axes"] = layer_axes
    metadata["z_spacing"] = stack.z_spacing  # None: the file gives none (depth then in slices)
    if stack.planes:
        metadata["planes"] = stack.planes
    if stack.skipped:
        metadata["skipped"] = stack.skipped
    z_letter = axes[found.z_axis]

    def size_key(axis: str) -> str:  # the folded axis takes the z spacing, whatever its letter
        return "Z" if axis == z_letter else axis

    # an axis is in the file's unit only where the file gives its step (no "1 µm" z guessed)
    kwargs: dict[str, Any] = {
        "scale": tuple(sizes.sizes.get(size_key(axis), 1.0) for axis in layer_axes),
        "units": tuple(unit if size_key(axis) in sizes.sizes else "pixel" for axis in layer_axes),
        "axis_labels": tuple(axis.lower() for axis in layer_axes),
        "metadata": metadata,
    }
    name = path.name if path.is_dir() else _base_name(path)
    if channel_axis is not None:
        n = data.shape[channel_axis]
        names = stack.channel_names if len(stack.channel_names) == n and all(stack.channel_names) else []
        kwargs["name"] = [f"{name} {names[c]}" if names else f"{name} ch{c}" for c in range(n)]
        kwargs["channel_axis"] = channel_axis
    else:
        kwargs["name"] = name
        kwargs["rgb"] = rgb
    return [(data, kwargs, "image")]
