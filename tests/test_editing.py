"""Unit tests for uel_helpers.editing: the encoder attack, JPEG, the measurements, the proxy, the figures, the SD
path on a randomly initialised AutoencoderKL, and the errors."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from uel_helpers import transforms
from uel_helpers.data import synthetic_dataset
from uel_helpers.editing import (
    ATTACK_PROFILES,
    EPSILONS,
    JPEG_QUALITIES,
    AttackSettings,
    ProxyEditor,
    ProxySettings,
    ProxyVAE,
    RandomJPEG,
    SDEditSettings,
    attack_settings,
    budget_levels,
    differentiable_jpeg,
    encoder_attack,
    jpeg_images,
    jpeg_sweep,
    jpeg_view,
    latent_shift,
    latent_shift_ratio,
    latents,
    noise_control,
    pixel_change,
    proxy_settings,
    psnr,
    render_edit_grid,
    render_jpeg_sweep,
    render_jpeg_view,
    ssim,
    step_schedule,
    train_proxy_vae,
)
from uel_helpers.editing import jpeg as jpeg_module
from uel_helpers.editing.inputs import require

SMALL_VAE_CONFIG = {  # a diffusers AutoencoderKL small enough for a unit test (SD's has 128..512 channels)
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 8,
    "block_out_channels": (8, 16), "down_block_types": ("DownEncoderBlock2D",) * 2,
    "up_block_types": ("UpDecoderBlock2D",) * 2, "sample_size": 32,
}


def _images(n=6, channels=3, size=16, seed=0) -> torch.Tensor:
    """Smooth uint8 images (N, C, S, S): blurred noise, so JPEG and the VAE see image-like content."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, channels, size // 4, size // 4, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (0.1 + 0.8 * x).mul(255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    vae = ProxyVAE(channels=3, width=8, latent_channels=4).eval()
    for p in vae.parameters():
        p.requires_grad_(False)
    return vae.encode_mean


@pytest.fixture(scope="module")
def tiny_proxy(tmp_path_factory):
    ds = synthetic_dataset(n_per_class=8, num_classes=4, channels=3, size=16, seed=0)
    s = proxy_settings("smoke").with_(epochs=2, batch_size=16, n_per_class=None)
    return train_proxy_vae(ds, s, seed=0, device="cpu", quiet=True, cache_root=tmp_path_factory.mktemp("c"))


def _pil_jpeg(img_hwc: np.ndarray, quality: int) -> np.ndarray:
    """The reference: PIL's own save/open, written out here."""
    buf = io.BytesIO()
    Image.fromarray(img_hwc[..., 0] if img_hwc.shape[-1] == 1 else img_hwc).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


# --- settings and step schedule --------------------------------------------------------------------------------

def test_paper_defaults_are_photoguards_in_unit_pixels():
    p = attack_settings("paper")
    assert (p.eps, p.step, p.iters, p.min_step_fraction) == (0.03, 0.01, 1000, 0.01)  # 0.06, 0.02 in [-1, 1]
    assert budget_levels(p.eps) == 8 and ATTACK_PROFILES["smoke"].iters < ATTACK_PROFILES["quick"].iters
    sd = SDEditSettings()
    assert (sd.seed, sd.strength, sd.guidance, sd.steps, sd.size) == (9222, 0.5, 7.5, 50, 512)
    assert JPEG_QUALITIES[0] == 100 and min(JPEG_QUALITIES) == 50 and 0.03 in EPSILONS


@pytest.mark.parametrize("step,iters", [(0.01, 1000), (0.02, 7), (0.5, 1)])
def test_step_schedule_is_photoguards_linear_decay(step, iters):
    reference = [step - (step - step / 100) / iters * i for i in range(iters)]  # upstream `pgd`
    got = step_schedule(step, iters)
    assert got.dtype == torch.float64 and got.shape == (iters,)
    np.testing.assert_allclose(got.numpy(), reference, rtol=1e-12, atol=1e-15)
    assert got[0] == step and (iters == 1 or bool((got.diff() < 0).all()))


def test_settings_with_rejects_unknown_fields():
    with pytest.raises(ValueError, match="unknown fields"):
        AttackSettings().with_(epsilon=0.1)
    assert proxy_settings("quick").with_(epochs=1).epochs == 1


