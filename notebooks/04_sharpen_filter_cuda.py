# %% [markdown]
# # 04 · Breaking CUDA with sharpening and a DCT low-pass (RSK+FF)
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/uel-lab/unlearnable-examples-lab/blob/main/notebooks/04_sharpen_filter_cuda.ipynb)
#
# **The papers.** Sadasivan, Soltanolkotabi, Feizi, *CUDA: Convolution-based Unlearnable Datasets* (CVPR
# 2023, arXiv 2303.04278) blur every training image with a random 3×3 kernel of its class. There is no
# ε-ball: the perturbation is multiplicative, so adversarial training, built for small additive noise,
# helps only a little. Kim & Sandoval-Segura, *Learning From Convolution-based Unlearnable Datasets*
# (AdvML-Frontiers @ NeurIPS 2024, arXiv 2411.01742) undo most of it with two cheap training-time transforms:
# a **sharpening** kernel and a **DCT low-pass** filter.
#
# **Expected run time** (whole notebook, Fashion-MNIST as RGB):
#
# | profile | machine | run time | memory |
# |---|---|---|---|
# | `smoke` | 2-core CPU | measured under `pytest` in CI (20 images per class); see the CI log | < 2 GB RAM |
# | `quick` | 2-core CPU | not timed with the judge trained to fit: 6 rows × ~2 min + adversarial training (~10× a row) + section 6 + the 5-point ablation (~2 min each): roughly 40 minutes (an estimate from bench_judge, not a measurement) | < 3 GB RAM |
# | `paper` | GPU | not measured yet | not measured yet |

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
                    f"uel_helpers @ git+{REPO_URL}@{UEL_REF}"], check=True)
    importlib.invalidate_caches()
elif importlib.util.find_spec("uel_helpers") is None and Path("../uel_helpers/__init__.py").exists():
    sys.path.insert(0, str(Path("..").resolve()))  # a checkout opened without `pip install -e .`

# %% [markdown]
# ## 2. Parameters
#
# | parameter | `smoke` | `quick` | `paper` |
# |---|---|---|---|
# | `n_per_class` | 20 | 500 | the whole training set |
# | judge (no whitening, section 6) | `smoke` (2 epochs) | `quick` (quarter-width ResNet-10 trained to fit, at most 24 epochs, 2,000 test images) | ResNet-18, the paper protocol |
# | `percents` (DCT ablation) | 30, 100 | 10, 20, 30, 50, 100 | 10, 20, 30, 50, 100 |

# %% tags=["parameters"]
dataset = None  # None = "fashion-mnist" when available offline, else "digits"; "cifar10" on Colab
profile = None  # None = UEL_PROFILE, else "paper" on a GPU and "quick" on a CPU
seed = 0  # CUDA's key (the kernels) and the judge's seed
n_per_class = None  # None = by profile (smoke 20, quick 500, paper all)
as_rgb = True  # repeat a grayscale channel 3x, as notebooks 01-03
percents = None  # DCT percentages of the ablation; None = by profile
at_eps = 4 / 255  # adversarial training radius, as the CUDA README's example (eps 0.015, 10 steps, step 1.5*eps/10)

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import torch

from uel_helpers import plots
from uel_helpers.data import available_datasets
from uel_helpers.defenses.sharpen import ssk_kernel
from uel_helpers.experiments import run_experiment
from uel_helpers.notebook import notebook_data, notebook_setup
from uel_helpers.poisons import make_poison
from uel_helpers.poisons.cuda import cuda_kernels
from uel_helpers.profiles import images_per_class
from uel_helpers.progress import progress
from uel_helpers.training import protocol_for_profile
from uel_helpers.widgets import render_sharpen_view, sharpen_explorer

cfg = notebook_setup(profile, seed)
if dataset is None:
    dataset = "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"
if n_per_class is None:
    n_per_class = images_per_class(cfg.profile)
if percents is None:
    percents = [30.0, 100.0] if cfg.profile == "smoke" else [10.0, 20.0, 30.0, 50.0, 100.0]
data, train_set, test_set = notebook_data(dataset, n_per_class, as_rgb)  # digits: resized to 16x16
judge = protocol_for_profile(cfg.profile)
if cfg.profile == "quick":
    judge = judge.with_(max_test=2000)  # as the effect tests
# The judge has no patch-whitening layer (the paper's ResNet-18 has none; section 6 shows why it matters).
print(f"dataset {dataset}: {len(train_set)} training images {train_set.shape}; judge {judge.name} "
      f"({judge.model}, {judge.epochs} epochs)")

