"""``acnn-fusion train``: command-line flags → :class:`~acnn_fusion.training.train.TrainConfig` → train."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_train_arguments(train: argparse.ArgumentParser) -> None:
    """The ``acnn-fusion train`` flags (TrainConfig fields, plus run control)."""
    train.add_argument("--images", type=Path, nargs="+", required=True)
    train.add_argument("--out", type=Path, required=True, help="weights file (.pt) to write")
    for name, kind, default, text in [
        ("epochs", int, 6, "passes over the training patches"),
        ("batch-size", int, 256, "patch pairs per step"),
        ("lr", float, 1e-3, "peak learning rate (Adam)"),
        ("patches-per-image", int, 450, "patch pairs cut from each image"),
        ("seed", int, 0, "random seed"),
        ("noise", float, 0.0, "share of pairs given camera (read + shot) noise, 0–1"),
        ("noise-sigma-max", float, 0.08, "largest read-noise σ (0–1 scale)"),
        ("photons-min", float, 10.0, "fewest photons per unit intensity"),
        ("ab-gain", float, 0.06, "gain spread between A and B"),
        ("ab-offset", float, 0.0, "offset spread between A and B"),
        ("relative-defocus", float, 0.0, "share of pairs comparing a light defocus with a stronger one, 0–1"),
        ("occlusion", float, 0.0, "share of blurred copies rendered as occlusions with defocus spread, 0–1"),
    ]:
        dest = "learning_rate" if name == "lr" else name.replace("-", "_")
        train.add_argument(f"--{name}", dest=dest, type=kind, default=default, help=text)
    train.add_argument("--widths", type=int, nargs=4, metavar=("C1", "C2", "C3", "FC"))
    train.add_argument("--bf16", action="store_true", help="bf16 autocast (fast only with native bf16)")
    train.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    train.add_argument(
        "--weight-ambiguous", action="store_true", help="down-weight pairs noise makes ambiguous"
    )
    train.add_argument("--init", type=Path, help="weights file to fine-tune instead of a random start")
    train.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")


def cmd_train(args: argparse.Namespace) -> int:
    from acnn_fusion.core.model import ACNNConfig
    from acnn_fusion.training.train import TrainConfig, train

    if args.out.suffix != ".pt":
        raise ValueError(f"--out {args.out}: the weights file must end in .pt")
    settings = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    settings["images"] = [str(p) for p in args.images]
    settings["init"] = str(args.init) if args.init else None
    settings["widths"] = ACNNConfig(*args.widths) if args.widths else ACNNConfig()
    config = TrainConfig(**settings)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    report = train(config, args.out, resume=not args.restart, log=lambda m: print(m, flush=True))
    print(f"wrote {args.out} (validation accuracy {report['val_accuracy']:.4%})")
    return 0
