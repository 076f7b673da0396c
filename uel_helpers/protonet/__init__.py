"""AutoProtoNet: a prototypical network whose prototypes can be decoded into images, inspected and refined.

Sandoval-Segura & Lawson, "AutoProtoNet: Interpretability for Prototypical Networks", NeurIPS 2021 MetaLearn
workshop, arXiv:2204.00929. Upstream code: psandovalsegura/AdversarialQuerying@9992e0e (`models/autoprotonet.py`,
`models/classification_heads.py`, `train_autoprotonet.py`, `test.py`, `vis_prototypes.py`,
"Paper - Case Study.ipynb"). The paper's accuracy table is not available to us; nothing here quotes it.

Modules, each importing only those above it:
    settings     ProtoSettings, one row per profile (the paper's scripts as defaults)
    model        Conv-4 encoder, mirrored decoder, AutoProtoNet; prototypes and logits as pure functions
    episodes     base / novel class splits, episodes sampled on the device
    trained      TrainedProtoNet, its history, cache path, save and load
    evaluation   accuracy over test episodes, mean ± 95% CI
    training     augmentation, the loss, the schedule, keep-best, checkpoints and resume
    decoding     embeddings and decoded prototypes; the Adam + TV image for comparison
    refinement   the alpha path, refinement, and the case study's task rebuilt offline
"""

from .decoding import decode_embeddings, decode_prototypes, embed_images, optimise_prototype_image, total_variation
from .episodes import DIGITS_BASE, DIGITS_NOVEL, FASHION_BASE, FASHION_NOVEL, Episodes, EpisodeSampler, few_shot_split
from .evaluation import EpisodeAccuracy, evaluate_episodes
from .model import (
    HIDDEN,
    MIN_SIZE,
    AutoProtoNet,
    Conv4Decoder,
    Conv4Encoder,
    class_prototypes,
    mirror_output_paddings,
    protonet_logits,
)
from .refinement import (
    CORRUPTIONS,
    PAPER_ALPHAS,
    RefinementPath,
    RefinementTask,
    interpolate,
    make_refinement_task,
    prototype_accuracy,
    refine,
    refinement_path,
)
from .settings import PROTO_PROFILES, ProtoSettings, protonet_settings
from .trained import PROTONET_FORMAT, ProtoHistory, TrainedProtoNet, load_protonet, protonet_path, save_protonet
from .training import color_jitter, lr_factor, train_protonet

__all__ = [
    "ProtoSettings", "PROTO_PROFILES", "protonet_settings", "FASHION_BASE", "FASHION_NOVEL", "DIGITS_BASE",
    "DIGITS_NOVEL", "few_shot_split", "mirror_output_paddings", "Conv4Encoder", "Conv4Decoder", "AutoProtoNet",
    "class_prototypes", "protonet_logits", "Episodes", "EpisodeSampler", "lr_factor", "color_jitter",
    "ProtoHistory", "TrainedProtoNet", "train_protonet", "EpisodeAccuracy", "evaluate_episodes", "embed_images",
    "decode_embeddings", "decode_prototypes", "interpolate", "refine", "prototype_accuracy", "PAPER_ALPHAS",
    "total_variation", "optimise_prototype_image", "RefinementTask", "make_refinement_task", "RefinementPath",
    "refinement_path",
    # also public: the cache path, the checkpoint files, the constants
    "protonet_path", "save_protonet", "load_protonet", "PROTONET_FORMAT", "HIDDEN", "MIN_SIZE", "CORRUPTIONS",
]
