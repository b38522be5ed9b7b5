"""The one focal-stack reader: TIFF (ImageJ, OME, plain multi-page) or a folder of planes.

Every face reads stacks here: the CLI, the batch engine and the napari reader. Large data
is never held twice: an uncompressed TIFF is memory-mapped read-only, a folder's planes are
read one at a time into an array that is file-backed when large
(:func:`~acnn_fusion.core.imageops.scratch_array`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from acnn_fusion.core.imageops import scratch_array
from acnn_fusion.io.images import (
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    check_declared_size,
    check_regular_file,
    read_image,
)
from acnn_fusion.io.metadata import PhysicalSizes, channel_names, physical_sizes

#: tifffile's letters for an unnamed stack axis (plain multi-page files)
_GENERIC_AXES = "IQ"


@dataclass
class StackData:
    """A focal stack as read from disk: the array, its axes (tifffile letters) and pixel size."""

    data: np.ndarray
    axes: str
    pixel_size: tuple[float, float] | None = None  # (y, x) in ``unit`` per pixel
    unit: str | None = None  # a unit name napari knows ("micrometer"), None if unknown
    z_spacing: float | None = None  # distance between slices, in ``unit``
    channel_names: list[str] = field(default_factory=list)
    planes: list[str] = field(default_factory=list)  # a folder's plane files, in order
    skipped: list[str] = field(default_factory=list)  # a folder's files that are not planes

    @property
    def sizes(self) -> PhysicalSizes:
        found: dict[str, float] = {}
        if self.pixel_size is not None:
            found["Y"], found["X"] = self.pixel_size
        if self.z_spacing is not None:
            found["Z"] = self.z_spacing
        return PhysicalSizes(found, self.unit if found else None)


@dataclass(frozen=True)
class StackLayout:
    """Where the axes of a stack are, after singleton axes are dropped (see :func:`stack_axes`)."""

    axes: str
    z_axis: int
    channel_axis: int | None
    time_axis: int | None


def natural_key(name: str | Path) -> list[tuple[int, int, str]]:
    """Sort key that orders embedded numbers by value: plane2 before plane10."""
    text = name.name if isinstance(name, Path) else str(name)
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text)
    ]


def layout(axes: str, shape: tuple[int, ...], axis: int | None = None) -> StackLayout:
    """The focus, channel and time axes of data with ``axes`` and ``shape`` (singletons dropped).

    The focus axis is ``axis`` if given, else Z, else an unnamed axis of a plain multi-page
    file. Raises ValueError when the data is not a focal stack (no such axis; samples, channels
    or time as the only candidate).
    """
    kept = "".join(a for a, n in zip(axes, shape, strict=True) if n != 1 or a in "YX")
    if "Y" not in kept or "X" not in kept:
        raise ValueError(f"axes {axes}: a stack needs Y and X axes")
    if axis is not None:
        if not -len(kept) <= axis < len(kept):
            raise ValueError(f"axis {axis} is out of range for the axes {kept}")
        z_axis = axis % len(kept)
    elif "Z" in kept:
        z_axis = kept.index("Z")
    else:
        generic = [i for i, a in enumerate(kept) if a in _GENERIC_AXES]
        if not generic and set(kept) <= set("YXS"):
            single = "one colour image" if "S" in kept else "one grey image"
            raise ValueError(
                f"axes {axes} {shape}: this holds {single} (a single slice), not a focal stack; "
                "a stack needs at least 2 slices (fuse two images with 'fuse')"
            )
        if not generic:
            raise ValueError(
                f"axes {axes} {shape}: no focus (Z) axis; this is not a focal stack "
                "(choose the axis to fold explicitly if it is one)"
            )
        z_axis = generic[0]
    channel_axis = kept.index("C") if "C" in kept else None
    if channel_axis is None and kept.endswith("S") and shape[axes.index("S")] in (3, 4):
        channel_axis = None  # RGB(A) samples stay the last axis (the core reads them as colour)
    elif channel_axis is None and "S" in kept:
        channel_axis = kept.index("S")  # separate samples behave like channels
    time_axis = kept.index("T") if "T" in kept else None
    if kept[z_axis] in "YX":
        raise ValueError(f"axes {kept}: the focus axis cannot be {kept[z_axis]}")
    if time_axis is not None and time_axis == z_axis:
        raise ValueError(f"axes {kept}: the focus axis cannot be the time axis")
    if z_axis == channel_axis or kept[z_axis] == "S":
        raise ValueError(f"axes {kept}: the focus axis cannot be the colour/channel axis")
    return StackLayout(kept, z_axis, channel_axis, time_axis)


def stack_axes(
    stack: StackData, axis: int | None = None, *, name: str | Path = "stack"
) -> tuple[np.ndarray, int, int | None, int | None]:
    """A read stack with singleton axes dropped: (data, focus axis, channel axis, time axis).

    The focus axis is ``axis`` if given, else the Z axis, else an unnamed multi-page axis.
    """
    try:
        found = layout(stack.axes, stack.data.shape, axis)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    return squeezed(stack), found.z_axis, found.channel_axis, found.time_axis


def squeezed(stack: StackData) -> np.ndarray:
    """The stack's data without its singleton axes other than Y and X (the axes of :func:`layout`)."""
    data = stack.data
    for i in reversed(range(len(stack.axes))):  # indexing keeps a view (take would copy a memmap)
        if data.shape[i] == 1 and stack.axes[i] not in "YX":
            data = data[(slice(None),) * i + (0,)]
    return data


