"""One loaded model serves every run: preparing it for a device copies it once, never moves it."""

from __future__ import annotations

import threading

import numpy as np
import torch

from acnn_fusion import fuse_pair
from acnn_fusion.core.inference import prepare, select_device
from acnn_fusion.core.weights import load_model


def test_prepare_never_changes_the_loaded_model():
    model = load_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layout = model.branch.conv2.weight.is_contiguous()
    cpu = select_device("cpu")
    prepared = prepare(model, cpu)
    assert prepared is not model and prepare(model, cpu) is prepared  # one copy per device
    assert prepared.branch.conv2.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.branch.conv2.weight.is_contiguous() == layout  # the shared model was not re-laid out
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert prepare(prepared, cpu) is prepared


def test_concurrent_runs_share_the_model_and_agree(camera_pair):
    a, b = camera_pair.image_a[:96, :96], camera_pair.image_b[:96, :96]
    expected = fuse_pair(a, b, precision="fp32").focus_map
    results: list[np.ndarray] = []

    def run() -> None:
        results.append(fuse_pair(a, b, precision="fp32").focus_map)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 3 and all(np.array_equal(r, expected) for r in results)
