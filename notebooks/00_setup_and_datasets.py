# %% [markdown]
# # 00 · Setup and datasets
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/uel-lab/unlearnable-examples-lab/blob/main/notebooks/00_setup_and_datasets.ipynb)
#
# **What this notebook is for.** Every later notebook poisons a dataset, perhaps purifies it, and then
# asks one question: *how well does a network trained on it do on clean test images?* This notebook
# sets up everything that question needs and shows it once on clean data:
#
# 1. installing the helper package (on Colab only) and checking the device: GPU or CPU;
# 2. the **profiles** (`smoke`, `quick`, `paper`) that decide how big every computation is;
# 3. the datasets, and the one image type they all share: `ImageSet`, uint8 pixels;
# 4. the **judge**: a training protocol, a clean training run, its learning curve, and its final and
#    peak test accuracy. Every poison in notebooks 01–09 is measured against this clean baseline.
#
# There is no paper here; this is the laboratory bench.
#
# **Expected run time and memory** (the whole notebook, default dataset):
#
# | profile | machine | run time | memory |
# |---|---|---|---|
# | `smoke` | 2-core CPU | measured: about 11–13 s (fashion-mnist; 510 training images, 2 epochs) | measured: 1.4 GB RAM peak |
# | `quick` | 2-core CPU | not re-timed with the judge trained to fit: one judge on 5,000 images, ~2-3 min (bench_judge in `benchmarks/RESULTS.md`) | < 2 GB RAM |
# | `paper` | Colab T4 GPU | not measured yet (ResNet-18, 100 epochs) | GPU memory not measured yet |
#
# The `paper` profile is the default on a GPU; on a CPU the default is `quick`. Set `profile` in the
# parameters cell (or the environment variable `UEL_PROFILE`) to choose another.

# %% [markdown]
# ## 1. Install (Colab only)
#
# On Colab the package is installed from the repository at a fixed reference (`UEL_REF`). The cell
# never upgrades PyTorch or NumPy: Colab ships its own builds, and replacing them means gigabytes of
# downloads and a forced restart. pip is told to keep the installed versions exactly. Anywhere else
# the cell does nothing when `uel_helpers` is already installed (`pip install -e ".[dev]"` or
# `make lab` in the repository).

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
# Every knob of the notebook lives in the next cell (it carries the tag `parameters`, so tools such as
# papermill can override it). `None` means "decide from the machine":
#
# - `dataset=None` picks **fashion-mnist** when its files are here offline, else the bundled
#   **digits** (which need no download at all). The choice is made and printed in section 4.
# - `profile=None` takes the environment variable `UEL_PROFILE` when it is set (the tests set
#   `UEL_PROFILE=smoke`), else `paper` on a GPU and `quick` on a CPU.

# %% tags=["parameters"]
dataset = None  # None = "fashion-mnist" when available offline, else "digits"; or "cifar10", "imagefolder:PATH"
profile = None  # None = UEL_PROFILE, else "paper" on a GPU and "quick" on a CPU; or "smoke", "quick", "paper"
seed = 0  # the same seed gives the same run, bit for bit, on the same device
epochs = None  # None = the profile's protocol; an int overrides its number of epochs

# %% [markdown]
# ## 3. Device and profile
#
# `notebook_setup` picks the device once (CUDA, else Apple MPS, else CPU), seeds Python, NumPy and
# PyTorch, and prints what it chose. **On a Colab runtime without a GPU it prints a loud warning**:
# switch with *Runtime → Change runtime type → T4 GPU* and run the notebook again. The `paper`
# profile (ResNet-18, 100 epochs) is not meant for a CPU; use `quick` there.

# %%
import matplotlib.pyplot as plt

import uel_helpers
from uel_helpers import plots
from uel_helpers.data import available_datasets, load_dataset, resize, to_rgb
from uel_helpers.models import MODELS
from uel_helpers.notebook import notebook_setup
from uel_helpers.training import PROTOCOLS, protocol_for_profile, train

cfg = notebook_setup(profile, seed)
protocol = protocol_for_profile(cfg.profile)
if epochs is not None:
    protocol = protocol.with_(epochs=epochs)
print(f"uel_helpers {uel_helpers.__version__} | judge protocol for this profile: {protocol.name} "
      f"({protocol.model}, {protocol.epochs} epochs)")

# %% [markdown]
# ## 4. Datasets
#
# `available_datasets()` says, for every dataset the package knows, whether it loads here without a
# network and, if not, how to get it. Tests and CI never download anything: they use `digits`
# (bundled with scikit-learn) and `fashion-mnist` (Debian's `dataset-fashion-mnist` package, or a
# one-time torchvision download). CIFAR-10/100 are downloaded on Colab; their host is slow, so the
# loader checks the archive's MD5 and tells you where to put a copy you fetched yourself.

