# %% [markdown]
# # 08 · JPEG against protections from AI editing
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/uel-lab/unlearnable-examples-lab/blob/main/notebooks/08_jpeg_editing.ipynb)
#
# **The paper.** Sandoval-Segura, Geiping, Goldstein, *JPEG Compressed Images Can Bypass Protections Against AI
# Editing* (arXiv 2304.02234, 2023; no code released). PhotoGuard (Salman et al., arXiv 2302.06588; code
# `MadryLab/photoguard@686bea7`) adds an imperceptible perturbation to a photo so that Stable Diffusion's img2img
# cannot edit it realistically. The paper's claim, from its abstract: these perturbations "are not robust to JPEG
# compression, which poses a major weakness because of the common usage and availability of JPEG". Saving the
# protected photo as JPEG brings the edit back, more so at lower quality, while "an image at 100% JPEG quality is
# almost equivalent to the original Photoguard image" (press summary of the paper).
#
# **Not available to us, not invented here:** the paper's JPEG qualities, images, seeds and any quantitative metric
# (it shows qualitative figures). Every number below is measured by this notebook, and every figure made with the
# small offline VAE says **PROXY** in its title: the proxy tests the *mechanism* (does JPEG undo an encoder attack?),
# it does not reproduce the paper's Stable Diffusion figures. Those need a CUDA GPU and the network (section 9).
#
# **Expected run time** (whole notebook):
#
# | profile | data | machine | run time | memory |
# |---|---|---|---|---|
# | `smoke` | digits, 16 px, 10 images | 2-core CPU | seconds; measured under `pytest` in CI | < 1 GB RAM |
# | `quick` | Fashion-MNIST, 32 px RGB, 50 test images | 2-core CPU | 149 s wall measured from an empty cache (2026-12-01: the `.py` source with `OMP_NUM_THREADS=1` on 2 cores shared with other jobs, load ≈ 6; proxy training 36 s, three attacks ≈ 11 s each, the adaptive one 24 s) | 1.15 GB peak RSS measured |
# | `paper` | Fashion-MNIST (proxy, full training split) + Stable Diffusion v1.5 (PhotoGuard's dog photo) | GPU + network | not measured (no GPU was lent) | SD v1.5 in fp16: several GB of GPU memory |
#
# `quick` budget: the proxy VAE on 300 training images per class for 5 epochs; PhotoGuard's encoder attack with its
# budget (ε = 0.06 in [−1, 1] units = 0.03 ≈ 7.65/255 here) and step schedule, 200 iterations instead of 1,000.

# %% [markdown]
# ## 1. Install (Colab only)

# %%
import importlib
import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO_URL = "https://github.com/uel-lab/unlearnable-examples-lab"  # = uel_helpers.notebook.REPO_URL (tested)
UEL_REF = "main"  # the git tag or full commit hash to install; releases pin a tag here, e.g. "v0.1.0"

if "google.colab" in sys.modules and importlib.util.find_spec("uel_helpers") is None:
    keep = []  # torch, torchvision and numpy stay exactly as Colab ships them
    for name in ("torch", "torchvision", "numpy"):
        try:
            keep.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    constraints = Path("/tmp/uel-constraints.txt")
    constraints.write_text("\n".join(keep) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints),
                    f"uel_helpers[editing] @ git+{REPO_URL}@{UEL_REF}"], check=True)
    importlib.invalidate_caches()
elif importlib.util.find_spec("uel_helpers") is None and Path("../uel_helpers/__init__.py").exists():
    sys.path.insert(0, str(Path("..").resolve()))  # a checkout opened without `pip install -e .`

# %% [markdown]
# ## 2. Parameters
#
# Sizes come from `uel_helpers.editing.ATTACK_PROFILES` and `PROXY_PROFILES` (smoke / quick / paper); `None` means
# "the profile's". This notebook needs the `editing` extra (kornia, torchmetrics, diffusers):
# `pip install "uel_helpers[editing]"`.

# %% tags=["parameters"]
dataset = None  # None = digits at smoke, else "fashion-mnist" (offline), else digits
profile = None  # None = UEL_PROFILE, else "paper" on a GPU and "quick" on a CPU
seed = 0
epsilons = None  # None = EPSILONS: 4/255, 0.03 (PhotoGuard's 0.06 in [-1, 1]), 16/255
qualities = None  # None = JPEG_QUALITIES: 100, 95, 90, 85, 75, 65, 50 (our choice: the paper lists none)
run_stable_diffusion = None  # None = only on a CUDA GPU with diffusers installed; it downloads a few GB

