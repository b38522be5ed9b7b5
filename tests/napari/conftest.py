"""Fixtures for the napari plugin tests: small images, synchronous runs, a model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from acnn_fusion.core.model import ACNN, ACNNConfig
from acnn_fusion.core.weights import default_weights_path
from acnn_fusion.synthetic import SyntheticPair, blob_mask, render_pair, render_stack


@pytest.fixture(autouse=True)
def _synchronous_runs(monkeypatch):
    """Fusion jobs run inline, so tests need no event loop to see their results."""
    monkeypatch.setenv("ACNN_FUSION_SYNC", "1")


@pytest.fixture(autouse=True)
def _model(monkeypatch):
    """The shipped model, or a small random one while the weights are not there yet."""
    if default_weights_path().exists():
        return
    torch.manual_seed(0)
    model = ACNN(ACNNConfig(8, 16, 16, 16)).eval()
    monkeypatch.setattr("acnn_fusion.core.pipeline.load_model", lambda *_a, **_k: model)
    monkeypatch.setattr("acnn_fusion.core.stack.load_model", lambda *_a, **_k: model)


@pytest.fixture(scope="session")
def grey_pair() -> SyntheticPair:
    """uint8 (96, 128) pair from scikit-image's camera."""
    sharp = data.camera()[::4, ::4][:96, :128]
    return render_pair(sharp, blob_mask(sharp.shape, seed=1), radius=3.0)


@pytest.fixture(scope="session")
def rgb_pair() -> SyntheticPair:
    """RGB uint8 (112, 128, 3) pair."""
    sharp = data.astronaut()[::4, ::4][:112, :128]
    return render_pair(sharp, blob_mask(sharp.shape[:2], seed=2), radius=3.0)


@pytest.fixture(scope="session")
def small_stack() -> np.ndarray:
    """uint16 focal stack (5, 80, 96) of a tilted plane."""
    grey = data.camera()[::4, ::4][:80, :96].astype(np.float64)
    sharp = np.round(grey / 255 * 3000 + 100).astype(np.uint16)
    depth = np.tile(np.linspace(0, 4, 96), (80, 1))
    return render_stack(sharp, depth, 5, radius_per_slice=1.5).stack


@pytest.fixture(autouse=True)
def _fresh_widget_settings():
    """Each test starts from default widget settings (the widget remembers them per session)."""
    from acnn_fusion.napari._panel import forget_remembered

    forget_remembered()
    yield
    forget_remembered()
