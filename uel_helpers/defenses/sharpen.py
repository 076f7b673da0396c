"""Sharpening + DCT low-pass filtering (RSK+FF), a training-time defense against CUDA: the registered defenses.

Kim & Sandoval-Segura, NeurIPS 2024 AdvML-Frontiers workshop, arXiv 2411.01742 (Table 1); code
`aseriesof-tubes/RSK@911680e`. The transform itself (kernels, sharpening, DCT low-pass) lives in
`uel_helpers.transforms`, below the trainer that applies it; its names are re-exported here.


CUDA poisons blur every training image with a class-wise 3x3 kernel, so a network learns "which blur" instead
of the object. Sharpening each training image with a plus-shaped kernel undoes part of that blur, and keeping
only the lowest DCT frequencies then removes what the sharpening amplified (noise, and the fine part of the
class-wise shortcut); together they give a large share of the clean accuracy back (arXiv 2411.01742, Table 1).

- `ssk_kernel`: the static sharpening kernel, centre c and side taps -(c-1)/4 (the taps sum to 1);
- `rsk_kernels`: random sharpening kernels, one per image, drawn from a torch generator on the device (the
  reference draws them with numpy inside DataLoader workers, whose streams older PyTorch versions repeated);
- `sharpen`: all images of a batch at once, each with its own kernel, as one grouped convolution with no
  padding (H x W -> H-2 x W-2, as the reference), then clamp to [0, 1];
- `dct_matrix`, `dct2`, `idct2`, `dct_lowpass`: the orthonormal 2-D DCT-II as two matrix products and the hard
  low-pass filter that keeps the top-left floor(H p/100) x floor(W p/100) block of coefficients (computing
  only that block);
- `sharpen_filter`: the whole RSK+FF / SSK+FF / FF / RSK / SSK transform on a batch.

The defenses `rsk+ff`, `ssk+ff`, `ff`, `rsk` and `ssk` are kind "train": they set `Protocol.sharpen`,
`sharpen_center` and `lowpass_percent`, and the trainer applies the transform to every training batch on the
device, before crop/flip (`uel_helpers.training.augment`). They cannot be a one-off purification: RSK draws a
new kernel for every image at every epoch. The test set is never sharpened or filtered.

The three with a low-pass (`rsk+ff`, `ssk+ff`, `ff`) also turn off the FastNet judges' patch-whitening layer
(`Protocol.whiten = False`; the paper's ResNet-18 has none). That layer is fitted on training patches and
scales each 2x2-patch direction by 1/sqrt(variance + eps); the low-pass removes the high-frequency directions
from every training batch, so the network never learns to use them, and on the unfiltered test images they
arrive amplified (up to ~45x). Measured (500 Fashion-MNIST images/class as RGB, quick judge): clean data +
RSK+FF 25.9% with whitening, 72.7% without; fitting the whitening on filtered images instead gave 24.4%.
"""

from __future__ import annotations

from ..data import ImageSet
from ..transforms import (  # the transform itself lives below the trainer; re-exported under its old names
    DEFAULT_CENTER,
    DEFAULT_PERCENT,
    MODES,
    RSK_STD,
    check_center,
    check_percent,
    dct2,
    dct_lowpass,
    dct_matrix,
    idct2,
    kept_block,
    rsk_kernels,
    sharpen,
    sharpen_filter,
    ssk_kernel,
)
from .registry import register

__all__ = ["DEFAULT_CENTER", "DEFAULT_PERCENT", "MODES", "RSK_STD", "check_center", "check_percent", "dct2",
           "dct_lowpass", "dct_matrix", "ff", "idct2", "kept_block", "rsk", "rsk_ff", "rsk_kernels", "sharpen",
           "sharpen_filter", "ssk", "ssk_ff", "ssk_kernel"]


# --- argument checks ---------------------------------------------------------------------------------------


# --- sharpening kernels ------------------------------------------------------------------------------------


# --- DCT low-pass filter -----------------------------------------------------------------------------------
#
# torch has no DCT (torch.fft has only Fourier transforms); PyPI's torch-dct (0.1.6, last released 2022-11) and
# dctorch (0.1.2, 2023-09) are unmaintained, and torchjpeg only does JPEG's 8x8 blocks. For images of a few
# dozen pixels a side, the DCT as a matrix product is exact, fast on any device and needs no dependency.


# --- the whole transform -------------------------------------------------------------------------------------


# --- registry -------------------------------------------------------------------------------------------------

