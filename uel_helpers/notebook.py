"""`notebook_setup()`: the second cell of every notebook (device report, profile, seed, cache path)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .device import describe_device, pick_device, seed_everything
from .profiles import resolve_profile

REPO_URL = "https://github.com/uel-lab/unlearnable-examples-lab"  # the one place the repository URL lives


def cache_dir() -> Path:
    """The cache folder for expensive artefacts: `UEL_CACHE`, default `~/.cache/uel_helpers`."""
    return Path(os.environ.get("UEL_CACHE") or "~/.cache/uel_helpers").expanduser()


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
