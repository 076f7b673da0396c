"""Self-supervised backbones (SimCLR, MoCo v2) trained on the training set itself, and their features.

The attribution paper (Singla et al. 2023, arXiv 2311.03386) trains its SSL models with Lightly's CIFAR-10
benchmark code (vasusingla/simple-data-attribution@d2016b4 `self_supervised_models/train_ssl.py`); we use the
`lightly` library for what it does there (losses, projection heads, the MoCo memory bank and momentum update, the
SimCLR two-view augmentation) and keep the training loop ours: cached by configuration, checkpointed every epoch
and resumed, a progress bar, mixed precision on CUDA, and a kNN monitor (k = 200, t = 0.1) per epoch.

Under torchrun `train_ssl` trains one backbone on several processes through the package's DDP path
(`uel_helpers.distributed`): `SSLConfig.batch_size` is the global batch, each rank augments its shard of the images
and takes batch_size / N of them per step, lightly's loss gathers the other ranks' embeddings as negatives
(`gather_distributed`, also for the MoCo memory bank), DDP averages the gradients (so the learning rate is the
config's), and only rank 0 writes checkpoints and the cached backbone.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import atomic_write, cache_path, tensor_fingerprint
from ..checks import check_count, check_number, check_rate, check_seed
from ..data import ImageSet, check_imageset, check_same_classes, decode_images
from ..device import OptimizerStep, autocast, check_finite_loss, pick_device, seed_everything
from ..distributed import context, rank_seed
from ..models import build_model
from ..profiles import resolve_profile
from ..progress import progress
from ..training import Normalize, channel_stats

SSL_METHODS = ("simclr", "moco")
BACKBONE_FORMAT = 1  # bump when the checkpoint layout changes


def _lightly():
    try:
        import lightly  # noqa: F401
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead, SimCLRProjectionHead
        from lightly.models.utils import update_momentum
        from lightly.transforms import SimCLRTransform
        from lightly.utils.benchmarking import knn_predict
    except ImportError as err:
        raise ImportError("SSL backbones need the `lightly` library: pip install 'uel_helpers[attribution]' "
                          "(or pip install lightly)") from err
    return dict(NTXentLoss=NTXentLoss, MoCoProjectionHead=MoCoProjectionHead,
                SimCLRProjectionHead=SimCLRProjectionHead, update_momentum=update_momentum,
                SimCLRTransform=SimCLRTransform, knn_predict=knn_predict)


@dataclass(frozen=True)
class SSLConfig:
    """How an SSL backbone is trained. Defaults: the paper's
    (vasusingla/simple-data-attribution@d2016b4 `self_supervised_models/train_ssl.py`): MoCo v2 on a CIFAR ResNet-18,
    batch 512,
    SGD lr 6e-2 x batch/128, momentum 0.9, wd 5e-4, cosine schedule; MoCo memory bank 4096, temperature 0.1,
    momentum 0.99, symmetric loss; SimCLR's temperature is lightly's default 0.5; kNN monitor k = 200, t = 0.1;
    Lightly's SimCLR augmentation without blur. The reference trains 800 epochs (~10-13 A6000-hours); our `paper`
    profile offers 200."""

    method: str = "moco"
    arch: str = "resnet18"          # a name of models.MODELS with a `features` method
    epochs: int = 200
    batch_size: int = 512
    lr: float | None = None         # None: 6e-2 * batch_size / 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    temperature: float | None = None  # None: 0.1 (MoCo), 0.5 (SimCLR)
    memory_bank: int = 4096         # MoCo negatives kept (must be < the number of training images)
    ema_momentum: float = 0.99      # MoCo key-encoder momentum
    proj_dim: int = 128
    min_scale: float = 0.08         # RandomResizedCrop's smallest area (lightly's SimCLR default)
    knn_k: int = 200
    knn_t: float = 0.1
    num_workers: int = 0            # DataLoader workers for the per-image augmentation

    def __post_init__(self) -> None:
        if self.method not in SSL_METHODS:
            raise ValueError(f"SSLConfig.method: expected one of {SSL_METHODS}, got {self.method!r}")
        # numpy integers are accepted and stored as Python ints (the config is hashed and written to JSON)
        for what in ("epochs", "batch_size", "memory_bank", "proj_dim", "knn_k", "num_workers"):
            object.__setattr__(self, what, check_count(getattr(self, what), what, "SSLConfig",
                                                       lo=0 if what == "num_workers" else 1))
        if self.batch_size < 2:
            raise ValueError(f"SSLConfig: batch_size must be >= 2 (contrastive losses need two images per batch), "
                             f"got {self.batch_size}")
        for what in ("momentum", "weight_decay", "ema_momentum", "min_scale", "knn_t"):
            check_number(getattr(self, what), what, "SSLConfig")
        if self.lr is not None:
            check_rate(self.lr, "lr (or None for the batch-size rule)", "SSLConfig", lo=0.0, lo_open=True)

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else 6e-2 * self.batch_size / 128

    @property
    def tau(self) -> float:
        return self.temperature if self.temperature is not None else (0.1 if self.method == "moco" else 0.5)

    def with_(self, **changes) -> SSLConfig:
        return replace(self, **changes)

    def fitted_to(self, n_images: int) -> SSLConfig:
        """This configuration, with a MoCo memory bank of half the training set when the bank would not be smaller
        than it (`train_ssl` refuses that rather than change it silently)."""
        if self.method == "moco" and self.memory_bank >= n_images:
            return self.with_(memory_bank=max(1, n_images // 2))
        return self


# Profiles (uel_helpers.profiles): smoke = seconds; quick = 2 CPU cores, minutes; paper = the reference's recipe,
# 200 epochs.
SSL_PROFILES: dict[str, SSLConfig] = {
    "smoke": SSLConfig(method="moco", arch="tinycnn", epochs=2, batch_size=64, memory_bank=128),
    "quick": SSLConfig(method="moco", arch="resnet10-w16", epochs=20, batch_size=128, memory_bank=1024),
    "paper": SSLConfig(method="moco", arch="resnet18", epochs=200, batch_size=512, memory_bank=4096, num_workers=4),
}


def ssl_config_for_profile(profile: str | None = None, **overrides) -> SSLConfig:
    """The SSL configuration of a profile (smoke / quick / paper), with optional overrides."""
    cfg = SSL_PROFILES[resolve_profile(profile)]
    return cfg.with_(**overrides) if overrides else cfg


class Encoder(nn.Module):
    """Images in [0, 1] (N x C x H x W floats) -> pooled backbone features (N x D), standardised inside."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        if not hasattr(net, "features"):
            raise TypeError(f"the SSL backbone needs a model with a `features` method, got {type(net).__name__}")
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(self.normalize(x))