# %%
status = available_datasets()
print(f"{'dataset':18s} here?")
for name, how in status.items():
    print(f"{name:18s} {how}")

fashion_here = status["fashion-mnist"].startswith("offline")
if dataset is None:
    dataset = "fashion-mnist" if fashion_here else "digits"
    why = "its files are here" if fashion_here else "fashion-mnist is not here offline"
    print(f"\ndataset = {dataset!r} (chosen at run time: {why})")
else:
    print(f"\ndataset = {dataset!r} (set in the parameters cell)")

# %% [markdown]
# ### One image type: `ImageSet`
#
# Every dataset, clean or poisoned, is an `ImageSet`: **uint8** images of shape `(N, C, H, W)` with
# values 0..255, int64 labels in `[0, K)` and `K` class names. That is what a released dataset is (a
# folder of PNGs), so a poison has to survive being saved as 8-bit pixels, exactly as in the papers.
# Floats in `[0, 1]` appear only inside computations (`ds.to_float()`), and every attack quantises its
# result back to uint8.

# %%
digits = load_dataset("digits", "train")
print(digits)
print(f"images: {digits.images.dtype}, shape {tuple(digits.images.shape)}, "
      f"values {int(digits.images.min())}..{int(digits.images.max())}")
print(f"labels: {digits.labels.dtype}, classes {digits.classes}")
print(f"images per class: {digits.class_counts()}")
fig = plots.image_grid(digits, per_class=8, seed=seed, title="digits (scikit-learn, 8x8, bundled)")
plt.show()

# %%
if fashion_here:
    fashion = load_dataset("fashion-mnist", "train")
    print(fashion)
    fig = plots.image_grid(fashion, per_class=8, seed=seed, title="fashion-mnist (28x28, grayscale)")
    plt.show()
else:
    print("fashion-mnist is not here offline:", status["fashion-mnist"])

# %% [markdown]
# ### Conversions are explicit
#
# Nothing is resized or recoloured behind your back: a CIFAR model that needs 3×32×32 inputs gets them
# because you asked, with `resize(ds, 32)` (bilinear, antialiased, re-quantised to uint8) and
# `to_rgb(ds)` (the gray channel repeated three times), or with `load_dataset(name, size=32, rgb=True)`.
# Each returns a new `ImageSet` and records the conversion in `ds.meta`.

# %%
digits32 = resize(digits, 32)
digits32_rgb = to_rgb(digits32)
for label, ds in [("load_dataset('digits')", digits), ("resize(digits, 32)", digits32),
                  ("to_rgb(resize(digits, 32))", digits32_rgb)]:
    print(f"{label:28s} {ds.images.dtype}  {tuple(ds.images.shape)}  meta={ds.meta}")
x = digits32_rgb.to_float()
print(f"to_float(): {x.dtype}, range [{float(x.min()):.2f}, {float(x.max()):.2f}] (for computations only)")
fig = plots.image_rows({"8x8": digits, "resized": digits32, "resized, RGB": digits32_rgb}, n=8, seed=seed,
                       title="the same digits before and after explicit conversions")
plt.show()

# %% [markdown]
# ## 5. The judge: training protocols
#
# A poison is only as good as the training it survives. Each paper trains its victim with its own
# recipe, so a recipe is a value, a `Protocol` (model, epochs, batch size, learning rate and schedule,
# augmentation), and every profile has one:
#
# - `smoke` trains a tiny CNN for a couple of epochs on a few hundred images: it proves the code runs,
#   and says nothing about accuracy;
# - `quick` trains a quarter-width ResNet-10 the papers' way until it fits the training set (99% training
#   accuracy, then 8 annealing epochs, at most 24), on 500 images per class: about 2 minutes on a CPU;
# - `paper` is the ResNet-18 recipe the papers train their victims with (SGD, lr 0.1, step decay).
#
# The table below is printed from `PROTOCOLS`, so it is always the current recipe.

# %%
print(f"{'protocol':15s} {'model':14s} {'epochs':>6s} {'batch':>5s} {'lr':>5s} {'schedule':9s} "
      f"{'augmentation':22s} training images")
