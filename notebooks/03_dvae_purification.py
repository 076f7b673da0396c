# %% [markdown]
# # 03 · D-VAE: purifying unlearnable examples with rate-constrained VAEs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/uel-lab/unlearnable-examples-lab/blob/main/notebooks/03_dvae_purification.ipynb)
#
# **The paper.** Yu, Wang, Xia, Yang, Lu, Tan, Kot, *Purify Unlearnable Examples via Rate-Constrained
# Variational Autoencoders* (ICML 2024, arXiv 2405.01460). A VAE whose latent **rate** (its KL divergence
# to the prior) is capped cannot pass every detail of its input; the small additive perturbations of
# unlearnable examples are among the first details it drops. D-VAE adds a second decoder that models
# the perturbation from a learnable class-wise embedding, so it can be *subtracted*, and purifies in
# two stages with fresh models.
#
# **What we can and cannot compare.** The paper's accuracy tables were not available to us. Every
# number in this notebook is ours; none is quoted as the paper's.
#
# **Expected run time** (whole notebook, Fashion-MNIST as RGB, 11 poisons):
#
# | profile | machine | run time | memory |
# |---|---|---|---|
# | `smoke` | 2-core CPU | measured under `pytest` in CI (20 images per class, 1 D-VAE epoch); see the CI log | < 2 GB RAM |
# | `quick` | 2-core CPU | not re-timed with the judge trained to fit. With `poisons = ["ar"]`, `at_poisons = []`: cap sweep 8.3 min and both D-VAE stages 3.4 min (measured with the earlier judge; they do not use it), plus 6 judges × ~2 min (bench_judge): about 25 minutes, an estimate. The default (11 poisons, adversarial training on 2) takes hours: set a shorter `poisons` list for a first look | < 3 GB RAM |
# | `paper` | GPU | not measured yet (60 D-VAE epochs per stage on the whole training set, per poison) | not measured yet |
#
# Every poison, D-VAE model, purified set and judge run is cached (`UEL_CACHE`), so a second run, or a
# run after notebooks 01 and 02 with the same data, skips the finished parts.

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
# `None` means "take it from the profile":
#
# | parameter | `smoke` | `quick` | `paper` |
# |---|---|---|---|
# | `n_per_class` | 20 | 500 | the whole training set |
# | D-VAE epochs per stage, width w, latent channels d | 1, 8, 16 | 8, 16, 64 | 60, 64, 256 (the paper's CIFAR-10 settings) |
# | `caps` (plain-VAE sweep) | 0.5, 4 | 0.25, 1, 4, 16 | 0.1, 0.25, 0.5, 1, 2, 4, 8, 16 |
# | `poisons` | `ar`, `em-samplewise`, `cuda` | every attack of notebook 01 | every attack of notebook 01 |
# | `at_poisons` (adversarial training is ~11× a plain judge) | the first poison | `ar`, `em-samplewise` | every poison |
#
# The judge is the profile's (`quick`: a quarter-width ResNet-10 trained to fit), evaluated on 2,000 test images at
# `quick` (as the effect tests), 512 at `smoke` and the whole test set at `paper`.

# %% tags=["parameters"]
dataset = None  # None = "fashion-mnist" when available offline, else "digits"; "cifar10" on Colab
profile = None  # None = UEL_PROFILE, else "paper" on a GPU and "quick" on a CPU
seed = 0  # the poisons' seed, D-VAE's seed and the judge's seed
n_per_class = None  # None = by profile (smoke 20, quick 500, paper all)
as_rgb = True  # repeat a grayscale channel 3x (the attacks were designed for colour images; notebook 01)
poisons = None  # None = by profile (smoke: 3 of them, else every attack of notebook 01); e.g. ["ar", "em-samplewise"]
sweep_attack = "ar"  # the poison of the plain-VAE cap sweep (section 5)
caps = None  # KL caps of the sweep; None = by profile (see the table)
at_poisons = None  # poisons that also get adversarial training; None = by profile
sample_latent = True  # sample z at purification, as the reference does; False = use the mean
dvae_epochs = None  # D-VAE epochs per stage; None = by profile (smoke 1, quick 8, paper 60)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from uel_helpers import plots
from uel_helpers.data import available_datasets
from uel_helpers.defenses import apply_defense
from uel_helpers.defenses.dvae import (
    PROFILE_SETTINGS,
    STAGE_CAPS,
    purify_stage,
    run_stages,
    stage_seed,
    train_vae,
    vae_reconstruct,
)
from uel_helpers.experiments import run_experiment
from uel_helpers.notebook import notebook_data, notebook_setup, profile_attack_params
from uel_helpers.perturbation_metrics import cosine_similarity, perturbation_survival, perturbation_transfer, psnr
from uel_helpers.poisons import REGISTRY, make_poison
from uel_helpers.profiles import images_per_class
from uel_helpers.progress import progress
from uel_helpers.training import protocol_for_profile
from uel_helpers.widgets import dvae_explorer, dvae_panels, render_dvae_view

