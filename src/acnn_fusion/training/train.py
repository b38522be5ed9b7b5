"""Train the ACNN patch classifier; checkpoints every epoch and resumes after a stop."""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from acnn_fusion.core.model import ACNN, PATCH_SIZE, ACNNConfig
from acnn_fusion.core.weights import load_model, save_weights
from acnn_fusion.training.data import PatchPairs, find_images, sample_patch_pairs


@dataclass
class TrainConfig:
    """Everything that determines a training run (recorded with the weights)."""

    images: list[str]
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 300
    patches_per_image: int = 450
    val_fraction: float = 0.1
    seed: int = 0
    widths: ACNNConfig = field(default_factory=ACNNConfig)
    bf16: bool = False  # only pays off on CPUs with native bf16 (AVX-512 BF16/AMX)
    #: share of pairs that get camera noise (Gaussian read noise and/or Poisson shot noise,
    #: independent in A and B, applied after the blur); the rest keep the light noise of σ ≤ 0.01
    noise: float = 0.0
    #: largest Gaussian σ (log-uniform from 0.002) and fewest photons per unit intensity
    #: (log-uniform up to 2000) of that noise, on the [0, 1] patch scale
    noise_sigma_max: float = 0.08
    photons_min: float = 10.0
    #: relative gain / additive offset spread between the A and B patch of a pair
    ab_gain: float = 0.06
    ab_offset: float = 0.0
    #: down-weight pairs whose clean difference is small against the noise (ambiguous pairs)
    weight_ambiguous: bool = False
    #: share of blurred copies that pit a light defocus against a stronger one (see data.py)
    relative_defocus: float = 0.0
    #: share of blurred copies rendered as occlusion scenes with defocus spread (see data.py)
    occlusion: float = 0.0
    #: weights file to start from (fine-tuning) instead of a random initialisation
    init: str | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = self.widths.to_dict()
        return d


def _augment(
    sharp: torch.Tensor,
    blurred: torch.Tensor,
    gen: torch.Generator,
    config: TrainConfig | None = None,
):
    """Random order (the label), dihedral transform, gain/offset and noise for a batch.

    Returns ``(a, b, label, weight)``; ``weight`` (N,) is 1 unless ``weight_ambiguous``.
    """
    config = config if config is not None else TrainConfig(images=[])
    n = sharp.shape[0]
    label = torch.randint(0, 2, (n,), generator=gen)
    first = torch.where(label[:, None, None] == 1, sharp, blurred)
    second = torch.where(label[:, None, None] == 1, blurred, sharp)
    pair = torch.stack([first, second], dim=1)  # (N, 2, 16, 16)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    pair = torch.rot90(pair, k, dims=(2, 3))
    if torch.rand(1, generator=gen) < 0.5:
        pair = pair.flip(3)
    gain = 1.0 + 0.3 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    offset = 0.1 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    gain_ab = 1.0 + config.ab_gain * (torch.rand(n, 2, 1, 1, generator=gen) - 0.5)
    offset_ab = config.ab_offset * (torch.rand(n, 2, 1, 1, generator=gen) - 0.5)
    clean = (pair * gain * gain_ab + offset + offset_ab).clamp_min(0.0)
    noise_sd = 0.01 * torch.rand(n, 1, 1, 1, generator=gen)
    noisy = clean + noise_sd * torch.randn(pair.shape, generator=gen)
    weight = torch.ones(n)
    if config.noise > 0:
        strong = torch.rand(n, generator=gen) < config.noise
        # read noise: one σ per pair (log-uniform), ±20 % between A and B
        lo, hi = math.log(0.002), math.log(config.noise_sigma_max)
        sigma = torch.exp(lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen))
        sigma = sigma * (1.0 + 0.4 * (torch.rand(n, 2, 1, 1, generator=gen) - 0.5))
        sigma = sigma * (torch.rand(n, 1, 1, 1, generator=gen) < 0.7)  # some pairs shot noise only
        # shot noise: variance = signal / photons (Gaussian approximation of Poisson)
        lo, hi = math.log(config.photons_min), math.log(2000.0)
        photons = torch.exp(lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen))
        shot = (torch.rand(n, 1, 1, 1, generator=gen) < 0.7).float()  # some pairs read noise only
        std = torch.sqrt(sigma**2 + shot * clean / photons)
        strong_pair = clean + std * torch.randn(pair.shape, generator=gen)
        noisy = torch.where(strong[:, None, None, None], strong_pair, noisy)
        if config.weight_ambiguous:
            # clean difference against the noise std of the difference: below 1, the label is
            # hardly observable, so the pair counts in proportion
            diff = (clean[:, 0] - clean[:, 1]).abs().mean(dim=(1, 2))
            noise_of_diff = std.pow(2).mean(dim=(2, 3)).sum(dim=1).sqrt() / PATCH_SIZE
            ratio = (diff / (4.0 * noise_of_diff + 1e-6)).clamp(0.05, 1.0)
            weight = torch.where(strong, ratio, weight)
    return noisy[:, :1], noisy[:, 1:], label, weight


