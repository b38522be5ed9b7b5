"""Tests of the fusion quality metrics: known answers on synthetic data and published scores."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from acnn_fusion.metrics import (
    evaluate,
    fusion_mi,
    mutual_information,
    q_abf,
    q_mi,
    q_y,
    to_metric_grey,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Q^AB/F of a perfect transfer: both sigmoids evaluated at G = 1 and A = 1.
QABF_PERFECT = 0.9994 / (1 + math.exp(-15 * 0.5)) * 0.9879 / (1 + math.exp(-22 * 0.2))


def shared_data() -> Path:
    return Path(os.environ.get("ACNN_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def entropy_bits(image: np.ndarray) -> float:
    p = np.bincount(image.ravel(), minlength=256) / image.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


@pytest.fixture(scope="module")
def textured() -> np.ndarray:
    """A smooth random texture with every grey level used, 96×80 uint8."""
    rng = np.random.default_rng(0)
    noise = ndimage.gaussian_filter(rng.normal(size=(96, 80)), 2.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return np.round(noise * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def multifocus(textured: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Synthetic pair: A sharp on the left, B sharp on the right; F picks the sharp halves."""
    blurred = np.round(ndimage.gaussian_filter(textured.astype(float), 2.5)).astype(np.uint8)
    left = np.zeros(textured.shape, bool)
    left[:, : textured.shape[1] // 2] = True
    a = np.where(left, textured, blurred)
    b = np.where(left, blurred, textured)
    return a, b, textured


# ------------------------------------------------------------------------------ mutual information


def test_mi_small_known_answers() -> None:
    a = np.array([[0, 0, 1, 1]], np.uint8)
    assert mutual_information(a, a) == pytest.approx(1.0)
    assert mutual_information(a, np.array([[0, 1, 0, 1]], np.uint8)) == pytest.approx(0.0, abs=1e-15)
    # a relabelling keeps all the information
    assert mutual_information(a, 255 - a) == pytest.approx(1.0)


def test_mi_of_image_with_itself_is_its_entropy(textured: np.ndarray) -> None:
    h = entropy_bits(textured)
    assert mutual_information(textured, textured) == pytest.approx(h, rel=1e-12)
    assert fusion_mi(textured, textured, textured) == pytest.approx(2 * h, rel=1e-12)
    assert q_mi(textured, textured, textured) == pytest.approx(2.0, rel=1e-12)


def test_mi_bins(textured: np.ndarray) -> None:
    merged = (textured // 16).astype(np.uint8)
    assert mutual_information(textured, textured, bins=16) == pytest.approx(entropy_bits(merged))
    with pytest.raises(ValueError, match="bins"):
        mutual_information(textured, textured, bins=0)


def test_mi_rejects_values_outside_grey_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.255"):
        mutual_information(np.array([[0, 300]]), np.array([[0, 1]]))


# ------------------------------------------------------------------------------ Q^AB/F


def test_qabf_perfect_transfer_is_exact_sigmoid_product(textured: np.ndarray) -> None:
    assert q_abf(textured, textured, textured) == pytest.approx(QABF_PERFECT, rel=1e-12)
    assert QABF_PERFECT == pytest.approx(0.9748, abs=1e-4)


def test_qabf_undefined_without_edges() -> None:
    flat = np.full((16, 16), 7, np.uint8)
    # zero padding makes the border an edge: only an all-zero image has no edges at all
    assert q_abf(flat, flat, flat) == pytest.approx(QABF_PERFECT, rel=1e-12)
    zero = np.zeros((16, 16), np.uint8)
    assert math.isnan(q_abf(zero, zero, zero))


# ------------------------------------------------------------------------------ Q_Y


def test_qy_identical_images_score_one(textured: np.ndarray) -> None:
    assert q_y(textured, textured, textured) == pytest.approx(1.0, abs=1e-12)


def test_qy_needs_a_full_window() -> None:
    small = np.zeros((5, 20), np.uint8)
    with pytest.raises(ValueError, match="at least 7"):
        q_y(small, small, small)


# ------------------------------------------------------------------------------ all metrics


def test_good_fusion_beats_bad(multifocus: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, fused = multifocus
    good = evaluate(a, b, fused)
    blurred = np.round(ndimage.gaussian_filter(fused.astype(float), 2.5)).astype(np.uint8)
    worse = evaluate(a, b, blurred)
    constant = evaluate(a, b, np.full_like(fused, 128))
    for key in ("MI", "Qabf", "QMI", "QY"):
        assert good[key] > worse[key] > constant[key], key
    assert constant["MI"] == pytest.approx(0.0, abs=1e-12)
    assert constant["QMI"] == pytest.approx(0.0, abs=1e-12)
    assert constant["Qabf"] < 0.25  # not 0: zero padding gives every image edges at its border
    assert constant["QY"] < 0.1


def test_metrics_symmetric_in_sources(multifocus: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, fused = multifocus
    ab, ba = evaluate(a, b, fused), evaluate(b, a, fused)
    for key in ab:
        assert ab[key] == pytest.approx(ba[key], rel=1e-12), key


def test_evaluate_keys_and_colour_input(multifocus: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, fused = multifocus
    grey = evaluate(a, b, fused)
    assert set(grey) == {"MI", "Qabf", "QMI", "QY"}
    assert all(isinstance(v, float) for v in grey.values())
    # grey replicated into three equal channels converts back to the same grey image
    colour = evaluate(*(np.repeat(img[..., None], 3, axis=2) for img in (a, b, fused)))
    assert colour == pytest.approx(grey)


def test_evaluate_scales_non_uint8_inputs_together(
    multifocus: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    a, b, fused = multifocus
    as_float = evaluate(*(img.astype(np.float32) / 255 for img in (a, b, fused)))
    assert as_float == pytest.approx(evaluate(a, b, fused), rel=0.02)
    with pytest.raises(ValueError, match="dtype"):
        evaluate(a, b, fused.astype(np.float32))


def test_shape_mismatch_raises(multifocus: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    a, b, fused = multifocus
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate(a, b, fused[:-1])
    for metric in (fusion_mi, q_mi, q_abf, q_y):
        with pytest.raises(ValueError, match="shapes differ"):
            metric(a, b[:, :-2], fused)
    with pytest.raises(ValueError, match="2-D"):
        q_abf(a[..., None], b, fused)


def test_to_metric_grey() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert to_metric_grey(grey) is grey
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (10, 20, 30)
    out = to_metric_grey(rgb)
    assert out.dtype == np.uint8
    # MATLAB rgb2gray: round(0.298936·R + 0.587043·G + 0.114021·B)
    assert out.tolist() == [[76, 150, 18]]
    ramp = np.linspace(0, 1, 256, dtype=np.float64).reshape(16, 16)
    scaled = to_metric_grey(ramp)
    assert scaled.dtype == np.uint8
    assert scaled.min() == 0
    assert scaled.max() == 255


# ------------------------------------------------------------------------------ published scores


@pytest.mark.shared
def test_matches_published_lytro_scores() -> None:
    """Liu et al.'s CNN results on Lytro-20: MI, Q_MI and Q^AB/F as published, to 3 decimals."""
    imageio = pytest.importorskip("imageio.v3")
    root = shared_data() / "eval"
    table = root / "reference" / "lytro20_cnn_per_pair.csv"
    if not table.is_file():
        pytest.skip(f"shared data not found at {shared_data()} (set ACNN_SHARED_DATA)")
    with table.open(newline="") as fh:
        rows = {int(r["pair"][6:8]): r for r in csv.DictReader(fh) if r["pair"].startswith("lytro_")}
    assert sorted(rows) == list(range(1, 21))
    for n, row in rows.items():
        a, b = (
            to_metric_grey(imageio.imread(root / "pairs" / "lytro" / f"lytro-{n:02d}-{s}.jpg")) for s in "AB"
        )
        fused = to_metric_grey(
            imageio.imread(root / "reference" / "liu2017_cnn_lytro" / f"lytro-{n:02d}-cnn.png")
        )
        assert fusion_mi(a, b, fused) == pytest.approx(float(row["MI_qu_bits"]), abs=5e-4), n
        assert q_mi(a, b, fused) == pytest.approx(float(row["Q_MI_hossny"]), abs=5e-4), n
        assert q_abf(a, b, fused) == pytest.approx(float(row["Qabf"]), abs=5e-4), n
