"""One validation helper per kind of argument (seed, count, size, rate, finite tensor, choice, flag).

Every public entry point checks its arguments with these, so a bad value gets the same clear
`TypeError`/`ValueError` everywhere: the message starts with who was called, names the argument, says
what was expected and what came in. numpy scalars count as numbers; bools never count as numbers.
This module is the lowest layer of the package: it imports only numpy and torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np
import torch

__all__ = ["check_bool", "check_choice", "check_count", "check_finite_tensor", "check_number", "check_rate",
           "check_seed", "check_size"]

def _prefix(who: str) -> str:
    return f"{who}: " if who else ""


def _is_integer(value) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_count(value, name: str, who: str = "", *, lo: int = 1, hi: int | None = None) -> int:
    """An integer in [lo, hi] (a count of epochs, images, steps, ...). Floats such as 2.5 or 2.0 are a TypeError
    (say what you mean: an integer); out of range is a ValueError. Returns a Python int."""
    if not _is_integer(value):
        raise TypeError(f"{_prefix(who)}{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        bound = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{_prefix(who)}{name} must be an integer {bound}, got {value}")
    return value


def check_seed(value, name: str = "seed", who: str = "", *, bits: int = 63) -> int:
    """A random seed: an integer in [0, 2**bits) (63 for torch; 32 where numpy's RandomState or scikit-learn's
    random_state takes it). `seed=1.5` is a TypeError, not seed 1 under another cache key."""
    if not _is_integer(value):
        raise TypeError(f"{_prefix(who)}{name} must be a non-negative integer, got {value!r} "
                        f"({type(value).__name__})")
    if not 0 <= int(value) < 2**bits:
        raise ValueError(f"{_prefix(who)}{name} must be a non-negative integer below 2**{bits}, got {value}")
    return int(value)


def check_number(value, name: str, who: str = "") -> float:
    """A finite real number (Python or numpy scalar; not a bool, NaN or inf). Returns a Python float."""
    if not _is_real(value):
        raise TypeError(f"{_prefix(who)}{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{_prefix(who)}{name} must be a finite number, got {value}")
    return value


def check_rate(value, name: str, who: str = "", *, lo: float | None = 0.0, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite number within bounds (a learning rate, a probability, a budget): lo/hi None for no bound,
    *_open to exclude the bound itself. Returns a Python float."""
    value = check_number(value, name, who)
    bad_lo = lo is not None and (value <= lo if lo_open else value < lo)
    bad_hi = hi is not None and (value >= hi if hi_open else value > hi)
    if bad_lo or bad_hi:
        left = "-inf" if lo is None else f"{lo:g}"
        right = "inf" if hi is None else f"{hi:g}"
        interval = f"{'(' if lo_open or lo is None else '['}{left}, {right}{')' if hi_open or hi is None else ']'}"
        raise ValueError(f"{_prefix(who)}{name} must lie in {interval}, got {value:g}")
    return value


def check_size(value, name: str = "size", who: str = "") -> tuple[int, int]:
    """An image size: one integer (square) or a pair (height, width) of integers >= 1. Returns (h, w)."""
    if _is_integer(value):
        side = check_count(value, name, who)
        return side, side
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_integer(v) for v in value):
        return check_count(value[0], f"{name}[0]", who), check_count(value[1], f"{name}[1]", who)
    raise TypeError(f"{_prefix(who)}{name} must be an integer or a pair (height, width) of integers, "
                    f"got {value!r}")


def check_finite_tensor(x, name: str, who: str = "") -> torch.Tensor:
    """A tensor (or numpy array) with no NaN or inf; returns it as a tensor. A NaN pixel would otherwise turn
    into byte 0 on the way to uint8, silently."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{_prefix(who)}{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex():
        bad = int((~torch.isfinite(x)).sum())
        if bad:
            raise ValueError(f"{_prefix(who)}{name} has {bad} NaN or infinite value(s); clean the input "
                             "(e.g. torch.nan_to_num) before passing it")
    return x


def check_choice(value, name: str, choices: Iterable, who: str = ""):
    """One of `choices` (compared with ==); ValueError listing them otherwise."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{_prefix(who)}{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_bool(value, name: str, who: str = "") -> bool:
    """A bool (numpy bools accepted); 0/1 or strings are a TypeError, since `"False"` is truthy."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_prefix(who)}{name} must be True or False, got {value!r}")
    return bool(value)
