"""Tests for D-VAE and the plain rate-constrained VAE (uel_helpers.defenses.dvae): tiny data, 1 epoch, seconds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from uel_helpers.data import ImageSet, synthetic_dataset
from uel_helpers.defenses import REGISTRY, apply_defense, dvae, get_defense
from uel_helpers.defenses.dvae import (
    DVAE,
    PROFILE_SETTINGS,
    VAE,
    build_dvae,
    build_vae,
    dvae_loss,
    kl_divergence,
    kl_hinge,
    kl_weight,
    purify,
    purify_stage,
    reconstruct,
    stage_seed,
    train_dvae,
    train_vae,
    vae_purify,
    vae_reconstruct,
)
from uel_helpers.defenses.dvae import training as dvae_training
from uel_helpers.training import get_protocol

TINY = {"profile": "smoke", "width": 4, "latent_dim": 8, "quiet": True, "device": "cpu"}


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions are far slower with 2 threads on a busy 2-core machine; restore afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(channels: int = 3, size: int = 8, seed: int = 0) -> ImageSet:
    return synthetic_dataset(n_per_class=8, num_classes=4, channels=channels, size=size, seed=seed)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --- shapes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,size,latent", [(1, 8, 4), (3, 8, 4), (1, 16, 8), (3, 28, 14), (1, 28, 14),
                                                  (3, 32, 16), (3, 64, 32), (3, 224, 28)])
def test_model_shapes(channels, size, latent):
    model = build_dvae((channels, size, size), 4, width=4, latent_dim=8)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        out = model(x, torch.tensor([0, 3]))
    assert out.x_hat.shape == out.p_hat.shape == x.shape
    assert out.mu.shape == out.logvar.shape == (2, 8, latent, latent)
    assert 0 <= float(out.x_hat.min()) and float(out.x_hat.max()) <= 1
    assert model.arch["levels"] == (3 if size > 64 else 1)
    assert model.embedding.weight.shape == (4, 4 * 2 ** model.arch["levels"] * latent * latent)
    vae = build_vae((channels, size, size), width=4, latent_dim=8)
    assert vae(x).x_hat.shape == x.shape and not hasattr(vae, "decoder_p")


def test_paper_architecture_at_cifar_size():
    model = build_dvae((3, 32, 32), 10)
    assert model.latent_shape == (256, 16, 16) and model.hidden_shape == (128, 16, 16)
    assert model.embedding.weight.shape == (10, 128 * 16 * 16)
    assert isinstance(model.decoder[-1], torch.nn.Sigmoid) and not isinstance(model.decoder_p[-1], torch.nn.Sigmoid)
    norms = [m for m in model.decoder.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 2 and not any(m.affine for m in norms)
    assert PROFILE_SETTINGS["paper"] == dvae.DVAESettings(60, 64, 256, 128)


@pytest.mark.parametrize("channels,size", [(1, 8), (3, 16)])
def test_purify_returns_uint8_with_same_labels(channels, size):
    ds = tiny(channels, size)
    out = purify(ds, cache=False, **TINY)
    assert isinstance(out, ImageSet) and out.images.dtype == torch.uint8 and out.images.shape == ds.images.shape
    assert torch.equal(out.labels, ds.labels) and out.classes == ds.classes
    assert out.meta["defenses"][-1] == "dvae" and out.name.endswith("+dvae")
    info = out.meta["dvae"]
    assert info["stage_caps"] == [1.0, 3.0] and [s["stage"] for s in info["stages"]] == [1, 2]
    assert any("w=4" in n for n in info["notes"]) and any("epochs" in n for n in info["notes"])


def test_size_errors_say_what_works():
    with pytest.raises(ValueError, match=r"multiples of 2 and at least 4 px"):
        purify(ImageSet(torch.zeros(4, 3, 7, 7, dtype=torch.uint8), torch.arange(4), list("abcd")), cache=False, **TINY)
    with pytest.raises(ValueError, match="at least 4 px"):
        purify(ImageSet(torch.zeros(4, 1, 2, 2, dtype=torch.uint8), torch.arange(4), list("abcd")), cache=False, **TINY)
    with pytest.raises(ValueError, match=r"levels=\[1, 2\] would work for 28x28"):
        build_dvae((1, 28, 28), 4, width=4, latent_dim=8, levels=3)
    with pytest.raises(ValueError, match=r"levels=\[1\] would work for 226x226"):
        build_dvae((3, 226, 226), 4, width=4, latent_dim=8)


# --- the loss ----------------------------------------------------------------------------------------------

def test_kl_hinge_passes_no_gradient_below_the_cap():
    mu = torch.full((2, 8, 4, 4), 0.01, requires_grad=True)
    logvar = torch.full((2, 8, 4, 4), -0.01, requires_grad=True)
    kl = kl_divergence(mu, logvar)
    assert 0 < float(kl.detach()) < 1.0
    kl_hinge(kl, 1.0).backward()
    assert torch.count_nonzero(mu.grad) == 0 and torch.count_nonzero(logvar.grad) == 0
    # above the cap: w_KL * KL, with gradient
    mu2 = torch.full((2, 8, 4, 4), 1.0, requires_grad=True)
    logvar2 = torch.zeros((2, 8, 4, 4), requires_grad=True)
    kl2 = kl_divergence(mu2, logvar2)
    assert math.isclose(float(kl2.detach()), 4.0, rel_tol=1e-6)  # 8 channels x mu^2 / 2
    h = kl_hinge(kl2, 1.0)
    assert math.isclose(float(h.detach()), 0.01 * 4.0, rel_tol=1e-6)
    h.backward()
    assert torch.all(mu2.grad != 0)
    assert float(kl_hinge(kl, 1.0).detach()) == pytest.approx(0.01 * 1.0)  # the constant C below the cap
    assert (kl_weight(1.0), kl_weight(3.0), kl_weight(0.5)) == (0.01, 0.01, 0.5)


def test_kl_hinge_on_the_model_latent_parameters():
    model = build_dvae((3, 8, 8), 4, width=4, latent_dim=8)
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    latent = [model.mu.weight, model.mu.bias, model.logvar.weight, model.logvar.bias]
    out = model(x, y, generator=torch.Generator().manual_seed(0))
    kl = kl_divergence(out.mu, out.logvar)
    below = torch.autograd.grad(kl_hinge(kl, float(kl.detach()) + 1.0), latent, retain_graph=True)
    assert all(torch.count_nonzero(g) == 0 for g in below)
    above = torch.autograd.grad(kl_hinge(kl, float(kl.detach()) / 2), latent, retain_graph=True)
    assert all(torch.count_nonzero(g) > 0 for g in above)
    # the full loss with the cap above KL has exactly the gradient of its two reconstruction terms
    terms = dvae_loss(x, out, float(kl.detach()) + 1.0, floor_on=False)
    g_full = torch.autograd.grad(terms["loss"], latent, retain_graph=True)
    g_rec = torch.autograd.grad(terms["rec"] + terms["rec_p"], latent)
    assert all(torch.equal(a, b) for a, b in zip(g_full, g_rec, strict=True))


def test_perturbation_energy_floor():
    x = torch.rand(2, 1, 4, 4)
    mu = logvar = torch.zeros(2, 8, 2, 2)
    small = dvae.DVAEOutput(x.clone(), torch.full_like(x, 0.01), mu, logvar)   # mean p̂² = 1e-4 < 0.002
    big = dvae.DVAEOutput(x.clone(), torch.full_like(x, 0.1), mu, logvar)      # mean p̂² = 0.01
    off = dvae_loss(x, small, 1.0, floor_on=False)["loss"]
    assert float(dvae_loss(x, small, 1.0, floor_on=True)["loss"] - off) == pytest.approx(0.002)
    t = dvae_loss(x, big, 1.0, floor_on=True)
    assert float(t["p_energy"]) == pytest.approx(0.01)
    assert float(t["loss"]) == pytest.approx(float(t["rec"] + t["rec_p"]) + 0.01 * 1.0 + 0.01, rel=1e-5)


# --- the two stages ----------------------------------------------------------------------------------------

def test_stage_two_trains_a_fresh_model_on_stage_one_output(monkeypatch):
    ds = tiny(3, 8)
    calls = []
    original = dvae_training._fit

    def spy(model, x_u8, y, cfg, seed, *args, **kwargs):
        start = {k: v.clone() for k, v in model.state_dict().items()}
        hist = original(model, x_u8, y, cfg, seed, *args, **kwargs)
        calls.append({"start": start, "model": model, "x": x_u8.clone(), "cap": cfg.kl_cap, "seed": seed})
        return hist

    monkeypatch.setattr(dvae_training, "_fit", spy)
    out = purify(ds, cache=False, **TINY)
    assert [c["cap"] for c in calls] == [1.0, 3.0]
    s1, s2 = calls
    fresh2 = build_dvae(ds.shape, ds.num_classes, width=4, latent_dim=8, seed=stage_seed(0, 2)).state_dict()
    assert _states_equal(s2["start"], fresh2)
    assert not _states_equal(s2["start"], s1["model"].state_dict())    # not stage 1's trained weights
    assert not _states_equal(s2["start"], s1["start"])                 # and not stage 1's init either
    fresh1 = build_dvae(ds.shape, ds.num_classes, width=4, latent_dim=8, seed=stage_seed(0, 1)).state_dict()
    assert _states_equal(s1["start"], fresh1)
    assert s2["model"] is not s1["model"]
    # stage 1 output (the residual x - p̂) is stage 2's training set; the output is stage 2's reconstruction
    x1 = purify_stage(s1["model"], ds, 1, seed=stage_seed(0, 1))
    assert torch.equal(s1["x"], ds.images) and torch.equal(s2["x"], x1.images)
    x2 = purify_stage(s2["model"], x1, 2, seed=stage_seed(0, 2))
    assert torch.equal(out.images, x2.images)


def test_purify_stage_formulas():
    ds = tiny(1, 8)
    model = train_dvae(ds, 1.0, cache=False, **TINY)
    x = ds.to_float()
    for sample in (True, False):
        res = reconstruct(model, ds, sample_latent=sample, seed=5)
        s1 = purify_stage(model, ds, 1, sample_latent=sample, seed=5)
        assert torch.equal(s1.images, torch.floor(res.residual * 255).to(torch.uint8))  # truncation
        assert torch.allclose(res.residual, torch.clamp(x - res.p_hat, 0, 1))
    a = reconstruct(model, ds, sample_latent=False, seed=1)
    b = reconstruct(model, ds, sample_latent=False, seed=2)
    assert torch.equal(a.x_hat, b.x_hat) and torch.equal(a.p_hat, b.p_hat)  # z = mu: no noise
    c = reconstruct(model, ds, sample_latent=True, seed=1)
    assert not torch.equal(a.x_hat, c.x_hat)
    assert c.kl.shape == (len(ds),) and torch.all(c.kl >= 0)
    r = purify_stage(model, ds, 1, rounding="round", seed=5)
    assert r.images.dtype == torch.uint8 and r.meta["defenses"][-1] == "dvae-stage1"


def test_determinism_for_a_seed_on_cpu():
    ds = tiny(3, 8)
    a = purify(ds, cache=False, seed=3, **TINY)
    b = purify(ds, cache=False, seed=3, **TINY)
    c = purify(ds, cache=False, seed=4, **TINY)
    assert torch.equal(a.images, b.images)
    assert not torch.equal(a.images, c.images)


# --- caching and resuming ----------------------------------------------------------------------------------

def _count_fits(monkeypatch) -> list:
    calls: list = []
    original = dvae_training._fit

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(dvae_training, "_fit", counting)
    return calls


def test_second_call_comes_from_the_cache(monkeypatch, tmp_path):
    ds = tiny(1, 8)
    calls = _count_fits(monkeypatch)
    first = purify(ds, **TINY)
    assert len(calls) == 2
    second = purify(ds, **TINY)
    assert len(calls) == 2 and torch.equal(first.images, second.images)
    assert (tmp_path / "cache" / "dvae-purified").is_dir() and (tmp_path / "cache" / "dvae-model").is_dir()
    # the trained models are cached too, by data + settings (not by attack): the stage-1 model is reused
    model = train_dvae(ds, 1.0, seed=stage_seed(0, 1), **TINY)
    assert len(calls) == 2 and isinstance(model, DVAE)
    # run_stages with purify's arguments: the same models from the cache, the same output, and the stage-1 set
    stages = dvae.run_stages(ds, **TINY)
    assert len(calls) == 2 and [s["from_cache"] for s in stages.info["stages"]] == [True, True]
    assert torch.equal(stages.outputs[-1].images, first.images) and len(stages.models) == 2
    assert torch.equal(stages.outputs[0].images, purify_stage(model, ds, 1, seed=stage_seed(0, 1)).images)
    purify(ds, seed=1, **TINY)
    assert len(calls) == 4
    assert not list((tmp_path / "cache").glob("dvae-checkpoint/*.ckpt"))  # removed once the model is saved


def test_interrupted_training_resumes_from_its_checkpoint(monkeypatch, tmp_path):
    ds = tiny(3, 8)
    kw = dict(TINY, epochs=3)
    straight = train_dvae(ds, 1.0, cache=False, **kw)

    def stop(epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_dvae(ds, 1.0, on_epoch=stop, **kw)
    ckpts = list((tmp_path / "cache").glob("dvae-checkpoint/*.ckpt"))
    assert len(ckpts) == 1
    assert torch.load(ckpts[0], weights_only=True)["epoch"] == 2
    epochs_run = []
    resumed = train_dvae(ds, 1.0, on_epoch=lambda e, h: epochs_run.append(e), **kw)
    assert epochs_run == [3] and resumed.info["history"]["resumed_from_epoch"] == 2
    assert len(resumed.info["history"]["loss"]) == 3
    assert _states_equal(resumed.state_dict(), straight.state_dict())
    assert not ckpts[0].exists()


def test_corrupt_checkpoint_is_ignored_with_a_warning(tmp_path):
    ds = tiny(1, 8)
    # find the checkpoint path the run will use by interrupting it once
    with pytest.raises(KeyboardInterrupt):
        train_dvae(ds, 1.0, on_epoch=lambda e, h: (_ for _ in ()).throw(KeyboardInterrupt), **TINY)
    (ckpt,) = (tmp_path / "cache").glob("dvae-checkpoint/*.ckpt")
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.warns(UserWarning, match="could not be read"):
        model = train_dvae(ds, 1.0, **TINY)
    assert model.info["history"]["resumed_from_epoch"] is None


# --- the plain VAE -----------------------------------------------------------------------------------------

def test_plain_vae_train_and_reconstruct():
    ds = tiny(3, 16)
    model = train_vae(ds, 2.0, cache=False, **TINY)
    assert isinstance(model, VAE) and not isinstance(model, DVAE)
    assert model.info["config"]["kl_cap"] == 2.0 and set(model.info["history"]) >= {"loss", "rec", "kl"}
    rec = vae_reconstruct(model, ds, sample_latent=False)
    assert rec.images.dtype == torch.uint8 and rec.images.shape == ds.images.shape
    assert torch.equal(rec.labels, ds.labels) and rec.meta["defenses"][-1] == "vae"
    out = reconstruct(model, ds.images, sample_latent=False)
    assert out.p_hat is None and torch.equal(rec.images, torch.floor(out.x_hat * 255).to(torch.uint8))
    with pytest.raises(TypeError, match="plain VAE"):
        vae_reconstruct(train_dvae(ds, 1.0, cache=False, **TINY), ds)


# --- registry ----------------------------------------------------------------------------------------------

def test_registered_defenses_work_through_apply_defense():
    ds = tiny(1, 8)
    proto = get_protocol("smoke")
    for name in ("dvae", "vae"):
        d = get_defense(name)
        assert d.kind == "purify" and "ICML 2024" in d.description and name in REGISTRY
    assert get_defense("dvae").params["stage_caps"] == (1.0, 3.0)
    assert get_defense("vae").params["kl_cap"] == 1.0
    out, p = apply_defense("dvae", ds, proto, **TINY)
    assert p is proto and out.images.dtype == torch.uint8 and torch.equal(out.labels, ds.labels)
    out, p = apply_defense("vae", ds, proto, kl_cap=2.0, **TINY)
    assert p is proto and out.meta["vae"]["kl_cap"] == 2.0 and out.images.shape == ds.images.shape
    with pytest.raises(ValueError, match="has no parameter"):
        apply_defense("vae", ds, proto, stage_caps=(1.0, 3.0))


# --- bad input ---------------------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    ds = tiny(1, 8)
    for fn in (purify, vae_purify, lambda d, **k: train_dvae(d, 1.0, **k), lambda d, **k: train_vae(d, 1.0, **k)):
        with pytest.raises(TypeError, match="ImageSet"):
            fn(ds.images, **TINY)
    for caps in ((0.0, 3.0), (1.0, -1.0), (1.0, float("nan")), (1.0, float("inf"))):
        with pytest.raises(ValueError, match=r"stage_caps\[\d\] must be a finite number > 0"):
            purify(ds, stage_caps=caps, **TINY)
    for caps in ((1.0,), (1.0, 2.0, 3.0), "13"):
        with pytest.raises(ValueError, match="two KL caps"):
            purify(ds, stage_caps=caps, **TINY)
    with pytest.raises(TypeError, match="stage_caps"):
        purify(ds, stage_caps=(None, 3.0), **TINY)
    with pytest.raises(ValueError, match="kl_cap must be a finite number > 0"):
        vae_purify(ds, kl_cap=0.0, **TINY)
    with pytest.raises(ValueError, match="kl_cap must be a finite number > 0"):
        train_dvae(ds, -1.0, **TINY)
    with pytest.raises(ValueError, match="kl_cap"):
        train_vae(ds, 0, **TINY)
    # labels out of range or missing
    bad = tiny(1, 8)
    bad.labels = bad.labels.clone()
    bad.labels[0] = 4
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        purify(bad, **TINY)
    bad.labels = bad.labels[:-1]
    with pytest.raises(ValueError, match="expected 32 labels"):
        purify(bad, **TINY)
    model = build_dvae(ds.shape, 4, width=4, latent_dim=8)
    with pytest.raises(ValueError, match="needs the .* labels"):
        reconstruct(model, ds.images)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        reconstruct(model, ds.images, torch.full((len(ds),), 7))
    with pytest.raises(ValueError, match="trained on images of shape"):
        reconstruct(model, torch.rand(2, 3, 8, 8), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        reconstruct(model, torch.full((2, 1, 8, 8), 2.0), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="stage must be 1"):
        purify_stage(model, ds, 3)
    with pytest.raises(ValueError, match="trained on"):
        purify_stage(model, tiny(3, 8), 1)
    # settings
    empty = ImageSet(torch.zeros(0, 1, 8, 8, dtype=torch.uint8), torch.zeros(0, dtype=torch.int64), ["a", "b"])
    with pytest.raises(ValueError, match="empty"):
        purify(empty, **TINY)
    with pytest.raises(ValueError, match="rounding"):
        purify(ds, rounding="floor", **TINY)
    with pytest.raises(ValueError, match="unknown profile"):
        purify(ds, profile="huge", quiet=True)
    with pytest.raises(ValueError, match="width must be an even"):
        purify(ds, **{**TINY, "width": 5})
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        purify(ds, epochs=0, **TINY)
    with pytest.raises(TypeError, match="sample_latent"):
        purify(ds, sample_latent="yes", **TINY)
    with pytest.raises(TypeError, match="DVAE"):
        purify_stage(build_vae(ds.shape, width=4, latent_dim=8), ds, 1)


# --- the settings dataclass --------------------------------------------------------------------------------

def test_settings_with_copies_and_checks_again():
    s = dvae.DVAESettings(profile="smoke", width=4)
    t = s.with_(epochs=3, lr=1e-3)
    assert (t.epochs, t.width, t.lr, t.profile) == (3, 4, 1e-3, "smoke") and s.epochs is None  # s is unchanged
    assert s.with_() == s and hash(s) == hash(dvae.DVAESettings(profile="smoke", width=4))
    with pytest.raises(ValueError, match=r"unknown DVAESettings fields \['epoch'\]"):
        s.with_(epoch=3)
    with pytest.raises(ValueError, match="width must be an even"):
        s.with_(width=5)
    with pytest.raises(AttributeError):
        s.epochs = 3  # frozen
    assert dvae.profile_settings("quick") == PROFILE_SETTINGS["quick"].with_(profile="quick")
    assert dvae.DVAESettings(epochs=np.int64(2), amp=np.bool_(False)).to_dict()["epochs"] == 2
    assert type(dvae.DVAESettings(epochs=np.int64(2)).epochs) is int  # the cache key is JSON


@pytest.mark.parametrize("field,value,error", [
    ("epochs", 0, ValueError), ("epochs", 2.5, TypeError), ("epochs", True, TypeError), ("epochs", "3", TypeError),
    ("width", 5, ValueError), ("width", 1, ValueError), ("width", 64.0, TypeError),
    ("latent_dim", 0, ValueError),
    ("batch_size", -1, ValueError), ("batch_size", 1.5, TypeError),
    ("levels", 0, ValueError), ("levels", "1", TypeError),
    ("lr", 0.0, ValueError), ("lr", -1e-3, ValueError), ("lr", float("nan"), ValueError), ("lr", None, TypeError),
    ("amp", 1, TypeError), ("amp", "False", TypeError),
    ("profile", "huge", ValueError), ("profile", "Quick", ValueError),
])
def test_settings_reject_a_bad_value_naming_the_field(field, value, error):
    with pytest.raises(error, match=field):
        dvae.DVAESettings(**{field: value})
    with pytest.raises(error, match=field):
        dvae.DVAESettings().with_(**{field: value})


def test_settings_object_and_keywords_train_the_same_cached_model(monkeypatch):
    ds = tiny(1, 8)
    calls = _count_fits(monkeypatch)
    settings = dvae.DVAESettings(profile="smoke", width=4, latent_dim=8)
    a = train_dvae(ds, 1.0, settings=settings, quiet=True, device="cpu")
    b = train_dvae(ds, 1.0, **TINY)                                           # the keywords of earlier releases
    c = train_dvae(ds, 1.0, settings=settings.with_(width=8), width=4, quiet=True, device="cpu")  # keywords win
    assert len(calls) == 1 and _states_equal(a.state_dict(), b.state_dict()) and c.info["from_cache"]
    stages = dvae.run_stages(ds, settings=settings, quiet=True, device="cpu")
    assert torch.equal(stages.outputs[-1].images, purify(ds, **TINY).images)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\) \['epoch'\]"):
        train_dvae(ds, 1.0, epoch=3, **TINY)
    with pytest.raises(TypeError, match="settings must be a DVAESettings"):
        train_vae(ds, settings="smoke")
    with pytest.raises(TypeError, match="amp must be True or False"):
        dvae.run_stages(ds, **{**TINY, "amp": "yes"})


# --- the package -------------------------------------------------------------------------------------------

# What `uel_helpers.defenses.dvae` exported when it was one module; notebooks of earlier releases import these.
EXPORTED_BEFORE = [
    "CACHE_VERSION", "DVAE", "DVAEOutput", "DVAEOutputs", "DVAESettings", "DVAEStages", "GRAD_CLIP", "INFER_BATCH",
    "LR", "PAPER_EPOCHS", "PAPER_FLOOR_AFTER", "PROFILE_SETTINGS", "P_FLOOR", "ROUNDINGS", "STAGE_CAPS",
    "TrainConfig", "VAE", "VAEOutput", "VAE_CAP", "build_dvae", "build_vae", "check_cap", "check_image_size",
    "default_levels", "dvae_loss", "kl_divergence", "kl_hinge", "kl_weight", "purify", "purify_stage", "reconstruct",
    "run_stages", "stage_seed", "train_dvae", "train_vae", "vae_loss", "vae_purify", "vae_reconstruct",
]


@pytest.mark.parametrize("name", sorted(set(EXPORTED_BEFORE) | set(dvae.__all__)))
def test_public_names_import_from_the_package(name):
    namespace: dict = {}
    exec(f"from uel_helpers.defenses.dvae import {name}", namespace)
    assert namespace[name] is getattr(dvae, name) and name in dvae.__all__


def test_lower_modules_of_the_package_do_not_import_higher_ones():
    import ast
    from pathlib import Path

    order = ["settings", "model", "training", "inference", "purify"]
    folder = Path(dvae.__file__).parent
    assert sorted(p.stem for p in folder.glob("*.py")) == sorted(["__init__", *order])
    for i, name in enumerate(order):
        tree = ast.parse((folder / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1}
        assert imported <= set(order[:i]), f"{name}.py imports {sorted(imported - set(order[:i]))}"
