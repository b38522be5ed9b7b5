"""Reader for focal stacks: TIFF files with a Z axis, and folders of focal planes.

* ImageJ hyperstacks and OME-TIFF (axes among T, Z, C, Y, X, S): the layer's scale comes
  from the physical pixel size (ImageJ resolution and spacing, OME ``PhysicalSize*``),
  channels become separate layers (``channel_axis``), RGB samples stay RGB, and
  ``metadata["acnn_fusion_z_axis"]`` tells the widget which axis to fold.
* A folder of two or more JPEG/PNG/TIFF planes of one size, in natural order
  (``plane2`` before ``plane10``), becomes one (Z, Y, X[, C]) stack.

Other files (plain 2-D images, TIFFs without a Z axis) are declined so napari's own
reader takes them. A broken file gives a napari error notification, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from napari.utils.notifications import show_error

from acnn_fusion.napari._layers import Z_AXIS_KEY

TIFF_SUFFIXES = (".tif", ".tiff")
PLANE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
SOURCE_KEY = "acnn_fusion_source"

LayerData = tuple[Any, dict[str, Any], str]

#: length units ImageJ and OME write, normalised to names napari (pint) knows, in µm
_LENGTH_UNITS = {
    "angstrom": ("angstrom", 1e-4),
    "å": ("angstrom", 1e-4),
    "nm": ("nanometer", 1e-3),
    "nanometer": ("nanometer", 1e-3),
    "nanometre": ("nanometer", 1e-3),
    "um": ("micrometer", 1.0),
    "µm": ("micrometer", 1.0),
    "μm": ("micrometer", 1.0),
    "\\u00b5m": ("micrometer", 1.0),
    "micron": ("micrometer", 1.0),
    "microns": ("micrometer", 1.0),
    "micrometer": ("micrometer", 1.0),
    "micrometre": ("micrometer", 1.0),
    "mm": ("millimeter", 1e3),
    "millimeter": ("millimeter", 1e3),
    "millimetre": ("millimeter", 1e3),
    "cm": ("centimeter", 1e4),
    "centimeter": ("centimeter", 1e4),
    "m": ("meter", 1e6),
    "meter": ("meter", 1e6),
}


class NotOurs(Exception):
    """The file is readable but is not a focal stack; napari's own reader should take it."""


def _notify(path: str | Path, exc: BaseException) -> None:
    show_error(f"ACNN focus fusion cannot read {Path(path).name}: {exc}")


