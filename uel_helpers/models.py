"""Victim and judge networks: the CIFAR ResNet-18 of the papers, a fast airbench-style net, a small CPU CNN.

`build_model(name, in_channels, num_classes, image_size)` is the one entry point; every model takes
float images in [0, 1] (normalisation, when a protocol wants it, is done by the trainer).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checks import check_choice, check_count

# --- CIFAR ResNet-18 (3x3 stem, no max-pool): the victim every paper trains ----------------------


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """The CIFAR-style ResNet of kuangliu/pytorch-cifar used by the AR, TAP, ISS and APBench code."""

    def __init__(self, blocks: tuple[int, ...], in_channels: int = 3, num_classes: int = 10, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, planes_in = [], width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            strides = [1 if i == 0 else 2] + [1] * (n - 1)
            for s in strides:
                layers.append(BasicBlock(planes_in, planes, s))
                planes_in = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(planes_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (after global average pooling)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        return torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def resnet18(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    return ResNet((2, 2, 2, 2), in_channels, num_classes)


def resnet10_w16(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """The `quick` victim: ResNet-18's design (3x3 stem, BasicBlocks, BN, no whitening) with one block per stage
    and a quarter of the width (16/32/64/128 channels, 0.31 M parameters). Chosen so that one judge trained to fit
    5,000 28x28 images takes about 2 minutes on 2 CPU cores (benchmarks/RESULTS.md, "the quick judge")."""
    return ResNet((1, 1, 1, 1), in_channels, num_classes, width=16)


# --- FastNet: airbench94's ideas in a device-agnostic module --------------------------------------


class FrozenWeightBatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen scale (bias still learned), eps 1e-12, momentum 0.4: as in airbench94."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


class ConvGroup(nn.Module):
    """conv3x3 -> max-pool 2 -> BN -> GELU -> conv3x3 -> BN -> GELU (airbench's block)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding="same", bias=False)
        self.pool = nn.MaxPool2d(2)
        self.norm1 = FrozenWeightBatchNorm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding="same", bias=False)
        self.norm2 = FrozenWeightBatchNorm(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.norm1(self.pool(self.conv1(x))))
        return F.gelu(self.norm2(self.conv2(x)))


def _dirac_init(conv: nn.Conv2d) -> None:
    """Identity init on the first in_channels filters (airbench): the net starts close to a pass-through."""
    w = conv.weight.data
    c = min(w.shape[0], w.shape[1])
    torch.nn.init.dirac_(w[:c])


class FastNet(nn.Module):
    """A small airbench94-style network for quick verdicts.

    A frozen 2x2 patch-whitening conv (fitted by `fit_whitening` on training images: the faithful
    threat model fits it on the poisoned set), three conv groups, a global max-pool and a scaled
    linear head (after airbench94, `KellerJordan/cifar10-airbench:airbench/lib_airbench94.py@f1c599c`). Caveats as
    a judge of poisons (our analysis): the whitening fitted on poisoned images amplifies the low-variance,
    high-frequency patch directions where ε-bounded perturbations live, and a short schedule is early stopping,
    itself a defense.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256),
                 head_scale: float = 1 / 9) -> None:
        super().__init__()
        patch_dim = in_channels * 4
        self.whiten = nn.Conv2d(in_channels, 2 * patch_dim, 2, padding=0, bias=True)
        self.whiten.weight.requires_grad_(False)
        self.groups = nn.Sequential(
            ConvGroup(2 * patch_dim, widths[0]), ConvGroup(widths[0], widths[1]), ConvGroup(widths[1], widths[2])
        )
        self.head = nn.Linear(widths[2], num_classes, bias=False)
        self.head_scale = head_scale
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.whiten:
                _dirac_init(m)
        self.whitened = False

    @torch.no_grad()
    def fit_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters from the 2x2 patches of `images` (float, [0,1], N x C x H x W).

        filters = eigvec / sqrt(eigval + eps), concatenated with their negatives (airbench94).
        """
        c = self.whiten.in_channels
        if images.ndim != 4 or images.shape[1] != c:
            raise ValueError(f"fit_whitening expects (N, {c}, H, W) float images, got {tuple(images.shape)}")
        x = images.float().to(self.whiten.weight.device)
        patches = F.unfold(x, kernel_size=2).transpose(1, 2).reshape(-1, c * 4).double()
        patches = patches - patches.mean(0, keepdim=True)
        cov = patches.T @ patches / max(len(patches) - 1, 1)
        eigval, eigvec = torch.linalg.eigh(cov)
        filters = (eigvec.T / torch.sqrt(eigval.clamp_min(0) + eps)[:, None]).reshape(-1, c, 2, 2).float()
        self.whiten.weight.copy_(torch.cat([filters, -filters]))
        self.whitened = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.whiten(x))
        x = self.groups(x)
        return torch.flatten(F.adaptive_max_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)) * self.head_scale