cfg = notebook_setup(profile, seed)
if dataset is None:
    dataset = "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"
if n_per_class is None:
    n_per_class = images_per_class(cfg.profile)
if poisons is None:
    poisons = ["ar", "em-samplewise", "cuda"] if cfg.profile == "smoke" else sorted(REGISTRY)
poisons = list(poisons)
if caps is None:
    caps = {"smoke": [0.5, 4.0], "quick": [0.25, 1.0, 4.0, 16.0],
            "paper": [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]}[cfg.profile]
if at_poisons is None:
    at_poisons = {"smoke": poisons[:1], "quick": [p for p in ("ar", "em-samplewise") if p in poisons],
                  "paper": poisons}[cfg.profile]
dvae_kw = {"profile": cfg.profile, "seed": seed, "sample_latent": sample_latent, "quiet": False,  # stage bars
           "epochs": dvae_epochs}

data, train_set, test_set = notebook_data(dataset, n_per_class, as_rgb)  # digits: resized to 16x16

judge = protocol_for_profile(cfg.profile)
if cfg.profile == "quick":
    judge = judge.with_(max_test=2000)  # as the effect tests: 2,000 class-balanced test images
settings = PROFILE_SETTINGS[cfg.profile]
print(f"dataset {dataset}: {len(train_set)} training images {train_set.shape}, {len(test_set)} test images")
print(f"judge: {judge.name} ({judge.model}, {judge.epochs} epochs) | D-VAE: "
      f"{dvae_epochs or settings.epochs} epochs per stage, w={settings.width}, d={settings.latent_dim}, "
      f"caps {STAGE_CAPS} | poisons: {', '.join(poisons)}")

# %% [markdown]
# ## 3. The idea: a rate cap keeps the content and drops the perturbation
#
# A VAE encodes an image x into a latent distribution $q(z\mid x) = \mathcal N(\mu(x), \sigma^2(x))$ and
# decodes $\hat x$ from a sample. The KL term $\mathrm{KL}(q(z\mid x)\,\|\,\mathcal N(0, I))$ is the **rate**:
# roughly how many nats of information about x the latent carries. D-VAE's loss caps it with a hinge,
#
# $$\mathcal L = \underbrace{\mathrm{MSE}(\hat x, x)}_{\text{reconstruct}} + \mathrm{MSE}(\mathrm{clamp}(\hat x + \hat p, 0, 1), x)
#   + w_{\mathrm{KL}} \cdot \max(\mathrm{KL}, C) + [\text{epoch} > 10]\cdot\max(\overline{\hat p^2}, 0.002),$$
#
# where $C$ is a cap in nats per latent position (1.0 in stage 1, 3.0 in stage 2). Below the cap the hinge is
# the constant $C$: **no gradient**, so the encoder may use up to $C$ nats for free and is pushed back above it.
#
# **Why that suppresses perturbations** (the paper's argument, in three lines). With a limited budget of
# nats, the reconstruction error is lowest when the budget is spent on what explains the most pixel
# variance: the image's shape and shading. An 8/255 perturbation explains very little variance per image
# (its MSE is ~ε² ≈ 0.001), so a tight cap leaves it out of $\hat x$. The poison's class structure is then
# in the residual $x - \hat x$, where the **perturbation decoder** $D_p$ (fed with a learned class embedding
# $u_y$ plus the latent) learns to put it: $\hat p$ is trained only to make $\hat x + \hat p$ match x.
#
# **The algorithm** (`uel_helpers.defenses.dvae.purify`, each stage a *fresh* model):
#
# 1. stage 1, cap 1.0: train D-VAE on the poisoned set; output $x_1 = \mathrm{uint8}(\mathrm{clamp}(x - \hat p_1))$;
# 2. stage 2, cap 3.0: train a new D-VAE on $x_1$; output $x_2 = \mathrm{uint8}(\hat x_2(\mathrm{clamp}(x_1 - \hat p_2)))$;
# 3. train the judge on $x_2$ and test it on the untouched clean test set.

