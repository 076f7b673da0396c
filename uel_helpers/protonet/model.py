"""The network and the head: a Conv-4 encoder, a decoder that mirrors it, and ProtoNet's prototypes and logits as
pure functions.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. Upstream code psandovalsegura/AdversarialQuerying@9992e0e: the encoder and decoder of
`models/autoprotonet.py` (the encoder is the standard ProtoNet Conv-4 of `models/protonet_embedding.py`), the head
`ProtoNetHead` of `models/classification_heads.py`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HIDDEN = 64          # Conv-4 width (upstream models/autoprotonet.py: channels 3 -> 64 -> 64 -> 64 -> 64)
MIN_SIZE = 16        # four 2x poolings: a side below 16 px leaves an empty embedding map


def _hw(size: int | Sequence[int], what: str = "image_size") -> tuple[int, int]:
    if isinstance(size, numbers.Integral) and not isinstance(size, bool):
        return int(size), int(size)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, numbers.Integral) for s in size):
        return int(size[0]), int(size[1])
    raise TypeError(f"{what} must be an int or (height, width), got {size!r}")


def mirror_output_paddings(image_size: int | Sequence[int]) -> list[tuple[int, int]]:
    """Per decoder block, the ConvTranspose2d `output_padding` that undoes the encoder's four floor-poolings.

    Rule (ours, explicit): encoder block i sees side s_i and pools to floor(s_i / 2); the decoder block that mirrors it
    doubles its input and adds s_i mod 2. This gives upstream's two decoders (`models/autoprotonet.py`) exactly: 32 px
    -> no padding (2 -> 4 -> 8 -> 16 -> 32), 84 px -> output_padding 1 in the second block only (5 -> 10 -> 21 -> 42 ->
    84); 28 px gives (1, 1, 0, 0) (1 -> 3 -> 7 -> 14 -> 28). Raises ValueError for a side below 16 px (the embedding map
    would be empty): resize first, e.g. `load_dataset("digits", size=16)`.
    """
    h, w = _hw(image_size)
    if min(h, w) < MIN_SIZE:
        raise ValueError(f"image_size: the Conv-4 encoder pools 4 times, so the decoder can only mirror sides >= "
                         f"{MIN_SIZE} px, got {h}x{w}; resize explicitly, e.g. load_dataset('digits', size=16)")
    pads = []
    for _ in range(4):
        pads.append((h % 2, w % 2))
        h, w = h // 2, w // 2
    return pads[::-1]


class Conv4Encoder(nn.Module):
    """ProtoNet's Conv-4 (upstream `models/protonet_embedding.py`): 4 x [Conv 3x3 (no bias) -> BatchNorm ->
    LeakyReLU(slope) -> MaxPool 2], 64 channels, the last activation kept. Input float (B, C, H, W) in [0, 1]; output
    the spatial map (B, 64, H//16, W//16)."""

    def __init__(self, in_channels: int = 3, hidden: int = HIDDEN, leaky_slope: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(4):
            layers += [nn.Conv2d(c, hidden, 3, padding=1, bias=False), nn.BatchNorm2d(hidden),
                       nn.LeakyReLU(leaky_slope), nn.MaxPool2d(2)]
            c = hidden
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv4Decoder(nn.Module):
    """AutoProtoNet's decoder (upstream `models/autoprotonet.py`): 4 x [ConvTranspose 2x2 stride 2 (bias) -> BatchNorm
    -> Conv 3x3 (no bias) -> ReLU], channels 64 -> 64 -> 64 -> 64 -> out_channels, output paddings from
    `mirror_output_paddings`. Input the spatial map (B, 64, h, w); output (B, out_channels, H, W) >= 0 (ReLU; not
    bounded above, as upstream)."""

    def __init__(self, out_channels: int, image_size: int | Sequence[int], hidden: int = HIDDEN) -> None:
        super().__init__()
        pads = mirror_output_paddings(image_size)
        chans = [hidden] * 4 + [out_channels]
        layers: list[nn.Module] = []
        for i, pad in enumerate(pads):
            layers += [nn.ConvTranspose2d(chans[i], chans[i + 1], 2, stride=2, output_padding=pad, bias=True),
                       nn.BatchNorm2d(chans[i + 1]), nn.Conv2d(chans[i + 1], chans[i + 1], 3, padding=1, bias=False),
                       nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class AutoProtoNet(nn.Module):
    """Conv-4 encoder + (optional) mirrored decoder + the ProtoNet head's learnable scale (init 1.0, as upstream).

    Sandoval-Segura & Lawson, arXiv:2204.00929; upstream `models/autoprotonet.py`. PyTorch's default initialisation
    for both models (AutoProtoNet's upstream; upstream's ProtoNet re-initialises convs Kaiming-normal: we do not, so
    that lambda_r is the only difference). `decoder=False` builds a plain ProtoNet.
    Raises ValueError (from `mirror_output_paddings`) for an image side below 16 px.
    """

    def __init__(self, in_channels: int, image_size: int | Sequence[int], decoder: bool = True,
                 hidden: int = HIDDEN, leaky_slope: float = 0.1) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        h, w = _hw(image_size)
        mirror_output_paddings((h, w))  # validates the size for both variants
        self.image_size = (h, w)
        self.in_channels = in_channels
        self.embedding_shape = (hidden, h // 16, w // 16)
        self.encoder = Conv4Encoder(in_channels, hidden, leaky_slope)
        self.decoder = Conv4Decoder(in_channels, (h, w), hidden) if decoder else None
        self.scale = nn.Parameter(torch.tensor(1.0))

    @property
    def embedding_dim(self) -> int:
        return int(np.prod(self.embedding_shape))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """float images (B, C, H, W) in [0, 1] -> flattened embeddings (B, D), D = 64 * (H//16) * (W//16)."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ValueError(f"embed: expected images (B, {self.in_channels}, {self.image_size[0]}, "
                             f"{self.image_size[1]}), got {tuple(x.shape)}")
        return self.encoder(x).flatten(1)

    def decode(self, e: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, D) -> images (B, C, H, W) >= 0 (upstream `forward_decoder` on `embedding_shape`).
        Raises ValueError for a model without a decoder (lambda_r = 0) or a wrong embedding size."""
        if self.decoder is None:
            raise ValueError("decode: this model has no decoder (a plain ProtoNet, lambda_r = 0); train an "
                             "AutoProtoNet (lambda_r > 0) to decode prototypes")
        if e.ndim != 2 or e.shape[1] != self.embedding_dim:
            raise ValueError(f"decode: expected embeddings (B, {self.embedding_dim}), got {tuple(e.shape)}")
        return self.decoder(e.reshape(-1, *self.embedding_shape))


# --- the head: the maths as pure functions --------------------------------------------------------------

def class_prototypes(embeddings: torch.Tensor, labels: torch.Tensor, way: int) -> torch.Tensor:
    """c_k = mean of the support embeddings of class k (upstream `ProtoNetHead`). embeddings (..., S, D) float, labels
    (..., S) int64 in [0, way). Returns (..., way, D). Raises ValueError when a class has no support embedding or a
    label is out of range."""
    if embeddings.shape[:-1] != labels.shape:
        raise ValueError(f"class_prototypes: embeddings (..., S, D) and labels (..., S) disagree: "
                         f"{tuple(embeddings.shape)} vs {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= way):
        raise ValueError(f"class_prototypes: labels must lie in [0, {way}), got [{int(labels.min())}, "
                         f"{int(labels.max())}]")
    onehot = F.one_hot(labels, way).to(embeddings.dtype)            # (..., S, way)
    counts = onehot.sum(-2)                                          # (..., way)
    if bool((counts == 0).any()):
        raise ValueError("class_prototypes: a class has no support example; every class needs >= 1 shot")
    return (onehot.transpose(-1, -2) @ embeddings) / counts[..., None]


def protonet_logits(query: torch.Tensor, prototypes: torch.Tensor, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
    """logits_k(q) = scale * (-||q - c_k||^2 / d), d the embedding dimension (upstream `ProtoNetHead` of
    `models/classification_heads.py`, normalize=True). query (..., Q, D), prototypes (..., N, D) -> (..., Q, N). Exact
    squared differences (no expansion), so a query equal to a prototype gets exactly 0."""
    if query.shape[-1] != prototypes.shape[-1]:
        raise ValueError(f"protonet_logits: query and prototypes need the same embedding size, got "
                         f"{query.shape[-1]} and {prototypes.shape[-1]}")
    d2 = (query.unsqueeze(-2) - prototypes.unsqueeze(-3)).pow(2).sum(-1)
    return -scale * d2 / query.shape[-1]
