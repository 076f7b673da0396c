# %% [markdown]
# # 01 · Poison generation: autoregressive perturbations and the other availability poisons
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/uel-lab/unlearnable-examples-lab/blob/main/notebooks/01_poison_generation.ipynb)
#
# **The claim.** An *availability poison* (an "unlearnable example") adds a small perturbation to every
# training image so that a network trained on the released data learns the perturbation instead of
# the content, and fails on clean test images. Sandoval-Segura et al. (NeurIPS 2022) show that
# **autoregressive (AR) perturbations** do this *without* a surrogate network and without access to the
# rest of the dataset: each class gets a tiny linear recursion, and every image gets fresh noise from
# its class's recursion. Their ResNet-18 reaches only **11.75%** clean test accuracy on CIFAR-10 after
# training on the AR poison (L2 ε = 1), against ~95% on clean data.
#
# This notebook builds AR and the poisons it is compared with (error-minimising, error-maximising,
# CUDA, random noise, regions, LSP, OPS), looks at them, measures them, and trains the judge on each.
#
# **Expected run time** (whole notebook, Fashion-MNIST, all attacks):
#
# | profile | machine | run time | memory |
# |---|---|---|---|
# | `smoke` | 2-core CPU | measured 112 s under `pytest` on a quiet machine with 50 images per class (EM 38 s, TAP 15 s, 12 judges 36 s); smoke now uses 20 per class (not re-timed) | < 2 GB RAM |
# | `quick` | 2-core CPU | not timed as a whole with the judge trained to fit; its parts: 12 judges × ~2 min (bench_judge in `benchmarks/RESULTS.md`), EM ~1-2 min each, TAP ~3 min: about 30-35 minutes (an estimate from those parts) | < 3 GB RAM |
# | `paper` | Colab T4 GPU | not measured yet | not measured yet |

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
# `n_per_class=None` takes the profile's size: 20 images per class at `smoke`, 500 at `quick`
# (5,000 Fashion-MNIST images: every attack and every judge then fits in a minute or two on a CPU),
# the whole training set at `paper`.
#
# `as_rgb=True` repeats a grayscale image's channel three times. The attacks were designed for colour
# images (AR's released processes, OPS's eight colour corners, colour noise), so the RGB view lets the
# released AR processes run unchanged; on 1-channel data AR finds new processes with the paper's rules.
# Section 9 reports both views with the same judge and says which is closer to the papers' setting.

# %% tags=["parameters"]
dataset = None  # None = "fashion-mnist" when available offline, else "digits"; "cifar10" on Colab
profile = None  # None = UEL_PROFILE, else "paper" on a GPU and "quick" on a CPU
seed = 0
n_per_class = None  # None = by profile (smoke 20, quick 500, paper all)
attacks = None  # None = every registered attack; or a list such as ["ar", "em-samplewise"]
train_judges = True  # train the judge on every poison (the slow part)
as_rgb = True  # repeat a grayscale channel 3x (the attacks were designed for colour images; see above)

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from uel_helpers import plots
from uel_helpers.data import available_datasets, load_dataset, to_rgb
from uel_helpers.notebook import notebook_setup, profile_attack_params
from uel_helpers.poisons import REGISTRY, describe, format_table, make_poison
from uel_helpers.poisons.ar import (
    filter_response,
    generate_ar,
    generate_ar_reference,
    matching_filter,
    released_coefficients,
)
from uel_helpers.profiles import images_per_class
from uel_helpers.progress import progress
from uel_helpers.training import protocol_for_profile, train

cfg = notebook_setup(profile, seed)
if dataset is None:
    dataset = "fashion-mnist" if available_datasets()["fashion-mnist"].startswith("offline") else "digits"
if n_per_class is None:
    n_per_class = images_per_class(cfg.profile)
full_train = load_dataset(dataset, "train", size=16 if dataset == "digits" else None)
test_set = load_dataset(dataset, "test", size=16 if dataset == "digits" else None)
clean = full_train if n_per_class is None else full_train.take_per_class(n_per_class, seed=seed)
if as_rgb and clean.channels == 1:
    clean, test_set = to_rgb(clean), to_rgb(test_set)