# %%
import inspect
import time

import matplotlib.pyplot as plt
import torch

from uel_helpers import editing
from uel_helpers.data import available_datasets, load_dataset, pad, to_rgb
from uel_helpers.editing import (
    EPSILONS,
    JPEG_QUALITIES,
    ProxyEditor,
    RandomJPEG,
    attack_settings,
    encoder_attack,
    jpeg_images,
    jpeg_sweep,
    jpeg_view,
    latents,
    noise_control,
    proxy_settings,
    psnr,
    render_edit_grid,
    render_jpeg_sweep,
    render_jpeg_view,
    train_proxy_vae,
)
from uel_helpers.notebook import notebook_setup

cfg = notebook_setup(profile, seed)
t_start = time.perf_counter()
if dataset is None:
    use_fashion = cfg.profile != "smoke" and available_datasets()["fashion-mnist"].startswith("offline")
    dataset = "fashion-mnist" if use_fashion else "digits"
epsilons = list(EPSILONS if epsilons is None else epsilons)
qualities = list(JPEG_QUALITIES if qualities is None else qualities)
proxy_cfg = proxy_settings(cfg.profile)
attack = attack_settings(cfg.profile)
n_test = {"smoke": 1, "quick": 5, "paper": 20}[cfg.profile]  # test images per class
if dataset == "fashion-mnist":  # 28 px padded to 32 px, grey shown as RGB (the SD VAE reads RGB)
    train_full = to_rgb(pad(load_dataset("fashion-mnist", "train"), 32))
    test = to_rgb(pad(load_dataset("fashion-mnist", "test").take_per_class(n_test, seed=seed), 32))
elif dataset == "digits":  # 8 px resized to 16 px explicitly (two stride-2 convolutions need a multiple of 4)
    train_full = to_rgb(load_dataset("digits", "train", size=16))
    test = to_rgb(load_dataset("digits", "test", size=16).take_per_class(n_test, seed=seed))
else:
    raise ValueError(f"dataset must be 'fashion-mnist' or 'digits', got {dataset!r}")
train = train_full if proxy_cfg.n_per_class is None else train_full.take_per_class(proxy_cfg.n_per_class, seed=seed)
clean = test.images
print(f"PROXY data: {dataset}, training {len(train)} images, protected test images {len(test)} of shape "
      f"{tuple(clean.shape[1:])}")
print(attack)
print(proxy_cfg)

# %% [markdown]
# ## 3. The threat, and what a protection promises
#
# A latent diffusion model edits a photo $x$ from its latent: img2img at strength $s$ encodes $z = E(x)$, noises
# it, $z_s = \sqrt{1-s}\,z + \sqrt{s}\,\epsilon$, and denoises towards a prompt. PhotoGuard's **encoder attack**
# immunises $x$ by pushing its latent somewhere useless (the zero latent in its img2img demo):
#
# $$\delta^\star = \arg\min_{\lVert\delta\rVert_\infty \le \varepsilon} \lVert E(x+\delta) - z_{target}\rVert_2 ,$$
#
# so that any edit of $x + \delta^\star$ starts from the wrong latent. The promise is *imperceptible* (ε ≈ 7.65/255)
# and *robust to what happens to a photo online*. JPEG, applied by phones and websites, is the test of the second
# half. The attack, as the package runs it (PhotoGuard's `pgd`: uniform random start, sign step, linear decay from
# `step` to `step/100`, projection onto the ε-ball and [0, 1]; then stored as 8 bits):

# %%
print(inspect.getsource(editing.step_schedule).split('"""')[0] + "...")
print(inspect.getsource(editing.pgd_encoder_attack).split('"""')[2])

# %% [markdown]
# ## 4. The proxy: a small VAE as $E$ and $G$, and an "editor"
#
# Stable Diffusion's VAE is replaced by a small convolutional VAE (3 convolutions down to a 4 × 8 × 8 latent for
# 32 px images; `ProxyVAE`), trained here and cached. The proxy editor is img2img without a denoiser:
# $\mathrm{edit}(x) = G(\sqrt{1-s}\,E(x) + \sqrt{s}\,\epsilon)$ with $s = 0.5$ (PhotoGuard's strength) and the same
# seeded $\epsilon$ for every version of an image (PhotoGuard sets seed 9222 before each generation).

