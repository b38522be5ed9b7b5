"""Hostile arrays given to the API (fuse_pair, fuse_stack, evaluate, normalisation): generated cases.

Each case is a transform of a known-good input; the call must give a result meeting the
invariants (check_pair / check_stack) or raise ValueError/TypeError whose message names the
problem, within the deadline. Cases are the product of value transforms × dtypes × layouts.
"""

from __future__ import annotations

import numpy as np
import pytest

from acnn_fusion.core.imageops import to_unit_range, unit_range_bounds
from acnn_fusion.core.pipeline import fuse_pair
from acnn_fusion.core.stack import fuse_stack
from acnn_fusion.metrics import evaluate

from .conftest import check_pair, check_stack, deadline, expect_error

FP32 = {"precision": "fp32", "device": "cpu"}

# value transforms of a [0, 1] float64 image: (id, f(x, rng), error pattern if it must be refused)
TRANSFORMS = [
    ("unit", lambda x, r: x, ""),
    ("times1e300", lambda x, r: x * 1e300, "float32|rescale"),
    ("times1e-310", lambda x, r: x * 1e-310, "float32|rescale"),
    ("offset1e10", lambda x, r: x + 1e10, "float32|offset"),
    ("negative", lambda x, r: -x, ""),
    ("offset-1e6", lambda x, r: x - 1e6, "float32|offset"),
    ("times1e30", lambda x, r: x * 1e30, ""),
    ("times1e-20", lambda x, r: x * 1e-20, ""),
    ("constant0", lambda x, r: np.zeros_like(x), ""),
    ("constant1e300", lambda x, r: np.full_like(x, 1e300), "float32"),
    ("constant-1e300", lambda x, r: np.full_like(x, -1e300), "float32"),
    ("constant1e20", lambda x, r: np.full_like(x, 1e20), ""),
    ("max_float", lambda x, r: (x * 2 - 1) * np.finfo(np.float64).max, "float32"),
    ("one_nan", lambda x, r: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "NaN|infinite"),
    ("one_inf", lambda x, r: np.where(np.arange(x.size).reshape(x.shape) == 7, np.inf, x), "NaN|infinite"),
    ("all_nan", lambda x, r: np.full_like(x, np.nan), "NaN|infinite"),
    ("noise", lambda x, r: r.random(x.shape), ""),
    ("binary", lambda x, r: (x > 0.5).astype(np.float64), ""),
    ("hot_pixel", lambda x, r: np.where(np.arange(x.size).reshape(x.shape) == 3, 1e12, x), ""),
]
DTYPES = ["float64", "float32", "uint16", "uint8"]
LAYOUTS = ["grey", "rgb", "rgba"]


