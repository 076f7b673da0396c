"""The argument checks every public entry point shares (uel_helpers.checks)."""

import math

import numpy as np
import pytest
import torch

from uel_helpers import checks


@pytest.mark.parametrize("value", [1.5, 2.0, "3", None, True, np.float32(1.0)])
def test_count_refuses_non_integers(value):
    with pytest.raises(TypeError, match="epochs must be an integer"):
        checks.check_count(value, "epochs", "train")


def test_count_range_and_numpy_integers():
    assert checks.check_count(np.int64(3), "epochs") == 3 and type(checks.check_count(np.int64(3), "epochs")) is int
    with pytest.raises(ValueError, match=r"who: n must be an integer >= 1, got 0"):
        checks.check_count(0, "n", "who")
    with pytest.raises(ValueError, match=r"in \[1, 5\]"):
        checks.check_count(6, "n", hi=5)


@pytest.mark.parametrize("value,err", [(1.5, TypeError), (-1, ValueError), (2**63, ValueError), (False, TypeError)])
def test_seed(value, err):
    with pytest.raises(err, match="seed"):
        checks.check_seed(value, who="ar")


def test_seed_accepts_numpy_int():
    assert checks.check_seed(np.uint32(7)) == 7


@pytest.mark.parametrize("value,err", [(math.nan, ValueError), (math.inf, ValueError), ("0.1", TypeError),
                                       (True, TypeError), (None, TypeError)])
def test_number(value, err):
    with pytest.raises(err, match="lr"):
        checks.check_number(value, "lr", "get_protocol")


def test_number_accepts_numpy_scalars():
    assert checks.check_number(np.float32(0.5), "eps") == 0.5
    assert checks.check_rate(np.float64(0.25), "p", hi=1) == 0.25


def test_rate_bounds_message():
    with pytest.raises(ValueError, match=r"p must lie in \(0, 1\], got 0"):
        checks.check_rate(0.0, "p", lo=0, hi=1, lo_open=True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\)"):
        checks.check_rate(1.0, "p", hi=1, hi_open=True)


def test_size():
    assert checks.check_size(16) == (16, 16)
    assert checks.check_size((8, np.int64(12))) == (8, 12)
    with pytest.raises(TypeError, match="size must be an integer or a pair"):
        checks.check_size(16.5, who="load_dataset")
    with pytest.raises(ValueError, match=r"size\[1\] must be an integer >= 1"):
        checks.check_size((4, 0))


def test_finite_tensor():
    x = torch.zeros(2, 3)
    assert checks.check_finite_tensor(x, "x") is x
    x[0, 1] = float("nan")
    with pytest.raises(ValueError, match="x has 1 NaN or infinite"):
        checks.check_finite_tensor(x, "x", "ImageSet.from_float")
    assert torch.equal(checks.check_finite_tensor(np.ones(3), "a"), torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        checks.check_finite_tensor([1.0], "a")


def test_choice_and_bool():
    assert checks.check_choice("round", "rounding", ("round", "truncate")) == "round"
    with pytest.raises(ValueError, match="rounding must be one of 'round', 'truncate'; got 'floor'"):
        checks.check_choice("floor", "rounding", ("round", "truncate"))
    assert checks.check_bool(np.bool_(True), "cache") is True
    with pytest.raises(TypeError, match="cache must be True or False"):
        checks.check_bool("False", "cache")
