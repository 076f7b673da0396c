"""EM (error-minimising) and TAP (adversarial) poisons: budgets, signs, effect on the surrogate, stop rule,
determinism, registry, bad input. Tiny synthetic data at the smoke profile: seconds on one CPU core."""

from __future__ import annotations

import warnings

import pytest
import torch

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.poisons import REGISTRY, attack_params, make_poison
from uel_helpers.poisons.em import NotConvergedWarning, em_noise
from uel_helpers.poisons.surrogate import build_surrogate, default_surrogate_arch, surrogate_metrics
from uel_helpers.poisons.tap import PROFILE_SETTINGS as TAP_SETTINGS
from uel_helpers.poisons.tap import RandomTransform, label_map, pgd_update, tap_noise, train_tap_surrogate

EPS = 8 / 255
SLACK = 0.5 / 255 + 1e-6
FAST = {"device": "cpu", "quiet": True, "cache": False, "profile": "smoke"}


@pytest.fixture(scope="module")
def tiny() -> ImageSet:
    """10 classes x 20 images, 3 x 16 x 16."""
    return synthetic_dataset(n_per_class=20, num_classes=10, channels=3, size=16, seed=1)


@pytest.fixture(scope="module")
def random_labels(tiny: ImageSet) -> ImageSet:
    """The same images with shuffled labels: not learnable from the images in a few SGD steps."""
    labels = tiny.labels[torch.randperm(len(tiny), generator=torch.Generator().manual_seed(3))]
    return ImageSet(tiny.images, labels, tiny.classes, name="random-labels")