@dataclass
class SSLHistory:
    loss: list[float] = field(default_factory=list)
    knn_acc: list[float] = field(default_factory=list)   # kNN accuracy on the monitor set, per epoch (empty: none)
    seconds: list[float] = field(default_factory=list)


@dataclass
class SSLBackbone:
    """A trained SSL encoder, what it was trained with (config, data fingerprint, seed), and its curves."""

    encoder: Encoder
    config: SSLConfig
    data_fingerprint: str
    seed: int
    history: SSLHistory

    def identity(self) -> dict:
        return {"config": asdict(self.config), "data": self.data_fingerprint, "seed": self.seed,
                "format": BACKBONE_FORMAT}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        mean, std = self.encoder.normalize.mean.reshape(-1), self.encoder.normalize.std.reshape(-1)
        payload = {"identity": self.identity(), "state": self.encoder.state_dict(), "mean": mean, "std": std,
                   "channels": int(mean.numel()), "history": asdict(self.history)}
        return atomic_write(path, lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | Path, config: SSLConfig | None = None, train_set: ImageSet | None = None,
             seed: int | None = None, num_classes: int = 10) -> SSLBackbone:
        """Load a saved backbone; when `config`, `train_set` or `seed` is given it must be what the file was trained
        with, else ValueError listing what differs (a checkpoint of another configuration is never used silently).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no backbone checkpoint at {path}; train one with train_ssl(...)")
        payload = torch.load(path, map_location="cpu", weights_only=False)
        ident = payload.get("identity", {})
        _check_identity(ident, config, train_set, seed, str(path))
        cfg = SSLConfig(**ident["config"])
        mean, std = payload["mean"], payload["std"]
        net = build_model(cfg.arch, payload["channels"], num_classes, 32)
        encoder = Encoder(net, mean, std)
        encoder.load_state_dict(payload["state"])
        hist = SSLHistory(**payload.get("history", {}))
        return cls(encoder.eval(), cfg, ident["data"], ident["seed"], hist)


def _check_identity(ident: dict, config: SSLConfig | None, train_set: ImageSet | None, seed: int | None,
                    where: str) -> None:
    if ident.get("format") != BACKBONE_FORMAT:
        raise ValueError(f"{where}: not a backbone checkpoint of this version (format {ident.get('format')!r}, "
                         f"expected {BACKBONE_FORMAT}); retrain it with train_ssl(...)")
    wrong = []
    if config is not None:
        stored = ident["config"]
        wrong += [f"config.{k}: file {stored.get(k)!r}, asked {v!r}" for k, v in asdict(config).items()
                  if stored.get(k) != v]
    if train_set is not None and ident["data"] != tensor_fingerprint(train_set.images):
        wrong.append(f"training images: file {ident['data']}, asked {tensor_fingerprint(train_set.images)}")
    if seed is not None and ident["seed"] != seed:
        wrong.append(f"seed: file {ident['seed']}, asked {seed}")
    if wrong:
        raise ValueError(f"{where} is a backbone of another configuration ({'; '.join(wrong)}); train one for this "
                         f"configuration with train_ssl(...) or load it without the mismatching argument")


class _TwoViews(torch.utils.data.Dataset):
    """Each training image (uint8 tensor) as two augmented views by lightly's SimCLR transform (PIL, per image)."""

    def __init__(self, images_u8: torch.Tensor, transform) -> None:
        self.images = images_u8
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        img = self.images[i].permute(1, 2, 0).numpy()
        pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        v1, v2 = self.transform(pil)
        return v1, v2