# %% [markdown]
# ## 4. Make the poisons (cached from notebook 01)

# %%
def attack_params(name: str) -> dict:
    return profile_attack_params(name, train_set.channels, cfg.profile)  # EM/TAP surrogates by profile; AR on 1 channel


poisoned = {name: make_poison(name, train_set, seed=seed, **attack_params(name)).poisoned for name in poisons}
print(f"{len(poisoned)} poisons ready")

# %% [markdown]
# ## 5. The motivating experiment: plain VAEs at several caps
#
# The paper's first part trains a plain rate-constrained VAE (no perturbation decoder; the reference code
# does not ship it in a runnable form, `uel_helpers` has it as the `vae` defense) and looks at what its
# reconstructions keep. For each cap C we train one VAE on the poisoned set and measure, on the
# reconstructions $\hat x$:
#
# - (a) **PSNR(x̂, clean x)**: how much of the clean content survives (higher = better);
# - (b) **transfer** $= \sum\langle \hat x(x+\delta) - \hat x(x), \delta\rangle / \sum\|\delta\|^2$ with $\delta$ the
#   stored perturbation: the least-squares share of δ that moves the reconstruction when it is added (1 = all
#   of it passes, 0 = none). Comparing with the reconstruction of the *clean* image, not with the clean image
#   itself, keeps the VAE's own reconstruction error out of it (on Fashion-MNIST that error and the clipped δ
#   are both ≥ 0 on the black background, and would look like "surviving" perturbation);
# - (c) the judge's clean test accuracy after training on the reconstructions.
#
# The paper's claim: a small cap suppresses the perturbation (low transfer) at some cost in content; as
# the cap grows, both content and perturbation pass.

# %%
if sweep_attack not in poisoned:
    poisoned[sweep_attack] = make_poison(sweep_attack, train_set, seed=seed, **attack_params(sweep_attack)).poisoned
sweep_poison = poisoned[sweep_attack]
sweep = {"psnr": [], "transfer": [], "accuracy": []}
for cap in progress(caps, desc="caps", unit="VAE"):
    # the registered `vae` defense trains the VAE (cached) and returns the reconstructions of the poisoned set
    recon, _ = apply_defense("vae", sweep_poison, judge, kl_cap=cap, profile=cfg.profile, seed=seed, quiet=False,
                             sample_latent=sample_latent, epochs=dvae_epochs)
    vae = train_vae(sweep_poison, cap, profile=cfg.profile, seed=seed, epochs=dvae_epochs, quiet=True)  # cached
    on_clean, on_poison = (vae_reconstruct(vae, ds, sample_latent=sample_latent, seed=seed)
                           for ds in (train_set, sweep_poison))
    sweep["psnr"].append(float(psnr(recon, train_set).mean()))
    sweep["transfer"].append(perturbation_transfer(train_set, sweep_poison, on_clean, on_poison))
    res = run_experiment("none", "none", (recon, test_set), judge, [seed], baseline=False)
    sweep["accuracy"].append(res.mean)
    print(f"cap {cap:6.2f}: PSNR {sweep['psnr'][-1]:5.2f} dB, transfer of δ {sweep['transfer'][-1]:+.3f}, "
          f"judge {100 * res.mean:5.1f}%")
no_defense = run_experiment(sweep_attack, "none", data, judge, [seed], attack_params=attack_params(sweep_attack),
                      poison_seed=seed)
poisoned_psnr = float(psnr(sweep_poison, train_set).mean())
print(f"for reference: the poisoned images themselves have PSNR {poisoned_psnr:.2f} dB against the clean ones; "
      f"judge on {sweep_attack} {100 * no_defense.mean:.1f}%, on clean data {100 * no_defense.clean.mean:.1f}%")