# %% [markdown]
# ## 3. CUDA: a class-wise blur
#
# For class $k$, CUDA draws a 3×3 kernel $w_k$ with taps uniform in $[0, 0.3]$ and sets **one** random tap to
# 1 (the same kernel for R, G and B), then replaces every training image of that class by
#
# $$x' = \frac{w_{y} * x}{\max(w_{y} * x)},$$
#
# a blur with a shift toward the 1-tap, renormalised so the brightest value becomes 255. The network learns
# "which blur" because that is easier than "which garment", and fails on clean (unblurred) test images.

# %%
poison = make_poison("cuda", train_set, seed=seed)
kernels = cuda_kernels(train_set.num_classes, seed=seed)[:, 0]
fig = plots.kernel_grid({f"{k}: {train_set.classes[k]}": kernels[k] for k in range(len(kernels))},
                        title=f"CUDA's class kernels (seed {seed}, blur parameter 0.3)")
plt.show()
fig = plots.render_poison_grid(train_set, poison, n=8, seed=seed)
plt.show()

# %% [markdown]
# ## 4. Why sharpening undoes a blur, and why the low-pass is needed after it
#
# A convolution multiplies the image's spectrum by the kernel's frequency response $H(f)$. CUDA's kernels
# are low-pass (all taps ≥ 0): they damp high frequencies by a class-specific pattern. The sharpening kernel
#
# $$K = \begin{pmatrix} 0 & -n & 0\\ -n & c & -n\\ 0 & -n & 0 \end{pmatrix}, \qquad n = \frac{c-1}{4},\ c = 2.5$$
#
# has taps summing to 1 (brightness kept) and a response that *grows* with frequency: applied after a blur
# it pushes the product $H_{\text{sharp}}\,H_{\text{CUDA}}$ back toward flat. It also amplifies noise and what
# is left of the class pattern at the highest frequencies; the DCT low-pass then keeps only the lowest
# $p\% \times p\%$ block of coefficients, where the object's shape lives. **RSK** draws a new random kernel
# ($c \sim \mathcal N(2.5, 0.1)$, each side tap $\sim \mathcal N((c-1)/4, 0.1)$) for every image at every epoch, so
# the network cannot learn the sharpening either.

# %%
ssk = ssk_kernel(2.5).numpy()
shown = {f"CUDA class {k}": kernels[k] for k in range(3)}
shown["SSK (c = 2.5)"] = ssk
for k in range(3):
    shown[f"SSK ∘ CUDA {k}"] = np.asarray(torch.nn.functional.conv2d(
        torch.as_tensor(kernels[k])[None, None].double(), torch.as_tensor(ssk)[None, None].double(),
        padding=2)[0, 0])
fig = plots.frequency_responses(shown, size=train_set.image_size[0],
                                title="|H(f)|, DC in the centre: the blurs (left), sharpening, and both in turn")
plt.show()

# %% [markdown]
# One CUDA image through RSK and then the low-pass, with the log-magnitude of its DCT (low frequencies top
# left): the explorer's first view, drawn by the same function (`render_sharpen_view`) so that a static render
# of the notebook shows it. The explorer below lets you move the centre $c$ and the percentage $p$, pick the
# image and the kernel (the seed draws a new random kernel; SSK has none).

# %%
fig = render_sharpen_view(poison.poisoned, index=0, mode="rsk", center=2.5, percent=30.0, seed=0)
plt.show()
sharpen_explorer(poison.poisoned)

# %% [markdown]
# ## 5. Does it give the accuracy back?
#
# The judge trained on: clean data; the control (sample-wise random noise at L∞ 8/255: a judge is trusted only
# where it stays near clean); CUDA; CUDA with adversarial training (L∞ ε = `at_eps`, 10 steps of
# 1.5·ε/10, the CUDA README's setting); CUDA with RSK+FF, SSK+FF, FF only and RSK only. Every transform is
# applied to the **training batches only**; the clean test set is untouched. Every row uses the same judge,
# without the whitening layer (section 6 shows why).

# %%
rows = {
    "clean": ("none", "none", {}),
    "control: sample-wise noise": ("random-noise-samplewise", "none", {}),  # must stay near clean
    "CUDA": ("cuda", "none", {}),
    "CUDA + AT": ("cuda", "adversarial-training", {"eps": at_eps, "steps": 10, "step_size": 1.5 * at_eps / 10}),
    "CUDA + RSK+FF": ("cuda", "rsk+ff", {}),
    "CUDA + SSK+FF": ("cuda", "ssk+ff", {}),
    "CUDA + FF only": ("cuda", "ff", {}),
    "CUDA + RSK only": ("cuda", "rsk", {}),
}
results = {}
for label, (attack, defense, params) in progress(rows.items(), desc="table rows", total=len(rows)):
    results[label] = run_experiment(attack, defense, data, judge, [seed], defense_params=params, poison_seed=seed,
                              baseline=False)
    r = results[label]
    print(f"{label:26s} final {100 * r.final[0]:5.1f}%  peak {100 * r.peak[0]:5.1f}%")