# --- the encoder attack ----------------------------------------------------------------------------------------

def test_attack_reduces_the_latent_norm_within_the_budget(encoder):
    clean = _images()
    s = AttackSettings(eps=8 / 255, step=2 / 255, iters=30)
    prot = encoder_attack(encoder, clean, s, seed=0, quiet=True)
    assert prot.images.dtype == torch.uint8 and prot.images.shape == clean.shape and prot.method == "photoguard"
    assert prot.linf_levels <= budget_levels(s.eps) == 8
    assert prot.linf_levels >= 6  # the sign steps use the budget
    before = latents(encoder, clean).flatten(1).norm(dim=1)
    after = latents(encoder, prot.images).flatten(1).norm(dim=1)
    noise = latents(encoder, noise_control(clean, s.eps, seed=0).images).flatten(1).norm(dim=1)
    assert bool((after < 0.95 * before).all() and (after < noise).all()), (before, after, noise)  # after uint8
    assert prot.loss.shape == (30,) and prot.loss[-1] < prot.loss[0]


def test_attack_towards_a_target_latent(encoder):
    clean, other = _images(seed=0), _images(seed=1)
    target = latents(encoder, other)
    prot = encoder_attack(encoder, clean, AttackSettings(eps=16 / 255, step=4 / 255, iters=30), target=target,
                          seed=0, quiet=True)
    d0 = (latents(encoder, clean) - target).flatten(1).norm(dim=1)
    d1 = (latents(encoder, prot.images) - target).flatten(1).norm(dim=1)
    assert bool((d1 < d0).all())


def test_attack_is_deterministic_per_seed_and_batch_independent(encoder):
    clean, s = _images(), AttackSettings(eps=8 / 255, step=2 / 255, iters=5)
    a = encoder_attack(encoder, clean, s, seed=3, quiet=True).images
    b = encoder_attack(encoder, clean, s, seed=3, quiet=True).images
    c = encoder_attack(encoder, clean, s, seed=4, quiet=True).images
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("rounding", ["round", "truncate"])
def test_stored_difference_is_within_rounded_budget(encoder, rounding):
    clean = _images(channels=1).repeat(1, 3, 1, 1)
    eps = 0.0235  # 5.99 levels: round -> 6
    prot = encoder_attack(encoder, clean, AttackSettings(eps=eps, step=0.01, iters=3), seed=0, rounding=rounding,
                          quiet=True)
    assert prot.linf_levels <= budget_levels(eps) == 6
    assert float(prot.delta.abs().max()) <= 6 / 255 + 1e-7


def test_noise_control_has_the_same_budget_and_is_seeded():
    clean = _images()
    a, b = noise_control(clean, 8 / 255, seed=1), noise_control(clean, 8 / 255, seed=1)
    assert torch.equal(a.images, b.images) and a.method == "noise" and "noise control" in a.label
    assert 6 <= a.linf_levels <= 8
    assert not torch.equal(a.images, noise_control(clean, 8 / 255, seed=2).images)


def test_adaptive_attack_through_random_jpeg(encoder):
    pytest.importorskip("kornia", reason="the adaptive protection needs kornia (the `editing` extra)")
    clean = _images(n=3)
    prot = encoder_attack(encoder, clean, AttackSettings(eps=8 / 255, step=2 / 255, iters=4),
                          transform=RandomJPEG((75, 50)), seed=0, quiet=True)
    assert prot.method == "adaptive" and "RandomJPEG" in prot.transform and prot.linf_levels <= 8


# --- JPEG ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,quality", [(3, 100), (3, 75), (3, 50), (1, 90), (1, 10)])
def test_jpeg_images_equals_pils_bytes(channels, quality):
    imgs = _images(n=3, channels=channels, size=24)
    out = jpeg_images(imgs, quality)
    assert out.dtype == torch.uint8 and out.shape == imgs.shape
    for i in range(3):
        ref = _pil_jpeg(imgs[i].permute(1, 2, 0).numpy(), quality)
        np.testing.assert_array_equal(out[i].permute(1, 2, 0).numpy().reshape(ref.shape), ref)