judge = protocol_for_profile(cfg.profile)
attacks = sorted(REGISTRY) if attacks is None else list(attacks)
print(f"dataset {dataset}: {len(clean)} training images {clean.shape}, {len(test_set)} test images")
print(f"judge: {judge.name} ({judge.model}, {judge.epochs} epochs) | attacks: {', '.join(attacks)}")

# %% [markdown]
# ## 3. The attacks in one paragraph each
#
# All budgets are in [0, 1] pixel units; every attack returns a `Poison`: the uint8 `ImageSet` a victim
# would download (clipped and quantised) plus the float perturbation δ it was made from.
#
# - **AR** (`ar`, `ar-linf`). Class k has coefficients $b_k$ (3×3 taps per channel, bottom-right tap 0,
#   taps summing to 1). Starting from Gaussian noise, every pixel is overwritten by the recursion
#   $$x_{i+2,j+2} = \sum_{u,v\in\{0,1,2\}} b_k[u,v]\; x_{i+u,\,j+v},$$
#   the top-left border is cropped, and δ is scaled to $\|\delta\|_2 = \varepsilon$ (1 for 3×32×32).
#   No network is involved; a "matching filter" (the taps with −1 in the corner) gives ~0 on its own
#   class's noise and a large response on the others, so a CNN can learn the class from δ alone.
# - **Error-minimising noise** (`em-samplewise`, `em-classwise`; Huang et al., ICLR 2021): solve
#   $\min_\theta \mathbb{E}\,[\min_{\|\delta\|_\infty\le\varepsilon} \mathcal{L}(f_\theta(x+\delta), y)]$ by alternating
#   surrogate steps and PGD steps that *descend* the loss: the noise makes the images too easy to fit.
# - **Error-maximising noise** (`tap`; Fowl et al., NeurIPS 2021): adversarial examples against a
#   surrogate trained on clean data, targeted to class $(y+1) \bmod K$ by default.
# - **CUDA** (`cuda`): convolve every image with a random 3×3 blur kernel of its class and renormalise;
#   a multiplicative perturbation with no ε-ball (notebook 04 breaks it).
# - **Random noise** (`random-noise-classwise`, `random-noise-samplewise`): $U(-\varepsilon, \varepsilon)$ per class,
#   or per image. Class-wise noise is a shortcut; sample-wise noise is the *control* that should not work.
# - **Regions** (`regions`): class-wise ±ε colour blocks on a √k×√k grid (the hala64/udp definition).
# - **LSP** (`lsp`): class-clustered Gaussian patches, scaled to L2 = (6/255)·√(C·H·W).
# - **OPS** (`ops`): one pixel per class, set to the colour corner that differs most from that pixel in
#   the class's images (L0 = 1 pixel, unbounded value).

# %% [markdown]
# ## 4. Generate every poison
#
# `make_poison(name, clean, seed=...)` runs the attack, or loads the identical poison from the cache
# (`UEL_CACHE`): the cache key is the attack, its parameters, the seed, the device type and a
# fingerprint of the clean data. AR's released coefficients are for RGB images; on a grayscale
# dataset the notebook asks the package to find new processes with the paper's acceptance rules
# (`coefficients="find"`), which takes a few seconds.

# `profile_attack_params` holds the per-profile choices every notebook makes: the surrogate sizes of EM and
# TAP at `smoke`/`quick`, and `coefficients="find"` for AR on 1-channel data.

# %%
poisons = {}
for name in attacks:  # EM and TAP train surrogates (minutes at `quick`): their bars show the rounds
    poisons[name] = make_poison(name, clean, seed=seed, **profile_attack_params(name, clean.channels, cfg.profile))
    seconds = poisons[name].info.get("seconds_total", poisons[name].info.get("seconds"))
    print(f"{name:24s} done" + (f" ({seconds:.1f}s)" if isinstance(seconds, (int, float)) else ""))

# %% [markdown]
# ## 5. What the poisons look like
#
# Each figure shows clean images, the poisoned images a victim would train on, and the perturbation
# (poisoned − clean, amplified, mid-gray = no change).

# %%
for name, poison in poisons.items():
    fig = plots.render_poison_grid(clean, poison, n=8, seed=seed)
    fig.suptitle(f"{name}: clean / poisoned / perturbation (amplified)")
    plt.show()

