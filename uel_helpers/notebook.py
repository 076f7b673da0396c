"""`notebook_setup()`: the second cell of every notebook (device report, profile, seed, cache path)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import cache_dir  # noqa: F401  (re-exported: notebooks call uel_helpers.notebook.cache_dir())
from .device import describe_device, pick_device, seed_everything
from .profiles import resolve_profile

REPO_URL = "https://github.com/uel-lab/unlearnable-examples-lab"  # the one place the repository URL lives


@dataclass
class NotebookConfig:
    """What a notebook runs with: profile, seed, device and cache folder."""

    profile: str
    seed: int
    device: torch.device
    cache: Path


def notebook_setup(profile: str | None = None, seed: int = 0, device: str | None = "auto",
                   verbose: bool = True) -> NotebookConfig:
    """Pick the device and profile, seed everything, and print what was chosen.

    profile None = `UEL_PROFILE` if set, else `paper` on a GPU and `quick` on a CPU.
    """
    prof = resolve_profile(profile)
    dev = pick_device(device)
    seed_everything(seed)
    cfg = NotebookConfig(profile=prof, seed=seed, device=dev, cache=cache_dir())
    if verbose:
        print(describe_device(dev))
        print(f"profile: {prof} | seed: {seed} | cache: {cfg.cache}")
    return cfg


def notebook_data(dataset: str, n_per_class: int | None, as_rgb: bool):
    """The data notebooks 02-05 train on: (what `run_experiment` takes, the training set, the test set).

    Fashion-MNIST and the other named datasets come as a `DataSpec` (class-balanced subset, optional RGB view), so
    that runs are cached under the same key as notebook 01's poisons and the effect tests. scikit-learn's 8x8 digits
    are resized to 16x16 explicitly (FastNet, used in section 6 of notebook 04_sharpen_filter_cuda, needs >= 16x16;
    the ResNet and small-CNN judges also take 8x8) and passed as a (train, test) pair. `n_per_class` None = the whole
    training split.
    """
    from .data import load_dataset, to_rgb  # imported here: the setup cell must stay light
    from .experiments import DataSpec

    if dataset == "digits":
        train_set, test_set = (load_dataset("digits", split, size=16) for split in ("train", "test"))
        if n_per_class is not None:
            train_set = train_set.take_per_class(n_per_class, seed=0)
        if as_rgb:
            train_set, test_set = to_rgb(train_set), to_rgb(test_set)
        return (train_set, test_set), train_set, test_set
    data = DataSpec(dataset, n_per_class, as_rgb=as_rgb)
    train_set, test_set = data.load()
    return data, train_set, test_set


def profile_attack_params(name: str, channels: int, profile: str) -> dict:
    """The attack parameters notebooks pass to `make_poison` at `profile`: EM/TAP surrogates sized by the profile;
    AR on 1-channel data finds new processes (its released coefficients are RGB). (The parameters an attack
    *accepts*, with their defaults, are `uel_helpers.poisons.attack_params(name)`.)"""
    if name in ("ar", "ar-linf") and channels != 3:
        return {"coefficients": "find"}
    if name in ("em-samplewise", "em-classwise", "tap"):
        return {"profile": profile}
    return {}


def attack_params(name: str, channels: int, profile: str) -> dict:
    """Deprecated name of `profile_attack_params` (it clashed with `uel_helpers.poisons.attack_params`)."""
    warnings.warn("uel_helpers.notebook.attack_params is now profile_attack_params", DeprecationWarning, stacklevel=2)
    return profile_attack_params(name, channels, profile)
