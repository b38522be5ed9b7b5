"""The speed benchmark's FLOP count (its GFLOP/s column) agrees with torch's own counter."""

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from acnn_fusion.core.weights import load_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
speed = pytest.importorskip("speed")


@pytest.mark.parametrize("shape", [(64, 64), (97, 130)])
def test_pair_flops_match_torch_counter(shape):
    model = load_model()
    a, b = torch.rand(2, 1, 1, *shape)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(a, b)
    assert speed.network_flops("pair", shape, None, model.config) == pytest.approx(
        counter.get_total_flops(), rel=1e-9
    )


def test_stack_features_flops_match_torch_counter():
    """The analytic count equals what torch counts for the package's fold on one tile."""
    import numpy as np

    from acnn_fusion.core.stack import FocusImage, _soft_fold

    model = load_model()
    n_slices, shape = 4, (64, 80)
    stack = np.random.default_rng(0).random((n_slices, *shape)).astype(np.float32)
    with FlopCounterMode(display=False) as counter:
        _soft_fold(model, FocusImage(stack), torch.device("cpu"), 4096, "fp32", None)
    counted = speed.network_flops("stack", (n_slices, *shape), "features", model.config)
    assert counted == pytest.approx(counter.get_total_flops(), rel=1e-9)
