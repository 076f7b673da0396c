"""Device choice, seeding, profiles and the memory-aware batch size."""

from __future__ import annotations

import pytest
import torch

from uel_helpers.device import amp_dtype, describe_device, fit_batch_size, make_generator, pick_device, seed_everything
from uel_helpers.notebook import notebook_setup
from uel_helpers.profiles import default_profile, resolve_profile


def test_pick_device_cpu_and_errors():
    assert pick_device("cpu").type == "cpu"
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(TypeError):
        pick_device(3)


def test_seed_repeats():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.rand(2, generator=make_generator(1)), torch.rand(2, generator=make_generator(1)))
    with pytest.raises(TypeError):
        seed_everything("1")


def test_cpu_has_no_autocast_and_keeps_batch():
    cpu = torch.device("cpu")
    assert amp_dtype(cpu) is None
    assert fit_batch_size(512, cpu, bytes_per_sample=10**9) == 512
    with pytest.raises(ValueError):
        fit_batch_size(0, cpu, 1)


def test_profiles(monkeypatch):
    expected = "paper" if torch.cuda.is_available() else "quick"
    assert default_profile() == expected
    monkeypatch.setenv("UEL_PROFILE", "smoke")
    assert default_profile() == "smoke" and resolve_profile(None) == "smoke"
    assert resolve_profile("paper") == "paper"
    with pytest.raises(ValueError, match="unknown profile"):
        resolve_profile("tiny")


def test_notebook_setup_reports(capsys, monkeypatch):
    cfg = notebook_setup("smoke", seed=3)
    out = capsys.readouterr().out
    assert cfg.profile == "smoke" and cfg.seed == 3 and "device" in out and "profile: smoke" in out
    assert "torch" in describe_device(torch.device("cpu"))


def test_colab_cpu_hint(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert "Change runtime type" in describe_device(torch.device("cpu"))


def test_notebook_data_and_attack_params():
    from uel_helpers.experiments import DataSpec
    from uel_helpers.notebook import attack_params, notebook_data

    data, train_set, test_set = notebook_data("digits", 5, as_rgb=True)
    assert data == (train_set, test_set) and train_set.shape == (3, 16, 16) == test_set.shape
    assert train_set.class_counts() == [5] * 10
    assert attack_params("ar", 1, "quick") == {"coefficients": "find"} and attack_params("ar", 3, "quick") == {}
    assert attack_params("tap", 3, "smoke") == {"profile": "smoke"} and attack_params("cuda", 1, "paper") == {}
    from tests.conftest import fashion_available

    if fashion_available:
        data, train_set, _ = notebook_data("fashion-mnist", 3, as_rgb=False)
        assert data == DataSpec("fashion-mnist", 3, as_rgb=False) and len(train_set) == 30


def test_optimizer_step_steps_and_clips():
    import torch

    from uel_helpers.device import OptimizerStep

    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=1.0)
    stepper = OptimizerStep(opt, torch.device("cpu"), grad_clip=0.5)
    assert stepper.scaler is None  # no fp16 autocast on a CPU
    stepper.step((w * torch.tensor([30.0, 40.0, 0.0])).sum())  # gradient (30, 40, 0), norm 50 -> clipped to 0.5
    assert torch.allclose(w.detach(), torch.tensor([1 - 0.3, 1 - 0.4, 1.0]), atol=1e-6)
    stepper.step((w * 0).sum())  # gradients are zeroed before each backward
    assert torch.allclose(w.detach(), torch.tensor([0.7, 0.6, 1.0]), atol=1e-6)
