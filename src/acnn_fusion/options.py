"""Every run setting in one frozen, typed object, :class:`FusionOptions`.

The core reads it (:func:`~acnn_fusion.fuse_pair`, :func:`~acnn_fusion.fuse_stack`), the
command line generates its arguments from its fields, the napari widgets bind their controls
to the fields by name, and batch sidecars record :meth:`FusionOptions.to_record`. A new option
is one field here (plus, optionally, one control in napari). Importing this module is cheap:
it loads neither torch nor napari.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Preset = Literal["default", "paper"]
Strategy = Literal["features", "pairwise", "pairwise-tree"]
Precision = Literal["auto", "fp32", "bf16"]
Runtime = Literal["auto", "onnx", "torch"]
Kind = Literal["pair", "stack"]
Composition = Literal["copy", "pyramid"]
AlignModel = Literal["translation", "similarity", "affine"]
Seams = Literal["agree", "off"]

PRESET_NAMES: tuple[str, ...] = get_args(Preset)
#: stack folds: ``features`` (one network pass per slice, scored against the stack's mean),
#: ``pairwise`` (the paper's fold of successive pair fusions), ``pairwise-tree`` (balanced tree)
STRATEGIES: tuple[str, ...] = get_args(Strategy)
#: ``auto`` = bf16 where the device computes it natively, else fp32; ``fp32`` = bit-reproducible
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: inference runtime: ``auto`` = onnxruntime for CPU inference where installed and the weights
#: have an ONNX export (torch for large inputs on a native-bf16 CPU), else torch; ``onnx``
#: (CPU, fp32, no torch import); ``torch`` (any device, bf16)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
KINDS: tuple[str, ...] = get_args(Kind)
#: how the fused image is assembled from the decision/depth map (:mod:`acnn_fusion.core.compose`)
COMPOSITIONS: tuple[str, ...] = get_args(Composition)
#: motion models of slice alignment (:mod:`acnn_fusion.core.align`)
ALIGN_MODELS: tuple[str, ...] = get_args(AlignModel)
#: where the features fold puts depth boundaries that focus does not decide
#: (:mod:`acnn_fusion.core.seams`)
SEAM_MODES: tuple[str, ...] = get_args(Seams)

#: Default tile edge in pixels: bounds memory; on the CPU 384 measured faster than 256 with the
#: narrow ``acnn-3`` on both runtimes (docs/performance.md, session 11). On a GPU larger tiles may pay.
DEFAULT_TILE = 384
#: the network's patch edge (:data:`acnn_fusion.core.model.PATCH_SIZE`): the smallest tile
MIN_TILE = 16

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _option(
    default: Any,
    help: str,
    *,
    kinds: tuple[str, ...] = KINDS,
    affects_output: bool = True,
    example: Any,
    flag: str | None = None,
) -> Any:
    """A field of :class:`FusionOptions` with what the faces need to present it.

    ``kinds``: the inputs it applies to; ``affects_output``: whether changing it changes the
    results (batch resume compares only these); ``example``: a valid non-default value (the
    tests send it through every face); ``flag``: the command-line flag if not ``--field-name``.
    """
    metadata = {"help": help, "kinds": kinds, "affects_output": affects_output, "example": example}
    if flag is not None:
        metadata["flag"] = flag
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class FusionOptions:
    """How to fuse: decision, stack fold, network and hardware settings.

    ``threshold``, ``min_region_px`` and ``min_region`` left at ``None`` take the ``preset``'s
    values. Invalid
    values raise ValueError (TypeError for a wrong type) naming the option.
    """

    preset: Preset = _option(
        "default",
        "named settings: default (β 0.5, boundary refinement) or paper (Du & Gao 2018: β 0.9, no refinement)",
        example="paper",
    )
    threshold: float | None = _option(
        None, "β: focus-map level above which a pixel is taken from A (default: the preset's)", example=0.7
    )
    min_region_px: int | None = _option(
        None,
        "smallest region kept, in pixels, unless the focus map is confident about it; the same "
        "on any image size (default: the preset's, 4096 = 64×64 px)",
        example=1024,
    )
    min_region: float | None = _option(
        None,
        "the paper's rule: smallest region kept, as a fraction of the image area (default: the "
        "preset's: off, 1 % for paper); with both, the larger minimum applies",
        example=0.02,
    )
    strategy: Strategy = _option(
        "features",
        "stack fold: features = one network pass per slice, scored against the stack's mean (fast); "
        "pairwise = the paper's fold of successive pair fusions (uses threshold and min region); "
        "pairwise-tree = the same as a balanced tree",
        kinds=("stack",),
        example="pairwise",
    )
    align: bool = _option(
        False, "correct drift between slices before folding", kinds=("stack",), example=True
    )
    align_model: AlignModel = _option(
        "similarity",
        "motion between slices that --align corrects: translation, similarity (scale + rotation + "
        "translation: focus breathing) or affine",
        kinds=("stack",),
        example="affine",
    )
    depth_smoothing: float = _option(
        2.0,
        "features fold: how strongly blocks with little focus evidence take the depth of confident "
        "neighbours (0 = each 2×2 block its own best slice)",
        kinds=("stack",),
        example=0.5,
    )
    seams: Seams = _option(
        "agree",
        "features fold: move depth boundaries that focus does not decide (low confidence, near-tied "
        "scores) by up to one slice to where the neighbouring slices agree, so copy composition shows "
        "fewer brightness steps; off = boundaries where the scores put them",
        kinds=("stack",),
        example="off",
    )
    detect_channel: int | None = _option(
        None,
        "detect focus on this channel only (default: luminance or all channels)",
        kinds=("stack",),
        example=0,
        flag="--channel",
    )
    composition: Composition = _option(
        "copy",
        "how the fused image is assembled: copy = every pixel unchanged from one source (exact "
        "values, the default); pyramid = multi-resolution blending by the decision/depth map (no "
        "seams in flat regions, but it creates values found in no source)",
        example="pyramid",
    )
    device: str = _option("auto", "auto, cpu, cuda, cuda:N or mps", affects_output=False, example="cpu")
    precision: Precision = _option(
        "auto",
        "network arithmetic: auto = bf16 where the device has it natively (0.05 % of Lytro decision "
        "pixels change), fp32 = bit-reproducible, bf16 = always bf16",
        example="fp32",
    )
    runtime: Runtime = _option(
        "auto",
        "inference runtime: auto = onnxruntime for CPU inference when it is installed and the "
        "weights have an ONNX export (no torch import: starts seconds sooner), except large inputs "
        "on a CPU with native bf16, where torch's bf16 network is ~2× faster; onnx = onnxruntime, "
        "CPU, fp32 (scores within 1e-4 of torch fp32); torch = any device, bf16 where native",
        affects_output=False,
        example="torch",
    )
    tile: int = _option(DEFAULT_TILE, "tile edge in pixels (bounds memory)", example=128)
    weights: str | None = _option(
        None, "weights file (.pt with its .json; default: the shipped model)", example="custom.pt"
    )

    def __post_init__(self) -> None:
        if isinstance(self.weights, os.PathLike):
            object.__setattr__(self, "weights", os.fspath(self.weights))
        for name in ("threshold", "min_region", "depth_smoothing"):
            value = getattr(self, name)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        for f in dataclasses.fields(self):
            _check_type(f.name, getattr(self, f.name), _hints()[f.name])
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {self.threshold}")
        if self.min_region is not None and not 0.0 <= self.min_region < 1.0:
            raise ValueError(f"min_region must be a fraction in [0, 1), got {self.min_region}")
        if self.min_region_px is not None and self.min_region_px < 0:
            raise ValueError(f"min_region_px must be ≥ 0 pixels, got {self.min_region_px}")
        if not (math.isfinite(self.depth_smoothing) and self.depth_smoothing >= 0):
            raise ValueError(f"depth_smoothing must be a finite number ≥ 0, got {self.depth_smoothing!r}")
        if self.tile < MIN_TILE:
            raise ValueError(f"tile must be at least {MIN_TILE} pixels, got {self.tile}")
        if not _DEVICE_PATTERN.match(str(self.device).lower()):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, cuda, cuda:N or mps")
        if self.detect_channel is not None and self.detect_channel < -64:
            raise ValueError(f"detect_channel {self.detect_channel} is not a channel index")

    def replace(self, **changes: Any) -> FusionOptions:
        """A copy with ``changes`` (field names); an unknown name raises TypeError naming it."""
        unknown = sorted(set(changes) - set(option_names()))
        if unknown:
            raise TypeError(
                f"unknown option(s) {', '.join(unknown)}; options are {', '.join(option_names())}"
            )
        return dataclasses.replace(self, **changes) if changes else self

    def settings(self) -> Any:
        """The core's decision settings (:class:`~acnn_fusion.core.pipeline.FusionSettings`)."""
        from acnn_fusion.core.pipeline import resolve_settings

        settings = resolve_settings(self.preset, self.threshold, self.min_region, self.min_region_px)
        return dataclasses.replace(settings, composition=self.composition)

    def to_record(self, kind: Kind | None = None) -> dict[str, Any]:
        """JSON-ready values for reports and sidecars, β and min region as resolved.

        With ``kind``, options that do not apply to that kind of input are ``None``.
        """
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        settings = self.settings()
        record["threshold"], record["min_region"] = settings.threshold, settings.min_region
        record["min_region_px"] = settings.min_region_px
        if kind is not None:
            for f in dataclasses.fields(self):
                if kind not in f.metadata["kinds"]:
                    record[f.name] = None
        return record


