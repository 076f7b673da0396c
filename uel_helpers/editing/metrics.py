"""What notebook 08 measures (design: the JPEG paper, arXiv 2304.02234, publishes qualitative figures only).

    latent shift        ‖E(x') − E(x)‖₂ per image, x the clean image, x' any version of it (protected, compressed)
    latent-shift ratio  ‖E(jpeg_Q(x_adv)) − E(x)‖ / ‖E(x_adv) − E(x)‖: 1 = JPEG left the protection's shift intact,
                        0 = JPEG brought the latent back to the clean one
    pixel change        ‖jpeg_Q(x') − x'‖∞ and ‖·‖₂ per image ([0, 1] units): what JPEG did to the pixels, on clean
                        and protected images alike (it separates "JPEG removed the protection" from "JPEG changes
                        everything")
    edit similarity     PSNR and SSIM of edit(x') against edit(x) (PhotoGuard compares edits with image-similarity
                        metrics, arXiv 2302.06588 §5)

PSNR and SSIM are torchmetrics' (`torchmetrics.functional.image`; SSIM as Wang et al., IEEE TIP 2004: Gaussian
window 11 × 11, σ = 1.5, K1 = 0.01, K2 = 0.03, data range 1), computed per image on float images in [0, 1]. Its SSIM
map is averaged over the whole image, borders reflected (scikit-image's `structural_similarity` drops a 5-pixel
border instead: on 32 px images the two differ by a few hundredths).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .attack import encoder_device
from .inputs import as_unit, check_images_u8, check_pair, check_quality, require
from .jpeg import jpeg_images
from .settings import JPEG_QUALITIES

__all__ = ["Sweep", "jpeg_sweep", "latent_shift", "latent_shift_ratio", "latents", "pixel_change", "psnr", "ssim"]


def _functional():
    return require("torchmetrics.functional.image", "PSNR and SSIM (torchmetrics)")


def psnr(a, b) -> torch.Tensor:
    """PSNR in dB of each image of `a` against the same image of `b`, peak 1 ([0, 1] units): float (N,), +inf for
    identical images. a, b: uint8 (0..255) or float [0, 1] images (N, C, H, W) of the same shape. torchmetrics'
    `peak_signal_noise_ratio(data_range=1, reduction="none", dim=(1, 2, 3))`. Raises TypeError/ValueError for other
    dtypes, ranges or shapes, ImportError (naming the `editing` extra) without torchmetrics."""
    fa, fb = as_unit(a, "a", "psnr"), as_unit(b, "b", "psnr")
    check_pair(fa, fb, ("a", "b"), "psnr")
    f = _functional()
    return f.peak_signal_noise_ratio(fa, fb, data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(a, b) -> torch.Tensor:
    """SSIM of each image of `a` against the same image of `b`: float (N,) in [−1, 1], 1 for identical images.

    a, b: uint8 or float [0, 1] images (N, C, H, W), sides >= 11 (the Gaussian window). torchmetrics'
    `structural_similarity_index_measure(data_range=1, reduction="none")` (Wang et al. 2004 constants). Raises
    TypeError/ValueError for other dtypes, ranges, shapes or sides below 11, ImportError without torchmetrics."""
    fa, fb = as_unit(a, "a", "ssim"), as_unit(b, "b", "ssim")
    check_pair(fa, fb, ("a", "b"), "ssim")
    if min(fa.shape[-2:]) < 11:
        raise ValueError(f"ssim: image sides must be >= 11 (the 11 x 11 Gaussian window), got {tuple(fa.shape[-2:])}")
    f = _functional()
    return f.structural_similarity_index_measure(fa, fb, data_range=1.0, reduction="none")


def pixel_change(a, b) -> dict[str, torch.Tensor]:
    """Per-image L∞ and L2 norms of a − b in [0, 1] units: {"linf": (N,), "l2": (N,)} (uint8 or float images)."""
    fa, fb = as_unit(a, "a", "pixel_change"), as_unit(b, "b", "pixel_change")
    check_pair(fa, fb, ("a", "b"), "pixel_change")
    d = (fa - fb).flatten(1)
    return {"linf": d.abs().amax(1), "l2": d.norm(dim=1)}


def latents(encoder: Callable[[torch.Tensor], torch.Tensor], images, batch_size: int = 256) -> torch.Tensor:
    """E(x) of uint8 or float [0, 1] images (N, C, H, W), without gradients, in batches on the encoder's device:
    float (N, ...) on the CPU."""
    x = as_unit(images, "images", "latents")
    dev = encoder_device(encoder)
    with torch.no_grad():
        return torch.cat([encoder(x[i:i + batch_size].to(dev)).float().cpu() for i in range(0, len(x), batch_size)])


def latent_shift(encoder, clean, other) -> torch.Tensor:
    """‖E(other) − E(clean)‖₂ per image: float (N,). clean, other: the same images (uint8 or float [0, 1])."""
    check_pair(clean, other, ("clean", "other"), "latent_shift")
    return (latents(encoder, other) - latents(encoder, clean)).flatten(1).norm(dim=1)


def latent_shift_ratio(encoder, clean, protected, compressed) -> torch.Tensor:
    """‖E(compressed) − E(clean)‖ / ‖E(protected) − E(clean)‖ per image: float (N,) (NaN where the protection did not
    move the latent at all). compressed is typically `jpeg_images(protected, Q)`."""
    z = latents(encoder, clean)
    check_pair(clean, protected, ("clean", "protected"), "latent_shift_ratio")
    check_pair(clean, compressed, ("clean", "compressed"), "latent_shift_ratio")
    num = (latents(encoder, compressed) - z).flatten(1).norm(dim=1)
    den = (latents(encoder, protected) - z).flatten(1).norm(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, float("nan")))


METRICS = ("latent_shift", "ratio", "jpeg_linf", "jpeg_l2", "psnr_clean", "edit_psnr", "edit_ssim")


@dataclass
class Sweep:
    """The JPEG sweep: metric -> float array (rows, qualities, images).

    rows: the inputs' names (e.g. "clean", "noise control ε=7.65/255", "protected ε=7.65/255"); qualities: None (the
    stored PNG, no JPEG) then the JPEG qualities. Metrics (`METRICS`): latent_shift ‖E(jpeg_Q(x')) − E(x)‖; ratio =
    latent_shift / latent_shift at PNG (NaN for the clean row); jpeg_linf, jpeg_l2: ‖jpeg_Q(x') − x'‖ ([0, 1] units;
    0 at PNG); psnr_clean: PSNR(jpeg_Q(x'), x) in dB; edit_psnr, edit_ssim: of edit(jpeg_Q(x')) against edit(x)
    (NaN without an editor). latent_norm: ‖E(x)‖ per clean image, for scale.
    """

    rows: list[str]
    qualities: list[int | None]
    values: dict[str, np.ndarray]
    latent_norm: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def mean(self, metric: str, row: str, quality: int | None) -> float:
        """The mean over images of one cell (NaN-aware; +inf when every image is +inf, e.g. PSNR of identical)."""
        if metric not in self.values:
            raise ValueError(f"Sweep.mean: unknown metric {metric!r}; expected one of {list(self.values)}")
        if row not in self.rows or quality not in self.qualities:
            raise ValueError(f"Sweep.mean: unknown row {row!r} or quality {quality!r}; rows {self.rows}, qualities "
                             f"{self.qualities}")
        v = self.values[metric][self.rows.index(row), self.qualities.index(quality)]
        v = v[~np.isnan(v)]
        return float("nan") if v.size == 0 else float(np.mean(v))

    def table(self, metric: str, digits: int = 3) -> str:
        """A markdown table of the means: one line per row, one column per quality ("PNG" = no JPEG)."""
        head = ["input"] + ["PNG" if q is None else f"Q={q}" for q in self.qualities]
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(self.qualities) + "|"]
        for r in self.rows:
            cells = [f"{self.mean(metric, r, q):.{digits}g}" for q in self.qualities]
            lines.append(f"| {r} | " + " | ".join(cells) + " |")
        return "\n".join(lines)


def jpeg_sweep(encoder, clean: torch.Tensor, inputs: Mapping[str, torch.Tensor],
               qualities: Sequence[int] = JPEG_QUALITIES, editor: Callable | None = None) -> Sweep:
    """Compress every input at every quality (PIL, `jpeg_images`) and measure what is left of its latent shift, what
    JPEG did to its pixels and, with an editor, how close its edit comes to the clean image's edit.

    encoder: float images in [0, 1] -> latents (e.g. `proxy.encode_mean`); clean: uint8 (N, C, H, W);
    inputs: name -> uint8 images of the same shape (versions of the clean images: protected, the noise control, the
    clean images themselves); qualities: JPEG qualities in 1..100; editor: None or a callable images -> edited float
    images in [0, 1] (e.g. `ProxyEditor`). Returns a `Sweep` (rows in the order of `inputs`, qualities None first).
    Raises TypeError/ValueError for non-uint8 or mismatched images and qualities outside 1..100.
    """
    who = "jpeg_sweep"
    clean = check_images_u8(clean, "clean", who)
    if not isinstance(inputs, Mapping) or not inputs:
        raise ValueError(f"{who}: inputs must be a non-empty dict name -> uint8 images (e.g. {{'clean': clean}})")
    for name, imgs in inputs.items():
        check_images_u8(imgs, f"inputs[{name!r}]", who)
        check_pair(clean, imgs, ("clean", f"inputs[{name!r}]"), who)
    qs = [None] + [check_quality(q, who, "qualities[]") for q in qualities]
    z0 = latents(encoder, clean)
    edit0 = editor(clean) if editor is not None else None
    shape = (len(inputs), len(qs), len(clean))
    out = {m: np.full(shape, np.nan) for m in METRICS}
    for r, imgs in enumerate(inputs.values()):
        imgs = imgs.cpu()
        for c, q in enumerate(qs):
            xq = imgs if q is None else jpeg_images(imgs, q)
            out["latent_shift"][r, c] = (latents(encoder, xq) - z0).flatten(1).norm(dim=1).numpy()
            change = pixel_change(xq, imgs)
            out["jpeg_linf"][r, c], out["jpeg_l2"][r, c] = change["linf"].numpy(), change["l2"].numpy()
            out["psnr_clean"][r, c] = psnr(xq, clean.cpu()).numpy()
            if editor is not None:
                e = editor(xq)
                out["edit_psnr"][r, c] = psnr(e, edit0).numpy()
                out["edit_ssim"][r, c] = ssim(e, edit0).numpy()
        den = out["latent_shift"][r, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ratio"][r] = np.where(den > 0, out["latent_shift"][r] / np.where(den > 0, den, 1.0), np.nan)
    return Sweep(list(inputs), qs, out, z0.flatten(1).norm(dim=1).numpy())
