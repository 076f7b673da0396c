"""Training-time defenses in the trainer: CutMix / MixUp and PGD adversarial training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from uel_helpers.data import synthetic_dataset
from uel_helpers.training import Protocol, get_protocol, mix_batch, pgd_attack, train
from uel_helpers.transforms import cutmix, cutmix_box, mixed_correct, mixed_loss, mixup


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _constant_batch(n: int = 8, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i is filled with the value i and has label i: a mixed pixel tells where it came from."""
    y = torch.arange(n)
    return y.float().view(n, 1, 1, 1).expand(n, 3, size, size).clone(), y


# --- validation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("changes", "message"), [
    ({"mix": "cutout"}, "unknown mix 'cutout'; expected one of"),
    ({"mix_alpha": 0.0}, "mix_alpha must be > 0"),
    ({"mix_alpha": -1.0}, "mix_alpha must be > 0"),
    ({"adv_eps": -0.1}, r"adv_eps must be in \[0, 1\]"),
    ({"adv_eps": 8.0}, r"adv_eps must be in \[0, 1\]"),
    ({"adv_eps": 8 / 255, "adv_steps": 0}, "adv_steps must be >= 1 when adv_eps > 0"),
    ({"adv_step_size": 0.0}, "adv_step_size must be > 0"),
])
def test_defense_fields_are_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        get_protocol("smoke").with_(**changes)
    with pytest.raises(ValueError, match=message):
        Protocol("x", "smallcnn", 1, 1, 0.1, **changes)


def test_defense_defaults_are_off_and_valid_settings_pass():
    p = get_protocol("smoke")
    assert (p.mix, p.mix_alpha, p.adv_eps, p.adv_steps, p.adv_step_size) == ("none", 1.0, 0.0, 10, 2 / 255)
    assert p.with_(adv_steps=0).adv_steps == 0  # irrelevant while adversarial training is off
    q = p.with_(mix="mixup", mix_alpha=0.2, adv_eps=8 / 255)
    assert q.to_dict()["mix"] == "mixup" and q.to_dict()["adv_eps"] == 8 / 255


# --- CutMix / MixUp --------------------------------------------------------------------------------------


def test_cutmix_box_is_clipped_and_sized():
    rng = np.random.default_rng(0)
    for lam in (0.0, 0.3, 0.7, 1.0):
        for _ in range(20):
            y1, y2, x1, x2 = cutmix_box(8, 8, lam, rng)
            assert 0 <= y1 <= y2 <= 8 and 0 <= x1 <= x2 <= 8
            assert (y2 - y1) * (x2 - x1) <= 64 * (1 - lam) + 1e-9
    y1, y2, x1, x2 = cutmix_box(8, 8, 1.0, rng)
    assert (y2 - y1) * (x2 - x1) == 0  # lam = 1: nothing pasted


def test_cutmix_pastes_a_box_from_the_partner_and_lambda_is_its_area():
    x, y = _constant_batch()
    for seed in range(10):
        out, y_a, y_b, lam = cutmix(x, y, 1.0, _gen(seed))
        assert out.shape == x.shape and torch.equal(y_a, y) and sorted(y_b.tolist()) == y.tolist()
        assert torch.equal(x, _constant_batch()[0])  # input untouched
        for i in range(len(y)):
            own = out[i] == float(i)
            partner = out[i] == float(y_b[i])
            assert (own | partner).all()  # every pixel is the image's own or its partner's
            if y_b[i] != i:  # labels are paired with the pixels they came from
                assert float(partner.float().mean()) == pytest.approx(1 - lam)
        assert 0 <= lam <= 1


def test_mixup_is_a_convex_combination_with_the_partner():
    x, y = _constant_batch()
    out, y_a, y_b, lam = mixup(x, y, 0.4, _gen(3))
    assert out.shape == x.shape and torch.equal(y_a, y) and 0 < lam < 1
    expected = lam * y.float() + (1 - lam) * y_b.float()
    assert torch.allclose(out, expected.view(-1, 1, 1, 1).expand_as(out))


