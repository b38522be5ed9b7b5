"""Training runs end to end, checkpoints, and resumes to the same weights."""

import numpy as np
import pytest
import torch
from skimage import data

from acnn_fusion.core.model import ACNNConfig
from acnn_fusion.io import write_image
from acnn_fusion.training.data import sample_patch_pairs
from acnn_fusion.training.train import TrainConfig, train


@pytest.fixture
def image_folder(tmp_path):
    folder = tmp_path / "images"
    for name in ("camera", "coins", "moon", "text"):
        write_image(folder / f"{name}.png", getattr(data, name)()[:160, :160])
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _config(folder) -> TrainConfig:
    return TrainConfig(
        images=[str(folder)],
        epochs=2,
        batch_size=32,
        warmup_steps=5,
        patches_per_image=90,
        val_fraction=0.25,
        widths=ACNNConfig(4, 8, 8, 8),
    )


def test_patch_pairs_are_changed_by_the_blur(image_folder):
    pairs = sample_patch_pairs(sorted(image_folder.glob("*.png")), patches_per_image=30)
    assert pairs.sharp.shape == pairs.blurred.shape and pairs.sharp.shape[1:] == (16, 16)
    assert np.abs(pairs.sharp.astype(float) - pairs.blurred).mean(axis=(1, 2)).min() >= 0.004
    assert len(pairs.skipped) == 1 and "broken.png" in pairs.skipped[0]


def test_training_resumes_after_a_stop_to_identical_weights(image_folder, tmp_path):
    straight = tmp_path / "straight.pt"
    report = train(_config(image_folder), straight, log=lambda m: None)
    assert len(report["history"]) == 2 and 0.0 <= report["val_accuracy"] <= 1.0

    class Stop(Exception):
        pass

    def stop_after_first_epoch(message: str) -> None:
        if message.startswith("epoch 1:"):
            raise Stop

    resumed = tmp_path / "resumed.pt"
    with pytest.raises(Stop):
        train(_config(image_folder), resumed, log=stop_after_first_epoch)
    assert not resumed.exists() and resumed.with_name("resumed.pt.ckpt").exists()
    messages: list[str] = []
    train(_config(image_folder), resumed, log=messages.append)
    assert any("resumed" in m for m in messages)
    a, b = torch.load(straight, weights_only=True), torch.load(resumed, weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
