"""Bad input, table-driven: every case gives a valid result or a clear error, quickly.

A case passes when the call returns a result satisfying the invariants (shape, dtype, fused
values copied from the sources, binary decision map) or raises ValueError/TypeError/
FileNotFoundError whose message names the problem, within ``TIME_LIMIT`` seconds.
Plus property-based tests (hypothesis) of fuse_pair's invariants on random small images.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile

from acnn_fusion.batch import run_batch
from acnn_fusion.cli import main
from acnn_fusion.core.pipeline import fuse_pair
from acnn_fusion.core.stack import fuse_stack
from acnn_fusion.io import StackData, check_declared_size, read_image, read_stack
from acnn_fusion.synthetic import blob_mask, render_pair, sample_stack

TIME_LIMIT = 20.0  # seconds per case (generous: the CPU is shared); errors must not hang
ERRORS = (ValueError, TypeError, FileNotFoundError)
HYPOTHESIS_EXAMPLES = 25


def huge_tiff_bytes(width: int = 100_000, height: int = 100_000, bits: int = 8) -> bytes:
    """A ~130-byte uncompressed TIFF whose header claims ``width``×``height`` pixels."""
    entries = [
        (256, 4, width),  # ImageWidth (LONG)
        (257, 4, height),  # ImageLength
        (258, 3, bits),  # BitsPerSample (SHORT)
        (259, 3, 1),  # Compression: none
        (262, 3, 1),  # Photometric: min-is-black
        (273, 4, 0),  # StripOffsets (patched below)
        (277, 3, 1),  # SamplesPerPixel
        (278, 4, height),  # RowsPerStrip
        (279, 4, 16),  # StripByteCounts: only 16 bytes follow
    ]
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return bytes(out + struct.pack("<I", 0) + bytes(16))


@pytest.fixture(scope="module")
def pair32() -> tuple[np.ndarray, np.ndarray]:
    sharp = sample_stack().sharp[:32, :32]
    pair = render_pair(sharp, blob_mask(sharp.shape, seed=3), radius=3.0)
    return pair.image_a, pair.image_b


@pytest.fixture(scope="module")
def stack32() -> np.ndarray:
    return np.ascontiguousarray(sample_stack().stack[::2, :32, :32])


@pytest.fixture(scope="module")
def files(tmp_path_factory, stack32) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_files")
    good = folder / "good.tif"
    tifffile.imwrite(good, stack32, metadata={"axes": "ZYX"})
    paths = {
        "good": good,
        "zero": folder / "zero.tif",
        "corrupt": folder / "corrupt.tif",
        "truncated": folder / "truncated.tif",
        "huge": folder / "huge.tif",
        "missing": folder / "missing.tif",
        "text": folder / "notes.txt",
    }
    paths["zero"].write_bytes(b"")
    paths["corrupt"].write_bytes(b"II*\x00 this is not really a TIFF file")
    raw = good.read_bytes()
    paths["truncated"].write_bytes(raw[: len(raw) // 3])
    paths["huge"].write_bytes(huge_tiff_bytes())
    paths["text"].write_text("hello")
    return paths


def check_pair_result(result, a: np.ndarray, b: np.ndarray) -> None:
    assert result.fused.shape == a.shape and result.fused.dtype == a.dtype
    assert result.decision_map.shape == a.shape[:2] and result.decision_map.dtype == bool
    assert result.focus_map.shape == a.shape[:2]
    assert np.all((result.focus_map >= 0) & (result.focus_map <= 1))
    mask = result.decision_map if a.ndim == 2 else result.decision_map[..., None]
    np.testing.assert_array_equal(result.fused, np.where(mask, a, b))


def check_stack_result(result, stack: np.ndarray, axis: int = 0) -> None:
    want_shape = stack.shape[:axis] + stack.shape[axis + 1 :]
    assert result.fused.shape == want_shape and result.fused.dtype == stack.dtype
    assert result.depth_map.shape == want_shape[:2]
    assert result.depth_map.max() < stack.shape[axis]
    moved = np.moveaxis(stack, axis, 0)
    picked = np.take_along_axis(moved, result.depth_map[None].astype(np.intp), axis=0)[0]
    np.testing.assert_array_equal(result.fused, picked)


@dataclass
class Case:
    id: str
    call: Callable  # call(ctx) -> result, ctx = {"pair": (a, b), "stack": ..., "files": ...}
    check: Callable | None = None  # check(result, ctx) for cases allowed to succeed
    match: str = ""  # regex the error message must contain
    xfail: str = ""  # a known core problem: reason


def _pair(transform):
    def call(ctx):
        a, b = ctx["pair"]
        return fuse_pair(*transform(a, b))

    return call


def _pair_check(transform):
    def check(result, ctx):
        check_pair_result(result, *transform(*ctx["pair"]))

    return check


def _stack(transform, **kwargs):
    def call(ctx):
        return fuse_stack(transform(ctx["stack"]), **kwargs)

    return call


def _ok_pair(case_id, transform):
    return Case(case_id, _pair(transform), _pair_check(transform))


def _as(dtype):
    return lambda a, b: (a.astype(dtype), b.astype(dtype))


def _nan(a, b):
    a = a.astype(np.float32)
    a[3, 4] = np.nan
    return a, b.astype(np.float32)


def _inf(a, b):
    b = b.astype(np.float32)
    b[0, 0] = np.inf
    return a.astype(np.float32), b


PAIR_CASES = [
    Case("pair-shapes-differ", _pair(lambda a, b: (a, b[:-1])), match="shape"),
    Case("pair-dtypes-differ", _pair(lambda a, b: (a, b.astype(np.float32))), match="dtype"),
    Case("pair-smaller-than-patch-8x8", _pair(lambda a, b: (a[:8, :8], b[:8, :8])), match="patch"),
    Case("pair-1x1", _pair(lambda a, b: (a[:1, :1], b[:1, :1])), match="patch"),
    Case("pair-1-row", _pair(lambda a, b: (a[:1], b[:1])), match="patch"),
    Case("pair-empty-0x0", _pair(lambda a, b: (a[:0, :0], b[:0, :0])), match="patch"),
    Case("pair-nan", _pair(_nan), match="NaN"),
    Case("pair-inf", _pair(_inf), match="infinite"),
    _ok_pair("pair-constant-equal", lambda a, b: (np.full_like(a, 7), np.full_like(b, 7))),
    _ok_pair("pair-constant-different", lambda a, b: (np.zeros_like(a), np.full_like(b, 65535))),
    _ok_pair("pair-float64", _as(np.float64)),
    _ok_pair("pair-float32-out-of-range", lambda a, b: (a * 1e6 - 5e8, b * 1e6 - 5e8)),
    Case("pair-bool", _pair(lambda a, b: (a > 1000, b > 1000)), match="dtype"),
    Case("pair-int64", _pair(_as(np.int64)), match="dtype"),
    Case("pair-complex", _pair(_as(np.complex64)), match="dtype"),
    Case("pair-float16", _pair(_as(np.float16)), match="dtype"),
    Case("pair-5d", _pair(lambda a, b: (a[None, None, None], b[None, None, None])), match="shape|dimension"),
    Case("pair-2-channels", _pair(lambda a, b: (np.stack([a, a], -1), np.stack([b, b], -1))), match="shape"),
    _ok_pair("pair-rgb", lambda a, b: (np.stack([a] * 3, -1), np.stack([b] * 3, -1))),
    Case("pair-list-not-array", _pair(lambda a, b: (a.tolist(), b)), match="numpy array"),
    Case(
        "pair-threshold-out-of-range", lambda ctx: fuse_pair(*ctx["pair"], threshold=1.5), match="threshold"
    ),
    Case("pair-unknown-preset", lambda ctx: fuse_pair(*ctx["pair"], preset="nope"), match="preset"),
]


def _sc(axis=0):
    return lambda result, ctx: check_stack_result(result, ctx["stack_used"], axis)


def _stack_case(case_id, transform, ok=False, match="", axis_for_check=0, xfail="", **kwargs):
    def call(ctx):
        ctx["stack_used"] = transform(ctx["stack"])
        return fuse_stack(ctx["stack_used"], **kwargs)

    return Case(case_id, call, _sc(axis_for_check) if ok else None, match, xfail)


STACK_CASES = [
    _stack_case("stack-ok-reference", lambda s: s, ok=True),
    _stack_case("stack-axis-last", lambda s: np.moveaxis(s, 0, -1).copy(), ok=True, axis_for_check=2, axis=2),
    _stack_case("stack-single-slice", lambda s: s[:1], ok=True),
    _stack_case("stack-smaller-than-patch", lambda s: s[:, :8, :8], match="patch"),
    _stack_case("stack-1x1", lambda s: s[:, :1, :1], match="patch"),
    _stack_case("stack-constant", lambda s: np.full_like(s, 100), ok=True),
    _stack_case("stack-axis-out-of-range", lambda s: s, match="axis", axis=5),
    _stack_case("stack-axis-negative-out-of-range", lambda s: s, match="axis", axis=-4),
    _stack_case("stack-axis-is-channel", lambda s: s, match="axis", axis=0, channel_axis=0),
    _stack_case("stack-channel-axis-out-of-range", lambda s: s, match="axis", channel_axis=7),
    _stack_case("stack-time-axis-is-focus-axis", lambda s: s, match="axis", axis=0, time_axis=0),
    _stack_case("stack-2d", lambda s: s[0], match="dimension|shape|axis|stack"),
    _stack_case("stack-5d", lambda s: s[None, None], match="dimension|shape|axis|stack"),
    _stack_case(
        "stack-nan", lambda s: np.where(np.arange(s.size).reshape(s.shape) == 5, np.nan, s), match="NaN"
    ),
    _stack_case("stack-bool", lambda s: s > 1000, match="dtype"),
    _stack_case("stack-int64", lambda s: s.astype(np.int64), match="dtype"),
    _stack_case("stack-complex", lambda s: s.astype(np.complex128), match="dtype"),
    _stack_case("stack-float16", lambda s: s.astype(np.float16), match="dtype"),
    _stack_case("stack-unknown-strategy", lambda s: s, match="strategy", strategy="magic"),
    _stack_case("stack-detect-channel-missing", lambda s: s, match="channel", detect_channel=3),
]


def _read(reader, key):
    return lambda ctx: reader(ctx["files"][key])


def _read_ok(result, ctx):
    data = result.data if isinstance(result, StackData) else result
    assert data.ndim >= 2 and data.size > 0


FILE_CASES = [
    Case("read_image-good", _read(read_image, "good"), _read_ok),
    Case("read_stack-good", _read(read_stack, "good"), _read_ok),
]
for _reader in (read_image, read_stack):
    _name = _reader.__name__
    FILE_CASES += [
        Case(f"{_name}-zero-byte", _read(_reader, "zero"), match="zero.tif"),
        Case(f"{_name}-corrupt", _read(_reader, "corrupt"), match="corrupt.tif"),
        Case(f"{_name}-truncated", _read(_reader, "truncated"), match="truncated.tif"),
        Case(f"{_name}-missing", _read(_reader, "missing"), match="missing.tif"),
        Case(f"{_name}-not-an-image", _read(_reader, "text"), match="notes.txt"),
    ]
FILE_CASES += [
    Case("check_declared_size-huge", lambda ctx: check_declared_size(ctx["files"]["huge"]), match="declares"),
    Case(
        "check_declared_size-good", lambda ctx: check_declared_size(ctx["files"]["good"]), lambda r, c: None
    ),
]


def _cli(argv_of):
    def call(ctx):
        code = main(argv_of(ctx))
        ctx["capsys_out"] = ctx["capsys"].readouterr()
        return code

    return call


def _cli_usage_error(word):
    def check(code, ctx):
        assert code == 2, f"exit code {code}"
        assert word in ctx["capsys_out"].err

    return check


CLI_CASES = [
    Case(
        "cli-fuse-corrupt",
        _cli(lambda c: ["fuse", str(c["files"]["corrupt"]), str(c["files"]["good"]), "-o", str(c["out"])]),
        _cli_usage_error("corrupt.tif"),
    ),
    Case(
        "cli-fuse-missing",
        _cli(lambda c: ["fuse", str(c["files"]["missing"]), str(c["files"]["good"]), "-o", str(c["out"])]),
        _cli_usage_error("missing.tif"),
    ),
    Case(
        "cli-stack-zero-byte",
        _cli(lambda c: ["stack", str(c["files"]["zero"]), "-o", str(c["out"])]),
        _cli_usage_error("zero.tif"),
    ),
    Case(
        "cli-stack-axis-out-of-range",
        _cli(lambda c: ["stack", str(c["files"]["good"]), "-o", str(c["out"]), "--axis", "9"]),
        _cli_usage_error("axis"),
    ),
]

ALL_CASES = PAIR_CASES + STACK_CASES + FILE_CASES + CLI_CASES


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, id=c.id, marks=[pytest.mark.xfail(reason=c.xfail)] if c.xfail else [])
        for c in ALL_CASES
    ],
)
def test_bad_input(case: Case, pair32, stack32, files, tmp_path, capsys):
    ctx = {"pair": pair32, "stack": stack32, "files": files, "out": tmp_path / "out.tif", "capsys": capsys}
    start = time.perf_counter()
    try:
        result = case.call(ctx)
    except ERRORS as exc:
        elapsed = time.perf_counter() - start
        assert elapsed < TIME_LIMIT, f"took {elapsed:.1f} s to fail"
        assert case.check is None, f"a valid input was refused: {type(exc).__name__}: {exc}"
        assert str(exc).strip(), "error without a message"
        if case.match:
            assert any(w.lower() in str(exc).lower() for w in case.match.split("|")), str(exc)
        return
    elapsed = time.perf_counter() - start
    assert elapsed < TIME_LIMIT, f"took {elapsed:.1f} s"
    assert case.check is not None, f"bad input accepted, returned {type(result).__name__}"
    case.check(result, ctx)


def _read_huge_in_subprocess(path: Path, reader: str) -> subprocess.CompletedProcess:
    """``reader(path)`` in a child limited to 2 GiB of address space (no harm if it allocates)."""
    code = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))\n"
        f"from acnn_fusion.io import {reader}\n"
        "try:\n"
        f"    {reader}(sys.argv[1])\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('RETURNED')\n"
    )
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("reader", ["read_image", "read_stack"])
def test_huge_header_is_refused_without_allocating(files, reader):
    start = time.perf_counter()
    done = _read_huge_in_subprocess(files["huge"], reader)
    assert time.perf_counter() - start < 60
    assert done.stdout.startswith("ValueError"), done.stdout + done.stderr
    assert "allocate" not in done.stdout and "MemoryError" not in done.stdout, done.stdout


def test_batch_refuses_huge_header_before_reading(files, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    big = huge_tiff_bytes(width=1_000_000, height=1_000_000)  # 1 TB declared: beyond any memory
    (folder / "huge.tif").write_bytes(big)
    (folder / "good.tif").write_bytes(files["good"].read_bytes())
    start = time.perf_counter()
    report = run_batch(folder, tmp_path / "out", mode="stack")
    assert time.perf_counter() - start < TIME_LIMIT
    statuses = {e.file: (e.status, e.error) for e in report.entries}
    assert statuses["good.tif"][0] == "ok"
    assert statuses["huge.tif"][0] == "failed" and "declares" in statuses["huge.tif"][1]


# --- property-based: fuse_pair invariants on random small images --------------------------

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def image_pairs(draw):
    height = draw(st.integers(16, 40))
    width = draw(st.integers(16, 40))
    dtype = np.dtype(draw(st.sampled_from(["uint8", "uint16", "float32"])))
    colour = draw(st.booleans())
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["noise", "constant", "blurred"]))
    rng = np.random.default_rng(seed)
    shape = (height, width, 3) if colour else (height, width)
    top = {"uint8": 255, "uint16": 65535, "float32": 1.0}[dtype.name]
    a = rng.uniform(0, top, size=shape)
    if kind == "constant":
        b = np.full(shape, rng.uniform(0, top))
    elif kind == "blurred":
        from scipy import ndimage

        b = ndimage.uniform_filter(a, size=(5, 5, 1) if colour else 5)
    else:
        b = rng.uniform(0, top, size=shape)
    if draw(st.booleans()):
        a, b = b, a
    return a.astype(dtype), b.astype(dtype)


@settings(max_examples=HYPOTHESIS_EXAMPLES, deadline=None, derandomize=True)
@given(pair=image_pairs(), threshold=st.sampled_from([0.1, 0.5, 0.9]))
def test_fuse_pair_invariants_property(pair, threshold):
    a, b = pair
    start = time.perf_counter()
    result = fuse_pair(a, b, threshold=threshold)
    assert time.perf_counter() - start < TIME_LIMIT
    check_pair_result(result, a, b)


def test_case_table_is_well_formed():
    """Every case has a unique id and exactly one expected outcome: a checked result or a named error."""
    ids = [case.id for case in ALL_CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    either = [case.id for case in ALL_CASES if case.check is not None and case.match]
    assert not either, f"cases that accept success or refusal alike: {either}"
    assert all(case.check is not None or case.match for case in ALL_CASES)
    message = (
        f"bad-input cases: {len(ALL_CASES)} table-driven + 3 huge-header cases, "
        f"{HYPOTHESIS_EXAMPLES} hypothesis examples"
    )
    sys.stderr.write(message + "\n")