@pytest.mark.parametrize("fn", [cutmix, mixup])
def test_mixing_is_deterministic_for_a_seeded_generator(fn):
    x, y = torch.rand(16, 3, 8, 8, generator=_gen(9)), torch.arange(16) % 4
    a, b = fn(x, y, 1.0, _gen(1)), fn(x, y, 1.0, _gen(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) and a[3] == b[3]
    others = [fn(x, y, 1.0, _gen(s)) for s in range(2, 6)]
    assert any(not torch.equal(a[0], o[0]) for o in others)


def test_mix_batch_dispatch_and_mixed_loss_with_label_smoothing():
    x, y = torch.rand(6, 3, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    same = mix_batch(x, y, get_protocol("smoke"), _gen())
    assert same[0] is x and same[1] is y and same[2] is y and same[3] == 1.0
    _, _, y_b, lam = mix_batch(x, y, get_protocol("smoke").with_(mix="mixup"), _gen())
    logits = torch.randn(6, 3, generator=_gen(1))
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    want = lam * ce(logits, y) + (1 - lam) * ce(logits, y_b)
    assert torch.allclose(mixed_loss(ce, logits, y, y_b, lam), want)
    assert torch.equal(mixed_loss(ce, logits, y, y_b, 1.0), ce(logits, y))
    pred_right = F.one_hot(y, 3).float()
    assert float(mixed_correct(pred_right, y, y_b, lam)) == pytest.approx(lam * 6 + (1 - lam) * float((y == y_b).sum()))


# --- PGD ----------------------------------------------------------------------------------------------------


class _ModeSpy(nn.Module):
    """A fixed linear classifier that records whether it was called in training mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 8 * 8, 4)
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.fc(x.flatten(1))


def test_pgd_stays_in_the_ball_and_in_range_and_increases_the_loss():
    torch.manual_seed(0)
    model = _ModeSpy().train()
    x = torch.rand(32, 3, 8, 8, generator=_gen(1))
    x[:4] = 0.0  # corners of the pixel range: the clamp must keep them in [0,1]
    x[4:8] = 1.0
    y = torch.arange(32) % 4
    eps = 8 / 255
    x_adv = pgd_attack(model, x, y, eps, 5, 2 / 255, _gen(2))
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > eps / 2  # it moved
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y) + 1e-3
    assert model.modes[:5] == [False] * 5 and model.training  # eval while attacking, train mode restored
    assert torch.equal(x_adv, pgd_attack(model, x, y, eps, 5, 2 / 255, _gen(2)))  # seeded -> same batch


# --- the trainer with each option ------------------------------------------------------------------------


SMOKE_1 = get_protocol("smoke").with_(epochs=1, batch_size=20)


@pytest.fixture(scope="module")
def tiny_8px():
    return (synthetic_dataset(n_per_class=20, num_classes=4, size=8, seed=1),
            synthetic_dataset(n_per_class=5, num_classes=4, size=8, seed=1))


@pytest.fixture(scope="module")
def plain_history(tiny_8px):
    return train(*tiny_8px, SMOKE_1, seed=0, device="cpu", quiet=True)


@pytest.mark.parametrize("changes", [
    {"mix": "cutmix"},
    {"mix": "mixup", "mix_alpha": 0.4, "label_smoothing": 0.1},
    {"adv_eps": 8 / 255, "adv_steps": 2},
    {"adv_eps": 4 / 255, "adv_steps": 1, "mix": "cutmix"},
])
def test_train_with_defense_runs_and_is_deterministic(tiny_8px, plain_history, changes):
    train_set, test_set = tiny_8px
    proto = SMOKE_1.with_(**changes)
    h1 = train(train_set, test_set, proto, seed=0, device="cpu", quiet=True)
    h2 = train(train_set, test_set, proto, seed=0, device="cpu", quiet=True)
    assert h1.epochs == 1 and len(h1.train_acc) == 1 and 0 <= h1.train_acc[0] <= 1
    assert (h1.train_loss, h1.train_acc, h1.test_acc) == (h2.train_loss, h2.train_acc, h2.test_acc)
    assert h1.config["protocol"]["mix"] == proto.mix and h1.config["protocol"]["adv_eps"] == proto.adv_eps
    assert plain_history.train_loss != h1.train_loss  # the option changed the training batches
