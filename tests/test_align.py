"""Alignment beyond translation: known scale and rotation changes between slices."""

import numpy as np
import pytest
from skimage import data

from acnn_fusion import fuse_stack
from acnn_fusion.core.align import apply_shifts, apply_transforms, estimate_transforms
from acnn_fusion.synthetic import render_breathing_stack


@pytest.fixture(scope="module")
def breathing():
    """5 slices, magnified 2 % per slice (±4 % at the ends) and turned 0.3° per slice."""
    sharp = data.camera()[::2, ::2][:192, :224]
    _yy, xx = np.mgrid[0:192, 0:224]
    return render_breathing_stack(
        sharp, 4.0 * xx / 223.0, 5, scale_per_slice=0.02, rotation_per_slice=0.005, radius_per_slice=1.5
    )


def _scale_and_angle(transforms):
    return np.sqrt(np.abs(np.linalg.det(transforms[:, :2, :2]))), np.arctan2(
        transforms[:, 1, 0], transforms[:, 0, 0]
    )


@pytest.mark.parametrize("model", ["similarity", "affine"])
def test_known_scale_change_is_recovered_within_half_a_percent(breathing, model):
    estimated = estimate_transforms(breathing.stack.astype(np.float64), model)
    scale, angle = _scale_and_angle(estimated)
    _, true_angle = _scale_and_angle(breathing.transforms)
    np.testing.assert_array_less(np.abs(scale / breathing.magnification - 1), 0.005)
    np.testing.assert_allclose(angle, true_angle, atol=0.003)  # radians (truth: up to 0.01)
    # the whole map, not just its scale: every corner lands within a pixel
    corners = np.array([[0, 0, 1], [0, 223, 1], [191, 0, 1], [191, 223, 1]], float).T
    assert np.abs(estimated @ corners - breathing.transforms @ corners).max() < 1.0
    # a translation cannot see it
    translation, _ = _scale_and_angle(estimate_transforms(breathing.stack.astype(np.float64), "translation"))
    assert np.abs(translation / breathing.magnification - 1).max() > 0.03


def test_large_frames_are_registered_coarse_to_fine():
    """A 3-slice breathing stack of 1024² frames goes through the coarse estimate (block means
    of 2×2) and one full-size refinement; the known scale is still recovered within 0.5 %."""
    from acnn_fusion.core import align

    sharp = np.kron(data.camera(), np.ones((2, 2), np.uint8))
    assert align._coarse_factor(sharp.shape) == 2
    _yy, xx = np.mgrid[0:1024, 0:1024]
    case = render_breathing_stack(
        sharp, 2.0 * xx / 1023.0, 3, scale_per_slice=0.02, rotation_per_slice=0.004, radius_per_slice=1.0
    )
    estimated = estimate_transforms(case.stack.astype(np.float64), "similarity")
    scale, angle = _scale_and_angle(estimated)
    _, true_angle = _scale_and_angle(case.transforms)
    np.testing.assert_array_less(np.abs(scale / case.magnification - 1), 0.005)
    np.testing.assert_allclose(angle, true_angle, atol=0.002)
    corners = np.array([[0, 0, 1], [0, 1023, 1], [1023, 0, 1], [1023, 1023, 1]], float).T
    assert np.abs(estimated @ corners - case.transforms @ corners).max() < 1.0


def test_align_undoes_breathing_in_the_fold(breathing):
    plain = fuse_stack(breathing.stack, precision="fp32")
    aligned = fuse_stack(breathing.stack, precision="fp32", align=True)  # similarity by default
    assert aligned.transforms is not None and aligned.shifts is not None
    truth = breathing.depth_index.astype(int)
    inner = (slice(24, -24), slice(24, -24))  # the ends of the stack see less than the middle

    def accuracy(result):
        return np.mean(np.abs(result.depth_map[inner].astype(int) - truth[inner]) <= 1)

    assert accuracy(aligned) > accuracy(plain)
    # the sharp middle-slice picture is rebuilt better once the slices are registered
    error_plain = np.abs(plain.fused[inner].astype(float) - breathing.sharp[inner]).mean()
    error_aligned = np.abs(aligned.fused[inner].astype(float) - breathing.sharp[inner]).mean()
    assert error_aligned < error_plain


def test_translation_transforms_resample_as_shifts():
    stack = np.random.default_rng(0).integers(0, 4000, (3, 40, 48), dtype=np.uint16)
    shifts = np.array([[1.5, -2.25], [0, 0], [-0.5, 3.0]])
    transforms = np.tile(np.eye(3), (3, 1, 1))
    transforms[:, :2, 2] = -shifts
    assert np.array_equal(apply_transforms(stack, transforms), apply_shifts(stack, shifts))


def test_unknown_align_model_is_refused():
    with pytest.raises(ValueError, match="align_model"):
        fuse_stack(np.zeros((3, 32, 32), np.uint8), align=True, align_model="projective")
