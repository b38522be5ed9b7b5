"""File › Save Selected Layers… for results: TIFFs with their metadata, via the core's writer.

Selecting the fused image with its decision or depth map (and confidence) and saving as
``name.tif`` writes the first image as ``name.tif`` and every other layer as
``name_<role>.tif`` (``name_decision.tif``, ``name_depth.tif``…). Each file records the
layer's run metadata (sources, β, minimum region, z scale, which slice index means what) as
JSON in its description, and its pixel size where the layer has one. Painted corrections
are in the layers' data, so they are what gets saved.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from acnn_fusion.io import write_image
from acnn_fusion.napari._layers import OUTPUT_KEY
from acnn_fusion.napari._show import ROLE_KEY

FullLayerData = tuple[Any, dict[str, Any], str]


def _json_ready(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata values that JSON can hold (our internal bookkeeping keys dropped)."""
    kept: dict[str, Any] = {}
    for key, value in metadata.items():
        if key.startswith("acnn_fusion_") and key != ROLE_KEY:
            continue
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        kept[key] = value
    return kept


def _suffix(attributes: dict[str, Any], index: int) -> str:
    role = attributes.get("metadata", {}).get(ROLE_KEY)
    name = role or attributes.get("name") or f"layer{index}"
    return re.sub(r"[^A-Za-z0-9]+", "_", str(name)).strip("_").lower() or f"layer{index}"


def _pixel_size(attributes: dict[str, Any]) -> tuple[float, float] | None:
    scale = attributes.get("scale")
    if scale is None or len(scale) < 2:
        return None
    y, x = float(scale[-2]), float(scale[-1])
    return None if (y, x) == (1.0, 1.0) else (y, x)


def write_results(path: str, layer_data: list[FullLayerData]) -> list[str]:
    """napari writer: every selected image/labels layer to a TIFF beside ``path``."""
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        target = target.with_suffix(".tif")
    written: list[str] = []
    used: set[Path] = set()
    for index, (data, attributes, _kind) in enumerate(layer_data):
        out = target if index == 0 else target.with_name(f"{target.stem}_{_suffix(attributes, index)}.tif")
        n = 2
        while out in used:
            out = target.with_name(f"{target.stem}_{_suffix(attributes, index)}_{n}.tif")
            n += 1
        used.add(out)
        metadata = _json_ready(dict(attributes.get("metadata", {})))
        metadata["layer"] = attributes.get("name")
        metadata["made_by"] = "napari-acnn-fusion" if OUTPUT_KEY in attributes.get("metadata", {}) else None
        array = np.asarray(data[0] if attributes.get("multiscale") else data)
        units = attributes.get("units")
        unit = str(units[-1]) if units is not None and len(units) else None
        write_image(out, array, metadata=metadata, pixel_size=_pixel_size(attributes), unit=unit)
        written.append(str(out))
    return written