def option_fields(kind: str | None = None) -> list[dataclasses.Field]:
    """The fields of :class:`FusionOptions`, those that apply to ``kind`` if given."""
    return [f for f in dataclasses.fields(FusionOptions) if kind is None or kind in f.metadata["kinds"]]


def option_names(kind: str | None = None) -> list[str]:
    return [f.name for f in option_fields(kind)]


def option_type(name: str) -> Any:
    """The field's type with ``None`` removed: a Literal, bool, int, float or str."""
    hint = _hints()[name]
    args = [a for a in get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is typing.Union or type(hint).__name__ == "UnionType":
        return args[0]
    return hint


def choices(name: str) -> tuple[Any, ...] | None:
    """The allowed values of a Literal-typed option, else None."""
    kind = option_type(name)
    return get_args(kind) if typing.get_origin(kind) is Literal else None


def outputs_differ(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two records differ in any option that changes results (not e.g. ``device``)."""
    ignored = {f.name for f in option_fields() if not f.metadata["affects_output"]}
    return {k: v for k, v in old.items() if k not in ignored} != {
        k: v for k, v in new.items() if k not in ignored
    }


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(FusionOptions)


def _check_type(name: str, value: Any, hint: Any) -> None:
    allowed = get_args(hint) if get_args(hint) and typing.get_origin(hint) is not Literal else (hint,)
    if value is None:
        if type(None) not in allowed:
            raise TypeError(f"{name} must not be None")
        return
    for kind in allowed:
        if typing.get_origin(kind) is Literal:
            if value in get_args(kind):
                return
            raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(map(str, get_args(kind)))}")
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind in (bool, str) and isinstance(value, kind):
            return
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in allowed if k is not type(None))
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