def _make(x: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return x
    if dtype == "float32":
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            return x.astype(np.float32)
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
        lo, hi = float(np.min(finite)), float(np.max(finite))
        scaled = (finite - lo) / (hi - lo) if np.isfinite(hi - lo) and hi > lo else np.zeros_like(finite)
    return np.round(np.clip(scaled, 0, 1) * info.max).astype(dtype)


def _expected_error(pattern: str, dtype: str, transform: str) -> str:
    """Integer dtypes are made by rescaling: only float inputs can carry the problem."""
    if dtype in ("uint8", "uint16"):
        return ""
    if dtype == "float32" and pattern and "NaN" not in pattern:
        # values beyond float32 become ±inf when cast: then the refusal is for infinite values
        return (
            "NaN|infinite"
            if transform in ("times1e300", "constant1e300", "constant-1e300", "max_float")
            else ""
        )
    return pattern


def _layout(image: np.ndarray, layout: str) -> np.ndarray:
    if layout == "grey":
        return image
    channels = [image, image[::-1], image[:, ::-1]] + (
        [np.ones_like(image) * image.max()] if layout == "rgba" else []
    )
    return np.stack(channels, axis=-1)


PAIR_CASES = [
    pytest.param(t, d, lay, id=f"{t[0]}-{d}-{lay}")
    for t in TRANSFORMS
    for d in DTYPES
    for lay in LAYOUTS
    if not (d in ("uint8", "uint16") and t[0] in ("all_nan",))
]


@pytest.mark.parametrize(("transform", "dtype", "layout"), PAIR_CASES)
def test_pair_values(transform, dtype, layout, pair32):
    name, f, pattern = transform
    rng = np.random.default_rng(0)
    a0, b0 = (p.astype(np.float64) / float(max(pair32[0].max(), pair32[1].max())) for p in pair32)
    with np.errstate(all="ignore"):
        a, b = _layout(_make(f(a0, rng), dtype), layout), _layout(_make(f(b0, rng), dtype), layout)
    pattern = _expected_error(pattern, dtype, name)
    with deadline():
        try:
            result = fuse_pair(a, b, **FP32)
        except Exception as exc:
            assert pattern, f"refused a valid input: {type(exc).__name__}: {exc}"
            expect_error(exc, pattern)
            return
    assert not pattern, f"accepted an input that must be refused ({pattern})"
    check_pair(result, a, b)
    if name in ("times1e30", "times1e-20", "negative", "unit"):
        # a scaled copy must decide like the original (normalisation is scale-free)
        base = fuse_pair(_layout(_make(a0, dtype), layout), _layout(_make(b0, dtype), layout), **FP32)
        agreement = np.mean(base.decision_map == result.decision_map)
        assert agreement > 0.97 if name != "negative" else agreement >= 0.0


# shapes and types that are not images
BAD_PAIRS = [
    ("list", lambda a, b: (a.tolist(), b), TypeError, "numpy array"),
    ("none", lambda a, b: (None, b), TypeError, "numpy array"),
    ("int32", lambda a, b: (a.astype(np.int32), b.astype(np.int32)), TypeError, "dtype"),
    ("int64", lambda a, b: (a.astype(np.int64), b.astype(np.int64)), TypeError, "dtype"),
    ("bool", lambda a, b: (a > 100, b > 100), TypeError, "dtype"),
    ("complex", lambda a, b: (a.astype(complex), b.astype(complex)), TypeError, "dtype"),
    ("object", lambda a, b: (a.astype(object), b.astype(object)), TypeError, "dtype"),
    ("float16", lambda a, b: (a.astype(np.float16), b.astype(np.float16)), TypeError, "dtype"),
    ("mixed_dtype", lambda a, b: (a, b.astype(np.float32)), TypeError, "differ in dtype"),
    ("shape_mismatch", lambda a, b: (a, b[:, :-1]), ValueError, "differ in shape"),
    ("one_d", lambda a, b: (a.ravel(), b.ravel()), ValueError, "shape"),
    ("zero_d", lambda a, b: (np.array(1, np.uint8), np.array(1, np.uint8)), ValueError, "shape"),
    ("four_d", lambda a, b: (a[None, ..., None], b[None, ..., None]), ValueError, "shape"),
    ("two_channels", lambda a, b: (np.stack([a, a], -1), np.stack([b, b], -1)), ValueError, "shape"),
    ("five_channels", lambda a, b: (np.stack([a] * 5, -1), np.stack([b] * 5, -1)), ValueError, "shape"),
    ("tiny", lambda a, b: (a[:15, :15], b[:15, :15]), ValueError, "smaller"),
    ("thin", lambda a, b: (a[:1], b[:1]), ValueError, "smaller"),
    ("empty", lambda a, b: (a[:0], b[:0]), ValueError, "smaller"),
    ("channels_first", lambda a, b: (np.stack([a] * 3), np.stack([b] * 3)), ValueError, "shape"),
]


@pytest.mark.parametrize(
    ("transform", "kind", "pattern"), [pytest.param(f, k, p, id=i) for i, f, k, p in BAD_PAIRS]
)
def test_pair_not_images(transform, kind, pattern, pair32):
    a, b = transform(*pair32)
    with deadline(), pytest.raises(kind) as info:
        fuse_pair(a, b, **FP32)
    expect_error(info.value, pattern)


ODD_LAYOUTS = [
    ("strided", lambda a, b: (np.tile(a, (2, 2))[::2, ::2], np.tile(b, (2, 2))[::2, ::2])),
    ("fortran", lambda a, b: (np.asfortranarray(a), np.asfortranarray(b))),
    ("readonly", lambda a, b: (_readonly(a), _readonly(b))),
    ("big_endian", lambda a, b: (a.astype(">u2"), b.astype(">u2"))),
    (
        "odd_size",
        lambda a, b: (
            np.pad(a, ((0, 7), (0, 3)), mode="reflect"),
            np.pad(b, ((0, 7), (0, 3)), mode="reflect"),
        ),
    ),
    ("exact_patch", lambda a, b: (a[:16, :16], b[:16, :16])),
    ("identical", lambda a, b: (a, a.copy())),
    ("swapped", lambda a, b: (b, a)),
    ("non_square", lambda a, b: (a[:16], b[:16])),
]


def _readonly(x: np.ndarray) -> np.ndarray:
    x = x.copy()
    x.flags.writeable = False
    return x


@pytest.mark.parametrize("transform", [pytest.param(f, id=i) for i, f in ODD_LAYOUTS])
@pytest.mark.parametrize("threshold", [0.0, 0.5, 1.0])
def test_pair_layouts(transform, threshold, pair32):
    a, b = transform(*pair32)
    with deadline():
        try:
            result = fuse_pair(a, b, threshold=threshold, **FP32)
        except TypeError as exc:  # big-endian uint16 is not a native dtype
            expect_error(exc, "dtype")
            return
    check_pair(result, a, b)


# -- stacks ------------------------------------------------------------------------------
STACK_TRANSFORMS = [t for t in TRANSFORMS if t[0] != "hot_pixel"]


@pytest.mark.parametrize("strategy", ["features", "pairwise"])
@pytest.mark.parametrize("dtype", ["float64", "float32", "uint16"])
@pytest.mark.parametrize("transform", [pytest.param(t, id=t[0]) for t in STACK_TRANSFORMS])
def test_stack_values(transform, dtype, strategy, stack8):
    name, f, pattern = transform
    rng = np.random.default_rng(1)
    with np.errstate(all="ignore"):
        stack = _make(f(stack8.astype(np.float64) / float(stack8.max()), rng), dtype)
    # stacks normalise in float64 on the raw data: only non-finite values are refused
    if dtype == "uint16":
        pattern = ""
    elif "NaN" in pattern or (dtype == "float32" and _expected_error(pattern, dtype, name)):
        pattern = "NaN|infinite"
    else:
        pattern = ""
    with deadline():
        try:
            result = fuse_stack(stack, strategy=strategy, **FP32)
        except Exception as exc:
            assert pattern, f"refused a valid stack: {type(exc).__name__}: {exc}"
            expect_error(exc, pattern)
            return
    assert not pattern, "accepted a stack with non-finite values"
    check_stack(result, stack)
    if name in ("times1e300", "times1e-310", "offset1e10") and dtype == "float64":
        base = fuse_stack(stack8.astype(np.float64) / float(stack8.max()), strategy=strategy, **FP32)
        assert np.mean(base.depth_map == result.depth_map) > 0.95  # extreme scales decide like [0, 1]


BAD_STACKS = [
    ("two_d", lambda s: s[0], {}, ValueError, "one \\(Y, X\\) image|not a focal stack"),
    ("five_d", lambda s: s[None, None], {}, ValueError, "after choosing axes"),
    ("axis_out_of_range", lambda s: s, {"axis": 5}, ValueError, "out of range"),
    (
        "channel_is_axis",
        lambda s: s[..., None].repeat(2, -1),
        {"axis": 0, "channel_axis": 0},
        ValueError,
        "differ",
    ),
    ("four_d_no_channel_axis", lambda s: s[..., None].repeat(2, -1), {}, ValueError, "channel_axis"),
    ("tiny_slices", lambda s: s[:, :8, :8], {}, ValueError, "smaller"),
    ("no_slices", lambda s: s[:0], {}, ValueError, "no slices"),
    ("int8", lambda s: s.astype(np.int8), {}, TypeError, "dtype"),
    ("bool", lambda s: s > 100, {}, TypeError, "dtype"),
    ("list", lambda s: s.tolist(), {}, TypeError, "numpy array"),
    ("too_many_slices", lambda s: np.zeros((65_536, 16, 16), np.uint8), {}, ValueError, "65,535"),
    ("time_equals_axis", lambda s: s[None].repeat(2, 0), {"axis": 1, "time_axis": 1}, ValueError, "differ"),
    ("detect_channel_grey", lambda s: s, {"detect_channel": 0}, ValueError, "channel"),
]


@pytest.mark.parametrize(
    ("transform", "kwargs", "kind", "pattern"),
    [pytest.param(f, k, e, p, id=i) for i, f, k, e, p in BAD_STACKS],
)
def test_stack_not_stacks(transform, kwargs, kind, pattern, stack8):
    with deadline(), pytest.raises(kind) as info:
        fuse_stack(transform(stack8), **kwargs, **FP32)
    expect_error(info.value, pattern)


GOOD_STACK_LAYOUTS = [
    ("one_slice", lambda s: s[:1], {}),
    ("two_slices", lambda s: s[:2], {}),
    ("axis_last", lambda s: np.moveaxis(s, 0, -1), {"axis": -1}),
    ("rgb", lambda s: np.stack([s, s, s], -1), {}),
    ("two_channels", lambda s: np.stack([s, 255 - s], -1), {"channel_axis": -1}),
    ("channel_first", lambda s: np.stack([s, s]), {"axis": 1, "channel_axis": 0}),
    ("constant", lambda s: np.full_like(s, 7), {}),
    ("identical_slices", lambda s: np.repeat(s[:1], 4, 0), {}),
]


@pytest.mark.parametrize("strategy", ["features", "pairwise-tree"])
@pytest.mark.parametrize(
    ("transform", "kwargs"), [pytest.param(f, k, id=i) for i, f, k in GOOD_STACK_LAYOUTS]
)
def test_stack_layouts(transform, kwargs, strategy, stack8):
    stack = transform(stack8)
    with deadline():
        result = fuse_stack(stack, strategy=strategy, **kwargs, **FP32)
    axis = kwargs.get("axis", 0)
    if "channel_axis" in kwargs:
        moved = np.moveaxis(stack, [axis, kwargs["channel_axis"]], [0, -1])
        fused = np.moveaxis(
            result.fused,
            kwargs["channel_axis"] % stack.ndim
            - (1 if kwargs["channel_axis"] % stack.ndim > axis % stack.ndim else 0),
            -1,
        )
        assert result.depth_map.max() <= moved.shape[0] - 1
        picked = np.take_along_axis(moved, result.depth_map.astype(np.intp)[None, ..., None], axis=0)[0]
        np.testing.assert_array_equal(fused, picked)
    else:
        check_stack(result, stack, axis)


# -- normalisation -----------------------------------------------------------------------
SCALES = [1e-320, 1e-310, 1e-300, 1e-45, 1e-30, 1e-10, 1.0, 1e10, 1e30, 1e38, 1e100, 1e300, 1.7e308]
OFFSETS = [0.0, 1e6, 1e10, -1e10, 1e300]


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("scale", SCALES)
def test_unit_range_is_finite_and_ordered(scale, offset):
    ramp = np.linspace(0.0, 1.0, 4096).reshape(64, 64)
    with np.errstate(over="ignore"):
        image = ramp * scale + offset
    if not np.all(np.isfinite(image)):
        pytest.skip("not representable in float64")
    with deadline():
        unit = to_unit_range(image, unit_range_bounds(image, image.dtype))
    assert unit.dtype == np.float32 and np.all(np.isfinite(unit))
    assert np.all((unit >= 0) & (unit <= 1))
    assert np.all(np.diff(unit.ravel()) >= 0)  # order kept
    if np.unique(image).size > 1000:
        assert unit.max() - unit.min() > 0.99  # the range is resolved, not flattened


@pytest.mark.parametrize("value", [0.0, -0.0, 1e-310, 1e20, 1e300, -1e300, 1.7e308, -1.7e308, 5e-324])
def test_unit_range_of_constant(value):
    image = np.full((32, 32), value)
    with deadline():
        unit = to_unit_range(image, unit_range_bounds(image, image.dtype))
    assert np.all(np.isfinite(unit)) and unit.min() == unit.max()


# -- metrics -----------------------------------------------------------------------------
METRIC_CASES = [
    ("nan_a", lambda a, b, f: (np.where(a > 128, np.nan, a / 1.0), b / 1.0, f / 1.0), "NaN"),
    ("inf_fused", lambda a, b, f: (a / 1.0, b / 1.0, np.where(f > 128, np.inf, f / 1.0)), "infinite"),
    (
        "constant_all",
        lambda a, b, f: (np.full_like(a, 9), np.full_like(b, 9), np.full_like(f, 9)),
        "undefined",
    ),
    (
        "constant_float",
        lambda a, b, f: (np.full(a.shape, 0.5), np.full(a.shape, 0.5), np.full(a.shape, 0.5)),
        "undefined",
    ),
    ("shape_mismatch", lambda a, b, f: (a, b[:-1], f), "shapes differ"),
    ("four_d", lambda a, b, f: (a[None, None], b[None, None], f[None, None]), "shape"),
    ("dtype_mix", lambda a, b, f: (a / 1.0, b.astype(np.float32), f / 1.0), "dtype"),
    ("complex", lambda a, b, f: (a.astype(complex), b.astype(complex), f.astype(complex)), "dtype"),
]


@pytest.mark.parametrize(("transform", "pattern"), [pytest.param(f, p, id=i) for i, f, p in METRIC_CASES])
def test_evaluate_refuses_undefined(transform, pattern, pair32):
    a, b = pair32
    with deadline(), pytest.raises(ValueError) as info:
        evaluate(*transform(a, b, a))
    expect_error(info.value, pattern)


@pytest.mark.parametrize("scale", [1e-300, 1.0, 1e300])
def test_evaluate_is_finite_for_extreme_scales(scale, pair32):
    a, b = (p.astype(np.float64) * scale for p in pair32)
    with deadline():
        scores = evaluate(a, b, a)
    assert all(np.isfinite(v) for v in scores.values())