# --- SmallCNN: a few thousand parameters' worth of honest CPU baseline ----------------------------


class SmallCNN(nn.Module):
    """conv(32) -> conv(64) -> pool -> conv(128) -> pool -> global pool -> linear. Works on 8x8 digits too."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class TinyCNN(nn.Module):
    """A stride-2 stem, then conv(2w) -> pool -> conv(4w) -> global pool -> linear (w = 16: 25 k parameters).
    About 15x fewer multiply-adds than SmallCNN on 28x28 images: the quick counterfactual retraining, which trains
    hundreds of times (arXiv 2311.03386's removal support; benchmarks/RESULTS.md, bench_attribution)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.adaptive_avg_pool2d(self.body(x), 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# --- ResNet-9: the counterfactual-retraining net of the data-attribution paper -------------------------


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm -> ReLU, the unit of ResNet-9."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResNet9(nn.Module):
    """The retraining net of "A Simple and Efficient Baseline for Data Attribution on Images"
    (vasusingla/simple-data-attribution@d2016b4 `models/resnet.py`):
    conv_bn(c->64) -> conv_bn(64->128, k5, s2, p2) -> Residual(2x conv_bn 128) -> conv_bn(128->256) -> MaxPool2
    -> Residual(2x conv_bn 256) -> conv_bn(256->128, k3, p0) -> AdaptiveMaxPool(1) -> Linear(128, classes, no bias)
    -> x 0.2. Input: N x c x H x W floats, H, W >= 12 (the unpadded last conv needs a 3x3 map)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(in_channels, 64), conv_bn(64, 128, kernel=5, stride=2, padding=2),
            Residual(nn.Sequential(conv_bn(128, 128), conv_bn(128, 128))),
            conv_bn(128, 256), nn.MaxPool2d(2),
            Residual(nn.Sequential(conv_bn(256, 256), conv_bn(256, 256))),
            conv_bn(256, 128, kernel=3, padding=0), nn.AdaptiveMaxPool2d(1),
        )
        self.linear = nn.Linear(128, num_classes, bias=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.body(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x)) * 0.2


# --- the registry -----------------------------------------------------------------------------------

# name -> (constructor(in_channels, num_classes), smallest image side it supports, what it is)
MODELS: dict[str, tuple[Callable[[int, int], nn.Module], int, str]] = {
    "resnet18": (resnet18, 8, "CIFAR ResNet-18 (3x3 stem, no max-pool), the papers' victim"),
    "resnet10-w16": (resnet10_w16, 8, "ResNet-10 at a quarter of ResNet-18's width (the quick judge: CPU)"),
    "fastnet": (lambda c, k: FastNet(c, k), 16, "airbench94-style fast net, widths 64/256/256 (GPU judge)"),
    "fastnet-small": (lambda c, k: FastNet(c, k, widths=(32, 64, 128)), 16,
                      "airbench94-style fast net, widths 32/64/128 (CPU judge)"),
    "smallcnn": (lambda c, k: SmallCNN(c, k), 4, "small 3-conv CNN for CPU and tiny images"),
    "tinycnn": (lambda c, k: TinyCNN(c, k), 4, "stride-2 3-conv CNN: the quick counterfactual retraining"),
    "resnet9": (lambda c, k: ResNet9(c, k), 12, "ResNet-9 of the data-attribution paper's counterfactual retraining"),
}


def build_model(name: str, in_channels: int = 3, num_classes: int = 10, image_size: int | tuple[int, int] = 32
                ) -> nn.Module:
    """Build a model by name for images of `in_channels` x `image_size` and `num_classes` classes."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    in_channels = check_choice(in_channels, "in_channels", (1, 3), "build_model")
    num_classes = check_count(num_classes, "num_classes", "build_model", lo=2)
    side = min(image_size) if isinstance(image_size, tuple) else int(image_size)
    ctor, min_side, _ = MODELS[name]
    if side < min_side:
        raise ValueError(
            f"model {name!r} needs images of at least {min_side}x{min_side}, got {side}; "
            f"resize the data explicitly (load_dataset(..., size=32)) or use 'smallcnn'"
        )
    return ctor(in_channels, num_classes)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
