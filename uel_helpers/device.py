"""Device choice, seeding and mixed precision: decided once, used everywhere."""

from __future__ import annotations

import contextlib
import math
import os
import random
import sys
from collections.abc import Iterator

import numpy as np
import torch

from .checks import check_seed


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """Return the device to compute on: CUDA when present, else Apple MPS, else CPU.

    `device` may name one explicitly ("cpu", "cuda", "cuda:1"); asking for CUDA on a machine
    without it is an error rather than a silent fallback.
    """
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', a device string or torch.device, got {type(device).__name__}")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device={device!r} is not a device name; use 'auto', 'cpu', 'cuda', 'cuda:1' or 'mps'") \
            from None
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={device!r}: uel_helpers runs on 'cpu', 'cuda' or 'mps'; use device='auto'")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available here; use device='auto' or 'cpu'"
        )
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so that runs repeat bit for bit on one device."""
    seed = check_seed(seed, "seed", "seed_everything")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on `device`, seeded: the one source of randomness of a run."""
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(int(seed))
    return gen


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `device`: bf16 on Ampere+ GPUs, fp16 on older ones, None on CPU.

    bf16 on a T4 (sm_75) fails in some PyTorch versions, so it is used only where the hardware has it.
    """
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    if major >= 8 and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def autocast(device: torch.device, enabled: bool = True):
    """An autocast context for `device` (a no-op on CPU/MPS or when disabled)."""
    dtype = amp_dtype(device)
    if not enabled or dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def free_memory_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device in bytes, None elsewhere."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def fit_batch_size(wanted: int, device: torch.device, bytes_per_sample: int, reserve: float = 0.3) -> int:
    """The largest power-of-two fraction of `wanted` whose activations fit in free GPU memory.

    On CPU the wanted size is returned unchanged. `bytes_per_sample` is an estimate of the
    activation memory of one sample; `reserve` keeps that fraction of free memory untouched.
    """
    if wanted < 1:
        raise ValueError(f"batch size must be >= 1, got {wanted}")
    free = free_memory_bytes(device)
    if free is None:
        return wanted
    budget = free * (1.0 - reserve)
    size = wanted
    while size > 1 and size * bytes_per_sample > budget:
        size //= 2
    return size


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def describe_device(device: torch.device | None = None) -> str:
    """A human-readable line (or a few) about the compute device, with a loud hint on a Colab CPU runtime."""
    device = device or pick_device()
    lines = [f"torch {torch.__version__} | device: {device}"]
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free = free_memory_bytes(device) or 0
        lines.append(
            f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB total, {free / 2**30:.1f} GiB free, "
            f"autocast dtype {amp_dtype(device)}"
        )
    else:
        lines.append(f"CPU threads: {torch.get_num_threads()}")
        if in_colab():
            lines.append(
                "!!! This Colab runtime has no GPU. Training will be very slow. "
                "Use Runtime -> Change runtime type -> T4 GPU, then re-run. !!!"
            )
    if os.environ.get("UEL_PROFILE"):
        lines.append(f"UEL_PROFILE={os.environ['UEL_PROFILE']}")
    return "\n".join(lines)


@contextlib.contextmanager
def deterministic_backend(device: torch.device) -> Iterator[None]:
    """On CUDA, deterministic cuDNN algorithms and no autotuning for the duration; restored afterwards."""
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


DIVERGENCE_FIX = "lower the learning rate, or turn mixed precision off (amp=False)"


class NonFiniteLossError(FloatingPointError, RuntimeError):
    """A loss became NaN or infinite, so the loop stopped: what it would go on to produce (NaN weights, a "best"
    result chosen by a NaN score) is not a result. A FloatingPointError, as `training.train` raises on a diverged
    epoch, and a RuntimeError."""


def check_finite_loss(value, who: str, what: str = "training loss", where: str = "", fix: str = DIVERGENCE_FIX
                      ) -> float:
    """`value` (a number or a one-element tensor) as a float, or NonFiniteLossError naming what diverged:
    "<who>: the <what> became nan <where>; <fix>" (the message style of `training.train`)."""
    v = float(value)
    if not math.isfinite(v):
        raise NonFiniteLossError(f"{who}: the {what} became {v}{' ' + where if where else ''}; {fix}")
    return v


class OptimizerStep:
    """One optimiser step from a loss: zero the gradients, backward (loss-scaled when autocast runs in float16, i.e.
    `amp` on a CUDA GPU without bfloat16), optional gradient-norm clip, step. Shared by every training loop of the
    package (judges, surrogates, SSL backbones, ProtoNets) so that mixed precision is done one way.

    It also notes, on the device and without a sync, whether any loss it was given was NaN or infinite;
    `check_finite(who, where)` (once per epoch or round) turns that into a NonFiniteLossError."""

    def __init__(self, opt: torch.optim.Optimizer, device: torch.device, amp: bool = True,
                 grad_clip: float | None = None) -> None:
        self.opt = opt
        self.grad_clip = grad_clip
        self.params = [p for g in opt.param_groups for p in g["params"]]
        fp16 = amp and amp_dtype(torch.device(device)) == torch.float16
        self.scaler = torch.amp.GradScaler("cuda") if fp16 else None
        self._nonfinite: torch.Tensor | None = None  # any non-finite loss since the last check_finite (on the device)

    def check_finite(self, who: str, where: str = "", fix: str = DIVERGENCE_FIX) -> None:
        """Raise NonFiniteLossError if a loss given to `step` since the last check was NaN or infinite (one device
        sync), naming `who` diverged `where` (e.g. "in epoch 3") and what to try (`fix`)."""
        bad, self._nonfinite = self._nonfinite, None
        if bad is not None and bool(bad):
            raise NonFiniteLossError(f"{who}: the training loss became NaN or infinite{' ' + where if where else ''}; "
                                     f"{fix}")

    def step(self, loss: torch.Tensor) -> None:
        bad = ~torch.isfinite(loss.detach()).all()
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if self.grad_clip:
                self.scaler.unscale_(self.opt)
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.opt.step()