def _split_by_image(paths: Sequence[Path], val_fraction: float, seed: int):
    order = np.random.default_rng(seed).permutation(len(paths))
    n_val = max(1, round(val_fraction * len(paths)))
    val = [paths[i] for i in sorted(order[:n_val])]
    train = [paths[i] for i in sorted(order[n_val:])]
    return train, val


@torch.no_grad()
def validation_accuracy(model: ACNN, pairs: PatchPairs, bf16: bool) -> float:
    """Share of held-out pairs classified correctly, both orders counted."""
    model.eval()
    correct = total = 0
    sharp = torch.from_numpy(pairs.sharp.astype(np.float32))[:, None]
    blurred = torch.from_numpy(pairs.blurred.astype(np.float32))[:, None]
    for start in range(0, len(pairs), 2048):
        s, b = sharp[start : start + 2048], blurred[start : start + 2048]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            p_ab = ACNN.score(model(s, b)).flatten()
            p_ba = ACNN.score(model(b, s)).flatten()
        correct += int((p_ab > 0.5).sum() + (p_ba < 0.5).sum())
        total += 2 * len(s)
    model.train()
    return correct / total


@torch.no_grad()
def noisy_validation_accuracy(model: ACNN, pairs: PatchPairs, config: TrainConfig) -> float:
    """Share of held-out pairs classified correctly when every pair carries camera noise
    (``config``'s ranges, fixed seed), weighted like the training loss."""
    model.eval()
    gen = torch.Generator().manual_seed(12345)
    noisy = TrainConfig(**{**vars(config), "noise": 1.0})
    correct = total = 0.0
    sharp = torch.from_numpy(pairs.sharp.astype(np.float32))
    blurred = torch.from_numpy(pairs.blurred.astype(np.float32))
    for start in range(0, len(pairs), 2048):
        a, b, label, weight = _augment(sharp[start : start + 2048], blurred[start : start + 2048], gen, noisy)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            p_a = ACNN.score(model(a, b)).flatten()
        correct += float((((p_a > 0.5).long() == label).float() * weight).sum())
        total += float(weight.sum())
    model.train()
    return correct / total


def _check_out(out: Path, checkpoint_path: Path, images: Sequence[Path]) -> None:
    """Refuse a weights path (or its .json/.ckpt) that is one of the training images."""
    if out.suffix.lower() != ".pt":
        raise ValueError(f"{out}: the weights file must end in .pt")
    written = [out, out.with_suffix(".json"), checkpoint_path]
    for path in written:
        if path.exists() and path.is_dir():
            raise ValueError(f"{path} is a folder; give the weights a file name")
    try:
        targets = {p.resolve() for p in written}
        sources = {p.resolve() for p in images}
    except (RuntimeError, OSError) as exc:
        raise ValueError(f"cannot resolve the weights or image paths ({exc})") from None
    clash = sorted(targets & sources)
    if clash:
        raise ValueError(f"{clash[0]} is a training image; refusing to overwrite it with weights")


def _resume(checkpoint_path: Path, model: ACNN, optimizer: Any, scheduler: Any) -> list[dict]:
    """Load a checkpoint this trainer wrote; anything else is a one-line ValueError."""
    hint = "delete it or pass --restart"
    try:
        with warnings.catch_warnings():  # torch warns about protocols of crafted files
            warnings.simplefilter("ignore")
            state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # never repeat torch's weights_only=False advice
        raise ValueError(
            f"{checkpoint_path}: not a training checkpoint ({type(exc).__name__}); {hint}"
        ) from None
    try:
        if not isinstance(state, dict):
            raise TypeError("not a dict")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = json.loads(state["history"])
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise TypeError("history is not a list of epochs")
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"{checkpoint_path}: checkpoint does not fit this model ({type(exc).__name__}: {first}); {hint}"
        ) from None
    return history