# %%
fig = plots.cap_sweep(caps, sweep["psnr"], sweep["transfer"], sweep["accuracy"],
                      clean_accuracy=no_defense.clean.mean, poisoned_accuracy=no_defense.mean,
                      title=f"plain rate-constrained VAE on {sweep_attack}-poisoned {dataset} ({cfg.profile} profile)")
plt.show()

# %% [markdown]
# **What to look for:** transfer falling towards 0 at the small caps (the perturbation does not pass) while
# PSNR against the clean images stays well above the poisoned images' own PSNR printed above; and the judge's
# accuracy on the reconstructions above the no-defense line. At large caps all three should approach "no
# defense". **Measured at `quick`:** not yet with the current judge; the sweep's numbers of the earlier judge
# were removed with it.

# %% [markdown]
# ## 6. D-VAE: what the two decoders separate
#
# For every poison we run both stages (`run_stages` keeps the models; `purify`, the registered `dvae`
# defense, returns the same final set from the same cache). The figure below is stage 1 on one poison:
# the poisoned input, the main decoder's $\hat x$, the perturbation decoder's $\hat p$ (amplified), the true
# δ we added (amplified; we know it because we made the poison) and the stage-1 output $x - \hat p$.
# If D-VAE disentangles, the $\hat p$ row looks like the δ row.

# %%
stages = {name: run_stages(ds, **dvae_kw) for name, ds in poisoned.items()}
for name, st in stages.items():
    print(f"{name:24s} both stages {st.info['seconds']:6.1f} s" + ("" if st.info["stages"][0]["from_cache"] is False
                                                                   else " (from the cache)"))

# %%
show = sweep_attack if sweep_attack in stages else poisons[0]
pick = np.random.default_rng(seed).choice(len(train_set), size=8, replace=False)
panels = dvae_panels(stages[show].models[0], train_set, poisoned[show], pick, sample_latent=sample_latent)
fig = plots.signed_rows(panels, signed=("p̂ (perturbation decoder)", "true δ"),
                        column_titles=[train_set.classes[int(train_set.labels[i])] for i in pick],
                        title=f"D-VAE stage 1 on {show}: what each decoder carries")
plt.show()

# %% [markdown]
# **What to look for:** the p̂ row should have the texture of the δ row (AR's stripes, EM's speckle) and little
# of the garment; the last row should look like the clean image. A p̂ that shows the garment's outline means
# the perturbation decoder is carrying content, and stage 1 will blur it away.

# %% [markdown]
# **Explore it.** Pick a poison, a class and the first image (numbered within the class); each column shows
# its dataset index and the cosine between $\hat p$ and δ. The figure below is the explorer's first view,
# drawn by the same function (`render_dvae_view`): it is what a static render of the notebook shows, since
# the explorer itself needs a live kernel.

# %%
stage1 = {n: st.models[0] for n, st in stages.items()}
fig = render_dvae_view(stage1, train_set, poisoned, sample_latent=sample_latent)
plt.show()
dvae_explorer(stage1, train_set, poisoned, sample_latent=sample_latent)

# %% [markdown]
# ## 7. How much perturbation is left after each stage
#
# Per poison: the mean cosine between stage 1's $\hat p$ and the true δ; how much of δ is left after stage 1
# (survival $\sum\langle x_1 - x, \delta\rangle / \sum\|\delta\|^2$, fair here because stage 1 only subtracts);
# how much passes both stages (transfer, as in section 5: both stages run on the clean images too, with the
# same models and seeds); and the PSNR of the final images against the clean ones.
# CUDA and OPS are not small additive perturbations (a class-wise blur; one pixel set to an extreme
# value), so cosine, survival and transfer say less about them.

# %%
metrics = {}
sample = torch.as_tensor(np.random.default_rng(seed).choice(len(train_set), size=min(500, len(train_set)),
                                                            replace=False))
for name, st in stages.items():
    p = dvae_panels(st.models[0], train_set, poisoned[name], sample, sample_latent=sample_latent)
    clean_x1 = purify_stage(st.models[0], train_set, 1, sample_latent=sample_latent, seed=stage_seed(seed, 1))
    clean_x2 = purify_stage(st.models[1], clean_x1, 2, sample_latent=sample_latent, seed=stage_seed(seed, 2))
    metrics[name] = {
        "cos(p̂1,δ)": float(cosine_similarity(p["p̂ (perturbation decoder)"], p["true δ"]).nanmean()),
        "surv. x1": perturbation_survival(train_set, poisoned[name], st.outputs[0]),
        "transfer x2": perturbation_transfer(train_set, poisoned[name], clean_x2, st.outputs[1]),
        "PSNR x2 dB": float(psnr(st.outputs[1], train_set).mean()),
        "PSNR poisoned": float(psnr(poisoned[name], train_set).mean()),
    }