def test_jpeg_reuses_the_iss_codec():
    assert jpeg_module.jpeg_roundtrip is transforms.jpeg_roundtrip  # one PIL codec for ISS and for notebook 08


def test_differentiable_jpeg_is_close_to_pil_and_has_gradients():
    pytest.importorskip("kornia", reason="the differentiable JPEG is kornia's (the `editing` extra)")
    for channels in (3, 1):
        imgs = _images(n=2, channels=channels, size=32)
        x = (imgs.float() / 255).requires_grad_(True)
        out = differentiable_jpeg(x, 75)
        assert out.shape == x.shape
        pil = jpeg_images(imgs, 75).float() / 255
        assert float((out.detach() - pil).abs().mean()) < 2 / 255  # same tables, subsampling; soft rounding
        out.sum().backward()
        assert x.grad is not None and float(x.grad.abs().sum()) > 0
    per_image = differentiable_jpeg(_images(n=2, size=32).float() / 255, torch.tensor([100.0, 10.0]))
    assert per_image.shape == (2, 3, 32, 32)


def test_random_jpeg_draws_from_the_generator():
    pytest.importorskip("kornia", reason="RandomJPEG is kornia's differentiable JPEG (the `editing` extra)")
    x = _images(n=4, size=16).float() / 255
    t = RandomJPEG((90, 30))
    a, b = t(x, torch.Generator().manual_seed(0)), t(x, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and "90, 30" in repr(t)


# --- measurements ----------------------------------------------------------------------------------------------

def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. 2004 with an 11 x 11 Gaussian window (σ 1.5), K1 0.01, K2 0.03, data range 1, written with scipy:
    borders reflected without repeating the edge pixel (scipy "mirror" = torch "reflect") and the SSIM map averaged
    over the whole image, as torchmetrics does (scikit-image instead drops a 5-pixel border)."""
    from scipy.ndimage import gaussian_filter

    def f(z):
        return gaussian_filter(z, 1.5, truncate=3.5, mode="mirror")

    c1, c2, vals = 0.01 ** 2, 0.03 ** 2, []
    for x, y in zip(a, b, strict=True):  # channels
        mx, my = f(x), f(y)
        sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        vals.append(((2 * mx * my + c1) * (2 * sxy + c2) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))).mean())
    return float(np.mean(vals))


def test_psnr_and_pixel_change_on_known_pairs():
    pytest.importorskip("torchmetrics", reason="PSNR/SSIM are torchmetrics' (the `editing` extra)")
    a = torch.full((2, 3, 16, 16), 0.5)
    b = a + 0.1  # MSE 0.01 -> 20 dB
    np.testing.assert_allclose(psnr(a, b).numpy(), [20.0, 20.0], rtol=1e-5)
    assert torch.isinf(psnr(a, a)).all()
    u8 = torch.full((1, 1, 16, 16), 100, dtype=torch.uint8)
    np.testing.assert_allclose(psnr(u8, u8 + 51).numpy(), [20 * np.log10(5)], rtol=1e-5)  # 51/255 = 0.2
    ch = pixel_change(b, a)
    np.testing.assert_allclose(ch["linf"].numpy(), [0.1, 0.1], rtol=1e-5)
    np.testing.assert_allclose(ch["l2"].numpy(), [0.1 * np.sqrt(3 * 16 * 16)] * 2, rtol=1e-5)


def test_ssim_matches_the_reference_formula():
    pytest.importorskip("torchmetrics", reason="PSNR/SSIM are torchmetrics' (the `editing` extra)")
    pytest.importorskip("scipy")
    a = _images(n=2, size=32, seed=0).float() / 255
    b = (a + 0.05 * torch.randn(a.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    got = ssim(a, b)
    for i in range(2):
        assert float(got[i]) == pytest.approx(_ssim_reference(a[i].double().numpy(), b[i].double().numpy()), abs=1e-4)
    assert torch.allclose(ssim(a, a), torch.ones(2))


def test_latent_shift_ratio_with_the_identity_encoder():
    clean = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    prot = clean + 10
    comp = clean + 4
    r = latent_shift_ratio(lambda x: x, clean, prot, comp)
    np.testing.assert_allclose(r.numpy(), [0.4, 0.4], rtol=1e-6)
    assert torch.isnan(latent_shift_ratio(lambda x: x, clean, clean, comp)).all()  # no shift to keep
    np.testing.assert_allclose(latent_shift(lambda x: x, clean, prot).numpy(), [10 / 255 * 4] * 2, rtol=1e-6)


def test_jpeg_sweep_rows_and_ratios(encoder):
    pytest.importorskip("torchmetrics", reason="the sweep's PSNR is torchmetrics' (the `editing` extra)")
    clean = _images(n=3, size=16)
    prot = encoder_attack(encoder, clean, AttackSettings(eps=8 / 255, step=2 / 255, iters=10), quiet=True)
    sw = jpeg_sweep(encoder, clean, {"clean": clean, "protected": prot.images}, qualities=(100, 50))
    assert sw.rows == ["clean", "protected"] and sw.qualities == [None, 100, 50]
    assert sw.values["ratio"].shape == (2, 3, 3)
    assert np.isnan(sw.mean("ratio", "clean", None))  # the clean image has no shift to keep
    assert sw.mean("ratio", "protected", None) == pytest.approx(1.0)
    assert sw.mean("jpeg_linf", "protected", None) == 0.0 and sw.mean("jpeg_linf", "protected", 50) > 0
    assert np.isnan(sw.mean("edit_ssim", "protected", 50))  # no editor given
    assert "Q=50" in sw.table("ratio") and "| protected |" in sw.table("ratio")
    with pytest.raises(ValueError, match="unknown metric"):
        sw.mean("fid", "clean", None)


# --- proxy -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels,size", [(1, 16), (3, 32), (3, 28)])
def test_proxy_vae_shapes(channels, size):
    vae = ProxyVAE(channels, width=8, latent_channels=4)
    x = torch.rand(2, channels, size, size)
    assert vae.encode_mean(x).shape == (2, 4, size // 4, size // 4)
    with torch.no_grad():
        recon, mean, logvar = vae(x, torch.Generator().manual_seed(0))
    assert recon.shape == x.shape and float(recon.min()) >= 0 and float(recon.max()) <= 1


def test_train_proxy_is_cached_and_learns(tiny_proxy, tmp_path):
    h = tiny_proxy.history
    assert len(h["loss"]) == 2 and h["mse"][-1] < h["mse"][0]
    assert not any(p.requires_grad for p in tiny_proxy.model.parameters())
    ds = synthetic_dataset(n_per_class=4, num_classes=2, channels=1, size=16, seed=0)
    s = ProxySettings(n_per_class=None, epochs=1, batch_size=4, width=4)
    a = train_proxy_vae(ds, s, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    b = train_proxy_vae(ds, s, seed=0, device="cpu", quiet=True, cache_root=tmp_path)
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_proxy_editor_uses_the_same_noise_per_image(tiny_proxy):
    imgs = _images(n=3, size=16)
    ed = ProxyEditor(tiny_proxy, strength=0.5, seed=9222)
    full = ed(imgs)
    one = ed(imgs[2:3], indices=[2])
    assert full.shape == imgs.shape and torch.allclose(full[2:3], one, atol=1e-6)
    assert torch.allclose(ProxyEditor(tiny_proxy, strength=0.0)(imgs), tiny_proxy.reconstruct(imgs), atol=1e-6)
    with pytest.raises(ValueError, match="indices"):
        ed(imgs, indices=[0, 1])


# --- figures ---------------------------------------------------------------------------------------------------

def test_figures_are_labelled_proxy(tiny_proxy):
    pytest.importorskip("torchmetrics", reason="the sweep's PSNR is torchmetrics' (the `editing` extra)")
    import matplotlib.pyplot as plt

    clean = _images(n=2, size=16)
    prot = encoder_attack(tiny_proxy.encode_mean, clean, AttackSettings(eps=8 / 255, step=2 / 255, iters=3),
                          quiet=True)
    ed = ProxyEditor(tiny_proxy)
    sw = jpeg_sweep(tiny_proxy.encode_mean, clean, {"protected": prot.images}, qualities=(75,), editor=ed)
    figs = [render_jpeg_sweep(sw),
            render_edit_grid({"clean": clean, "protected": prot.images},
                             {"clean": ed(clean), "protected": ed(prot.images)}),
            render_jpeg_view(jpeg_view(tiny_proxy.encode_mean, ed, prot, 1, 50))]
    for fig in figs:
        assert "PROXY" in fig._suptitle.get_text()
        plt.close(fig)
    view = jpeg_view(tiny_proxy.encode_mean, ed, prot, 0, 100)
    assert view.quality == 100 and view.compressed.shape == (3, 16, 16) and np.isfinite(view.ratio)
    assert "PROXY" not in render_jpeg_sweep(sw, proxy=False)._suptitle.get_text()
    plt.close("all")


# --- Stable Diffusion path, offline on a randomly initialised AutoencoderKL -----------------------------------

def test_sd_encoder_attack_on_a_random_small_autoencoderkl():
    pytest.importorskip("diffusers", reason="the SD path needs diffusers (the `editing` extra)")
    from uel_helpers.editing import SDEncoder, random_vae

    vae = random_vae(SMALL_VAE_CONFIG, seed=0)
    enc = SDEncoder(vae)
    clean = _images(n=2, size=32)
    z = latents(enc, clean)
    assert z.shape == (2, 4, 16, 16)
    prot = encoder_attack(enc, clean, AttackSettings(eps=8 / 255, step=2 / 255, iters=8), seed=0, quiet=True)
    assert prot.linf_levels <= 8
    assert bool((latents(enc, prot.images).flatten(1).norm(dim=1) < z.flatten(1).norm(dim=1)).all())
    with pytest.raises(TypeError, match="AutoencoderKL"):
        SDEncoder(object())


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what CLIP's BPE vocabulary is written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def test_sd_editor_runs_a_tiny_offline_img2img_pipeline(tmp_path):
    """The SD edit's call path (`SDEditor` -> `StableDiffusionImg2ImgPipeline`) on a pipeline assembled from randomly
    initialised tiny parts and a byte-level tokenizer written here: no download."""
    diffusers = pytest.importorskip("diffusers", reason="the SD path needs diffusers (the `editing` extra)")
    transformers = pytest.importorskip("transformers", reason="the SD pipeline needs transformers (`editing` extra)")
    import json

    from uel_helpers.editing import SDEditor, random_vae

    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)} | {c + "</w>": 256 + i for i, c in enumerate(chars)}
    vocab |= {"<|startoftext|>": 512, "<|endoftext|>": 513}
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "merges.txt"), model_max_length=64)
    torch.manual_seed(0)
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=514, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=64, projection_dim=16, bos_token_id=512, eos_token_id=513, pad_token_id=513))
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8)
    pipe = diffusers.StableDiffusionImg2ImgPipeline(
        vae=random_vae({**SMALL_VAE_CONFIG, "sample_size": 16}), text_encoder=text, tokenizer=tok, unet=unet,
        scheduler=diffusers.DDIMScheduler(clip_sample=False, steps_offset=1), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    editor = SDEditor(pipe, SDEditSettings(steps=4))
    x = _images(n=2, size=16)
    out = editor(x)
    assert out.shape == (2, 3, 16, 16) and out.dtype == torch.float32
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.equal(editor(x[1:]), out[1:])  # the seed is set anew for every image, as PhotoGuard's demo does


# --- errors ----------------------------------------------------------------------------------------------------

U8 = _images(n=2, size=16)


@pytest.mark.parametrize("call,error,match", [
    (lambda: AttackSettings(eps=0.0), ValueError, "eps"),
    (lambda: AttackSettings(eps=1.5), ValueError, "eps"),
    (lambda: AttackSettings(eps=-0.1), ValueError, "eps"),
    (lambda: AttackSettings(step=0), ValueError, "step"),
    (lambda: AttackSettings(iters=0), ValueError, "iters"),
    (lambda: AttackSettings(iters=2.5), TypeError, "iters"),
    (lambda: noise_control(U8, 0.0), ValueError, "eps"),
    (lambda: noise_control(U8, 2.0), ValueError, "eps"),
    (lambda: jpeg_images(U8, 0), ValueError, "quality"),
    (lambda: jpeg_images(U8, 101), ValueError, "quality"),
    (lambda: jpeg_images(U8, 75.0), TypeError, "quality"),
    (lambda: jpeg_images(U8.float() / 255, 75), TypeError, "images"),
    (lambda: jpeg_images(U8[0], 75), ValueError, "images"),
    (lambda: jpeg_images(U8[:, :2], 75), ValueError, "channels"),
    (lambda: encoder_attack(lambda x: x, U8.float(), AttackSettings(iters=1)), TypeError, "images"),
    (lambda: encoder_attack(lambda x: x, U8, "paper"), TypeError, "settings"),
    (lambda: encoder_attack(lambda x: x, U8, AttackSettings(iters=1), seed=-1), ValueError, "seed"),
    (lambda: encoder_attack(lambda x: x, U8, AttackSettings(iters=1), rounding="floor"), ValueError, "rounding"),
    (lambda: encoder_attack(lambda x: x, U8, AttackSettings(iters=1), target=torch.zeros(5, 3)), ValueError,
     "target"),
    (lambda: encoder_attack("vae", U8, AttackSettings(iters=1)), TypeError, "encoder"),
    (lambda: pixel_change(U8.float(), U8), ValueError, r"\[0, 1\]"),
    (lambda: pixel_change(U8, U8[:1]), ValueError, "same shape"),
    (lambda: pixel_change(U8.int(), U8), TypeError, "uint8"),
    (lambda: pixel_change(U8.float() / 255 * float("nan"), U8), ValueError, "a"),
    (lambda: latent_shift_ratio(lambda x: x, U8, U8, U8[:1]), ValueError, "compressed"),
    (lambda: jpeg_sweep(lambda x: x, U8, {}), ValueError, "inputs"),
    (lambda: jpeg_sweep(lambda x: x, U8, {"p": U8}, qualities=(0,)), ValueError, "qualities"),
    (lambda: RandomJPEG(()), ValueError, "qualities"),
    (lambda: RandomJPEG((75, 101)), ValueError, "qualities"),
    (lambda: ProxyEditor("proxy"), TypeError, "proxy"),
    (lambda: train_proxy_vae(synthetic_dataset(n_per_class=2, num_classes=2, size=14), quiet=True), ValueError,
     "multiples of 4"),
    (lambda: train_proxy_vae(U8), TypeError, "train_set"),
    (lambda: SDEditSettings(strength=0.0), ValueError, "strength"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_bad_input_raises_naming_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_differentiable_jpeg_rejects_bad_qualities():
    pytest.importorskip("kornia", reason="the differentiable JPEG is kornia's (the `editing` extra)")
    x = U8.float() / 255
    with pytest.raises(ValueError, match="quality"):
        differentiable_jpeg(x, torch.tensor([0.5, 50.0]))
    with pytest.raises(ValueError, match="quality"):
        differentiable_jpeg(x, 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        differentiable_jpeg(x * 255, 75)


@pytest.mark.parametrize("module,call", [
    ("kornia", lambda: RandomJPEG()),
    ("kornia", lambda: differentiable_jpeg(U8.float() / 255, 75)),
    ("torchmetrics", lambda: psnr(U8, U8)),
    ("diffusers", lambda: __import__("uel_helpers.editing", fromlist=["random_vae"]).random_vae(SMALL_VAE_CONFIG)),
])
def test_missing_optional_library_names_the_extra(monkeypatch, module, call):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=r"pip install .*\[editing\]"):
        call()


def test_require_imports_what_is_there():
    assert require("numpy", "a test") is np


# --- the benchmark runs (tests/test_benchmarks.py style; nothing timed) ---------------------------------------

def test_bench_editing_prints_a_section(capsys, monkeypatch, tmp_path):
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    import bench_common
    import bench_editing

    monkeypatch.setattr(bench_common, "RESULTS", tmp_path / "RESULTS.md")
    args = ["--device", "cpu", "--n", "2", "--size", "16", "--iters", "1", "--sd-size", "0"]
    monkeypatch.setattr(sys, "argv", ["bench_editing.py", *args])
    bench_editing.main(args)
    out = capsys.readouterr().out
    assert "## bench_editing.py, " in out and "|---" in out and "proxy VAE" in out
    assert not (tmp_path / "RESULTS.md").exists()