# %%
proxy = train_proxy_vae(train, proxy_cfg, seed=seed, device=cfg.device)
encoder = proxy.encode_mean
editor = ProxyEditor(proxy, strength=proxy_cfg.strength)
recon = proxy.reconstruct(clean)
print(f"proxy VAE: {sum(p.numel() for p in proxy.model.parameters()):,} parameters, final training MSE "
      f"{proxy.history['mse'][-1]:.4f}, test reconstruction PSNR {float(psnr(recon, clean).mean()):.1f} dB, "
      f"training time {sum(proxy.history['seconds']):.0f} s (0 when loaded from the cache)")

# %% [markdown]
# The reconstruction PSNR says how faithful the proxy's $G(E(x))$ is; at `quick` we measured 22.1 dB (final training MSE 0.0078). A
# blurry proxy edits blurrily, which is fine: what matters below is how far each version of an image moves the
# latent and the edit *relative to the clean image's*.

# %% [markdown]
# ## 5. Protect, and the control
#
# One protection per ε (the budget of each line of the figures), with PhotoGuard's step schedule scaled to ε
# (step = ε/3, PhotoGuard's ratio 0.02/0.06), and for each ε the **control**: uniform random noise of the same
# budget, stored the same way. A protection must move the latent far more than its control.

# %%
protections, controls = {}, {}
for eps in epsilons:
    s = attack.with_(eps=eps, step=eps / 3)
    protections[eps] = encoder_attack(encoder, clean, s, seed=seed, quiet=cfg.profile == "smoke")
    controls[eps] = noise_control(clean, eps, seed=seed)
z0 = latents(encoder, clean)
print(f"clean latent norm ‖E(x)‖: {float(z0.flatten(1).norm(dim=1).mean()):.3f} (mean over images)")
for eps in epsilons:
    p, c = protections[eps], controls[eps]
    shift = {k: float((latents(encoder, v.images) - z0).flatten(1).norm(dim=1).mean()) for k, v in
             (("protected", p), ("control", c))}
    print(f"ε = {255 * eps:5.2f}/255: stored L∞ {p.linf_levels} levels; latent shift ‖E(x') − E(x)‖: protected "
          f"{shift['protected']:.3f}, noise control {shift['control']:.3f}; PSNR to clean: protected "
          f"{float(psnr(p.images, clean).mean()):.1f} dB; attack {p.seconds:.1f} s, loss {float(p.loss[0]):.3f} -> "
          f"{float(p.loss[-1]):.3f}")

# %% [markdown]
# At `quick` we measured a clean latent norm of 18.45 and shifts (protected / control) of 1.22 / 0.26 at 4/255, 2.39 / 0.49 at 7.65/255 and 4.57 / 1.03 at 16/255: the protection moves the latent 4.4-4.8x more than noise of the same budget, but only by 13% of the clean latent's norm at PhotoGuard's budget (the loss fell from 18.46 to 16.55 in 200 iterations). If the protected shift is not well above the control's, the attack did not
# find the encoder's sensitive directions (too few iterations, or a step too small for ε).

# %% [markdown]
# ## 6. Clean | protected | protected + JPEG(Q), and their edits
#
# Top row of each image: the inputs; bottom row: the proxy's edits. Over each column, the latent-shift ratio
# ‖E(jpeg_Q(x_adv)) − E(x)‖ / ‖E(x_adv) − E(x)‖, the mean over all test images (1 = JPEG kept the protection's shift,
# 0 = JPEG brought the latent back to the clean one).

# %%
eps_main = min(epsilons, key=lambda e: abs(e - 0.03))  # PhotoGuard's budget
prot = protections[eps_main]
grid_q = [q for q in (100, 75, 50) if q in qualities] or qualities[:2]
inputs = {"clean": clean, f"protected ε={255 * eps_main:.3g}/255": prot.images}
inputs.update({f"+ JPEG Q={q}": jpeg_images(prot.images, q) for q in grid_q})
edits = {k: editor(v) for k, v in inputs.items()}
zs = {k: latents(encoder, v) for k, v in inputs.items()}
den = (zs[f"protected ε={255 * eps_main:.3g}/255"] - z0).flatten(1).norm(dim=1)
notes = {k: f"ratio {float(((z - z0).flatten(1).norm(dim=1) / den).mean()):.2f}" for k, z in zs.items()
         if k != "clean"}
fig = render_edit_grid(inputs, edits, notes, indices=(0, 1), title=f"{dataset}: inputs and their proxy edits")
plt.show()

