"""Model construction, shapes and the fast net's whitening."""

from __future__ import annotations

import pytest
import torch

from uel_helpers.models import MODELS, FastNet, build_model, count_parameters


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_forward_shapes(name, channels, size):
    model = build_model(name, channels, 7, size).eval()
    out = model(torch.rand(2, channels, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_resnet18_is_the_cifar_variant():
    model = build_model("resnet18", 3, 10, 32)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert 11_000_000 < count_parameters(model) < 11_300_000  # 11.17M, as in the papers' ResNet-18


def test_smallcnn_runs_on_8x8_digits():
    assert build_model("smallcnn", 1, 10, 8)(torch.rand(3, 1, 8, 8)).shape == (3, 10)


def test_bad_model_requests():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg")
    with pytest.raises(ValueError, match="at least 16x16"):
        build_model("fastnet", 1, 10, 8)
    with pytest.raises(ValueError, match="in_channels"):
        build_model("resnet18", 4, 10, 32)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("resnet18", 3, 1, 32)


def test_whitening_decorrelates_patches():
    torch.manual_seed(0)
    # correlated channels: a whitened 2x2 patch covariance should be ~identity (up to eps)
    base = torch.rand(200, 1, 16, 16)
    x = torch.cat([base, 0.5 * base + 0.1 * torch.rand_like(base), torch.rand_like(base)], 1)
    net = FastNet(3, 10)
    net.fit_whitening(x, eps=1e-6)
    assert net.whitened and not net.whiten.weight.requires_grad
    patches = torch.nn.functional.unfold(x, 2).transpose(1, 2).reshape(-1, 12).double()
    patches = patches - patches.mean(0)
    w = net.whiten.weight[:12].reshape(12, 12).double()
    cov = (patches @ w.T).T @ (patches @ w.T) / (len(patches) - 1)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-2)
    with pytest.raises(ValueError, match="fit_whitening"):
        net.fit_whitening(torch.rand(2, 1, 8, 8))