cols = list(next(iter(metrics.values())))
print(f"{'poison':24s}" + "".join(f"{c:>14s}" for c in cols))
for name, m in metrics.items():
    print(f"{name:24s}" + "".join(f"{m[c]:>14.3f}" for c in cols))
print("surv. x1 = share of δ left after stage 1; transfer x2 = share of δ passing both stages; PSNR vs clean")

# %% [markdown]
# **What to look for:** cosine(p̂₁, δ) well above 0 for the additive poisons (AR, EM, noise), survival after
# stage 1 and transfer after both stages well below 1, and a final PSNR that is not much below the poisoned
# images' PSNR (a purifier that destroys the content also destroys the perturbation). For CUDA and OPS these
# three numbers say little (see above).

# %%
fig = plots.image_rows({"clean": train_set, show: poisoned[show], "after stage 1": stages[show].outputs[0],
                        "after stage 2": stages[show].outputs[1]}, n=8, seed=seed,
                       title=f"{show}: the training images before and after each D-VAE stage")
plt.show()

# %% [markdown]
# ## 8. Does it give the accuracy back? D-VAE beside the simple defenses
#
# The judge trained on each poisoned set with: no defense, D-VAE stage 1 only, both D-VAE stages, and
# the baselines of notebook 02's matrix (ISS grayscale, JPEG quality 10, 2-bit depth reduction, and PGD
# adversarial training for `at_poisons`). Only the training set is changed; the clean test set is not.

# %%
defenses = ["none", "dvae-stage1", "dvae", "grayscale", "jpeg", "bdr", "adversarial-training"]
acc = {}
for name in progress(poisons, desc="table rows", unit="poison"):  # a judge per cell: minutes at `quick`
    row = {}
    for defense in defenses:
        if defense == "adversarial-training" and name not in at_poisons:
            continue
        if defense == "dvae-stage1":  # the stage-1 set, trained on directly (the ablation reviewers asked for)
            r = run_experiment("none", "none", (stages[name].outputs[0], test_set), judge, [seed], baseline=False)
        elif defense == "dvae":
            r = run_experiment("none", "none", (stages[name].outputs[1], test_set), judge, [seed], baseline=False)
        else:
            r = run_experiment(name, defense, data, judge, [seed], attack_params=attack_params(name), poison_seed=seed)
        row[defense] = r.mean
    acc[name] = row
clean_acc = run_experiment("none", "none", data, judge, [seed]).mean
print(f"clean training set: {100 * clean_acc:.1f}%")

# %%
short = {"adversarial-training": "AT", "dvae-stage1": "stage 1"}
head = f"{'poison':24s}" + "".join(f"{short.get(d, d):>10s}" for d in defenses) + f"{'D-VAE recovers':>16s}"
print(head)
print("-" * len(head))
for name, row in acc.items():
    cells = "".join(f"{100 * row[d]:>10.1f}" if d in row else f"{'-':>10s}" for d in defenses)
    lost = clean_acc - row["none"]
    recovered = (row["dvae"] - row["none"]) / lost if lost > 0.05 else float("nan")
    print(f"{name:24s}{cells}{100 * recovered:>15.0f}%" if recovered == recovered else
          f"{name:24s}{cells}{'(no loss)':>16s}")
print("'D-VAE recovers' = (D-VAE − none) / (clean − none), shown when the poison cost more than 5 points")

# %%
fig = plots.accuracy_heatmap({(p, d): 100 * v for p, row in acc.items() for d, v in row.items()},
                             title=f"clean test accuracy (%) after each defense; clean training {100 * clean_acc:.1f}%")
plt.show()

