"""JPEG against protections from AI editing (notebook 08): PhotoGuard's encoder attack, JPEG round trips, an
adaptive protection, the measurements, a small VAE proxy and the Stable Diffusion path.

Sandoval-Segura, Geiping & Goldstein, "JPEG Compressed Images Can Bypass Protections Against AI Editing", arXiv
2304.02234 (2023; no code released): PhotoGuard-style imperceptible perturbations (Salman et al., arXiv 2302.06588;
code `MadryLab/photoguard@686bea7`) stop a latent diffusion model from editing a photo, but saving the protected
photo as JPEG removes the protection, more so at lower quality.

- `settings`: `AttackSettings` (PhotoGuard's eps/step/iterations per profile), `ProxySettings`, `SDEditSettings`,
  the JPEG qualities and budgets of the sweep;
- `attack`: `encoder_attack` (L∞ PGD on ‖E(x + δ) − z_target‖₂), `step_schedule`, `noise_control`, `Protection`;
- `jpeg`: `jpeg_images` (PIL, the ISS defense's codec), `differentiable_jpeg` (kornia), `RandomJPEG` (EOT);
- `metrics`: `latent_shift_ratio`, `pixel_change`, `psnr`, `ssim` (torchmetrics), `jpeg_sweep` -> `Sweep`;
- `proxy`: `ProxyVAE`, `train_proxy_vae` (cached), `ProxyEditor`;
- `diffusion`: `SDEncoder`, `SDEditor`, `load_img2img`, `load_photo`, `random_vae` (diffusers);
- `figures`: `render_edit_grid`, `render_jpeg_sweep`, `jpeg_view` + `render_jpeg_view` (the explorer's figure).

kornia, torchmetrics and diffusers (+ transformers) come with the extra: pip install "uel_helpers[editing]".
"""

from .attack import (
    Protection,
    budget_levels,
    encoder_attack,
    encoder_device,
    noise_control,
    pgd_encoder_attack,
    step_schedule,
)
from .diffusion import SD15_VAE_CONFIG, SDEditor, SDEncoder, load_img2img, load_photo, random_vae
from .figures import JPEGView, jpeg_view, render_edit_grid, render_jpeg_sweep, render_jpeg_view
from .inputs import EXTRA, JPEG_QUALITY_RANGE
from .jpeg import RandomJPEG, differentiable_jpeg, jpeg_images
from .metrics import METRICS, Sweep, jpeg_sweep, latent_shift, latent_shift_ratio, latents, pixel_change, psnr, ssim
from .proxy import ProxyEditor, ProxyVAE, TrainedProxy, train_proxy_vae
from .settings import (
    ATTACK_PROFILES,
    EPSILONS,
    JPEG_QUALITIES,
    PROXY_PROFILES,
    AttackSettings,
    ProxySettings,
    SDEditSettings,
    attack_settings,
    proxy_settings,
)

__all__ = [
    "ATTACK_PROFILES", "EPSILONS", "EXTRA", "JPEG_QUALITIES", "JPEG_QUALITY_RANGE", "METRICS", "PROXY_PROFILES",
    "SD15_VAE_CONFIG", "AttackSettings", "JPEGView", "Protection", "ProxyEditor", "ProxySettings", "ProxyVAE",
    "RandomJPEG", "SDEditSettings", "SDEditor", "SDEncoder", "Sweep", "TrainedProxy", "attack_settings",
    "budget_levels", "differentiable_jpeg", "encoder_attack", "encoder_device", "jpeg_images", "jpeg_sweep",
    "jpeg_view", "latent_shift", "latent_shift_ratio", "latents", "load_img2img", "load_photo", "noise_control",
    "pgd_encoder_attack", "pixel_change", "proxy_settings", "psnr", "random_vae", "render_edit_grid",
    "render_jpeg_sweep", "render_jpeg_view", "ssim", "step_schedule", "train_proxy_vae",
]