# %% [markdown]
# What the paper shows with Stable Diffusion: the protected image's edit is ruined, the JPEG'd one is a normal edit
# again. On the proxy at `quick` we measured mean ratios 0.82 (Q = 100), 0.85 (Q = 75) and 0.92 (Q = 50), and edits that differ little: the protected edit's SSIM to the clean edit is 0.960 (mean over the 50 images), 0.967 after JPEG 75. If you see the protected edit barely differ from the
# clean edit, the protection is weak *in edit space* for this encoder, whatever JPEG does.

# %% [markdown]
# ## 7. The JPEG sweep: latent-shift ratio and edit similarity against Q, one line per ε
#
# For each input x' (clean, the noise controls, the protections): PIL JPEG at each quality (the same codec as the
# ISS defense of notebook 02's matrix), then the latent-shift ratio, the pixel change JPEG caused, PSNR to the clean
# image and the SSIM / PSNR of the edit to the clean image's edit.

# %%
rows = {"clean": clean}
for eps in epsilons:
    rows[controls[eps].label] = controls[eps].images
    rows[protections[eps].label] = protections[eps].images
sweep = jpeg_sweep(encoder, clean, rows, qualities=qualities, editor=editor)
fig = render_jpeg_sweep(sweep, metrics=("ratio", "edit_ssim"), title=f"{dataset}: what JPEG leaves of the protection")
plt.show()
for metric in ("latent_shift", "ratio", "edit_ssim"):
    print(f"\n{metric}\n{sweep.table(metric)}")

# %% [markdown]
# **The paper's direction:** the ratio near 1 at Q = 100 and falling with Q, the protected edit SSIM rising towards
# the clean edit's as Q falls. **Measured at `quick`:** at PhotoGuard's ε the ratio is 0.82 at Q = 100 and *rises* to 0.85 (Q = 75) and 0.92 (Q = 50); at 4/255 it goes from 0.83 to 1.21, at 16/255 it stays at 0.84. The protected edit SSIM stays at 0.96-0.97 (7.65/255) and 0.87-0.89 (16/255) at every Q; the noise controls' ratios climb above 1 (2.19 at Q = 50 for 7.65/255) because for them JPEG's own shift dominates. The paper's direction did **not** show on the proxy, except at Q = 100, which is, as the paper says, "almost equivalent" to the protected image.
#
# The ratio mixes two shifts: what is left of the protection, and JPEG's own change of the latent (the clean row of
# `latent_shift` is exactly that). Measuring the protection against the compressed clean image separates them:
# ‖E(jpeg(x_adv)) − E(jpeg(x))‖ / ‖E(x_adv) − E(x)‖, and the share of the perturbation's pixels that survive,
# ‖jpeg(x_adv) − jpeg(x)‖₂ / ‖x_adv − x‖₂:

# %%
print("Q    | latent shift kept, vs JPEG of clean | perturbation kept (pixels) | JPEG's own pixel change, clean")
for q in qualities:
    xq, pq = jpeg_images(clean, q), jpeg_images(prot.images, q)
    kept = ((latents(encoder, pq) - latents(encoder, xq)).flatten(1).norm(dim=1) / den).mean()
    pix = ((pq.float() - xq.float()).flatten(1).norm(dim=1) / (prot.images.float() - clean.float()).flatten(1)
           .norm(dim=1)).mean()
    print(f"{q:4d} | {float(kept):36.3f} | {float(pix):26.3f} | "
          f"{float((xq.float() - clean.float()).flatten(1).norm(dim=1).mean() / 255):.3f}")

# %% [markdown]
# At `quick` we measured a kept latent shift of 0.82 (Q = 100), 0.76 (90), 0.73 (75 and 50), and ≥ 88% of the perturbation's pixel norm surviving every quality, while JPEG's own change of the clean images grows from 0.05 to 1.97 (L2, [0, 1] units): JPEG removes at most about a quarter of the protection here, and the rest of what the ratio shows is JPEG's own shift. Our reading (a hypothesis, not tested here): a small encoder trained on
# smooth images is most sensitive to smooth, low-frequency directions, which JPEG keeps, whereas PhotoGuard's
# perturbations on SD's VAE are the small high-frequency patterns that JPEG discards. This is the proxy's limit, not
# a refutation of the paper.

# %% [markdown]
# ## 8. Can robustness be bought? The adaptive protection, and its cost
#
# The same attack through a **differentiable JPEG** (kornia's, at a quality drawn per image and iteration from the
# sweep's qualities: expectation over transformation) optimises the shift that survives compression. The price is
# visibility: PSNR of the stored image to the clean one.