# %% [markdown]
# **What to look for:** the "none" column far below clean for every working poison, then how much of that
# loss each defense gives back. The paper's claim is that D-VAE (both stages) gives back most of it.
#
# **Measured at `quick`.** The paper's tables were not available to us, so this reports only our measurements. The quick judge
# changed on 2026-11-30 (a quarter-width ResNet-10 trained to fit instead of a whitened 4-epoch FastNet, which
# let sample-wise noise halve its accuracy), and every D-VAE number of the earlier judge was removed. With the
# new judge, in the shared effect setting (500 Fashion-MNIST images per class as RGB, 2,000 test images, seed 0):
#
# | training set | no defense | JPEG-10 | grayscale | D-VAE (both stages) |
# |---|---|---|---|---|
# | clean | 89.8% | — | — | — |
# | control: sample-wise noise | 89.9% | — | — | — |
# | AR (L2 1) | 68.8% | 86.0% | — | 75.4% (32% of the loss back) |
# | EM sample-wise | 74.0% | — | 88.4% | 80.4% (41% of the loss back) |
#
# At this scale the poisons cost less than with the earlier judge (AR 21 points, EM 16), so there is less for
# a purifier to give back, and D-VAE at `quick` (8 epochs per stage) gives back **less than half** of it (AR 32%,
# EM 41%; measured 2026-11-30 by `tests/test_effect_dvae.py`, now strict xfails with these numbers): the paper's
# effect ("recovers most of the accuracy") **did not reproduce at this scale**, while JPEG-10 (AR) and grayscale
# (EM) give back 82% and 91% for nothing. D-VAE on clean data (its own cost) was not measured with this judge.
#
# Things to keep in mind when reading the table above:
#
# - **Grey images as RGB.** Grey images shown as RGB have no colour variance; colour that the 3-channel
#   decoders leave in $x_2$ is something the clean test images never show, and grayscale removes exactly that
#   colour. On CIFAR-10 this is not the case.
# - **D-VAE is expensive.** Two VAE trainings per dataset: the reviewers' first complaint (JPEG costs
#   nothing by comparison).

# %% [markdown]
# ## Summary
#
# - A rate cap on a VAE's latent keeps content and drops part of the perturbation (section 5); D-VAE's second
#   decoder models the perturbation, and subtracting it purifies (sections 6–7).
# - At `quick` on Fashion-MNIST, D-VAE gives back less than half of what AR and EM cost (section 8), while
#   JPEG-10 and grayscale give back more for nothing: the paper's effect did not reproduce at this scale.
#
# ## Deviations from the paper
#
# - **Data and sizes** (D-VAE, arXiv 2405.01460; upstream yuyi-sd/D-VAE@9d62e4c): at `quick`, 5,000 Fashion-MNIST images as RGB, 8 epochs per stage
#   (paper: 60 on CIFAR-10), width 16 and 64 latent channels (paper: 64 and 256), the perturbation-energy
#   floor switched on after epoch 1 (10·8/60, scaled with the epoch count; the reference: after epoch 10 of 60).
#   On 28×28 images the latent is 14×14 (one halving, as the CIFAR design), so C still counts nats per
#   latent position.
# - **The judge**: the profile's fast judge for a few epochs, not the paper's ResNet-18 for 60 epochs
#   (the upstream `train_dvae.py` and `test.py`); the accuracy is the final epoch's.
# - **Not reproduced**: the frozen poisoned classifier of the reference, used only for logging.
# - **The plain VAE** of the paper's first part has no runnable reference; ours is D-VAE without the
#   perturbation decoder, trained with the same recipe. Its cap values in the sweep are ours.
# - **Sampling**: purification samples z as the reference does (`sample_latent=True`); set it to False
#   to use the mean.
#
# ## Exercises
#
# 1. **Train longer.** Set `dvae_epochs = 20` at `quick`. How much more of AR's loss comes back? Of EM's?
# 2. **Stage 2's cap.** The shipped scripts use 3.0, the argparse default is 2.5. Try
#    `run_stages(poisoned["ar"], stage_caps=(1.0, 1.0), **dvae_kw)` and `(1.0, 8.0)`: where does the
#    content start to blur, and where does the perturbation come back?
# 3. **Without colour.** Set `as_rgb = False`: the 1-channel decoder cannot leave colour behind, and the
#    judge cannot amplify it. Which of the rows of section 8 change most?
# 4. **Sampling or the mean.** Set `sample_latent = False`. Sampling adds noise to every purified image;
#    is that noise a help (a little data augmentation) or a harm?