def two_view_transform(config: SSLConfig, size: int):
    """Lightly's SimCLR augmentation at the images' size, no blur, no normalisation (the encoder standardises)."""
    return _lightly()["SimCLRTransform"](input_size=size, gaussian_blur=0.0, min_scale=config.min_scale,
                                         normalize=None)


@torch.no_grad()
def extract_features(encoder: nn.Module, images: ImageSet | torch.Tensor, batch_size: int = 512,
                     device: str | torch.device | None = "auto") -> torch.Tensor:
    """Features of every image without augmentation: float32 (N, D) on the CPU.

    images: an ImageSet or a uint8 tensor (N, C, H, W) in 0..255.
    """
    x_all = images.images if isinstance(images, ImageSet) else images
    meta = images.meta if isinstance(images, ImageSet) else None
    if not isinstance(x_all, torch.Tensor) or x_all.dtype != torch.uint8 or x_all.ndim != 4:
        raise TypeError("extract_features: images must be an ImageSet or a uint8 tensor (N, C, H, W)")
    dev = pick_device(device)
    was_training = encoder.training
    encoder.eval().to(dev)
    out = []
    for xb in x_all.split(batch_size):
        with autocast(dev):
            out.append(encoder(decode_images(xb.to(dev), meta)).float().cpu())
    encoder.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, 0)


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, k: int = 200, t: float = 0.1) -> float:
    """Weighted kNN accuracy in [0, 1] on L2-normalised features (the SSL monitor of `train_ssl.py`: k = 200, t = 0.1),
    computed with lightly's `knn_predict`."""
    knn_predict = _lightly()["knn_predict"]
    bank = F.normalize(train_features.float(), dim=1).t().contiguous()
    k = min(k, train_features.shape[0])
    correct = 0
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    for fb, yb in zip(test_features.split(1024), test_labels.split(1024), strict=True):
        pred = knn_predict(F.normalize(fb.float(), dim=1), bank, train_labels, num_classes, k, t)
        correct += int((pred[:, 0] == yb).sum())
    return correct / max(1, len(test_labels))


