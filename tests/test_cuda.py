"""The CUDA path: fuse_pair / fuse_stack on a GPU agree with the CPU and the ground truth.

Skipped where torch sees no CUDA device (the development machines have none); run it on a
GPU machine with ``pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acnn_fusion import fuse_pair, fuse_stack
from acnn_fusion.core.inference import resolve_precision, select_device
from acnn_fusion.synthetic import sample_pair, sample_stack

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_fp32_on_cuda_turns_tf32_off_and_restores_it() -> None:
    from acnn_fusion.core.inference import autocast

    before = torch.backends.cudnn.allow_tf32
    with autocast(torch.device("cuda"), torch.float32):
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before


def test_auto_device_is_cuda_and_precision_resolves() -> None:
    device = select_device("auto")
    assert device.type == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    assert resolve_precision("auto", device) == expected


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fuse_pair_on_cuda_matches_cpu_and_truth(precision: str) -> None:
    pair = sample_pair()
    on_gpu = fuse_pair(pair.image_a, pair.image_b, device="cuda", precision=precision, tile=512)
    on_cpu = fuse_pair(pair.image_a, pair.image_b, device="cpu", precision="fp32")
    assert on_gpu.fused.dtype == pair.image_a.dtype and on_gpu.fused.shape == pair.image_a.shape
    differ = float(np.mean(on_gpu.decision_map != on_cpu.decision_map))
    assert differ <= (1e-4 if precision == "fp32" else 1e-3)  # bf16 may flip near-ties only
    assert float(np.mean(on_gpu.decision_map == pair.mask)) > 0.98  # 0.992 on the CPU


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_fuse_stack_on_cuda_matches_cpu_and_truth(precision: str) -> None:
    synthetic = sample_stack()
    on_gpu = fuse_stack(synthetic.stack, device="cuda", precision=precision, tile=1024)
    on_cpu = fuse_stack(synthetic.stack, device="cpu", precision="fp32")
    assert on_gpu.fused.shape == synthetic.stack.shape[1:] and on_gpu.fused.dtype == synthetic.stack.dtype
    differ = float(np.mean(on_gpu.depth_map != on_cpu.depth_map))
    assert differ <= (1e-3 if precision == "fp32" else 1e-2)
    assert float(np.mean(np.abs(on_gpu.depth_map.astype(int) - synthetic.depth_index) <= 1)) > 0.99
    assert float(np.mean(on_gpu.depth_map == synthetic.depth_index)) > 0.93  # 1.0 and 0.957 on the CPU