def _changes(train_set: ImageSet, mode: str, center: float, percent: float | None, name: str) -> dict:
    """The Protocol fields for one variant, after checking that it can run on `train_set`'s image size."""
    if not isinstance(train_set, ImageSet):
        raise TypeError(f"{name}: expected an ImageSet training set, got {type(train_set).__name__}")
    center = check_center(center)
    h, w = train_set.image_size
    if mode != "none":
        if min(h, w) < 3:
            raise ValueError(f"{name}: sharpening needs images of at least 3x3 (it trims 1 pixel per side), "
                             f"got {h}x{w}")
        h, w = h - 2, w - 2
    percent = 0.0 if percent is None else float(percent)
    changes = {"sharpen": mode, "sharpen_center": center, "lowpass_percent": percent}
    if percent:
        kept_block(h, w, percent)  # the filter must keep at least one coefficient at this size
        changes["whiten"] = False  # a whitening layer fitted on training patches breaks with a low-pass (docstring)
    return changes


_TRAIN_ONLY = ("applied by the trainer to every training batch, before crop/flip; the test set is never touched")
_NO_WHITEN = ("; the judge is trained without FastNet's patch-whitening layer, which breaks with a low-pass "
              "(see uel_helpers.defenses.sharpen)")


@register("rsk+ff", "RSK+FF (Kim & Sandoval-Segura 2024) against CUDA: a random 3x3 plus-shaped sharpening kernel "
          "per image and epoch (centre c ~ N(2.5, 0.1), side taps -n with n ~ N((c-1)/4, 0.1)), no padding, then a DCT "
          f"low-pass keeping 30% of the frequencies per side; {_TRAIN_ONLY}{_NO_WHITEN}", kind="train",
          protocol_changes={"sharpen": "rsk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": DEFAULT_PERCENT,
                            "whiten": False})
def rsk_ff(train_set: ImageSet, *, center: float = DEFAULT_CENTER, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for RSK+FF: random sharpening around `center`, then keep `percent`% of the DCT per side."""
    return _changes(train_set, "rsk", center, check_percent(percent), "rsk+ff")


@register("ssk+ff", "SSK+FF: the static sharpening kernel (centre 2.5, side taps -(c-1)/4, taps sum to 1), no "
          f"padding, then a DCT low-pass keeping 30% of the frequencies per side; {_TRAIN_ONLY}{_NO_WHITEN}",
          kind="train", protocol_changes={"sharpen": "ssk", "sharpen_center": DEFAULT_CENTER,
                                          "lowpass_percent": DEFAULT_PERCENT, "whiten": False})
def ssk_ff(train_set: ImageSet, *, center: float = DEFAULT_CENTER, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for SSK+FF: static sharpening with `center`, then keep `percent`% of the DCT per side."""
    return _changes(train_set, "ssk", center, check_percent(percent), "ssk+ff")


@register("ff", "FF: the DCT low-pass alone (keep the top-left 30% x 30% block of orthonormal DCT-II "
          f"coefficients, full-size image, clamp); {_TRAIN_ONLY}{_NO_WHITEN}", kind="train",
          protocol_changes={"sharpen": "none", "lowpass_percent": DEFAULT_PERCENT, "whiten": False})
def ff(train_set: ImageSet, *, percent: float = DEFAULT_PERCENT) -> dict:
    """Protocol changes for FF alone: keep `percent`% of the DCT frequencies per side of every training image."""
    changes = _changes(train_set, "none", DEFAULT_CENTER, check_percent(percent), "ff")
    del changes["sharpen_center"]  # not used without sharpening
    return changes


@register("rsk", "RSK alone: random sharpening kernels per image and epoch, no frequency filter (the reference "
          f"crashes on this option with a ToTensor TypeError; here it runs); {_TRAIN_ONLY}", kind="train",
          protocol_changes={"sharpen": "rsk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": 0.0})
def rsk(train_set: ImageSet, *, center: float = DEFAULT_CENTER) -> dict:
    """Protocol changes for RSK alone: random sharpening around `center`, no frequency filter."""
    return _changes(train_set, "rsk", center, None, "rsk")


@register("ssk", "SSK alone: the static sharpening kernel (centre 2.5), no frequency filter (the reference "
          f"crashes on this option with a ToTensor TypeError; here it runs); {_TRAIN_ONLY}", kind="train",
          protocol_changes={"sharpen": "ssk", "sharpen_center": DEFAULT_CENTER, "lowpass_percent": 0.0})
def ssk(train_set: ImageSet, *, center: float = DEFAULT_CENTER) -> dict:
    """Protocol changes for SSK alone: static sharpening with `center`, no frequency filter."""
    return _changes(train_set, "ssk", center, None, "ssk")