# %%
adaptive = encoder_attack(encoder, clean, attack.with_(eps=eps_main, step=eps_main / 3),
                          transform=RandomJPEG(qualities), seed=seed, quiet=cfg.profile == "smoke")
pair = {prot.label: prot.images, adaptive.label: adaptive.images}
sweep_ad = jpeg_sweep(encoder, clean, pair, qualities=qualities, editor=editor)
fig = render_jpeg_sweep(sweep_ad, metrics=("latent_shift", "ratio", "edit_ssim"),
                        title=f"non-adaptive vs adaptive protection, ε={255 * eps_main:.3g}/255")
plt.show()
for name, p in ((prot.label, prot), (adaptive.label, adaptive)):
    low = min(qualities)
    print(f"{name:28s} PSNR to clean {float(psnr(p.images, clean).mean()):5.1f} dB | latent shift PNG "
          f"{sweep_ad.mean('latent_shift', name, None):.3f}, JPEG {low} {sweep_ad.mean('latent_shift', name, low):.3f} "
          f"| edit SSIM PNG {sweep_ad.mean('edit_ssim', name, None):.3f} | attack {p.seconds:.1f} s")

# %% [markdown]
# At `quick` we measured PSNR to clean 33.3 dB (adaptive) vs 30.7 dB (non-adaptive): no visibility cost here, the adaptive images are *less* changed; but their latent shift is smaller to begin with (1.37 vs 2.39 at PNG) and stays smaller after JPEG 50 (1.91 vs 2.20), with an edit SSIM of 0.992 vs 0.960 at PNG. Its ratio is above 1 (1.23 at Q = 75 vs 0.85: the effect test's criterion 4 is met), but on this proxy the adaptive attack did not buy a stronger protection after JPEG. The adaptive protection gives up strength at PNG for stability under
# JPEG; on SD the paper's discussion asks for exactly this kind of robustness, and its bypass claim covers
# non-adaptive protections only.

# %% [markdown]
# ## 9. Stable Diffusion (GPU and network only)
#
# PhotoGuard's own setting: `runwayml/stable-diffusion-v1-5` in fp16, the demo's dog photo (512 × 512), the
# encoder attack on `pipe.vae` (ε 0.06, step 0.02 in [−1, 1] units, 1,000 iterations at `paper`), then img2img with
# "dog under heavy rain and muddy ground real", seed 9222, strength 0.5, guidance 7.5, 50 steps, for the clean, the
# protected and each JPEG'd photo. It runs only on a CUDA GPU with diffusers installed and the network reachable.

# %%
sd_ready = torch.cuda.is_available() and importlib.util.find_spec("diffusers") is not None
if run_stable_diffusion is None:
    run_stable_diffusion = sd_ready
if not run_stable_diffusion:
    print("SKIPPED: the Stable Diffusion cells need a CUDA GPU, the `editing` extra (pip install "
          "\"uel_helpers[editing]\") and the network to download the model (a few GB). This machine: CUDA "
          f"{torch.cuda.is_available()}, diffusers {importlib.util.find_spec('diffusers') is not None}. The proxy "
          "figures above stand in for them.")
else:
    from uel_helpers.editing import SDEditor, SDEditSettings, SDEncoder, load_img2img, load_photo

    sd = SDEditSettings()
    pipe = load_img2img(sd)
    photo = load_photo()
    sd_attack = attack_settings(cfg.profile)  # paper: PhotoGuard's eps 0.03, step 0.01 ([0, 1] units), 1,000 its
    sd_prot = encoder_attack(SDEncoder(pipe.vae), photo, sd_attack, seed=seed, batch_size=1)
    sd_editor = SDEditor(pipe, sd)
    sd_inputs = {"clean": photo, "protected": sd_prot.images}
    sd_inputs.update({f"JPEG Q={q}": jpeg_images(sd_prot.images, q) for q in grid_q})
    sd_edits = {k: sd_editor(v) for k, v in sd_inputs.items()}
    fig = render_edit_grid(sd_inputs, sd_edits, title="Stable Diffusion v1.5 img2img (PhotoGuard's demo)",
                           proxy=False)
    plt.show()
    sd_sweep = jpeg_sweep(SDEncoder(pipe.vae), photo, {"protected": sd_prot.images}, qualities=qualities,
                          editor=sd_editor)
    for metric in ("ratio", "edit_ssim", "edit_psnr"):
        print(f"\n{metric} (Stable Diffusion)\n{sd_sweep.table(metric)}")
    print(f"attack: {sd_attack.iters} iterations in {sd_prot.seconds:.0f} s")