def _build_heads(config: SSLConfig, feat_dim: int, gather: bool = False):
    """The projection head and the loss; `gather` (several processes): negatives from every rank (lightly)."""
    lib = _lightly()
    more = {"gather_distributed": True} if gather else {}
    if config.method == "moco":
        head = lib["MoCoProjectionHead"](feat_dim, feat_dim, config.proj_dim)
        loss = lib["NTXentLoss"](temperature=config.tau, memory_bank_size=(config.memory_bank, config.proj_dim),
                                 **more)
    else:
        head = lib["SimCLRProjectionHead"](feat_dim, feat_dim, config.proj_dim)
        loss = lib["NTXentLoss"](temperature=config.tau, **more)
    return head, loss


class _Query(nn.Module):
    """Encoder then projection head, each view on its own (BatchNorm per view, as in one process): the one module DDP
    wraps, called once per step (its gradients are the ones averaged)."""

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, v1: torch.Tensor, v2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.encoder(v1)), self.head(self.encoder(v2))


def _set_buffers(module: nn.Module, buffers: dict) -> None:
    """Restore buffers by name, persistent or not (lightly's MoCo memory bank is a non-persistent buffer, so
    `state_dict` would drop it and a resumed run would start from a random bank)."""
    for name, value in buffers.items():
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        setattr(owner, leaf, value.to(getattr(owner, leaf).device))


def backbone_path(train_set: ImageSet, config: SSLConfig, seed: int, root: str | Path | None = None,
                  world_size: int = 1) -> Path:
    """Where `train_ssl` keeps the backbone of this (training set, configuration, seed[, number of processes])."""
    key = {"kind": "ssl-backbone", "config": asdict(config), "data": tensor_fingerprint(train_set.images),
           "seed": seed, "format": BACKBONE_FORMAT}
    if world_size > 1:  # a DDP training is its own run; single-process paths unchanged
        key["world_size"] = world_size
    return cache_path("ssl-backbones", key, ".pt", root)