for p in PROTOCOLS.values():
    aug = ", ".join(a for a, on in [(f"crop pad {p.crop_padding}", p.crop_padding), ("flip", p.flip),
                                    (f"cutout {p.cutout}", p.cutout)] if on) or "none"
    subset = f"at most {p.max_train}" if p.max_train else "all"
    mark = "  <- this profile" if p.name == protocol.name else ""
    print(f"{p.name:15s} {p.model:14s} {p.epochs:6d} {p.batch_size:5d} {p.lr:5.2g} {p.schedule:9s} "
          f"{aug:22s} {subset}{mark}")
print()
for name, (_ctor, min_side, what) in MODELS.items():
    print(f"{name:14s} images >= {min_side:2d}x{min_side:<2d}  {what}")

# %% [markdown]
# ## 6. A clean training run
#
# `train(train_set, test_set, protocol)` keeps the whole training set on the device as uint8, augments
# it in batches there, and measures clean test accuracy **after every epoch**. It returns a `History`
# with the curve, the final accuracy and the **peak** accuracy with its epoch. The peak matters for
# unlearnable examples: a poisoned model can be good for a few epochs before it gets worse, and
# stopping early at the peak is itself a defense (notebook 02).
#
# Some models need larger images than the dataset has (`fastnet` needs at least 16×16; the digits are
# 8×8; the judges of every profile take 8×8). The notebook then resizes explicitly and says so.

# %%
train_set = load_dataset(dataset, "train")
test_set = load_dataset(dataset, "test")
if cfg.profile == "quick" and len(train_set) > 5000:
    train_set = train_set.take_per_class(500, seed=cfg.seed)  # the quick setting of every later notebook
    print(f"quick profile: 500 training images per class ({len(train_set)} images)")
min_side = MODELS[protocol.model][1]
if min(train_set.image_size) < min_side:
    print(f"{protocol.model} needs images of at least {min_side}x{min_side}; "
          f"resizing {dataset} from {train_set.image_size} to 32x32 (explicitly)")
    train_set, test_set = resize(train_set, 32), resize(test_set, 32)
print(f"training {protocol.name} on {dataset}: {len(train_set)} training and {len(test_set)} test images "
      f"of shape {train_set.shape}, on {cfg.device}")
hist = train(train_set, test_set, protocol, seed=cfg.seed, device=cfg.device)
print(f"clean test accuracy: final {100 * hist.final_acc:.2f}% | peak {100 * hist.peak_acc:.2f}% "
      f"at epoch {hist.peak_epoch} of {hist.epochs} | {hist.wall_time:.1f} s "
      f"({hist.config['n_train']} training images used)")

# %%
fig = plots.learning_curves({f"clean {dataset}": hist},
                            title=f"clean training on {dataset}, protocol {protocol.name}, seed {cfg.seed}")
plt.show()

# %% [markdown]
# **What to look for:** test accuracy rising over the first epochs and flattening; the peak and the final
# accuracy close together (clean data has no reason to get worse). **Measured** (2026-11-30, 2-core CPU, seed
# 0): the `quick` judge on 500 Fashion-MNIST images per class reached 89.8% clean accuracy on 2,000 test
# images after its 24 epochs (116 s; notebook 01, section 9). This cell evaluates on the whole test set; its
# number was not re-measured with the new judge. At `smoke` the number is meaningless (512 images, 2 epochs):
# it only shows that everything runs. This clean accuracy is the baseline: an unlearnable version of the
# same training set should bring the same judge down towards chance (10%).
#
# ## Summary
#
# One image type (`ImageSet`, uint8 on the device), explicit conversions, and one judge per profile whose
# recipe is a value (`Protocol`); every later notebook reuses all three.
#
# ## Exercises
#
# 1. **Seeds.** Train at `quick` with `seed = 0, 1, 2`. How much does the final accuracy move? Keep
#    that spread in mind whenever two poisons differ by a point or two.
# 2. **Fewer epochs.** Set `epochs = 1, 2, 4`. How fast does clean accuracy rise? Poisons that are
#    learned faster than the real features are the subject of notebook 02.
# 3. **Less data.** Train on `train_set.take_per_class(600)` (a tenth). What does it cost? Compare with
#    what a poison that protects only part of the data can hope to achieve.
# 4. **Augmentation.** Train with `protocol.with_(crop_padding=0, flip=False)`. Does the clean
#    accuracy change? Augmentation will matter again when it is used as a defense.
# 5. **Digits at `quick`.** Set `dataset = "digits"` and `profile = "quick"`. Why is the data
#    resized, and what would happen without it?
# 6. **CIFAR-10 (Colab).** Run `load_dataset("cifar10", download=True)`, show it with
#    `plots.image_grid`, and convert fashion-mnist to the same shape with `size=32, rgb=True`.
