"""Fusion jobs: what the core needs, cut from layers, and one core call.

A job is built on the GUI thread from the layers' metadata only: planes are indexed, not
read, so a lazy (dask, zarr) or huge layer costs nothing there. :meth:`run` goes to a worker
thread, which reads the pixels (a stack plane by plane into a file-backed array when large)
and calls the core. ``_show`` puts results back into the viewer on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from napari.layers import Image, Layer

from acnn_fusion.core.pipeline import FusionResult, FusionSettings, fuse_from_focus_map, fuse_pair
from acnn_fusion.napari._layers import (
    Placement,
    default_z_axis,
    full_resolution,
    output_base_name,
    plane_index,
    to_core_dtype,
)
from acnn_fusion.options import FusionOptions

ProgressCallback = Callable[[int, int], None]

#: decision map labels: which input each pixel of the fused image comes from
FROM_A, FROM_B = 1, 2
#: measured CPU throughput (docs/performance.md, fp32, the slowest case): pixels per second
CPU_PIXELS_PER_SECOND = {"pair": 1.1e6, "stack": 1.9e6}
#: runs estimated longer than this (seconds) are announced with a warning first
LONG_RUN_SECONDS = 120.0


def _look(layer: Image) -> dict[str, Any]:
    """Display settings that make the fused image look like its input."""
    look: dict[str, Any] = {"contrast_limits": tuple(layer.contrast_limits), "gamma": layer.gamma}
    if not layer.rgb:
        look["colormap"] = layer.colormap
    return look


def read_array(data: Any) -> np.ndarray:
    """Pixels of a numpy, memmap, dask or zarr array as numpy, in a dtype the core takes.

    numpy arrays pass through; lazy arrays with a leading stack axis are read one plane at a
    time into a file-backed array when large, so a big stack is never held twice.
    """
    if isinstance(data, np.ndarray):
        return to_core_dtype(data)
    shape, dtype = tuple(data.shape), np.dtype(data.dtype)
    if len(shape) < 3 or (len(shape) == 3 and shape[-1] in (3, 4)):
        return to_core_dtype(np.asarray(data))
    from acnn_fusion.core.imageops import scratch_array

    out_dtype = to_core_dtype(np.zeros(0, dtype)).dtype
    out = scratch_array(shape, out_dtype)
    for z in range(shape[0]):
        out[z] = to_core_dtype(np.asarray(data[z]))
    return out


def _pixels(shape: tuple[int, ...], rgb: bool) -> float:
    return float(np.prod(shape[:-1] if rgb else shape, dtype=np.float64))


@dataclass
class PairJob:
    """Two 2-D planes (Y, X) or (Y, X, C) for :func:`fuse_pair`; read in :meth:`load`."""

    name: str
    a: Any
    b: Any
    dtype: np.dtype
    rgb: bool
    placement: Placement
    look: dict[str, Any]
    sources: tuple[str, str]

    def load(self) -> None:
        """Read the planes (worker thread); a no-op once read."""
        self.a, self.b = read_array(self.a), read_array(self.b)

    def run(self, options: FusionOptions, progress: ProgressCallback | None = None) -> FusionResult:
        self.load()
        return fuse_pair(self.a, self.b, options, progress=progress)

    def redecide(self, focus_map: np.ndarray, settings: FusionSettings) -> FusionResult:
        """Decision and fused image for new settings from a cached focus map (no network)."""
        self.load()
        return fuse_from_focus_map(self.a, self.b, focus_map, settings)

    def swapped(self) -> PairJob:
        return PairJob(
            output_base_name(self.sources[1], self.sources[0]),
            self.b,
            self.a,
            self.dtype,
            self.rgb,
            self.placement,
            self.look,
            (self.sources[1], self.sources[0]),
        )

    def estimate_seconds(self) -> float:
        return _pixels(tuple(self.a.shape), self.rgb) / CPU_PIXELS_PER_SECOND["pair"]


@dataclass
class StackJob:
    """A focal stack (Z, Y, X) or (Z, Y, X, C) for :func:`fuse_stack`; read in :meth:`load`."""

    name: str
    stack: Any
    dtype: np.dtype
    rgb: bool
    axis: int  # the folded axis in the layer's data
    placement: Placement
    look: dict[str, Any]
    z_scale: float
    z_translate: float
    units: Any = None

    def load(self) -> None:
        self.stack = read_array(self.stack)

    @property
    def z_unit(self) -> str | None:
        """The z axis's length unit ("µm"), or None when z is counted in slices (no spacing)."""
        return length_unit(self.units)

    def depth_values(self, index: np.ndarray) -> np.ndarray:
        """Slice indices → z positions (float32): ``z_translate + index × z_scale``, i.e. the
        world z of each slice, in :attr:`z_unit` when the z spacing is known."""
        z = np.float32(self.z_translate) + np.asarray(index, np.float32) * np.float32(self.z_scale)
        return z.astype(np.float32, copy=False)

    def run(self, options: FusionOptions, progress: ProgressCallback | None = None) -> Any:
        from acnn_fusion.core.stack import fuse_stack

        self.load()
        return fuse_stack(self.stack, options, axis=0, progress=progress)

    def estimate_seconds(self) -> float:
        return _pixels(tuple(self.stack.shape), self.rgb) / CPU_PIXELS_PER_SECOND["stack"]


