"""Physical pixel sizes of TIFF files (OME and ImageJ), with units napari and ImageJ understand."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tifffile

#: unit spellings found in OME and ImageJ files → (name pint/napari knows, size in µm)
_LENGTH_UNITS: dict[str, tuple[str, float]] = {
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
#: how ImageJ spells each unit in its (ASCII) metadata
_IMAGEJ_SPELLING = {
    "angstrom": "A",
    "nanometer": "nm",
    "micrometer": "micron",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}


def length_unit(name: Any) -> tuple[str | None, float]:
    """(unit name napari knows, or None if unknown; size of one such unit in µm)."""
    if not isinstance(name, str):
        return None, 1.0
    return _LENGTH_UNITS.get(name.strip().lower(), (None, 1.0))


def imagej_unit(name: str | None) -> str:
    """The ASCII spelling ImageJ uses for a unit (``micron`` for µm); ``pixel`` if unknown."""
    known, _ = length_unit(name)
    return _IMAGEJ_SPELLING.get(known or "", "pixel")


@dataclass(frozen=True)
class PhysicalSizes:
    """Size of one step along each spatial axis (``{"X": 0.2, "Y": 0.2, "Z": 1.5}``), in ``unit``.

    Axes whose size the file does not state are absent; ``unit`` is None when no size is known.
    """

    sizes: dict[str, float] = field(default_factory=dict)
    unit: str | None = None

    @property
    def pixel_size(self) -> tuple[float, float] | None:
        """(y, x) size of a pixel, or None."""
        if "X" not in self.sizes:
            return None
        return self.sizes.get("Y", self.sizes["X"]), self.sizes["X"]

    @property
    def z_spacing(self) -> float | None:
        return self.sizes.get("Z")


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) and number > 0 else None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) else value


def _ome_sizes(xml: str) -> PhysicalSizes:
    image = _first(tifffile.xml2dict(xml).get("OME", {}).get("Image", {}))
    pixels = image.get("Pixels", {}) if isinstance(image, dict) else {}
    if _positive(pixels.get("PhysicalSizeX")) is None:
        return PhysicalSizes()
    x_unit, x_um = length_unit(pixels.get("PhysicalSizeXUnit", "µm"))  # OME's default unit is µm
    sizes: dict[str, float] = {}
    for axis in "XYZ":
        size = _positive(pixels.get(f"PhysicalSize{axis}"))
        if size is None:
            continue
        unit, um = length_unit(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
        # every axis in the unit of X, so that a layer has one length unit
        sizes[axis] = size * (um / x_um if unit and x_unit else 1.0)
    return PhysicalSizes(sizes, x_unit)


def _resolution(page: tifffile.TiffPage, tag: str) -> float | None:
    """Pixel size from an X/YResolution tag (pixels per unit), or None."""
    entry = page.tags.get(tag)
    if entry is None:
        return None
    value = entry.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    if not num or (num, den) == (1, 1):
        return None
    return _positive(float(den) / float(num))


def _imagej_sizes(page: tifffile.TiffPage, meta: dict[str, Any]) -> PhysicalSizes:
    sizes: dict[str, float] = {}
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        size = _resolution(page, tag)
        if size is not None:
            sizes[axis] = size
    spacing = _positive(meta.get("spacing"))
    if spacing is not None:
        sizes["Z"] = spacing
    if not sizes:
        return PhysicalSizes()
    return PhysicalSizes(sizes, length_unit(meta.get("unit"))[0])


def physical_sizes(tif: tifffile.TiffFile) -> PhysicalSizes:
    """Pixel sizes and z spacing from OME-XML, ImageJ metadata, or plain resolution tags."""
    if tif.is_ome and tif.ome_metadata:
        found = _ome_sizes(tif.ome_metadata)
        if found.sizes:
            return found
    if tif.is_imagej:
        return _imagej_sizes(tif.pages.first, tif.imagej_metadata or {})
    page = tif.pages.first
    sizes = {a: s for a, t in (("X", "XResolution"), ("Y", "YResolution")) if (s := _resolution(page, t))}
    return PhysicalSizes(sizes, None) if sizes else PhysicalSizes()


def channel_names(tif: tifffile.TiffFile) -> list[str]:
    """Channel names an OME file gives (empty list otherwise)."""
    if not (tif.is_ome and tif.ome_metadata):
        return []
    image = _first(tifffile.xml2dict(tif.ome_metadata).get("OME", {}).get("Image", {}))
    pixels = image.get("Pixels", {}) if isinstance(image, dict) else {}
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    return [str(c.get("Name", "")) for c in channels if isinstance(c, dict)]
