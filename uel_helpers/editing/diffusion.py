"""The Stable Diffusion path of notebook 08 (GPU and network; the `editing` extra): PhotoGuard's img2img demo.

PhotoGuard (Salman et al., arXiv 2302.06588; code `MadryLab/photoguard@686bea7`,
`notebooks/demo_simple_attack_img2img.ipynb`) protects a 512 x 512 photo with the encoder attack on the pipeline's
VAE (`pipe.vae.encode(x).latent_dist.mean`, x in [−1, 1], fp16 under `torch.autocast("cuda")`) and edits clean and
protected photos with `StableDiffusionImg2ImgPipeline` (prompt, seed 9222 set before each generation, strength 0.5,
guidance 7.5, 50 steps: `SDEditSettings`). Sandoval-Segura et al. (arXiv 2304.02234) save the protected photo as
JPEG and edit again.

Offline, everything here runs on randomly initialised models (`random_vae`, or a tiny pipeline assembled from
diffusers/transformers classes as the tests do); only `load_img2img` and `load_photo` need the network.
"""

from __future__ import annotations

import io
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..checks import check_bool
from .inputs import as_unit, check_images_u8, require
from .settings import SDEditSettings

__all__ = ["SD15_VAE_CONFIG", "SDEditor", "SDEncoder", "load_img2img", "load_photo", "random_vae"]

# Stable Diffusion v1.x's autoencoder (the `vae/config.json` released with the v1.5 weights; not re-checked here:
# no network): 4 down blocks of 128, 256, 512, 512 channels, 2 layers each, 4 latent channels, 8x downsampling.
SD15_VAE_CONFIG = {
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "act_fn": "silu", "sample_size": 512, "scaling_factor": 0.18215,
}


def _diffusers(what: str):
    return require("diffusers", what)


def random_vae(config: dict | None = None, seed: int = 0, dtype: torch.dtype = torch.float32, device="cpu"):
    """A randomly initialised diffusers `AutoencoderKL` (no download): SD v1.x's architecture by default
    (`SD15_VAE_CONFIG`, ~84M parameters), or a small `config` for tests. Same compute as the real VAE, so it serves the
    attack's tests and benchmarks offline; its latents mean nothing. Raises ImportError naming the `editing` extra
    without diffusers."""
    diffusers = _diffusers("random_vae")
    torch.manual_seed(seed)
    return diffusers.AutoencoderKL(**(SD15_VAE_CONFIG if config is None else config)).to(device=device, dtype=dtype)


class SDEncoder:
    """The encoder PhotoGuard attacks, with the package's [0, 1] convention: x -> vae.encode(2x − 1).latent_dist.mean.

    vae: a diffusers `AutoencoderKL` (e.g. `pipe.vae`); the input is cast to the VAE's dtype, and on CUDA with fp16
    weights the call runs under `torch.autocast("cuda", torch.float16)` as upstream (`fp16_autocast=True`). Call with
    float (N, 3, H, W) in [0, 1], H and W multiples of the VAE's downsampling (8 for SD); returns the latent mean
    (N, 4, H/8, W/8) in the VAE's dtype. Used as `encoder_attack(SDEncoder(pipe.vae), ...)`.
    """

    def __init__(self, vae, fp16_autocast: bool = True):
        if not hasattr(vae, "encode"):
            raise TypeError(f"SDEncoder: vae must be a diffusers AutoencoderKL (pipe.vae), got {type(vae).__name__}")
        self.vae = vae
        self.fp16_autocast = check_bool(fp16_autocast, "fp16_autocast", "SDEncoder")

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        dtype = next(self.vae.parameters()).dtype
        on = self.fp16_autocast and self.device.type == "cuda" and dtype == torch.float16
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=on):
            return self.vae.encode((2 * x - 1).to(dtype)).latent_dist.mean


def load_img2img(settings: SDEditSettings | None = None, device="cuda", dtype: torch.dtype = torch.float16):
    """PhotoGuard's pipeline: `StableDiffusionImg2ImgPipeline.from_pretrained(settings.model, variant="fp16",
    torch_dtype=float16)` on `device` (downloads a few GB on first use; needs the network and, in practice, a CUDA
    GPU). Raises ImportError naming the `editing` extra without diffusers (or transformers, which it needs)."""
    s = SDEditSettings() if settings is None else settings
    diffusers = _diffusers("load_img2img")
    require("transformers", "load_img2img (the pipeline's CLIP text encoder)")
    kwargs = {"torch_dtype": dtype}
    if s.variant is not None and dtype == torch.float16:
        kwargs["variant"] = s.variant
    pipe = diffusers.StableDiffusionImg2ImgPipeline.from_pretrained(s.model, **kwargs)
    return pipe.to(device)


def load_photo(source: str | Path | None = None, size: int = 512) -> torch.Tensor:
    """A photo as PhotoGuard's demo prepares it: RGB, Resize(size) then CenterCrop(size) (torchvision, bilinear
    with antialiasing on a PIL image): uint8 (1, 3, size, size). source: a local path or an http(s) URL (default the
    demo's dog photo, `SDEditSettings.image_url`; needs the network)."""
    from PIL import Image
    from torchvision.transforms import functional as TF

    source = SDEditSettings().image_url if source is None else source
    if str(source).startswith(("http://", "https://")):
        with urllib.request.urlopen(str(source), timeout=60) as r:
            img = Image.open(io.BytesIO(r.read())).convert("RGB")
    else:
        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"load_photo: no image at {path}")
        img = Image.open(path).convert("RGB")
    img = TF.center_crop(TF.resize(img, size), size)
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)[None].contiguous()


class SDEditor:
    """PhotoGuard's edit as an editor: each image through `pipe(prompt, image, strength, guidance_scale,
    num_inference_steps, generator=Generator(pipe.device).manual_seed(seed))`, the seed set anew for every image
    (upstream calls `torch.manual_seed(SEED)` before each generation; recent diffusers take a generator instead).

    pipe: a `StableDiffusionImg2ImgPipeline` (`load_img2img()`, or a tiny one built offline); settings: the edit
    (`SDEditSettings`, default PhotoGuard's). Call with uint8 or float [0, 1] images (N, 3, H, W); returns float
    (N, 3, H, W) in [0, 1] on the CPU (the pipeline's PIL output / 255).
    """

    def __init__(self, pipe, settings: SDEditSettings | None = None):
        self.pipe = pipe
        self.settings = SDEditSettings() if settings is None else settings
        if not isinstance(self.settings, SDEditSettings):
            raise TypeError(f"SDEditor: settings must be an SDEditSettings, got {type(self.settings).__name__}")

    def __call__(self, images) -> torch.Tensor:
        from PIL import Image

        x = as_unit(images, "images", "SDEditor")
        u8 = check_images_u8((x * 255).round().to(torch.uint8), "images", "SDEditor")
        s = self.settings
        out = []
        for img in u8.permute(0, 2, 3, 1).cpu().numpy():
            gen = torch.Generator(device=self.pipe.device).manual_seed(s.seed)
            result = self.pipe(prompt=s.prompt, image=Image.fromarray(img), strength=s.strength,
                               guidance_scale=s.guidance, num_inference_steps=s.steps, generator=gen).images[0]
            out.append(torch.from_numpy(np.asarray(result.convert("RGB")).copy()).permute(2, 0, 1))
        return torch.stack(out).float() / 255.0

    def __repr__(self) -> str:
        s = self.settings
        return (f"SDEditor(prompt={s.prompt!r}, seed={s.seed}, strength={s.strength}, guidance={s.guidance}, "
                f"steps={s.steps})")