def length_unit(unit: Any) -> str | None:
    """A napari axis unit as a short physical length ("µm", "nm"), or None for "pixel",
    dimensionless or missing units (then the axis counts samples, not a distance)."""
    if unit is None:
        return None
    text = str(unit)
    if text in ("", "pixel", "dimensionless"):
        return None
    try:
        return f"{unit:~}" or text
    except (TypeError, ValueError):
        return text


def _check_pair_layers(layer_a: Layer, layer_b: Layer) -> None:
    for role, layer in (("A", layer_a), ("B", layer_b)):
        if not isinstance(layer, Image):
            raise TypeError(f"image {role} ({getattr(layer, 'name', layer)!r}) is not an image layer")
    if layer_a is layer_b:
        raise ValueError("choose two different layers for A and B")
    if layer_a.rgb != layer_b.rgb:
        raise ValueError(f"{layer_a.name!r} and {layer_b.name!r}: one is RGB, the other is not")


def _check_dtype(dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(f"cannot fuse images of dtype {dtype}")


def pair_job(layer_a: Image, layer_b: Image, point: Any = None) -> PairJob:
    """Job for two image layers; layers with more than 2 axes give their current plane.

    ``point`` is the viewer's world position (``viewer.dims.point``). No pixels are read.
    """
    _check_pair_layers(layer_a, layer_b)
    planes = []
    for layer in (layer_a, layer_b):
        spatial = (layer.ndim - 2, layer.ndim - 1)
        planes.append(full_resolution(layer)[plane_index(layer, point, spatial)])
    a, b = planes
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{layer_a.name!r} {tuple(a.shape)} and {layer_b.name!r} {tuple(b.shape)} differ in shape"
        )
    if a.dtype != b.dtype:
        raise ValueError(f"{layer_a.name!r} ({a.dtype}) and {layer_b.name!r} ({b.dtype}) differ in dtype")
    _check_dtype(np.dtype(a.dtype))
    return PairJob(
        name=output_base_name(layer_a.name, layer_b.name),
        a=a,
        b=b,
        dtype=np.dtype(a.dtype),
        rgb=bool(layer_a.rgb),
        placement=Placement.of(layer_a),
        look=_look(layer_a),
        sources=(layer_a.name, layer_b.name),
    )


def stack_job(layer: Image, axis: int | None = None, point: Any = None) -> StackJob:
    """Job folding ``axis`` of an image layer with at least 3 axes (RGB: 3 besides colour).

    Axes other than z and the last two (Y, X) are taken at the viewer's current position.
    No pixels are read.
    """
    if not isinstance(layer, Image):
        raise TypeError(f"{getattr(layer, 'name', layer)!r} is not an image layer")
    if layer.ndim < 3:
        raise ValueError(f"{layer.name!r} has {layer.ndim} spatial axes; a z-stack needs at least 3")
    axis = default_z_axis(layer) if axis is None else int(axis)
    if not 0 <= axis < layer.ndim - 2:
        raise ValueError(f"axis {axis} of {layer.name!r} is not a non-spatial axis (0 … {layer.ndim - 3})")
    data = full_resolution(layer)
    stack = data[plane_index(layer, point, (axis, layer.ndim - 2, layer.ndim - 1))]
    _check_dtype(np.dtype(stack.dtype))
    return StackJob(
        name=layer.name,
        stack=stack,
        dtype=np.dtype(stack.dtype),
        rgb=bool(layer.rgb),
        axis=axis,
        placement=Placement.of(layer),
        look=_look(layer),
        z_scale=float(layer.scale[axis]),
        z_translate=float(layer.translate[axis]),
        units=layer.units[axis],
    )


def long_run_warning(job: PairJob | StackJob, device: str) -> str | None:
    """A warning with the estimated CPU time when a run will take long, else None."""
    seconds = job.estimate_seconds()
    if seconds < LONG_RUN_SECONDS or device.startswith(("cuda", "mps")):
        return None
    shape = tuple(job.a.shape if isinstance(job, PairJob) else job.stack.shape)
    minutes = seconds / 60
    return (
        f"{job.name} {shape}: this run will take about {minutes:.0f} min on the CPU "
        "(estimate from docs/performance.md); Cancel stops it."
    )
