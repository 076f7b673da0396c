"""Effect test for notebook 08 (Sandoval-Segura, Geiping & Goldstein, arXiv 2304.02234) on the offline proxy.

Setting (fixed before measuring): the proxy VAE (`ProxyVAE`, 4 x 8 x 8 latent) trained at `quick` (`proxy_settings
("quick")`: 300 Fashion-MNIST training images per class, zero-padded to 32 px and shown as RGB, 5 epochs, seed 0);
50 test images (5 per class, `take_per_class(5, seed=0)` of the test split); PhotoGuard's encoder attack towards the
zero latent at `attack_settings("quick")` (eps 0.03 ≈ 7.65/255, step 0.01 decaying linearly, 200 iterations, seed 0);
the adaptive protection = the same attack through `RandomJPEG()` (a differentiable JPEG at a quality drawn from
{100, 95, 90, 85, 75, 65, 50} per image and iteration); the control = sample-wise uniform noise of the same eps;
PIL JPEG at Q in {100, 95, 90, 85, 75, 65, 50}; the proxy editor at strength 0.5, seed 9222.

Criteria (fixed before measuring, from the paper's direction: the protection works, JPEG removes it, more so at lower
quality, and Q = 100 is "almost equivalent to the original Photoguard image"; ratio = mean over images of
‖E(jpeg_Q(x_adv)) − E(x)‖ / ‖E(x_adv) − E(x)‖):
1. the protection moves the latent far: its mean latent shift at PNG is >= 3x the noise control's;
2. JPEG at Q <= 75 removes most of the shift: ratio <= 0.5 at each of Q = 75, 65, 50;
3. Q = 100 removes little: ratio >= 0.8;
4. the adaptive protection keeps more of its shift after JPEG: its ratio at Q = 75 is >= the non-adaptive one's + 0.1;
5. the edit comes back: the mean SSIM of edit(jpeg_75(x_adv)) to edit(x) is >= that of edit(x_adv) + 0.05;
6. the control proves the measurement: the noise control's edit stays near the clean edit (mean SSIM of
   edit(x + noise) to edit(x) >= 0.9 at PNG) and above the protected image's edit (>= its SSIM + 0.05).

Measured (2026-12-01, CPU, 84 s for the whole module; run with -s for every table): mean latent shift at PNG: clean
0, noise control 0.494, protected 2.39, adaptive 1.37 (clean latent norm 18.45); latent-shift ratio of the protected
images: Q=100 0.824, 95 0.820, 90 0.824, 85 0.828, 75 0.851, 65 0.882, 50 0.921 (adaptive: 1.04 ... 1.39); edit SSIM
to the clean edit at PNG: noise control 0.997, protected 0.960, adaptive 0.992; protected after JPEG 75: 0.967.
1. 2.39 >= 3 x 0.494: met (4.8x).
2. NOT met: 0.851, 0.882, 0.921 > 0.5. JPEG does not remove the proxy's latent shift: the ratio *rises* as Q falls,
   because JPEG's own shift of the latent (clean images: 0.027 at Q=100 ... 0.884 at Q=50) adds to the protection's,
   and the perturbation that moves this small, smooth encoder survives JPEG. Strict xfail with these numbers.
3. 0.824 >= 0.8: met (Q = 100 already removes 18%).
4. adaptive 1.23 vs non-adaptive 0.851 at Q = 75: met, but read with 2: both ratios include JPEG's own shift, and the
   adaptive protection's shift at PNG is smaller (1.37 vs 2.39), so the same JPEG shift weighs more in its ratio.
5. NOT met: 0.967 vs 0.960 + 0.05. The protection barely changes the proxy's edit (SSIM 0.960), so there is
   little for JPEG to give back. Strict xfail.
6. control 0.997 >= 0.9: met; control >= protected + 0.05: NOT met (0.997 vs 0.960), for the reason of 5: the
   protection, not the control, is what is weak in edit space. The first half is a test, the second a strict xfail.
The paper's effect (arXiv 2304.02234: JPEG brings the edit back, more at lower quality) did not reproduce on this
proxy; the paper's SD VAE experiment needs a GPU and the network.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from uel_helpers.data import load_dataset, pad, to_rgb
from uel_helpers.editing import (
    ProxyEditor,
    RandomJPEG,
    attack_settings,
    encoder_attack,
    jpeg_sweep,
    noise_control,
    proxy_settings,
    train_proxy_vae,
)

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
pytest.importorskip("kornia", reason="the adaptive protection needs kornia: pip install -e \".[editing]\"")
pytest.importorskip("torchmetrics", reason="PSNR/SSIM need torchmetrics: pip install -e \".[editing]\"")

FAR, MOST, LITTLE, ADAPTIVE_GAIN, EDIT_GAIN, CONTROL_EDIT = 3.0, 0.5, 0.8, 0.1, 0.05, 0.9
LOW_Q = (75, 65, 50)


@pytest.fixture(scope="module")
def sweep(effect_cache):
    s = proxy_settings("quick")
    train = to_rgb(pad(load_dataset("fashion-mnist", "train").take_per_class(s.n_per_class, seed=0), 32))
    test = to_rgb(pad(load_dataset("fashion-mnist", "test").take_per_class(5, seed=0), 32))
    proxy = train_proxy_vae(train, s, seed=0, device="cpu", quiet=True, cache_root=effect_cache)
    a = attack_settings("quick")
    clean = test.images
    protected = encoder_attack(proxy.encode_mean, clean, a, seed=0, quiet=True)
    adaptive = encoder_attack(proxy.encode_mean, clean, a, transform=RandomJPEG(), seed=0, quiet=True)
    control = noise_control(clean, a.eps, seed=0)
    inputs = {"clean": clean, "noise control": control.images, "protected": protected.images,
              "adaptive": adaptive.images}
    result = jpeg_sweep(proxy.encode_mean, clean, inputs, editor=ProxyEditor(proxy, s.strength))
    for metric in ("latent_shift", "ratio", "jpeg_linf", "psnr_clean", "edit_ssim", "edit_psnr"):
        print(f"\n{metric}\n{result.table(metric)}")
    print(f"clean latent norm {result.latent_norm.mean():.3f}; stored L-inf levels: protected "
          f"{protected.linf_levels}, adaptive {adaptive.linf_levels}, control {control.linf_levels}; attack seconds "
          f"{protected.seconds:.1f} / {adaptive.seconds:.1f}")
    return result


def test_protection_moves_the_latent_far_beyond_the_noise_control(sweep):
    prot, ctrl = sweep.mean("latent_shift", "protected", None), sweep.mean("latent_shift", "noise control", None)
    assert prot >= FAR * ctrl, f"protection shift {prot:.3f} vs control {ctrl:.3f}"


@pytest.mark.xfail(strict=True, reason="measured ratios 0.851 / 0.882 / 0.921 at Q = 75 / 65 / 50 (> 0.5): JPEG does "
                   "not remove the proxy's latent shift (see the module docstring)")
@pytest.mark.parametrize("quality", LOW_Q)
def test_jpeg_at_low_quality_removes_most_of_the_shift(sweep, quality):
    assert sweep.mean("ratio", "protected", quality) <= MOST


def test_jpeg_at_quality_100_removes_little(sweep):
    assert sweep.mean("ratio", "protected", 100) >= LITTLE


def test_adaptive_protection_keeps_more_of_its_shift(sweep):
    adaptive, plain = sweep.mean("ratio", "adaptive", 75), sweep.mean("ratio", "protected", 75)
    assert adaptive >= plain + ADAPTIVE_GAIN, f"adaptive {adaptive:.3f} vs non-adaptive {plain:.3f} at Q=75"


@pytest.mark.xfail(strict=True, reason="measured edit SSIM 0.967 after JPEG 75 vs 0.960 protected: the protection "
                   "barely changes the proxy's edit, so JPEG has little to give back")
def test_the_edit_comes_back_after_jpeg(sweep):
    after, before = sweep.mean("edit_ssim", "protected", 75), sweep.mean("edit_ssim", "protected", None)
    assert after >= before + EDIT_GAIN, f"edit SSIM after JPEG 75 {after:.3f} vs protected PNG {before:.3f}"


def test_noise_control_leaves_the_edit_near_clean(sweep):
    ctrl = sweep.mean("edit_ssim", "noise control", None)
    assert ctrl >= CONTROL_EDIT, f"noise control edit SSIM {ctrl:.3f} < {CONTROL_EDIT}"


@pytest.mark.xfail(strict=True, reason="measured edit SSIM 0.997 (control) vs 0.960 (protected): the protection is "
                   "weak in the proxy's edit space (criterion 5)")
def test_protection_changes_the_edit_more_than_the_noise_control(sweep):
    ctrl, prot = sweep.mean("edit_ssim", "noise control", None), sweep.mean("edit_ssim", "protected", None)
    assert ctrl >= prot + EDIT_GAIN, f"noise control edit SSIM {ctrl:.3f} vs protected {prot:.3f}"