def train(
    config: TrainConfig,
    out: str | Path,
    *,
    resume: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train, checkpoint to ``<out>.ckpt`` each epoch, write final weights to ``out``."""
    out = Path(out)
    checkpoint_path = out.with_name(out.name + ".ckpt")
    torch.manual_seed(config.seed)
    paths = find_images(config.images)
    _check_out(out, checkpoint_path, paths)
    if len(paths) < 2:
        raise ValueError(f"need at least two training images, found {len(paths)} in {config.images}")
    train_paths, val_paths = _split_by_image(paths, config.val_fraction, config.seed)
    t0 = time.perf_counter()
    train_pairs = sample_patch_pairs(
        train_paths,
        patches_per_image=config.patches_per_image,
        relative_defocus=config.relative_defocus,
        occlusion=config.occlusion,
        seed=config.seed,
    )
    val_pairs = sample_patch_pairs(
        val_paths, patches_per_image=config.patches_per_image // 3, seed=config.seed + 1
    )
    log(
        f"{len(train_paths)} training / {len(val_paths)} validation images → "
        f"{len(train_pairs)} / {len(val_pairs)} patch pairs ({time.perf_counter() - t0:.0f} s); "
        f"{len(train_pairs.skipped) + len(val_pairs.skipped)} unreadable images skipped"
    )

    model = ACNN(config.widths)
    if config.init:
        start = load_model(config.init)
        if start.config != config.widths:
            raise ValueError(f"--init weights have widths {start.config}, not {config.widths}")
        model.load_state_dict(start.state_dict())
        log(f"starting from {config.init}")
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing in the stubs
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    steps_per_epoch = len(train_pairs) // config.batch_size
    total_steps = steps_per_epoch * config.epochs

    def lr_factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    history: list[dict] = []
    start_epoch = 0
    if resume and checkpoint_path.exists():
        history = _resume(checkpoint_path, model, optimizer, scheduler)
        start_epoch = len(history)
        log(f"resumed from {checkpoint_path} after epoch {start_epoch}")

    sharp = torch.from_numpy(train_pairs.sharp.astype(np.float32))
    blurred = torch.from_numpy(train_pairs.blurred.astype(np.float32))
    for epoch in range(start_epoch, config.epochs):
        gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        order = torch.randperm(len(train_pairs), generator=gen)
        t_epoch = time.perf_counter()
        running = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * config.batch_size : (step + 1) * config.batch_size]
            a, b, label, weight = _augment(sharp[idx], blurred[idx], gen, config)
            a = a.contiguous(memory_format=torch.channels_last)
            b = b.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits = model(a, b).flatten(1)
            # class 0 = "A is focused", matching ACNN.score
            losses = F.cross_entropy(logits.float(), 1 - label, reduction="none")
            loss = (losses * weight).sum() / weight.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
            if (step + 1) % 200 == 0:
                rate = (step + 1) * config.batch_size / (time.perf_counter() - t_epoch)
                log(
                    f"epoch {epoch + 1} step {step + 1}/{steps_per_epoch} "
                    f"loss {running / 200:.4f} ({rate:.0f} pairs/s)"
                )
                running = 0.0
        accuracy = validation_accuracy(model, val_pairs, config.bf16)
        seconds = time.perf_counter() - t_epoch
        entry = {"epoch": epoch + 1, "val_accuracy": accuracy, "seconds": seconds}
        if config.noise > 0:
            entry["val_accuracy_noisy"] = noisy_validation_accuracy(model, val_pairs, config)
        history.append(entry)
        tmp = checkpoint_path.with_name(checkpoint_path.name + ".tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "history": json.dumps(history),
            },
            tmp,
        )
        os.replace(tmp, checkpoint_path)
        noisy = entry.get("val_accuracy_noisy")
        noisy_note = f", with noise {noisy:.4%}" if noisy is not None else ""
        log(f"epoch {epoch + 1}: validation accuracy {accuracy:.4%}{noisy_note} ({seconds:.0f} s)")

    report = {
        "train_config": config.to_dict(),
        "train_images": len(train_paths),
        "val_images": len(val_paths),
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        "history": history,
        "val_accuracy": history[-1]["val_accuracy"] if history else None,
        "train_seconds": sum(h["seconds"] for h in history),
    }
    save_weights(model, out, training=report)
    return report