# -- entry point ------------------------------------------------------------------------
def napari_get_reader(path: str | Sequence[str]) -> Callable[[Any], list[LayerData] | None] | None:
    """Return a reader for a focal-stack TIFF or a folder of focal planes, else None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    try:
        if path.is_dir():
            _folder_planes(path)
            return read_focal_stack
        if path.suffix.lower() not in TIFF_SUFFIXES:
            return None
        _TiffStack.inspect(path)
        return read_focal_stack
    except NotOurs:
        return None
    except Exception as exc:  # a broken file must not take napari down
        _notify(path, exc)
        return None


def read_focal_stack(path: str | Sequence[str]) -> list[LayerData] | None:
    """Read a focal-stack TIFF or folder of planes into layer data (None after an error)."""
    if isinstance(path, (list, tuple)):
        path = path[0]
    path = Path(path)
    try:
        if path.is_dir():
            return [_read_folder(path)]
        return _TiffStack.inspect(path).layer_data()
    except NotOurs:
        return None
    except Exception as exc:  # a broken file must not take napari down
        _notify(path, exc)
        return None


# -- TIFF ---------------------------------------------------------------------------------
def _length_unit(name: Any) -> tuple[str | None, float]:
    """(napari unit name or None, size of one unit in µm) for a unit string."""
    if not isinstance(name, str):
        return None, 1.0
    return _LENGTH_UNITS.get(name.strip().lower(), (None, 1.0))


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _resolution(page: tifffile.TiffPage, tag: str) -> float | None:
    """Pixel size from an X/YResolution tag (pixels per unit), or None."""
    entry = page.tags.get(tag)
    if entry is None:
        return None
    value = entry.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    return float(den) / float(num) if num else None


@dataclass
class _TiffStack:
    path: Path
    axes: str
    shape: tuple[int, ...]
    sizes: dict[str, float] = field(default_factory=dict)  # axis → size in `unit`
    unit: str | None = None
    channel_names: list[str] = field(default_factory=list)

    @classmethod
    def inspect(cls, path: Path) -> _TiffStack:
        """Parse axes and physical sizes; raise NotOurs without a Z axis."""
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise ValueError("the TIFF holds no image series")
            series = tif.series[0]
            axes = series.axes.upper()
            if "Z" not in axes or "Y" not in axes or "X" not in axes:
                raise NotOurs
            if "S" in axes and "C" in axes and series.shape[axes.index("S")] not in (3, 4):
                raise NotOurs  # samples and channels at once: leave to napari
            stack = cls(path=path, axes=axes, shape=tuple(series.shape))
            if tif.is_ome and tif.ome_metadata:
                stack._ome(tif.ome_metadata)
            elif tif.is_imagej:
                stack._imagej(tif.pages.first, tif.imagej_metadata or {})
        return stack

    def _ome(self, xml: str) -> None:
        image = _first(tifffile.xml2dict(xml).get("OME", {}).get("Image", {}))
        pixels = image.get("Pixels", {}) if isinstance(image, dict) else {}
        x_unit, x_um = _length_unit(pixels.get("PhysicalSizeXUnit", "µm"))
        self.unit = x_unit
        for axis in "XYZ":
            size = pixels.get(f"PhysicalSize{axis}")
            if size is None:
                continue
            unit, um = _length_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
            # express every axis in the unit of X so that the layer has one length unit
            self.sizes[axis] = float(size) * (um / x_um if unit and x_unit else 1.0)
        channels = pixels.get("Channel", [])
        channels = channels if isinstance(channels, list) else [channels]
        self.channel_names = [str(c.get("Name", "")) for c in channels if isinstance(c, dict)]

    def _imagej(self, page: tifffile.TiffPage, meta: dict[str, Any]) -> None:
        self.unit = _length_unit(meta.get("unit"))[0]
        for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
            size = _resolution(page, tag)
            if size is not None and np.isfinite(size) and size > 0:
                self.sizes[axis] = size
        spacing = meta.get("spacing")
        if isinstance(spacing, (int, float)) and spacing > 0:
            self.sizes["Z"] = float(spacing)

    def layer_data(self) -> list[LayerData]:
        data = tifffile.imread(self.path, series=0)
        if data.shape != self.shape:
            raise ValueError(f"expected shape {self.shape}, read {data.shape}")
        axes = self.axes
        rgb = axes.endswith("S") and self.shape[-1] in (3, 4)
        if "S" in axes and not rgb:  # separate samples behave like channels
            axes = axes.replace("S", "C")
        channel_axis = axes.index("C") if "C" in axes else None
        layer_axes = axes.replace("C", "")
        if rgb:
            layer_axes = layer_axes[:-1]
        unit = self.unit or "pixel"
        kwargs: dict[str, Any] = {
            "name": self._names(channel_axis, data),
            "scale": tuple(self.sizes.get(axis, 1.0) for axis in layer_axes),
            "units": tuple(unit if axis in "ZYX" else "pixel" for axis in layer_axes),
            "axis_labels": tuple(axis.lower() for axis in layer_axes),
            "metadata": {Z_AXIS_KEY: layer_axes.index("Z"), SOURCE_KEY: str(self.path), "axes": layer_axes},
        }
        if channel_axis is not None:
            kwargs["channel_axis"] = channel_axis
        else:
            kwargs["rgb"] = rgb
        return [(data, kwargs, "image")]

    def _names(self, channel_axis: int | None, data: np.ndarray) -> str | list[str]:
        base = self.path.name
        for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
                break
        if channel_axis is None:
            return base
        n = data.shape[channel_axis]
        names = self.channel_names if len(self.channel_names) == n and all(self.channel_names) else []
        return [f"{base} {names[c]}" if names else f"{base} ch{c}" for c in range(n)]


# -- folders of planes ------------------------------------------------------------------
def natural_key(name: str) -> list[Any]:
    """Sort key that orders embedded numbers by value: plane2 < plane10."""
    return [
        (0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name)
    ]


def _plane_shape(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    if path.suffix.lower() in TIFF_SUFFIXES:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), series.dtype
    import imageio.v3 as iio

    props = iio.improps(path)
    return tuple(props.shape), props.dtype


def _folder_planes(folder: Path) -> list[Path]:
    """The plane files of a folder in natural order; NotOurs unless ≥ 2 planes of one shape."""
    files = sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PLANE_SUFFIXES
        ),
        key=lambda p: natural_key(p.name),
    )
    if len(files) < 2:
        raise NotOurs
    first_shape, first_dtype = _plane_shape(files[0])
    if not (len(first_shape) == 2 or (len(first_shape) == 3 and first_shape[-1] in (3, 4))):
        raise NotOurs
    for path in files[1:]:
        if _plane_shape(path) != (first_shape, first_dtype):
            raise NotOurs
    return files


def _read_plane(path: Path) -> np.ndarray:
    if path.suffix.lower() in TIFF_SUFFIXES:
        return tifffile.imread(path, series=0)
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def _read_folder(folder: Path) -> LayerData:
    files = _folder_planes(folder)
    planes = [_read_plane(path) for path in files]
    shapes = {plane.shape for plane in planes}
    if len(shapes) != 1:
        raise ValueError(f"the planes differ in shape: {sorted(shapes)}")
    stack = np.stack(planes)
    rgb = stack.ndim == 4
    kwargs = {
        "name": folder.name,
        "rgb": rgb,
        "axis_labels": ("z", "y", "x"),
        "metadata": {Z_AXIS_KEY: 0, SOURCE_KEY: str(folder), "planes": [p.name for p in files]},
    }
    return stack, kwargs, "image"