def inspect_tiff(path: str | Path) -> tuple[str, tuple[int, ...]]:
    """(axes, shape) of a TIFF's first series, from its header only (regular files only)."""
    check_regular_file(path)
    with tifffile.TiffFile(path) as tif:
        if not tif.series:
            raise ValueError(f"{Path(path).name}: the TIFF holds no image series")
        series = tif.series[0]
        return series.axes.upper(), tuple(series.shape)


def is_stack_file(path: str | Path) -> bool:
    """Whether ``read_stack`` + :func:`layout` would take this TIFF as a focal stack (header only).

    Raises ValueError for what is not a regular file (a FIFO is never opened).
    """
    axes, shape = inspect_tiff(path)
    try:
        layout(axes, shape)
    except ValueError:
        return False
    return True


# -- folders of planes --------------------------------------------------------------------
def inspect_plane(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one image file, from its header where the format allows."""
    check_regular_file(path)
    if path.suffix.lower() in TIFF_SUFFIXES:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype)
    import imageio.v3 as iio

    props = iio.improps(path)
    return tuple(props.shape), np.dtype(props.dtype)


def _pattern(name: str) -> str:
    """A file name with its numbers replaced: planes of one series share it."""
    return re.sub(r"\d+", "#", name.lower())


def folder_planes(folder: Path) -> tuple[list[Path], list[Path]]:
    """(planes in natural order, other image files) of a folder.

    Planes are the image files whose names follow the most common pattern (numbers replaced,
    e.g. ``plane#.tif``); a reference such as ``expected.jpg`` beside ``IMG_0001.jpg``… is
    skipped, not folded. Hidden files are ignored.
    """
    images = sorted(
        (
            p
            for p in folder.iterdir()
            if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        ),
        key=natural_key,
    )
    groups: dict[str, list[Path]] = {}
    for path in images:
        groups.setdefault(_pattern(path.name), []).append(path)
    numbered = {k: v for k, v in groups.items() if "#" in k}
    if not numbered:  # no numbers: every image is a plane
        return images, []
    best = max(numbered.values(), key=len)
    if len(best) < 2:
        return images, []
    return best, [p for p in images if p not in best]


def _read_folder(folder: Path) -> StackData:
    planes, skipped = folder_planes(folder)
    if len(planes) < 2:
        raise ValueError(f"{folder}: a folder stack needs at least two image files, found {len(planes)}")
    first = read_image(planes[0])
    data = scratch_array((len(planes), *first.shape), first.dtype)  # one plane in memory at a time
    data[0] = first
    for z, plane_path in enumerate(planes[1:], start=1):
        plane = read_image(plane_path)
        if plane.shape != first.shape or plane.dtype != first.dtype:
            raise ValueError(
                f"{folder}: focal planes differ in shape or dtype: {plane_path.name} is "
                f"{plane.shape} {plane.dtype}, {planes[0].name} is {first.shape} {first.dtype}"
            )
        data[z] = plane
    data.flags.writeable = False
    return StackData(
        data,
        "ZYX" if data.ndim == 3 else "ZYXS",
        planes=[p.name for p in planes],
        skipped=[p.name for p in skipped],
    )


class _ColourModelError(ValueError):
    pass


def _refuse_colour_model(page: Any) -> None:
    """Palette and CMYK stacks would be folded on indices or inks: refuse them clearly."""
    photometric = int(page.photometric)
    if photometric == 3:
        raise _ColourModelError("palette (indexed colour) stacks are not supported; convert the stack to RGB")
    if photometric == 5:
        raise _ColourModelError("CMYK (separated) stacks are not supported; convert the stack to RGB")


def read_stack(path: str | Path) -> StackData:
    """A multi-page/hyperstack/OME TIFF, or a folder of focal planes (natural sort order).

    An uncompressed TIFF whose pixels lie contiguously in the file comes back memory-mapped
    and read-only: :func:`~acnn_fusion.core.stack.fuse_stack` then reads it tile by tile
    instead of holding it in memory. Other TIFFs are decoded into memory; a folder's planes
    are read one at a time (:func:`folder_planes` says which files are planes).
    """
    path = Path(path)
    try:
        is_folder = path.is_dir()  # follows links; a loop or a FIFO is not a folder
    except OSError:
        is_folder = False
    if is_folder:
        return _read_folder(path)
    if not os.path.lexists(path):
        raise FileNotFoundError(f"no such file or folder: {path}")
    check_regular_file(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"{path}: a stack must be a TIFF file or a folder of images")
    check_declared_size(path)
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image series")
            series = tif.series[0]
            _refuse_colour_model(tif.pages.first)
            # uncompressed, one block in the file, in this machine's byte order
            mappable = series.dataoffset is not None and series.dtype.isnative
            data = series.asarray(out="memmap") if mappable else series.asarray()
            if data.dtype == bool:  # 1-bit: black and white, as read_image gives it
                data = data.astype(np.uint8) * np.uint8(255)
            axes = series.axes.upper()
            sizes = physical_sizes(tif)
            names = channel_names(tif)
    except MemoryError:
        raise ValueError(f"{path}: not enough memory to decode this stack") from None
    except _ColourModelError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: cannot read TIFF stack ({type(exc).__name__}: {text})") from None
    return StackData(data, axes, sizes.pixel_size, sizes.unit, sizes.z_spacing, names)


def describe(stack: StackData) -> dict[str, Any]:
    """What a stack's metadata says, JSON-ready (for reports and layer metadata)."""
    return {
        "axes": stack.axes,
        "shape": list(stack.data.shape),
        "pixel_size": list(stack.pixel_size) if stack.pixel_size else None,
        "z_spacing": stack.z_spacing,
        "unit": stack.unit,
    }