# %%
TABLE1 = {"clean": 94.34, "CUDA": 23.25, "CUDA + AT": 44.40, "CUDA + RSK+FF": 78.53}  # CIFAR-10, ResNet-18
print(f"{'training set':26s} {'ours (final %)':>15s} {'paper, CIFAR-10':>16s}")
for label, r in results.items():
    paper = f"{TABLE1[label]:.2f}" if label in TABLE1 else "not reported"
    print(f"{label:26s} {100 * r.final[0]:>15.1f} {paper:>16s}")
print(f"\nours: {dataset}, {len(train_set)} training images, {judge.name} judge ({judge.epochs} epochs), seed {seed}; "
      "the paper: CIFAR-10, ResNet-18, 60 epochs (Table 1 of arXiv 2411.01742v2; its AT settings were not available)")
fig = plots.bar_table({k: 100 * r.final[0] for k, r in results.items()}, reference=TABLE1,
                      title=f"ours ({dataset}, {judge.name} judge) beside Table 1 (CIFAR-10, ResNet-18)")
plt.show()

# %% [markdown]
# **What to look for:** the control within a point or two of clean; CUDA far below; RSK+FF above CUDA and AT.
#
# **Measured at `quick`** (2026-11-30, the judge trained to fit: a quarter-width ResNet-10, no whitening, at most
# 24 epochs; 2,000 test images, **one seed**), final clean test accuracy (%), beside Table 1 of the paper
# (CIFAR-10, ResNet-18, 60 epochs). The numbers of the earlier whitened 4-epoch judge were removed.
#
# | training set | 500 per class (RGB) | 200 per class (RGB) | paper |
# |---|---|---|---|
# | clean | 89.8 | 83.8 | 94.34 |
# | control: sample-wise noise | 89.9 | 84.9 | — |
# | CUDA | 37.3 | 41.7 | 23.25 |
# | CUDA + RSK+FF | **39.2** | **57.9** | 78.53 |
# | CUDA + JPEG-10 | — | 33.8 | — |
# | CUDA + AT, SSK+FF, FF only, RSK only | — | — | 44.40 (AT) |
#
# - **What reproduces.** CUDA bites hard (−52 points at 500 per class) while the control costs nothing.
# - **What does not.** RSK+FF's gain is not stable at this scale: +16 points on 200 images per class, +2 on
#   500 (`tests/test_effect_rsk_ff.py` asks +15 and records this as a strict xfail). The paper gives back
#   55 of 71 points on CIFAR-10. On 28×28 grey garments the 30% low-pass keeps a 7×7 block of the 26×26
#   sharpened image. Why more images per class make the defense weaker here we have not found (exercise 4).
#   One seed: the spread was not measured.
# - **Grey images as RGB.** CUDA uses the same kernel for all three channels, so on grey-as-RGB data the
#   poison stays grey, and grayscale (ISS) changes no byte of it.
# - The rows marked "—" (AT, SSK+FF, FF, RSK) were measured only with the earlier judge; run this section for
#   this one (about 2 minutes per row, adversarial training about 10× more).

# %% [markdown]
# ## 6. A trap: a judge that whitens its input
#
# Our earlier quick judge (FastNet, airbench-style; still the clean `fast` trainer) starts with a frozen layer
# fitted on the training images: it
# projects every 2×2 patch on the eigenvectors $v_i$ of the patches' covariance and divides by
# $\sqrt{\lambda_i + \epsilon}$. The low-pass removes the high-frequency directions from **every training
# batch**, so the network never learns what to do with them; on the unfiltered test images they arrive, and
# the whitening multiplies them by up to $1/\sqrt{\epsilon} \approx 45$. With that layer on, RSK+FF once made
# CUDA *worse*, as if the paper were wrong. The test that found the cause: RSK+FF on *clean* data, with and
# without whitening (the cell below). Fitting the whitening on filtered images does not help either: the
# directions are missing from the training batches whatever the fit. The judges of
# every profile (and the paper's ResNet-18) have no such layer; the cell below trains the small FastNet with
# and without it to show the trap.

