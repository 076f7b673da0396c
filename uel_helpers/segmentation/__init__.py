"""Robust segmentation networks paint: adversarially trained segmenters, and inpainting by optimisation.

Sandoval-Segura, "Adversarially robust segmentation models learn perceptually-aligned gradients", arXiv 2204.01099
(2022). Closest code: `psandovalsegura/Robust-Semantic-Segmentation@2bf51a1` (a fork of DDC-AT: PSPNet training,
standard / SAT / AdvProp, BIM evaluation), which holds no inpainting code; the paper's inpainting optimiser and its
numbers are not available, so the optimiser here is the peer recipe of Santurkar et al., arXiv 1906.09453
(`MadryLab/robustness_applications@1503d17`), adapted to a per-pixel loss.

Modules, each importing only those above it:
    data       SegScenes; synthetic scenes from Fashion-MNIST objects; PASCAL VOC 2012 via torchvision
    model      UNet-lite, PSP-lite, torchvision DeepLabV3-ResNet50; MixBN
    settings   SegSettings / InpaintSettings, one row per profile
    attacks    BIM and PGD on the per-pixel loss
    metrics    confusion matrix, mIoU / mAcc / allAcc, clean and under attack
    train      standard, SAT and AdvProp training, cached
    inpaint    inpainting and editing by L2 PGD, input gradients, PSNR / SSIM / judge accuracy of a fill
    figures    the notebook's figures (pure functions)
    explorer   the inpainting explorer's precomputed iterates and its render function
"""

from .attacks import Attack, attack_by_name, bim_attack, linf_attack, pixel_ce
from .data import IGNORE, VOC_CLASSES, SegScenes, load_voc_scenes, make_scenes, scenes_cached
from .explorer import POSITIONS, InpaintingViews, inpainting_views, position_masks, render_view
from .figures import colour_labels, render_gradients, render_inpainting, render_robustness, render_scenes
from .inpaint import (
    FillScores,
    InpaintResult,
    compare_inpainting,
    corrupt,
    edit_targets,
    inpaint,
    inpainting_loss,
    input_gradients,
    judge_accuracy,
    masks_on_objects,
    object_share,
    region_psnr,
    region_ssim,
    relabel_object,
    square_mask,
    ssim_map,
)
from .metrics import ROBUSTNESS_ATTACKS, SegScores, confusion_matrix, evaluate_segmenter, robustness_table
from .model import MODELS, MixBatchNorm2d, PSPLite, UNetLite, build_segmenter, convert_mixbn, set_bn_route
from .settings import (
    METHODS,
    InpaintSettings,
    SegSettings,
    inpaint_settings,
    profile_scenes,
    scaled_eps,
    scaled_patch,
    scene_settings,
    seg_settings,
)
from .train import SegHistory, TrainedSegmenter, load_segmenter, save_segmenter, train_segmenter

__all__ = [
    "IGNORE", "VOC_CLASSES", "SegScenes", "make_scenes", "scenes_cached", "load_voc_scenes",
    "MODELS", "MixBatchNorm2d", "UNetLite", "PSPLite", "build_segmenter", "convert_mixbn", "set_bn_route",
    "METHODS", "SegSettings", "InpaintSettings", "seg_settings", "scene_settings", "profile_scenes",
    "inpaint_settings", "scaled_eps", "scaled_patch",
    "Attack", "attack_by_name", "linf_attack", "bim_attack", "pixel_ce",
    "ROBUSTNESS_ATTACKS", "SegScores", "confusion_matrix", "evaluate_segmenter", "robustness_table",
    "SegHistory", "TrainedSegmenter", "train_segmenter", "save_segmenter", "load_segmenter",
    "InpaintResult", "FillScores", "compare_inpainting", "edit_targets",
    "square_mask", "masks_on_objects", "corrupt", "relabel_object", "inpainting_loss", "inpaint",
    "input_gradients", "object_share", "region_psnr", "ssim_map", "region_ssim", "judge_accuracy",
    "colour_labels", "render_scenes", "render_robustness", "render_gradients", "render_inpainting",
    "POSITIONS", "InpaintingViews", "position_masks", "inpainting_views", "render_view",
]
