"""Training runs end to end, checkpoints, and resumes to the same weights."""

import numpy as np
import pytest
import torch
from skimage import data

from acnn_fusion.core.model import ACNNConfig
from acnn_fusion.io import write_image
from acnn_fusion.training.data import sample_patch_pairs
from acnn_fusion.training.train import TrainConfig, _augment, train


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


@pytest.mark.slow
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


def _flat_pairs(n: int = 4000, value: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    patch = torch.full((n, 16, 16), value)
    return patch, patch.clone()


def test_without_camera_noise_pairs_differ_only_by_the_light_noise():
    a, b, label, weight = _augment(
        *_flat_pairs(), torch.Generator().manual_seed(0), TrainConfig([], ab_gain=0)
    )
    sd = (a - b).std(dim=(1, 2, 3)) / np.sqrt(2)
    assert sd.max() <= 0.0125 and torch.all(weight == 1)
    assert set(label.tolist()) == {0, 1}


def test_camera_noise_is_independent_in_a_and_b_with_the_expected_std():
    # photons fixed at 2000 and read-noise σ at 0.002 (±20 %, on 70 % of pairs):
    # each patch's std is sqrt(σ² + x/2000) with x ≈ 0.5 × gain (0.85–1.15) ± 0.05
    config = TrainConfig([], noise=1.0, noise_sigma_max=0.002, photons_min=2000.0, ab_gain=0)
    a, b, _, _ = _augment(*_flat_pairs(), torch.Generator().manual_seed(1), config)
    sd = ((a - b).std(dim=(1, 2, 3)) / np.sqrt(2)).numpy()
    shot = np.sqrt(0.5 / 2000)
    high = np.sqrt(0.0024**2 + 0.625 / 2000) * 1.25  # sampling error of 256 px < 10 %
    assert sd.max() <= high
    # 70 % of pairs have shot noise; the others only read noise, σ ≈ 0.002
    with_shot = sd > 0.5 * shot
    assert 0.65 < with_shot.mean() < 0.75
    assert abs(np.median(sd[with_shot]) / np.sqrt(shot**2 + 0.7 * 0.002**2) - 1) < 0.1
    assert np.all(sd[~with_shot] < 0.0035)


def test_heavy_noise_is_heavy_and_ambiguous_pairs_are_down_weighted():
    config = TrainConfig([], noise=0.5, photons_min=10.0, weight_ambiguous=True, ab_gain=0)
    a, b, _, weight = _augment(*_flat_pairs(), torch.Generator().manual_seed(2), config)
    sd = (a - b).std(dim=(1, 2, 3)) / np.sqrt(2)
    noisy = weight < 1  # identical clean patches: every noisy pair is ambiguous
    assert 0.45 < noisy.float().mean() < 0.55
    assert torch.quantile(sd[noisy], 0.9) > 0.05 and sd[~noisy].max() <= 0.0125
    assert torch.allclose(weight[noisy], torch.tensor(0.05))


@pytest.mark.slow
def test_fine_tuning_starts_from_the_given_weights(image_folder, tmp_path):
    first = tmp_path / "first.pt"
    train(_config(image_folder), first, log=lambda m: None)
    config = _config(image_folder)
    config.epochs, config.learning_rate, config.init = 1, 0.0, str(first)
    second = tmp_path / "second.pt"
    train(config, second, log=lambda m: None)
    a, b = torch.load(first, weights_only=True), torch.load(second, weights_only=True)
    for key in a:  # learning rate 0: fine-tuning keeps the starting weights
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_relative_defocus_pairs_compare_two_defocus_levels(image_folder):
    paths = sorted(image_folder.glob("*.png"))
    plain = sample_patch_pairs(paths, patches_per_image=60, seed=4)
    relative = sample_patch_pairs(paths, patches_per_image=60, relative_defocus=1.0, seed=4)

    def detail(p: np.ndarray) -> float:
        return float(np.abs(np.diff(p.astype(np.float32), axis=-1)).mean())

    # the "sharp" side is itself defocused, the other side blurrier still
    assert detail(relative.sharp) < 0.8 * detail(plain.sharp)
    assert detail(relative.blurred) < detail(relative.sharp)
    diff = np.abs(relative.sharp.astype(np.float32) - relative.blurred).mean(axis=(1, 2))
    assert diff.min() >= 0.004


def test_occlusion_scene_follows_the_two_layer_lens_model():
    from scipy import ndimage

    from acnn_fusion.training.data import occlusion_scene

    grey = data.camera()[:192, :192].astype(np.float64) / 255
    scene = occlusion_scene(grey, np.random.default_rng(2))
    fg, bg = scene.mask, ~scene.mask
    assert 0.2 < fg.mean() < 0.8
    # A is the truth on the foreground, B far from it (beyond any PSF's reach)
    far_bg = bg & ~ndimage.binary_dilation(fg, iterations=14)
    np.testing.assert_array_equal(scene.image_a[fg], scene.truth[fg])
    np.testing.assert_allclose(scene.image_b[far_bg], scene.truth[far_bg], atol=1e-6)
    # next to the foreground, B's background carries the blurred foreground's glow
    ring = bg & ndimage.binary_dilation(fg)
    assert np.abs(scene.image_b[ring] - scene.truth[ring]).mean() > 0.01
    # and A's background is defocused: less detail than the truth there
    assert (
        np.abs(np.diff(scene.image_a, axis=1))[far_bg[:, 1:]].mean()
        < np.abs(np.diff(scene.truth, axis=1))[far_bg[:, 1:]].mean()
    )


def test_occlusion_pairs_put_the_source_nearer_the_truth_first(image_folder):
    paths = sorted(image_folder.glob("*.png"))
    plain = sample_patch_pairs(paths, patches_per_image=60, seed=4)
    again = sample_patch_pairs(paths, patches_per_image=60, occlusion=0.0, seed=4)
    np.testing.assert_array_equal(plain.sharp, again.sharp)  # off: the old pairs exactly
    pairs = sample_patch_pairs(paths, patches_per_image=60, occlusion=1.0, seed=4)
    assert len(pairs) > 50 and pairs.sharp.shape[1:] == (16, 16)
    diff = np.abs(pairs.sharp.astype(np.float32) - pairs.blurred).mean(axis=(1, 2))
    assert diff.min() >= 0.004

    def energy(p: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        return np.array([(ndimage.laplace(v.astype(np.float32)) ** 2).mean() for v in p])

    # where the glow of a blurred foreground covers a sharp background, the source nearer
    # the truth can have less detail: what a focus measure gets wrong and these pairs teach
    glow_share = (energy(pairs.sharp) < energy(pairs.blurred)).mean()
    plain_share = (energy(plain.sharp) < energy(plain.blurred)).mean()
    assert glow_share > 0.02 and glow_share > 3 * plain_share
