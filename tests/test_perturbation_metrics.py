"""Tests for uel_helpers.perturbation_metrics: PSNR, perturbation survival, cosine similarity."""

from __future__ import annotations

import math

import pytest
import torch

from uel_helpers.data import ImageSet
from uel_helpers.perturbation_metrics import cosine_similarity, perturbation_survival, perturbation_transfer, psnr


def _sets(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    clean_u8 = torch.randint(40, 216, (6, 3, 8, 8), generator=g, dtype=torch.uint8)
    delta_u8 = torch.randint(-8, 9, (6, 3, 8, 8), generator=g)
    poisoned_u8 = (clean_u8.int() + delta_u8).to(torch.uint8)  # no clipping needed: clean is in [40, 215]
    labels = torch.arange(6) % 2
    mk = lambda x: ImageSet(x, labels, ("a", "b"))  # noqa: E731
    return mk(clean_u8), mk(poisoned_u8), delta_u8.float() / 255


def test_psnr_matches_the_formula_and_is_inf_for_identical_images():
    clean, poisoned, delta = _sets()
    want = 10 * torch.log10(1 / delta.pow(2).flatten(1).mean(1))
    torch.testing.assert_close(psnr(clean, poisoned), want)
    assert torch.isinf(psnr(clean, clean)).all()


def test_survival_is_one_when_untouched_zero_when_removed_and_half_when_halved():
    clean, poisoned, delta = _sets()
    assert perturbation_survival(clean, poisoned, poisoned) == pytest.approx(1.0)
    assert perturbation_survival(clean, poisoned, clean) == pytest.approx(0.0)
    half = clean.images.float() / 255 + delta / 2  # float images are accepted as they are
    assert perturbation_survival(clean, poisoned, half) == pytest.approx(0.5, abs=1e-6)


def test_survival_ignores_content_changes_orthogonal_to_delta():
    clean, poisoned, delta = _sets()
    other = torch.randn(delta.shape, generator=torch.Generator().manual_seed(3))
    flat_d, flat_o = delta.flatten(), other.flatten()
    orth = (flat_o - flat_o.dot(flat_d) / flat_d.dot(flat_d) * flat_d).view_as(delta)
    purified = clean.images.float() / 255 + 0.25 * delta + 0.01 * orth
    assert perturbation_survival(clean, poisoned, purified) == pytest.approx(0.25, abs=1e-5)


def _other_labels(poisoned: ImageSet) -> ImageSet:
    return ImageSet(poisoned.images, 1 - poisoned.labels, poisoned.classes)


# (call on (clean, poisoned), expected exception, message pattern); one case, one failure
SURVIVAL_BAD_INPUTS = {
    "no perturbation": (lambda c, p: perturbation_survival(c, c, c), ValueError, "no perturbation"),
    "different labels": (lambda c, p: perturbation_survival(c, _other_labels(p), p), ValueError, "different labels"),
    "fewer purified images": (lambda c, p: perturbation_survival(c, p, p.images[:3]), ValueError, "same images"),
    "psnr numpy": (lambda c, p: psnr(c, p.images.numpy()), TypeError, "ImageSet or a tensor"),
    "psnr int32": (lambda c, p: psnr(c.images.int(), c.images.int()), TypeError, "uint8"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(SURVIVAL_BAD_INPUTS.values()),
                         ids=list(SURVIVAL_BAD_INPUTS))
def test_survival_needs_a_perturbation_and_aligned_sets(call, error, match):
    clean, poisoned, _ = _sets()
    with pytest.raises(error, match=match):
        call(clean, poisoned)


def test_cosine_similarity():
    _, _, delta = _sets()
    torch.testing.assert_close(cosine_similarity(3 * delta, delta), torch.ones(6))
    torch.testing.assert_close(cosine_similarity(-delta, delta), -torch.ones(6))
    estimate = delta.clone()
    estimate[0] = 0
    cos = cosine_similarity(estimate, delta)
    assert math.isnan(cos[0]) and torch.allclose(cos[1:], torch.ones(5))
    with pytest.raises(ValueError, match="same shape"):
        cosine_similarity(delta[:2], delta)
    with pytest.raises(TypeError, match="float tensor"):
        cosine_similarity((delta * 255).to(torch.uint8), delta)


def test_transfer_excludes_the_purifiers_own_error():
    clean, poisoned, delta = _sets()
    x = clean.images.float() / 255
    err = torch.full_like(x, 0.05)  # a purifier that brightens everything by 0.05 ...
    f_clean, f_poisoned = x + err, x + err + 0.3 * delta  # ... and passes 30% of δ
    assert perturbation_transfer(clean, poisoned, f_clean, f_poisoned) == pytest.approx(0.3, abs=1e-5)
    biased = perturbation_survival(clean, poisoned, f_poisoned)  # survival counts the brightening too
    want = 0.3 + float((err * delta).sum() / delta.pow(2).sum())
    assert biased == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="purified clean set"):
        perturbation_transfer(clean, poisoned, f_clean[:2], f_poisoned)
