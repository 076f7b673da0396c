"""Profiles: how big every long computation is (smoke = seconds, quick = CPU minutes, paper = GPU)."""

from __future__ import annotations

import os

import torch

PROFILES = ("smoke", "quick", "paper")


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