@pytest.fixture(scope="module")
def poisons(tiny: ImageSet) -> dict:
    """One poison of each kind, made once through the registry (make_poison)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotConvergedWarning)
        return {
            "em-samplewise": make_poison("em-samplewise", tiny, seed=0, **FAST),
            "em-classwise": make_poison("em-classwise", tiny, seed=0, **FAST),
            "tap": make_poison("tap", tiny, seed=0, **FAST),
        }


def _check_budget(poison, clean: ImageSet, eps: float = EPS) -> torch.Tensor:
    eff = poison.effective_perturbation(clean)
    assert poison.poisoned.images.dtype == torch.uint8
    assert float(eff.abs().max()) <= eps + SLACK
    assert float(poison.perturbation.abs().max()) <= eps + 1e-6
    return eff


@pytest.mark.parametrize("name", ["em-samplewise", "em-classwise", "tap"])
def test_budget_shape_and_signed_noise(poisons, tiny, name):
    poison = poisons[name]
    eff = _check_budget(poison, tiny)
    expected = (tiny.num_classes if name == "em-classwise" else len(tiny), *tiny.shape)
    assert tuple(poison.perturbation.shape) == expected
    assert poison.classwise is (name == "em-classwise")
    # Signed noise: negative values in δ AND in what the victim sees (regression: the original EM
    # loader's clamp(0, 255) before adding deleted every negative entry).
    assert (poison.perturbation < 0).any() and (poison.perturbation > 0).any()
    assert (eff < -0.5 / 255).any() and (eff > 0.5 / 255).any()
    assert poison.info["notes"] and poison.info["profile"] == "smoke"


def test_em_states_the_clamp_and_the_smaller_surrogate(poisons):
    info = poisons["em-samplewise"].info
    assert any("clamped to [0,1]" in note for note in info["notes"])
    assert info["surrogate"] == "smallcnn" and any("instead of the paper's ResNet-18" in n for n in info["notes"])


def test_tap_reduced_profiles_say_they_are_weaker(poisons, tiny):
    info = poisons["tap"].info
    assert (info["attack_iters"], info["restarts"]) == (5, 2)
    assert any("instead of the paper's 250 x 8" in note for note in info["notes"])
    assert info["recipe"] == "targeted"
    paper, quick = TAP_SETTINGS["paper"], TAP_SETTINGS["quick"]
    assert (paper.attack_iters, paper.restarts, paper.tau, paper.surrogate_epochs) == (250, 8, 0.05, 40)
    assert quick.attack_iters * quick.restarts < paper.attack_iters * paper.restarts
    # TAP keeps x + δ a valid image (the original's second clip), so quantisation never clips it.
    x_adv = tiny.to_float() + poisons["tap"].perturbation
    assert float(x_adv.min()) >= -1e-6 and float(x_adv.max()) <= 1 + 1e-6


def test_tap_pixel_space_step_equals_the_original_normalised_step():
    """δ = std·δ_n: bound ε ↔ ε/std, step τε ↔ τε/std, same gradient sign, range clip [0,1] ↔ [-m/s, (1-m)/s]."""
    gen = torch.Generator().manual_seed(0)
    ds = synthetic_dataset(n_per_class=3, num_classes=4, channels=3, size=16, seed=0)
    model = build_surrogate("smallcnn", ds, seed=0, device=torch.device("cpu"), normalize=True).eval()
    mean, std = model.normalize.mean, model.normalize.std
    x, y = ds.to_float(), ds.labels
    eps, tau = 8 / 255, 0.05
    delta = ((torch.rand(x.shape, generator=gen) * 2 - 1) * eps).clamp(-x, 1 - x)
    d = delta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x + d), y), d)
    ours = pgd_update(delta, g, x, tau * eps, eps)
    # the original: everything in normalised units
    x_n, d_n = (x - mean) / std, (delta / std).requires_grad_(True)
    (g_n,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model.net(x_n + d_n), y), d_n)
    e_n = eps / std
    d_n = torch.max(torch.min(d_n.detach() - tau * e_n * g_n.sign(), e_n), -e_n)
    d_n = torch.max(torch.min(d_n, (1 - mean) / std - x_n), -mean / std - x_n)
    clear = g.abs() > 1e-4 * g.abs().max()  # ignore gradients at the level of float rounding
    assert clear.float().mean() > 0.5
    assert torch.equal(g.sign()[clear], g_n.sign()[clear])
    assert torch.allclose(ours[clear], (d_n * std)[clear], atol=1e-6)


def test_rounding_truncate_quantises_down(tiny):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotConvergedWarning)
        p = make_poison("em-classwise", tiny, seed=0, rounding="truncate", max_rounds=1, **FAST)
    x = (tiny.to_float() + p.perturbation[tiny.labels]).clamp(0, 1)
    assert torch.equal(p.poisoned.images, torch.floor(x * 255).to(torch.uint8))
    assert p.rounding == "truncate"


def test_em_noise_lowers_the_surrogates_loss(random_labels):
    """Error-MINIMISING: on labels the images cannot explain, the noise makes the data easy for the surrogate."""
    # Class-wise: every image in the subset and small batches, so that the class means move several
    # steps per round on 200 images (on CIFAR the 20% subset already holds ~20 batches of 512).
    for classwise, extra in ((False, {}), (True, {"subset_fraction": 1.0, "batch_size": 16})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotConvergedWarning)
            res = em_noise(random_labels, classwise=classwise, profile="smoke", max_rounds=4, seed=0,
                           device="cpu", quiet=True, **extra)
        clean = random_labels.to_float()
        noise = res.delta[random_labels.labels] if classwise else res.delta
        noisy = (clean + noise).clamp(0, 1)
        loss_clean, _ = surrogate_metrics(res.surrogate, clean, random_labels.labels)
        loss_noisy, _ = surrogate_metrics(res.surrogate, noisy, random_labels.labels)
        assert loss_noisy < loss_clean - 0.05, (classwise, loss_noisy, loss_clean)
        # Not accuracy: the small surrogate may predict one class for all 200 images (seen with torch 2.14.1 and
        # 2.11), and then its accuracy cannot move while the loss this test is about falls (18.02 -> 15.57).
        assert res.info["surrogate_loss_poisoned"] < res.info["surrogate_loss_clean"]


def test_tap_raises_the_true_label_loss_and_makes_the_target_likely(tiny):
    """Error-MAXIMISING, measured on the clean-trained surrogate (a large eps makes the direction unmistakable)."""
    big = 32 / 255
    clean = tiny.to_float()
    model, sur_info = train_tap_surrogate(tiny, profile="smoke", seed=0, device="cpu", quiet=True)
    loss_clean, acc_clean = surrogate_metrics(model, clean, tiny.labels)
    assert acc_clean > 0.3 and sur_info["surrogate"] == "smallcnn"  # it learned from the clean data
    kw = {"eps": big, "profile": "smoke", "attack_iters": 4, "restarts": 1, "surrogate_model": model, "seed": 0,
          "device": "cpu", "quiet": True}
    un = tap_noise(tiny, recipe="untargeted", **kw)
    loss_adv, acc_adv = surrogate_metrics(model, (clean + un.delta).clamp(0, 1), tiny.labels)
    assert loss_adv > loss_clean + 0.05 and acc_adv < acc_clean
    assert un.info["surrogate_loss_poisoned"] > un.info["surrogate_loss_clean"]
    tg = tap_noise(tiny, recipe="targeted", **kw)
    target = label_map(tiny.labels, tiny.num_classes)
    t_clean, hit_clean = surrogate_metrics(model, clean, target)
    t_adv, hit_adv = surrogate_metrics(model, (clean + tg.delta).clamp(0, 1), target)
    assert t_adv < t_clean - 0.05 and hit_adv > hit_clean
    assert tg.info["target_rate_poisoned"] > tg.info["target_rate_clean"]
    assert float(tg.delta.abs().max()) <= big + 1e-6


def test_em_stops_as_soon_as_the_accuracy_threshold_is_met(random_labels):
    """Class-wise noise on random labels needs a few rounds; the loop ends at the first round >= 1 - stop_error."""
    res = em_noise(random_labels, classwise=True, profile="smoke", surrogate="fastnet-small", stop_error=0.1,
                   max_rounds=10, subset_fraction=1.0, batch_size=16, seed=0, device="cpu", quiet=True)
    accs = res.info["train_acc_per_round"]
    assert res.info["converged"] and accs[-1] >= 0.9
    assert len(accs) >= 2 and all(a < 0.9 for a in accs[:-1]) and res.info["rounds"] == len(accs) < 10


def test_em_round_cap_warns_and_records_non_convergence(random_labels):
    with pytest.warns(NotConvergedWarning, match="max_rounds=1"):
        p = make_poison("em-classwise", random_labels, seed=0, max_rounds=1, **FAST)
    assert p.info["converged"] is False and p.info["rounds"] == 1
    assert p.info["final_train_acc"] < 0.99


SHORT = {"em-samplewise": {"max_rounds": 1}, "em-classwise": {"max_rounds": 1},
         "tap": {"attack_iters": 2, "restarts": 1, "surrogate_epochs": 1}}


@pytest.mark.parametrize("name", sorted(SHORT))
def test_same_seed_same_bytes(tiny, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotConvergedWarning)
        a, b, other = (make_poison(name, tiny, seed=s, **SHORT[name], **FAST) for s in (0, 0, 1))
    assert torch.equal(a.poisoned.images, b.poisoned.images)
    assert torch.equal(a.perturbation, b.perturbation)
    assert not torch.equal(a.perturbation, other.perturbation)


def test_registry_integration_and_cache(tiny):
    for name in ("em-samplewise", "em-classwise", "tap"):
        assert name in REGISTRY and REGISTRY[name].budget == "Linf 8/255"
        params = attack_params(name)
        assert {"eps", "seed", "profile", "device", "quiet"} <= set(params)
    assert attack_params("tap")["recipe"] == "targeted"
    with pytest.raises(ValueError, match="no parameter"):
        make_poison("em-samplewise", tiny, steps_per_round=3, **FAST)
    kwargs = {"device": "cpu", "quiet": True, "profile": "smoke", "max_rounds": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotConvergedWarning)
        first = make_poison("em-classwise", tiny, seed=0, **kwargs)
        second = make_poison("em-classwise", tiny, seed=0, **kwargs)  # loaded from the cache
    assert torch.equal(first.poisoned.images, second.poisoned.images)
    assert second.params["profile"] == "smoke" and second.info["surrogate"] == "smallcnn"


def test_grayscale_and_small_images(tiny):
    gray = synthetic_dataset(n_per_class=6, num_classes=4, channels=1, size=8, seed=2)
    assert default_surrogate_arch("smoke", gray.image_size) == "smallcnn"
    assert default_surrogate_arch("paper", gray.image_size) == "resnet18"
    for name, extra in (("em-classwise", {"max_rounds": 1}), ("tap", {"attack_iters": 1, "restarts": 1})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotConvergedWarning)
            p = make_poison(name, gray, seed=0, **extra, **FAST)
        _check_budget(p, gray)
        assert p.info["surrogate"] == "smallcnn"


@pytest.mark.parametrize("name", ["em-samplewise", "em-classwise", "tap"])
@pytest.mark.parametrize("eps", [0, -0.1, 1.5, 8])
def test_bad_eps(tiny, name, eps):
    with pytest.raises(ValueError, match="eps"):
        make_poison(name, tiny, eps=eps, **FAST)


# (call on the clean set, expected exception, message pattern); one case, one failure
BAD_INPUT = {
    "tap recipe='mixed'": (lambda ds: make_poison("tap", ds, recipe="mixed", **FAST), ValueError,
                           "unknown recipe 'mixed'"),
    "em rounding='floor'": (lambda ds: make_poison("em-samplewise", ds, rounding="floor", **FAST), ValueError,
                            "rounding"),
    "tap surrogate='vgg'": (lambda ds: make_poison("tap", ds, surrogate="vgg", **FAST), ValueError,
                            "unknown surrogate 'vgg'"),
    "em max_rounds=0": (lambda ds: make_poison("em-classwise", ds, max_rounds=0, **FAST), ValueError, "max_rounds"),
    "em stop_error=1": (lambda ds: make_poison("em-samplewise", ds, stop_error=1.0, **FAST), ValueError,
                        "stop_error"),
    "em_noise tensor": (lambda ds: em_noise(ds.images, classwise=False), TypeError, "ImageSet"),
}


@pytest.mark.parametrize(("call", "error", "match"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input(tiny, call, error, match):
    with pytest.raises(error, match=match):
        call(tiny)


def test_random_transform_matches_the_reference_and_shifts_at_most_4_pixels():
    t = RandomTransform(shift=8, flip=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(32, 3, 32, 32, generator=gen)
    r = t.draw(32, gen)
    ref = t.apply(x, r, impl="grid_sample")
    assert torch.allclose(t.apply(x, r, impl="separable"), ref, atol=1e-5)
    # An impulse moves by exactly (r0 - 0.5) * 2 * 4 px; r0 = 1 is the extreme: 4 px, sampled from the right.
    img = torch.zeros(1, 1, 32, 32)
    img[0, 0, 10, 20] = 1.0
    r_max = torch.tensor([[1.0, 0.5, 0.0, 0.0]])
    out = t.apply(img, r_max)
    assert out[0, 0, 10, 16] == pytest.approx(1.0, abs=1e-5) and float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    flipped = t.apply(img, torch.tensor([[0.5, 0.5, 1.0, 0.0]]))
    assert flipped[0, 0, 10, 31 - 20] == pytest.approx(1.0, abs=1e-5)
    grad_x = x.clone().requires_grad_(True)
    t.apply(grad_x, r).sum().backward()  # differentiable
    assert grad_x.grad is not None and torch.isfinite(grad_x.grad).all()