def train_ssl(train_set: ImageSet, config: SSLConfig | None = None, *, monitor: ImageSet | None = None,
              seed: int = 0, device: str | torch.device | None = "auto", quiet: bool = False, cache: bool = True,
              cache_root: str | Path | None = None, ddp: bool | None = None, sync_bn: bool = False) -> SSLBackbone:
    """Train a SimCLR or MoCo v2 backbone on `train_set`'s images (labels unused), or load it from the cache.

    monitor: a labelled set for the kNN monitor (features of `train_set` as the bank); None = no monitor.
    Checkpointed after every epoch beside the cached file (`<hash>.partial.pt`): an interrupted run resumes there.
    Stops with NonFiniteLossError (device.py; a FloatingPointError) when an epoch's loss is NaN or infinite, before
    that epoch is recorded or checkpointed (lower SSLConfig.lr); TypeError for a seed that is not an integer.
    Raises ValueError for a MoCo memory bank not smaller than the training set or images too small for the arch,
    an empty train_set or monitor, or a monitor whose classes (names and order) differ from train_set's (the kNN
    monitor compares its labels with the training labels); TypeError when either is not an ImageSet.

    Under torchrun (`ddp` None = auto, False = one process each) one backbone is trained with DDP: the global batch
    `config.batch_size` is split over the ranks (ValueError when the number of processes does not divide it), each
    rank augments its own shard, the loss gathers every rank's embeddings, BatchNorm is per rank (or SyncBatchNorm
    with `sync_bn=True`, CUDA), the kNN monitor is rank 0's, and only rank 0 writes checkpoints and the cache.
    """
    config = config or ssl_config_for_profile(None)
    seed = check_seed(seed, "seed", "train_ssl")
    check_imageset(train_set, "train_set", "train_ssl")
    if monitor is not None:
        check_imageset(monitor, "monitor", "train_ssl")
        check_same_classes(train_set, monitor, "train_ssl", "train_set", "monitor")
    n = len(train_set)
    if config.method == "moco" and config.memory_bank >= n:
        raise ValueError(f"SSLConfig.memory_bank: {config.memory_bank} negatives need more than that many training "
                         f"images, got {n}; use memory_bank < {n} (e.g. config.with_(memory_bank={max(1, n // 2)}))")
    if config.batch_size > n:
        raise ValueError(f"SSLConfig.batch_size: {config.batch_size} is larger than the training set ({n} images)")
    dist_ctx = context(pick_device(device), ddp, sync_bn, "train_ssl")
    batch = dist_ctx.local_batch(config.batch_size, "train_ssl")  # images per rank and step
    path = backbone_path(train_set, config, seed, cache_root, dist_ctx.world_size)
    if cache and path.exists():
        try:
            return SSLBackbone.load(path, config, train_set, seed, train_set.num_classes)
        except (ValueError, RuntimeError, OSError, KeyError) as err:
            import warnings

            warnings.warn(f"cached backbone {path} could not be used ({err}); retraining it", stacklevel=2)
    lib = _lightly()
    dev = dist_ctx.device
    seed_everything(seed)
    c, h, w = train_set.shape
    mean, std = channel_stats(train_set.images)
    net = build_model(config.arch, c, train_set.num_classes, (h, w))
    encoder = Encoder(net, mean, std)
    with torch.no_grad():  # eval mode: probing the width must not move BatchNorm's running statistics
        feat_dim = int(encoder.eval()(torch.zeros(1, c, h, w)).shape[1])
    encoder.train()
    head, criterion = _build_heads(config, feat_dim, gather=dist_ctx.active)
    encoder, head, criterion = encoder.to(dev), head.to(dev), criterion.to(dev)
    key_encoder = key_head = None
    if config.method == "moco":
        key_encoder, key_head = copy.deepcopy(encoder), copy.deepcopy(head)
        for p in [*key_encoder.parameters(), *key_head.parameters()]:
            p.requires_grad_(False)
    # the backbone's classifier is not used by `features`: DDP is told to expect parameters without gradients
    query = dist_ctx.wrap(_Query(encoder, head), unused=True) if dist_ctx.active else None
    params = [*encoder.parameters(), *head.parameters()]
    opt = torch.optim.SGD(params, lr=config.base_lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    hist = SSLHistory()
    start_epoch = 0
    partial = path.with_suffix(".partial.pt")
    if cache and partial.exists():
        try:
            state = torch.load(partial, map_location=dev, weights_only=False)
            _check_identity(state["identity"], config, train_set, seed, str(partial))
            encoder.load_state_dict(state["encoder"])
            head.load_state_dict(state["head"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            if key_encoder is not None:
                key_encoder.load_state_dict(state["key_encoder"])
                key_head.load_state_dict(state["key_head"])
            _set_buffers(criterion, state["criterion"])
            hist = SSLHistory(**state["history"])
            start_epoch = state["epoch"]
            torch.set_rng_state(state["rng"])
        except Exception as err:  # a checkpoint of another run or a torn file: start over, loudly
            import warnings

            warnings.warn(f"ignoring the checkpoint {partial} ({err}); training from epoch 0", stacklevel=2)
            start_epoch = 0
    loader_gen = torch.Generator().manual_seed(seed)
    images = train_set.images if not dist_ctx.active else train_set.images[dist_ctx.shard(n, seed)]
    views = _TwoViews(images, two_view_transform(config, min(h, w)))
    loader = torch.utils.data.DataLoader(views, batch_size=batch, shuffle=True, drop_last=True,
                                         num_workers=config.num_workers, generator=loader_gen,
                                         persistent_workers=config.num_workers > 0)
    stepper = OptimizerStep(opt, dev)
    ident = SSLBackbone(encoder, config, tensor_fingerprint(train_set.images), seed, hist).identity()
    bar = progress(total=config.epochs, initial=start_epoch, desc=f"SSL {config.method} ({config.arch})",
                   unit="epoch", quiet=quiet or not dist_ctx.is_main, leave=True)
    steps_per_epoch = len(loader) if not dist_ctx.active else n // config.batch_size  # the same on every rank
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        encoder.train()
        head.train()
        total, seen = 0.0, 0
        loader_gen.manual_seed(seed * 100_003 + epoch)  # each epoch's order is its own: a resumed run repeats it
        if dist_ctx.active:  # each rank's own augmentation stream, per epoch (a resumed run repeats it)
            torch.manual_seed(rank_seed(seed, dist_ctx.rank, salt=epoch + 1))
        batches = zip(range(steps_per_epoch), loader, strict=False) if dist_ctx.active else enumerate(loader)
        for step, (v1, v2) in batches:  # under DDP a shard one image longer must not add a step on one rank only
            v1, v2 = v1.to(dev, non_blocking=True), v2.to(dev, non_blocking=True)
            if key_encoder is not None:  # MoCo v2: cosine-ramped momentum update of the key encoder (lightly)
                m = 1 - (1 - config.ema_momentum) * (math.cos(math.pi * (epoch * steps_per_epoch + step) /
                                                              (config.epochs * steps_per_epoch)) + 1) / 2
                lib["update_momentum"](encoder, key_encoder, m)
                lib["update_momentum"](head, key_head, m)
            with autocast(dev):
                q1, q2 = (head(encoder(v1)), head(encoder(v2))) if query is None else query(v1, v2)
                if key_encoder is not None:
                    with torch.no_grad():
                        k1, k2 = key_head(key_encoder(v1)), key_head(key_encoder(v2))
                    # symmetric loss (as `train_ssl.py`'s MoCo): each view's query against the other view's key
                    loss = 0.5 * (criterion(q1.float(), k2.float()) + criterion(q2.float(), k1.float()))
                else:
                    loss = criterion(q1.float(), q2.float())
            stepper.step(loss)
            total += float(loss.detach()) * len(v1)
            seen += len(v1)
        sched.step()
        if dist_ctx.active:  # the global batch's mean loss, the same on every rank
            total, seen = dist_ctx.all_reduce_sum([total, seen])
        loss_mean = total / max(1, seen)
        if not math.isfinite(loss_mean):  # stop before the epoch is recorded or checkpointed (a resume would load NaN)
            bar.close()
            check_finite_loss(loss_mean, f"train_ssl ({config.method})", "SSL training loss",
                              where=f"in epoch {epoch + 1} (lr {config.base_lr:g})",
                              fix=f"lower SSLConfig.lr (now {config.base_lr:g})")
        hist.loss.append(loss_mean)
        if monitor is not None:
            dist_ctx.broadcast_buffers(encoder)  # rank 0's BatchNorm statistics: one encoder on every rank
            knn = math.nan
            if dist_ctx.is_main:
                bank = extract_features(encoder, train_set, device=dev)
                feats = extract_features(encoder, monitor, device=dev)
                knn = knn_accuracy(bank, train_set.labels, feats, monitor.labels, config.knn_k, config.knn_t)
            hist.knn_acc.append(dist_ctx.broadcast_value(knn))
        hist.seconds.append(time.perf_counter() - t0)
        bar.update(1)
        bar.set_postfix(loss=f"{hist.loss[-1]:.3f}",
                        **({"knn": f"{100 * hist.knn_acc[-1]:.1f}%"} if hist.knn_acc else {}))
        if cache and dist_ctx.is_main:
            state = {"identity": ident, "encoder": encoder.state_dict(), "head": head.state_dict(),
                     "opt": opt.state_dict(), "sched": sched.state_dict(),
                     "criterion": {n: b.detach().clone() for n, b in criterion.named_buffers()},
                     "history": asdict(hist), "epoch": epoch + 1, "rng": torch.get_rng_state(),
                     **({"key_encoder": key_encoder.state_dict(), "key_head": key_head.state_dict()}
                        if key_encoder is not None else {})}
            partial.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(partial, lambda tmp, state=state: torch.save(state, tmp))
    bar.close()
    backbone = SSLBackbone(encoder.cpu().eval(), config, tensor_fingerprint(train_set.images), seed, hist)
    if cache and dist_ctx.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        backbone.save(path)
        partial.unlink(missing_ok=True)
    return backbone
