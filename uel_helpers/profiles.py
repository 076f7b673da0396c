"""Profiles: how big every long computation is (smoke = seconds, quick = CPU minutes, paper = GPU)."""

from __future__ import annotations

import os

import torch

PROFILES = ("smoke", "quick", "paper")

# How many training images per class the notebooks and studies take at each profile (None: the whole training
# split). The one table: notebooks, effect tests and `uel` read it here. `uel demo` has its own, smaller budget
# (cli.DEMO_N_PER_CLASS: its first run must finish within ten minutes on a laptop).
IMAGES_PER_CLASS: dict[str, int | None] = {"smoke": 20, "quick": 500, "paper": None}


def check_profile(profile: str) -> str:
    """Validate a profile name and return it."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return profile


def default_profile() -> str:
    """`UEL_PROFILE` when set, else `paper` on a CUDA machine and `quick` elsewhere."""
    env = os.environ.get("UEL_PROFILE")
    if env:
        try:
            return check_profile(env)
        except ValueError as err:
            raise ValueError(f"environment variable UEL_PROFILE: {err}") from None
    return "paper" if torch.cuda.is_available() else "quick"


def resolve_profile(profile: str | None) -> str:
    """`profile` if given (validated), else the default profile."""
    return default_profile() if profile is None else check_profile(profile)


def images_per_class(profile: str | None = None) -> int | None:
    """Training images per class at `profile` (None = the default profile): 20 at smoke, 500 at quick, the whole
    training split (None) at paper."""
    return IMAGES_PER_CLASS[resolve_profile(profile)]
