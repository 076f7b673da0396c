"""Datasets as `ImageSet`s: uint8 images (N, C, H, W), int64 labels and class names.

Every dataset, clean or poisoned, is an `ImageSet` of uint8 pixels, as a released dataset would be.
`load_dataset(name, split)` reads the datasets the notebooks use; conversions that change the data
(resizing, grayscale -> RGB) are explicit options, never automatic.

- `imageset`: the `ImageSet`, the checks of whole sets, quantisation and affine uint8 codes;
- `conversions`: resize, pad, to_rgb, to_grayscale;
- `loaders`: `load_dataset`, `available_datasets`, `synthetic_dataset` and the dataset constants.
"""

from .conversions import (  # noqa: F401
    pad,
    resize,
    to_grayscale,
    to_rgb,
)
from .imageset import (  # noqa: F401
    DECODE_KEY,
    ImageSet,
    affine_code,
    check_imageset,
    check_same_classes,
    decode_affine,
    decode_images,
    encode_images,
    quantize,
)
from .loaders import (  # noqa: F401
    CIFAR10_CLASSES,
    CIFAR_ARCHIVES,
    CIFAR_FS_ALIASES,
    CIFAR_FS_SPLITS,
    CIFAR_URL,
    DATASET_NAMES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_SYSTEM_DIR,
    IMAGE_EXTENSIONS,
    available_datasets,
    data_root,
    load_dataset,
    synthetic_dataset,
)

__all__ = [
    "affine_code",
    "available_datasets",
    "check_imageset",
    "check_same_classes",
    "CIFAR10_CLASSES",
    "CIFAR_ARCHIVES",
    "CIFAR_FS_ALIASES",
    "CIFAR_FS_SPLITS",
    "CIFAR_URL",
    "data_root",
    "DATASET_NAMES",
    "decode_affine",
    "decode_images",
    "DECODE_KEY",
    "encode_images",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SYSTEM_DIR",
    "IMAGE_EXTENSIONS",
    "ImageSet",
    "load_dataset",
    "pad",
    "quantize",
    "resize",
    "synthetic_dataset",
    "to_grayscale",
    "to_rgb",
]