# %%
fastnet = judge.with_(model="fastnet-small")  # FastNet needs images of at least 16x16 (digits: see notebook 00)
trap = {
    "whitening on": fastnet.with_(whiten=True, sharpen="rsk", sharpen_center=2.5, lowpass_percent=30.0),
    "whitening off (the rsk+ff defense)": fastnet,
}
for label, protocol in progress(trap.items(), desc="judges", total=len(trap)):
    defense = "none" if label == "whitening on" else "rsk+ff"  # the defense would switch whitening off itself
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the trainer warns about exactly this combination
        r = run_experiment("none", defense, data, protocol, [seed], baseline=False)
    print(f"clean data + RSK+FF, {fastnet.model} judge, {label:36s}: {100 * r.final[0]:5.1f}%")
print(f"clean data, no defense: {100 * results['clean'].final[0]:5.1f}%")

# %% [markdown]
# **What to look for:** with whitening on, RSK+FF on *clean* data costs many points (the filtered-out directions
# are amplified at test time); with it off, RSK+FF on clean data costs a few. **Measured at `quick`:** not yet
# with the current profile's data (the earlier measurement was with the whitened 4-epoch judge, removed).

# %% [markdown]
# ## 7. Ablation: how many DCT frequencies to keep
#
# RSK+FF with the low-pass keeping $p\%$ of the frequencies per side (30% is the paper's default; 100% is RSK
# alone). Too little and the object is gone; too much and the class pattern comes back. The paper's own
# ablation values were not available to us, so this is only ours.

# %%
ablation = {}
for p in progress(percents, desc="DCT percentages"):
    r = run_experiment("cuda", "rsk+ff", data, judge, [seed], defense_params={"percent": p}, poison_seed=seed, baseline=False)
    ablation[p] = r.final[0]
    print(f"RSK+FF keeping {p:5.1f}% per side: {100 * r.final[0]:5.1f}%")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(list(ablation), [100 * v for v in ablation.values()], "o-", label="CUDA + RSK+FF")
ax.axhline(100 * results["CUDA"].final[0], color="C3", ls="--", label="CUDA, no defense")
ax.axhline(100 * results["clean"].final[0], color="k", ls="--", label="clean")
ax.set(xlabel="DCT frequencies kept per side (%)", ylabel="clean test accuracy (%)", ylim=(0, 100))
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# **What to look for:** an inverted U: accuracy low at small p (the garment is gone), highest somewhere in
# between, and falling back towards the CUDA line at 100% (RSK alone lets the class pattern through). The
# paper's default is 30%. **Measured at `quick`:** not yet with the current judge.
#
# ## Summary
#
# - CUDA is a class-wise blur; sharpening flattens the blurred spectrum and the DCT low-pass removes what
#   sharpening amplifies (section 4).
# - At `quick` on Fashion-MNIST CUDA bites (−52 points, control unchanged), but RSK+FF's gain is unstable (+16
#   points at 200 images per class, +2 at 500): the paper's +55 did not reproduce at this scale (section 5).
# - A whitening layer in the judge turns a low-pass defense into an attack on the judge (section 6).
#
# ## Deviations from the paper
#
# - **Data and judge**: at `quick`, Fashion-MNIST (28×28; sharpening gives 26×26 and the 30% low-pass keeps a
#   7×7 block) and a quarter-width ResNet-10 trained to fit (at most 24 epochs), not CIFAR-10 and ResNet-18 for
#   60 epochs. No whitening layer, as the paper's ResNet-18 (section 6 shows what one does).
# - **Order and geometry**: as the reference (sharpen without padding, low-pass on the smaller image, then the
#   crop pads back); our crop is the judge's (padding 4 on 28×28 at `quick`), not RandomCrop(32, 4) on 32×32.
# - **RSK's random numbers** come from a torch generator on the device, not numpy in DataLoader workers.
# - **Adversarial training** uses the CUDA README's example radius; the RSK paper's AT settings were not
#   available.
#
# ## Exercises
#
# 1. **The centre.** Try `defense_params={"center": 1.5}` and `{"center": 4.0}` for `rsk+ff`. Where is the
#    best trade-off between undoing the blur and amplifying noise?
# 2. **Grayscale.** Set `as_rgb = False`. Does anything change for CUDA, whose kernel is the same in every
#    channel?
# 3. **Another poison.** Run `rsk+ff` against `ar` or `em-samplewise`. A low-pass also removes high-frequency
#    additive noise: is RSK+FF a general defense, or a CUDA-specific one?
# 4. **Scale.** Run section 5 with `n_per_class = 200` and `500`. Does RSK+FF's gain depend on the number of
#    images per class? Look at the training accuracy of each run (`results[label].train_acc`).
