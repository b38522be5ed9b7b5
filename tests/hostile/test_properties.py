"""Property tests (hypothesis) of the invariants on random inputs: the slow set (≥ 2,000 examples).

Run with ``ACNN_HOSTILE_SLOW=1 pytest tests/hostile/test_properties.py``. Every example runs
under the per-case deadline; an example passes when the result meets the invariants or the
call raises ValueError/TypeError naming the problem.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acnn_fusion.core.imageops import to_unit_range, unit_range_bounds
from acnn_fusion.core.pipeline import fuse_pair
from acnn_fusion.core.stack import fuse_stack
from acnn_fusion.io import find_pairs

from .conftest import check_pair, check_stack, deadline, expect_error

pytestmark = pytest.mark.slow
FP32 = {"precision": "fp32", "device": "cpu"}
SETTINGS = {"deadline": None, "suppress_health_check": list(HealthCheck), "derandomize": True}
DTYPES = ["uint8", "uint16", "float32", "float64"]


def _image(seed: int, shape: tuple[int, ...], dtype: str, exponent: int, offset: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random(shape)
    if dtype in ("uint8", "uint16"):
        return (base * np.iinfo(dtype).max).astype(dtype)
    with np.errstate(over="ignore", under="ignore"):
        return (base * 10.0**exponent + offset).astype(dtype)


@settings(max_examples=900, **SETTINGS)
@given(
    seed=st.integers(0, 2**31),
    height=st.integers(16, 40),
    width=st.integers(16, 40),
    channels=st.sampled_from([None, 3, 4]),
    dtype=st.sampled_from(DTYPES),
    exponent=st.integers(-320, 307),
    offset=st.sampled_from([0.0, 0.0, 1.0, -1e6, 1e10, 1e300]),
    threshold=st.floats(0.0, 1.0),
)
def test_fuse_pair_property(seed, height, width, channels, dtype, exponent, offset, threshold):
    shape = (height, width) if channels is None else (height, width, channels)
    a = _image(seed, shape, dtype, exponent, offset)
    b = _image(seed + 1, shape, dtype, exponent, offset)
    with deadline():
        try:
            result = fuse_pair(a, b, threshold=threshold, **FP32)
        except (ValueError, TypeError) as exc:
            expect_error(exc, "float32|NaN|infinite")
            return
    check_pair(result, a, b)


@settings(max_examples=500, **SETTINGS)
@given(
    seed=st.integers(0, 2**31),
    slices=st.integers(1, 5),
    size=st.integers(16, 36),
    rgb=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    exponent=st.integers(-320, 307),
    offset=st.sampled_from([0.0, 1e10, -1e300]),
    strategy=st.sampled_from(["features", "pairwise", "pairwise-tree"]),
)
def test_fuse_stack_property(seed, slices, size, rgb, dtype, exponent, offset, strategy):
    shape = (slices, size, size + 3) + ((3,) if rgb else ())
    stack = _image(seed, shape, dtype, exponent, offset)
    with deadline():
        try:
            result = fuse_stack(stack, strategy=strategy, **FP32)
        except (ValueError, TypeError) as exc:
            expect_error(exc, "NaN|infinite")
            return
    check_stack(result, stack)


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=800, **SETTINGS)
@given(values=st.lists(finite, min_size=1, max_size=300), scale=st.sampled_from([1.0, 1e-300, 1e300]))
def test_unit_range_property(values, scale):
    with np.errstate(over="ignore", under="ignore"):
        image = np.asarray(values, dtype=np.float64) * scale
    image = image[np.isfinite(image)]
    if image.size == 0:
        return
    with deadline():
        unit = to_unit_range(image, unit_range_bounds(image, image.dtype))
    assert np.all(np.isfinite(unit)) and np.all((unit >= 0) & (unit <= 1))
    order = np.argsort(image, kind="stable")
    assert np.all(np.diff(unit[order]) >= 0)


name_text = st.text(alphabet=st.sampled_from(list("ab1[]*?-_. ")), min_size=1, max_size=8)


@settings(max_examples=300, **SETTINGS)
@given(stems=st.lists(name_text, min_size=1, max_size=5, unique=True))
def test_pairs_are_matched_as_text(stems):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        names = set()
        for i, stem in enumerate(stems):
            for suffix in ("-A", "_B") if i % 2 else ("-A", "-B"):
                name = f"{stem}{suffix}.tif"
                if not name.startswith("."):
                    (root / name).write_bytes(b"")
                    names.add(name)
        with deadline(10):
            pairs = find_pairs(root)
        for pair in pairs:
            if not pair.problem:
                a, b = pair.paths
                assert a.name[: -len("-A.tif")] == b.name[: -len("-B.tif")] == pair.stem