# %% [markdown]
# ## 6. Measuring them: norms, PSNR and linear separability
#
# `describe` measures the *effective* perturbation (what survives clipping and 8-bit quantisation).
# The last columns fit a linear classifier to the perturbations alone: Yu et al. (KDD 2022) observed
# that effective poisons are almost perfectly linearly separable by class while clean images are not;
# that is the "shortcut" a network learns instead of the content.

# %%
table = describe(poisons, clean, max_samples=2000 if cfg.profile == "smoke" else 5000)
print(format_table(table))

# %% [markdown]
# **What to look for.** The budget columns should read what each attack promises after quantisation: L∞ =
# 8/255 ≈ 0.031 for EM, TAP and the random noises, L2 = 1 for AR (0.505 on a 1-channel 28×28 view, the same
# per-value RMS), one changed pixel for OPS, no ε-ball for CUDA (its L∞ is large: a blur moves edges a lot).
# PSNR near 30–40 dB means "hard to see". Linear separability of δ alone is the shortcut: the class-wise
# perturbations (class-wise noise, regions, LSP, OPS, AR) should be near 100%, the control (sample-wise
# random noise) near chance (10%), and clean images well below the poisons. A poison whose perturbations
# are *not* separable and still works would contradict Yu et al.; we have not seen one.

# %% [markdown]
# ## 7. The AR process: the paper's loop, and its matching filters
#
# The recursion above, written as the paper writes it: one pixel at a time, row by row (this is the
# package's documented reference, `generate_ar_reference`). The package's fast `generate_ar` computes the
# same δ for a whole batch at once; the cell prints the loop and checks the two against each other on the
# same start signal.

# %%
import inspect

print(inspect.getsource(generate_ar_reference))
b10 = torch.as_tensor(released_coefficients("cifar10"))
check_labels = torch.arange(10)
start = torch.randn(10, 3, 36, 36, generator=torch.Generator().manual_seed(seed))
fast = generate_ar(b10, check_labels, 32, crop=4, eps=1.0, p=2, start=start, seed=seed).delta.double()
slow = torch.stack([generate_ar_reference(b10[k], start[k], crop=4, eps=1.0, p=2) for k in range(10)])
gap = ((fast - slow).abs().amax() / slow.abs().amax()).item()
print(f"fast generator vs the per-pixel loop, 10 CIFAR-sized perturbations: largest relative gap {gap:.1e}")
assert gap < 1e-5, "the fast AR generator no longer matches the paper's loop"

# %% [markdown]
# **What to look for:** a gap of float32 rounding, nothing more (measured: 2.4e-07). The loop takes ~20 ms per image;
# the batched generator makes 50,000 CIFAR perturbations in ~2 s (`benchmarks/RESULTS.md`).
#
# Now the matching filters: for CIFAR-10's released processes, draw AR perturbations for every class
# and apply every class's matching filter (the taps with −1 in the corner).

# %%
labels = torch.arange(10).repeat_interleave(100 if cfg.profile != "smoke" else 10)
noise = generate_ar(b10, labels, 32, crop=4, eps=1.0, p=2, seed=seed)
response = filter_response(matching_filter(b10), noise.delta.double())  # (N, 10)
matrix = torch.stack([response[labels == k].mean(0) for k in range(10)]).numpy()
fig, ax = plt.subplots(figsize=(5, 4))
im = ax.imshow(matrix, cmap="viridis")
ax.set(xlabel="matching filter of class j", ylabel="AR noise of class k",
       title="mean response Σ ReLU(conv(δ_k, f_j))")
fig.colorbar(im, ax=ax)
plt.show()
own, other = np.diag(matrix).mean(), matrix[~np.eye(10, dtype=bool)].mean()
print(f"own-class response {own:.2e}, other-class response {other:.2f}")

# %% [markdown]
# **What to look for:** a dark diagonal. A class's filter annihilates its own noise wherever the 3×3
# window was generated, and responds strongly to every other class's: the perturbation carries its label
# in a form one convolution can read. Measured (100 perturbations per class, seed 0, 2026-12-01): own-class response
# 6.6e-07, other-class response 11.94 (seven orders of magnitude apart).

# %% [markdown]
# ## 8. Explore the perturbations
#
# The explorer's first view as a static figure (an executed or shared notebook shows it without a live
# kernel), then the explorer: pick the attack, class and image (numbered within the class; the dataset
# index is beside it), amplify the perturbation and look at its Fourier magnitude. Error-minimising and
# adversarial noise spread over high frequencies; AR noise has the texture of its process; regions, CUDA
# and OPS are structured.