# %% [markdown]
# Not run for this notebook's text (no GPU was lent while it was written): no SD number is reported here. On a GPU,
# expect (the paper's figures, qualitative) the protected edit to fail and the JPEG'd edits to look like the clean
# edit again, closer at lower Q, with Q = 100 "almost equivalent" to the protected image.

# %% [markdown]
# ## 10. Explore one image: quality, difference, edit
#
# The explorer's figure (`render_jpeg_view`): protected | JPEG(Q) | the difference JPEG made and the protection
# itself, amplified so that ±ε spans black to white; below, the edits. Here at three qualities for image 1.

# %%
for q in grid_q:
    fig = render_jpeg_view(jpeg_view(encoder, editor, prot, 0, q))
    plt.show()

# %% [markdown]
# The explorer (a live kernel only; the figures above are its view at three qualities): a quality slider, an ε
# dropdown (one protection per budget) and the image; the info line gives the image's latent-shift ratio.

# %%
from uel_helpers.widgets import jpeg_explorer

jpeg_explorer(encoder, editor, {p.label: p for p in protections.values()})  # named by their budgets

# %% [markdown]
# Compare the two amplified panels: where "JPEG − protected" is small and unstructured while "protected − clean"
# keeps its pattern, JPEG left the protection in place; a JPEG difference that mirrors the protection's pattern
# means JPEG removed it. The ratio printed beside the edits is this image's own.

# %% [markdown]
# ## 11. The link to unlearnable examples
#
# The same lesson as the ISS defense (notebook 02's matrix; Liu et al., arXiv 2301.13838): additive, small,
# high-frequency perturbations do not survive lossy compression. Notebook 03's table measured it at `quick` on
# Fashion-MNIST: AR poisoning (L2 1) lowered the judge's accuracy to 68.8% and JPEG-10 on the training set gave back
# 86.0% (clean 89.8%). The same codec (`uel_helpers.transforms.jpeg_roundtrip`) runs here. And the same caveat:
# a perturbation that is smooth, or optimised through JPEG (section 8), survives it.

# %% [markdown]
# ## 12. Summary, what did not reproduce, what is unknown, exercises
#
# * **Did not reproduce on the proxy.** At `quick` (Fashion-MNIST, 50 images, PhotoGuard's ε and step schedule, 200 iterations) JPEG did not undo the encoder attack on the proxy: the latent-shift ratio was 0.82 at Q = 100 and rose to 0.92 at Q = 50 (the effect test's criterion, ≤ 0.5 at every Q ≤ 75, fails and is kept as a strict xfail with these numbers); against the compressed clean image, 73% of the shift survived Q = 50. The protection is also weak in the proxy's edit space (edit SSIM 0.960), so there was little for JPEG to give back (0.967 after Q = 75). What held: the protection moves the latent 4.8x more than noise of the same budget, Q = 100 removes little (ratio 0.82), and the noise control leaves the edit at SSIM 0.997. Our reading, not tested here: a small encoder trained on smooth grey images is attacked through smooth directions that JPEG keeps; the SD experiment of section 9 is what tests the paper's claim.
# * The proxy is a small VAE on grey images shown as RGB, not SD's VAE on photos: proxy figures are labelled so and
#   no proxy number is a PhotoGuard result.
# * Deviations: images in [0, 1] (PhotoGuard [−1, 1]: budgets halved accordingly); stored by rounding (PhotoGuard's
#   `ToPILImage` truncates; `rounding="truncate"` is available); 200 iterations at `quick` (1,000 at `paper`); one L2
#   norm per image summed over a batch.
# * Unknown (not in any source we could read): the paper's JPEG qualities, images, seeds and metrics; whether it used
#   the inpainting demos; whether the protected image was saved as PNG before JPEG (PhotoGuard's notebook already
#   stores 8 bits).
#
# **Exercises.** (1) Set `epsilons = [16 / 255, 32 / 255]`: does a larger budget change how much JPEG removes?
# (2) Target the latent of another image instead of zero (`encoder_attack(..., target=latents(encoder, other))`).
# (3) Train the proxy longer or wider (`proxy_settings(profile).with_(width=64, epochs=20)`) and rerun section 7:
# does a sharper encoder make the attack's perturbation more fragile under JPEG?

# %%
print(f"notebook run time: {time.perf_counter() - t_start:.0f} s (profile {cfg.profile}, dataset {dataset})")
