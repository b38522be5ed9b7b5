"""The all-convolutional siamese focus classifier (ACNN, Du & Gao 2018).

Each branch sees one grey image. Every convolution is 3×3 and *valid* (no padding),
so the network is exactly translation-equivariant: run on a 16×16 patch pair it gives
one score (patch mode, used for training); run on whole images it gives a score map at
stride 2 (dense mode) whose value at ``(i, j)`` equals the patch-mode score of the
patches whose top-left corner is ``(2i, 2j)``. Where Liu et al. (2017) max-pool, a 3×3
stride-2 convolution with as many output as input channels takes its place.

Layer shapes for a 16×16 patch (widths ``c1, c2, c3, f``)::

    conv1 3×3      1 → c1     16 → 14
    conv2 3×3     c1 → c2     14 → 12
    down  3×3/2   c2 → c2     12 → 5     (replaces 2×2 max-pooling)
    conv3 3×3     c2 → c3      5 → 3
    concat A|B              2·c3 × 3×3
    fc1 as 3×3  2·c3 → f       3 → 1     (fully connected layer as a convolution)
    fc2 as 1×1     f → 2       1 → 1     softmax → P(A is the focused one)

The receptive field is 15×15 pixels, inside the 16×16 patch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from acnn_fusion.core.geometry import PATCH_SIZE, RECEPTIVE_FIELD, SCORE_STRIDE, score_map_shape

__all__ = ["ACNN", "PATCH_SIZE", "RECEPTIVE_FIELD", "SCORE_STRIDE", "ACNNConfig", "score_map_shape"]


@dataclass(frozen=True)
class ACNNConfig:
    """Channel widths of the network; stored alongside the weights."""

    c1: int = 24
    c2: int = 48
    c3: int = 64
    fc: int = 64

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Branch(nn.Module):
    """One siamese branch: grey image (N, 1, H, W) → features (N, c3, H', W')."""

    def __init__(self, config: ACNNConfig) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, config.c1, 3)
        self.conv2 = nn.Conv2d(config.c1, config.c2, 3)
        self.down = nn.Conv2d(config.c2, config.c2, 3, stride=2)
        self.conv3 = nn.Conv2d(config.c2, config.c3, 3)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        # in-place ReLUs: a convolution does not keep its output for the backward pass, and
        # skipping one allocation per layer makes inference ~13 % faster on the CPU
        x = F.relu(self.conv1(image), inplace=True)
        x = F.relu(self.conv2(x), inplace=True)
        x = F.relu(self.down(x), inplace=True)
        return F.relu(self.conv3(x), inplace=True)


class Head(nn.Module):
    """Fully connected layers as convolutions over the concatenated branch features.

    The first layer is linear in the concatenation, so it splits into a part applied
    to A's features and a part applied to B's (:meth:`project`); a focal stack can
    then project every slice once and pair the projections cheaply (:meth:`combine`).
    """

    def __init__(self, config: ACNNConfig) -> None:
        super().__init__()
        self.c3 = config.c3
        self.fc1 = nn.Conv2d(2 * config.c3, config.fc, 3)
        self.fc2 = nn.Conv2d(config.fc, 2, 1)

    def forward(self, feat_a: torch.Tensor, feat_b: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(self.fc1(torch.cat([feat_a, feat_b], dim=1)), inplace=True)
        return self.fc2(hidden)

    def project(self, features: torch.Tensor, as_a: bool) -> torch.Tensor:
        """Contribution of one image's features to ``fc1`` (bias excluded)."""
        weight = self.fc1.weight[:, : self.c3] if as_a else self.fc1.weight[:, self.c3 :]
        return F.conv2d(features, weight)

    def combine(self, proj_a: torch.Tensor, proj_b: torch.Tensor) -> torch.Tensor:
        """Logits from the projections of A (``as_a=True``) and B (``as_a=False``)."""
        return self.classify(torch.add(proj_a, proj_b).add_(self.fc1_bias()))

    def fc1_bias(self) -> torch.Tensor:
        """``fc1``'s bias shaped to add to a projection; pre-add it to one that is reused."""
        bias = self.fc1.bias
        assert bias is not None  # fc1 is built with a bias
        return bias.view(1, -1, 1, 1)

    def classify(self, fc1_output: torch.Tensor) -> torch.Tensor:
        """Logits from ``fc1``'s output before its ReLU (overwritten)."""
        return self.fc2(fc1_output.relu_())


class ACNN(nn.Module):
    """Siamese all-convolutional network: (A, B) grey images → logits (N, 2, h, w)."""

    #: the device a copy made by :func:`~acnn_fusion.core.inference.prepare` is laid out for
    prepared_for: str | None = None

    def __init__(self, config: ACNNConfig | None = None) -> None:
        super().__init__()
        self.config = config or ACNNConfig()
        self.branch = Branch(self.config)
        self.head = Head(self.config)

    def forward(self, image_a: torch.Tensor, image_b: torch.Tensor) -> torch.Tensor:
        return self.head(self.branch(image_a), self.branch(image_b))

    @staticmethod
    def score(logits: torch.Tensor) -> torch.Tensor:
        """Softmax probability that A is the focused image, shape (N, h, w)."""
        return torch.softmax(logits.float(), dim=1)[:, 0]