# %%
from uel_helpers.widgets import perturbation_explorer

first_attack, first_class = next(iter(poisons)), int(clean.labels.min())
first_index = int(np.flatnonzero(clean.labels.numpy() == first_class)[0])  # image 1 of the first class
fig = plots.render_perturbation(clean, poisons[first_attack], index=first_index)
plt.show()
perturbation_explorer(clean, poisons)

# %% [markdown]
# ## 9. Do they work? Train the judge on each poison
#
# The judge is the profile's protocol (`quick`: a quarter-width ResNet-10 trained like the papers' victim
# until it fits the training set: 99% training accuracy, then 8 annealing epochs, at most 24; `paper`:
# ResNet-18, 100 epochs). Clean test accuracy is measured after every epoch; we report the final and
# the peak (notebook 02 explains why the peak matters). The control, sample-wise random noise at the same
# budget, is one of the poisons: a judge is only trusted where the control stays near clean.

# %%
results = {}
if train_judges:
    training_sets = {"clean": clean, **{name: poison.poisoned for name, poison in poisons.items()}}
    for name in progress(training_sets, desc="judges", unit="set"):  # one bar per judge below it
        results[name] = train(training_sets[name], test_set, judge, seed=seed)
    print(f"{'training set':24s} {'final':>7s} {'peak':>7s}")
    for name, hist in results.items():
        print(f"{name:24s} {100 * hist.final_acc:6.2f}% {100 * hist.peak_acc:6.2f}%")
    fig = plots.bar_table({k: 100 * h.final_acc for k, h in results.items()},
                          title=f"judge {judge.name} on {dataset}: clean test accuracy after training on each set")
    plt.show()

# %% [markdown]
# **What to look for:** the control (`random-noise-samplewise`) within a point or two of clean — otherwise the
# judge is reacting to noise, not to a poison, and no row can be read — then every poison far below both.
#
# **Published** (CIFAR-10, ResNet-18; the AR paper's README table, arXiv 2206.03693, the ISS paper's README,
# arXiv 2301.13838, and APBench's Table 3, arXiv 2308.03258). Ours are on the dataset and profile above, so
# they are not the same experiment: compare the *direction* (poison ≪ clean), not the digits.
#
# | training set | AR README | ISS README | APBench |
# |---|---|---|---|
# | clean | — | 94.68 | — |
# | AR L2 1 | 11.75 | 13.28 | 11.74 |
# | AR L∞ 8/255 | 20.49 | — | — |
# | EM L∞ 8 | — | 21.05 | 20.78 |
# | TAP L∞ 8 | — | 8.17 | 6.27 |
# | LSP | — | 19.07 | 13.06 |
# | OPS | — | 36.55 | 14.69 |
#
# CUDA's CIFAR numbers are in notebook 04; the regions, random-noise and CUDA-on-ImageNet papers' numbers
# are not in our sheets and are not quoted.
#
# **What we measured** (2026-11-30, 2-core CPU; 500 Fashion-MNIST images per class, the `quick` judge
# trained to fit, final clean test accuracy in % on 2,000 test images, seed 0; the RGB column is what the
# effect tests in `tests/test_effect_poisons.py` check; "—" = not yet measured with this judge). Every number
# of the earlier, whitened 4-epoch judge was removed from this notebook: that judge let sample-wise noise
# halve its accuracy, so it could not tell a poison from any perturbation.
#
# | training set | RGB view | 1-channel view | training accuracy at the end (RGB / 1-channel) |
# |---|---|---|---|
# | clean | 89.8 | 89.8 | 91.1 / 91.1 |
# | random noise, sample-wise (control) | 89.9 | 88.9 | 90.5 / 91.0 |
# | AR L2 1 (released processes; 1-channel: found) | 68.8 | 73.2 | 96.0 / 98.7 |
# | EM sample-wise | 74.0 | — | 92.4 / — |
# | CUDA | 37.3 | 40.6 | 99.1 / 99.2 |
# | AR L∞, EM class-wise, TAP, class-wise noise, regions, LSP, OPS | — | — | — |
#
# The effect tests' criterion, fixed before this judge measured any poison: a poison must remove at least a
# third of what the judge learns above chance (here: land at or below 63.2%).
#
# How to read it, honestly:
#
# 1. **The judge is valid** on both views: the control costs at most a point (RGB 89.9% vs 89.8%, 1-channel
#    88.9% vs 89.8%), so what a poison costs is its class structure, not the presence of noise.
# 2. **CUDA bites** on both views (37.3% RGB, 40.6% 1-channel; ~50 points below clean). **AR and EM do not reach
#    the criterion** at this scale: AR costs 21 points on RGB and 17 on 1-channel (found processes, fitted to
#    98.7% training accuracy), EM 16. The papers report ~12% (AR) and ~21% (EM) on CIFAR-10 with ResNet-18 after
#    60-200 epochs, when the victim has fitted the poisoned set (~100% training accuracy). Our judge stops
#    at its 24-epoch cap with AR at 96% training accuracy on RGB, but on the 1-channel view it fits AR's set
#    almost fully (98.7%) and still reaches 73%: at this scale the garments are learned beside the shortcut. EM's noise is crafted at `quick` against a small whitened
#    FastNet surrogate; whether that is why it costs this ResNet only 16 points we have not tested (exercise 5).
# 3. **Which view is closer to the papers?** The RGB view: the papers' poisons are crafted for 3-channel
#    images and AR's released processes are RGB; on the 1-channel view AR needs new processes found by us
#    (the paper's acceptance rules, not its released coefficients). Neither view has the colour statistics
#    of CIFAR-10: a grey image repeated three times has no colour variance at all.
# 4. **OPS**: its one pixel sits where Fashion-MNIST is black, near the border; the judge's crop moves or
#    drops it (APBench saw the same fragility on CIFAR-10: OPS 14.7% → 53.0% with cutout).
#
# Run this notebook at `paper` on a GPU, or on CIFAR-10, for the setting the papers measure; `uel reproduce`
# puts those numbers beside the published ones.

