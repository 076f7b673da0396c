"""D-VAE: purify unlearnable examples with rate-constrained VAEs.

Yu, Wang, Xia, Yang, Lu, Tan, Kot, "Purify Unlearnable Examples via Rate-Constrained Variational
Autoencoders", ICML 2024, arXiv 2405.01460; code `yuyi-sd/D-VAE@9d62e4c`.

A VAE whose latent *rate* (its KL to the prior) is capped cannot transmit every detail of its input, and the
small additive perturbations of availability poisons are among the first details it drops (the paper's §3).
D-VAE adds a second decoder that models the perturbation from a learnable class-wise embedding, so that it
can be subtracted; purification runs in two stages, each with a FRESH model.

One module per idea, each importing only those above it in this list:

    settings   `DVAESettings` (epochs, width, latent_dim, batch_size, levels, lr, amp, profile), the profile
               table `PROFILE_SETTINGS`, input checks, and the `TrainConfig` of one training run
    model      the networks (`DVAE`, `VAE`) and their losses (`dvae_loss`, `vae_loss`, the KL hinge)
    training   one stage's training with the reference's recipe, per-epoch checkpoints, the model cache
    inference  a trained model's outputs (`reconstruct`) and one purification stage (`purify_stage`)
    purify     the two stages (`run_stages`, `purify`, registered as `dvae`) and the plain VAE (`vae_purify`,
               registered as `vae`)

Settings: `purify(ds, profile="quick", epochs=3)` (the registered defenses take flat keywords);
`train_dvae(ds, 1.0, settings=DVAESettings(profile="quick").with_(epochs=3))` or, as earlier releases,
`train_dvae(ds, 1.0, profile="quick", epochs=3)`.

Not reproduced: the frozen poisoned classifier `model_c` that the reference loads for logging only
(`main_vae_disentangle.py`); the unused rest of the ResNet-18 that `configs/models/resnet.py` builds; the
reference's CUDA-only and CIFAR-only code. Profile deviations are listed in `model.info["notes"]` and in the
purified set's `meta["dvae"]["notes"]`.
"""

from .inference import DVAEOutputs, purify_stage, reconstruct, vae_reconstruct
from .model import DVAE, VAE, DVAEOutput, VAEOutput, build_dvae, build_vae, dvae_loss, kl_divergence, kl_hinge, vae_loss
from .purify import DVAEStages, purify, run_stages, stage_seed, vae_purify
from .settings import (
    CACHE_VERSION,
    GRAD_CLIP,
    INFER_BATCH,
    LR,
    P_FLOOR,
    PAPER_EPOCHS,
    PAPER_FLOOR_AFTER,
    PROFILE_SETTINGS,
    ROUNDINGS,
    STAGE_CAPS,
    VAE_CAP,
    DVAESettings,
    TrainConfig,
    check_cap,
    check_image_size,
    default_levels,
    kl_weight,
    profile_settings,
)
from .training import train_dvae, train_vae

__all__ = ["CACHE_VERSION", "GRAD_CLIP", "INFER_BATCH", "LR", "P_FLOOR", "PAPER_EPOCHS", "PAPER_FLOOR_AFTER",
           "PROFILE_SETTINGS", "ROUNDINGS", "STAGE_CAPS", "VAE_CAP",
           "DVAE", "VAE", "DVAEOutput", "VAEOutput", "DVAEOutputs", "DVAESettings", "DVAEStages", "TrainConfig",
           "build_dvae", "build_vae", "check_cap", "check_image_size", "default_levels", "dvae_loss",
           "kl_divergence", "kl_hinge", "kl_weight", "profile_settings", "purify", "purify_stage", "reconstruct",
           "run_stages", "stage_seed", "train_dvae", "train_vae", "vae_loss", "vae_purify", "vae_reconstruct"]
