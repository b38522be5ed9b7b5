"""Shared pieces of the hostile-input suite: a per-case deadline, hostile files, outcome checks.

Every case runs under :func:`deadline` (a hang is a failure, never a stuck suite). A case
passes when its call returns a result meeting the invariants, or raises one of ``ERRORS``
whose one-line message matches what the case expects; any other exception fails it.
The slow set (``@pytest.mark.slow``) runs only with ``ACNN_HOSTILE_SLOW=1``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ERRORS = (ValueError, TypeError, FileNotFoundError)
CASE_SECONDS = 30  # per case: generous for a shared CPU, far below "forever"


class Hang(BaseException):
    """Raised by :func:`deadline`: a BaseException so that no ``except Exception`` hides it."""


@contextlib.contextmanager
def deadline(seconds: float = CASE_SECONDS) -> Iterator[None]:
    """Fail with :class:`Hang` if the block runs longer than ``seconds`` (interrupts blocking I/O)."""

    def expired(_signum, _frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("ACNN_HOSTILE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow hostile case: set ACNN_HOSTILE_SLOW=1")
    for item in items:
        if "slow" in item.keywords and "hostile" in str(item.fspath):
            item.add_marker(skip)


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def one_line_error(text: str) -> None:
    """The CLI's error output: one line, no traceback, no torch advice."""
    assert "Traceback" not in text, text
    assert "weights_only=False" not in text, text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("acnn-fusion: error: "), text


def expect_error(exc: BaseException, pattern: str) -> None:
    assert isinstance(exc, ERRORS), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert "\n" not in message.strip(), message
    assert re.search(pattern, message, re.IGNORECASE), f"{message!r} does not match {pattern!r}"


def tiff_bytes(entries: list[tuple[int, int, int]], payload: bytes) -> bytes:
    """A one-page little-endian TIFF with the given (tag, type, value) entries; 273 points at the payload."""
    entries = sorted(entries)
    data_offset = 8 + 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries)))
    for tag, kind, value in entries:
        value = data_offset if tag == 273 and value < 0 else value
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, 1) + packed
    return bytes(out + struct.pack("<I", 0) + payload)


def crafted_tiff(
    width: int,
    height: int,
    *,
    compression: int = 1,
    payload: bytes = b"\x00" * 16,
    count: int | None = None,
    bits: int = 8,
    offset: int = -1,
) -> bytes:
    """One strip; header says ``width``×``height``; ``count`` bytes of strip data declared."""
    return tiff_bytes(
        [
            (256, 4, width),
            (257, 4, height),
            (258, 3, bits),
            (259, 3, compression),
            (262, 3, 1),
            (273, 4, offset),
            (277, 3, 1),
            (278, 4, height),
            (279, 4, len(payload) if count is None else count),
        ],
        payload,
    )


@pytest.fixture(scope="session")
def stack8() -> np.ndarray:
    from acnn_fusion.synthetic import sample_stack

    return np.ascontiguousarray(sample_stack().stack[::3, :32, :32])


@pytest.fixture(scope="session")
def pair32() -> tuple[np.ndarray, np.ndarray]:
    from acnn_fusion.synthetic import blob_mask, render_pair, sample_stack

    sharp = sample_stack().sharp[:32, :32]
    pair = render_pair(sharp, blob_mask(sharp.shape, seed=3), radius=3.0)
    return pair.image_a, pair.image_b


def check_pair(result, a: np.ndarray, b: np.ndarray) -> None:
    """Shape/dtype kept; the decision is binary; every fused pixel is copied from A or B as decided."""
    assert result.fused.shape == a.shape and result.fused.dtype == a.dtype.newbyteorder("=")
    assert result.decision_map.dtype == bool and result.decision_map.shape == a.shape[:2]
    assert np.all(np.isfinite(result.focus_map))
    assert np.all((result.focus_map >= 0) & (result.focus_map <= 1))
    mask = result.decision_map if a.ndim == 2 else result.decision_map[..., None]
    np.testing.assert_array_equal(result.fused, np.where(mask, a, b))


def check_stack(result, stack: np.ndarray, axis: int = 0) -> None:
    """Shape/dtype kept, depth within [0, Z−1], every fused pixel from the slice its depth names."""
    moved = np.moveaxis(stack, axis, 0)
    assert result.fused.shape == moved.shape[1:] and result.fused.dtype == stack.dtype.newbyteorder("=")
    assert result.depth_map.shape == moved.shape[1:3]
    assert result.depth_map.min() >= 0 and result.depth_map.max() <= moved.shape[0] - 1
    index = result.depth_map.astype(np.intp)
    if moved.ndim == 4:
        index = index[..., None]
    picked = np.take_along_axis(moved, index[None], axis=0)[0]
    np.testing.assert_array_equal(result.fused, picked)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny inputs: one torch thread is ~15× faster than many fighting over a shared CPU."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
