"""Shared fixtures: synthetic pairs with ground truth and the optional ../shared data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from acnn_fusion.synthetic import SyntheticPair, blob_mask, render_pair

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$ACNN_SHARED_DATA`` or ``<repo>/../shared/data``."""
    return Path(os.environ.get("ACNN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"shared evaluation data not found at {path}")
    return path


@pytest.fixture(scope="session")
def camera_pair() -> SyntheticPair:
    """Grey uint8 256×256 pair from scikit-image's camera, true mask known."""
    sharp = data.camera()[::2, ::2]
    return render_pair(sharp, blob_mask(sharp.shape, seed=1), radius=4.0)


@pytest.fixture(scope="session")
def colour_pair() -> SyntheticPair:
    """RGB uint8 192×224 pair from scikit-image's astronaut."""
    sharp = data.astronaut()[100:292, 140:364]
    return render_pair(sharp, blob_mask(sharp.shape[:2], seed=2), radius=3.0)


def textured(image: np.ndarray, threshold: float = 4.0) -> np.ndarray:
    """Pixels whose 7×7 neighbourhood has grey standard deviation above ``threshold``."""
    from scipy import ndimage

    grey = image.astype(np.float64) if image.ndim == 2 else image.astype(np.float64).mean(-1)
    mean = ndimage.uniform_filter(grey, 7)
    var = ndimage.uniform_filter(grey**2, 7) - mean**2
    return np.sqrt(np.maximum(var, 0)) > threshold


@pytest.fixture
def seen(monkeypatch) -> list:
    """Replace the core's two entry points by fakes that record the FusionOptions they get.

    Patched where the faces look them up: the core modules, and the napari jobs module.
    """
    from acnn_fusion.core import pipeline, stack
    from acnn_fusion.core.pipeline import FusionResult
    from acnn_fusion.core.stack import StackResult
    from acnn_fusion.options import FusionOptions

    received: list[FusionOptions] = []

    def fake_pair(a, b, options=None, *, progress=None, **changes):
        options = (options or FusionOptions()).replace(**changes)
        received.append(options)
        plane = np.ones(a.shape[:2])
        return FusionResult(a.copy(), plane.astype(np.float32), plane.astype(bool), options.settings())

    def fake_stack(data, options=None, *, axis=0, progress=None, **_layout):
        received.append(options or FusionOptions())
        fused = np.take(data, 0, axis=axis)
        plane = np.zeros(fused.shape[:2])
        return StackResult(fused, plane.astype(np.uint16), plane.astype(np.float32), "fake")

    monkeypatch.setattr(pipeline, "fuse_pair", fake_pair)
    monkeypatch.setattr(stack, "fuse_stack", fake_stack)
    jobs = __import__("sys").modules.get("acnn_fusion.napari._jobs")
    if jobs is not None:  # the napari face imported fuse_pair by name
        monkeypatch.setattr(jobs, "fuse_pair", fake_pair)
    return received