# %% [markdown]
# ## Summary
#
# - Every attack runs through one call, `make_poison`, and is cached by its parameters and the data.
# - The fast AR generator equals the paper's per-pixel loop to float32 rounding (section 7), and the AR
#   perturbation of a class is annihilated by its own matching filter.
# - With an honest judge (the control stays within a point of clean), CUDA removes ~50 points at `quick` on
#   Fashion-MNIST; AR and EM remove 16–21 points, less than on CIFAR-10 in the papers (section 9).
#
# ## Deviations from the paper
#
# - **Data and judge**: at `quick`, 500 Fashion-MNIST images per class and a quarter-width ResNet-10 trained to
#   fit (at most 24 epochs) instead of CIFAR-10 and ResNet-18 for 100 epochs (the AR paper, arXiv 2206.03693).
# - **AR on grayscale**: the released processes are RGB; for 1-channel data new processes are found with the
#   paper's acceptance rules (upstream `ARProcessPerturb3Channel`), and the L2 budget keeps the paper's per-value RMS
#   (ε = √(C·H·W/3072) = 0.505 for 28×28).
# - **EM and TAP surrogates** (Huang et al., arXiv 2101.04898, §4; Fowl et al., arXiv 2106.10807, §4): smaller
#   surrogates and fewer iterations at `smoke` and `quick` (each attack's `info` says what it ran); the paper
#   recipes run at `paper`.
# - **Quantisation**: the package rounds half up; CUDA, LSP and OPS truncate as their reference code does.
# - **LSP** (Yu et al., arXiv 2111.00898): seeded (the original is not).
#
# ## Exercises
#
# 1. Halve AR's ε (`make_poison("ar", clean, eps=...)`). How much of the effect is left?
# 2. Train the judge on `random-noise-samplewise` and `random-noise-classwise`. Why does one work and
#    not the other, at the same L∞ budget?
# 3. In the explorer, compare the Fourier magnitude of `em-samplewise` and `ar`. Which frequencies would a
#    JPEG compression remove?
# 4. Use `coefficients="find"` with a different seed for AR on an RGB dataset. Do the new processes
#    poison as well as the released ones?
# 5. Craft EM with `surrogate="resnet18"` (or the judge's own `"resnet10-w16"`) instead of the quick profile's
#    FastNet and judge it again. Does a surrogate closer to the victim make a stronger poison?
