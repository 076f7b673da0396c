"""Loaders: `load_dataset(name, split)` for digits, Fashion-MNIST, CIFAR-10/100, CIFAR-FS and image folders,
`available_datasets()`, and `synthetic_dataset()` (generated data for tests and the smoke profile).

scikit-learn's digits are bundled; Fashion-MNIST is read from Debian's `dataset-fashion-mnist` package or
downloaded; CIFAR from the Toronto archives (`download=True`). Nothing is resized or converted silently.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..checks import (
    check_bool,
    check_choice,
    check_count,
    check_rate,
    check_seed,
    check_size,
)
from .conversions import resize, to_rgb
from .imageset import ImageSet, _names, quantize

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)


CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

CIFAR_ARCHIVES = {
    # name: (file name, md5 of the tarball as torchvision enforces it, folder inside, size for humans)
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py", "163 MB"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python", "161 MB"),
}

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/"

DATASET_NAMES = ("digits", "fashion-mnist", "cifar10", "cifar100", "cifar-fs", "imagefolder:PATH")


# CIFAR-FS (Bertinetto et al., ICLR 2019, arXiv:1805.08136): CIFAR-100's 100 fine classes split 64 / 16 / 20 by
# class, train and test images pooled (600 per class). Class lists from
# tristandeleu/pytorch-meta@ac3c48e torchmeta/datasets/assets/cifar100/cifar-fs/{train,val,test}.json; resolved to
# label indices at load time from the archive's own `fine_label_names` (never hard-coded indices).
CIFAR_FS_SPLITS = {
    "train": (
        "apple", "aquarium_fish", "bear", "bee", "bottle", "bowl", "boy", "bridge", "bus", "can", "castle",
        "caterpillar", "chair", "clock", "cloud", "cockroach", "couch", "cup", "dinosaur", "dolphin", "elephant",
        "forest", "girl", "hamster", "house", "kangaroo", "keyboard", "lawn_mower", "lion", "lizard", "lobster",
        "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "palm_tree", "pear", "pine_tree", "plate",
        "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "seal", "shrew", "skunk", "skyscraper", "snake",
        "spider", "squirrel", "streetcar", "sunflower", "tank", "tiger", "train", "trout", "tulip", "turtle",
        "willow_tree", "wolf",
    ),
    "val": (
        "beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish", "lamp", "maple_tree",
        "motorcycle", "otter", "sea", "shark", "television", "tractor",
    ),
    "test": (
        "baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain", "poppy", "rocket",
        "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe", "whale", "woman", "worm",
    ),
}

CIFAR_FS_ALIASES = ("cifar-fs", "cifar_fs", "cifarfs")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Where downloaded datasets live: `root`, else `UEL_DATA`, else `<UEL_CACHE or ~/.cache/uel_helpers>/data`."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get("UEL_DATA"):
        return Path(os.environ["UEL_DATA"]).expanduser()
    cache = os.environ.get("UEL_CACHE") or "~/.cache/uel_helpers"
    return Path(cache).expanduser() / "data"


# --- loaders -------------------------------------------------------------------------------------

def _check_split(split: str) -> str:
    """'train' or 'test' (`checks.check_choice`); a non-string is a TypeError (split=1 is not a typo of a name)."""
    if not isinstance(split, str):
        raise TypeError(f"load_dataset: split must be a string ('train' or 'test'), got {type(split).__name__} "
                        f"{split!r}")
    return check_choice(split, "split", ("train", "test"), "load_dataset")


def _load_digits(split: str) -> ImageSet:
    """scikit-learn's bundled 8x8 digits (values 0..16 scaled to 0..255); fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.floor(d.images * (255.0 / 16.0) + 0.5).astype(np.uint8)[:, None]
    full = ImageSet(images, d.target.astype(np.int64), [str(i) for i in range(10)], name="digits")
    train, test = full.split(0.75, seed=0)
    out = train if split == "train" else test
    out.name = "digits"
    return out


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not; a read-only array.

    Decompressing Fashion-MNIST's training images takes about a second, and experiments load the same files
    for every run, so the decoded arrays of the last few files are kept in memory (keyed by path, size and
    modification time: a replaced file is read again).
    """
    stat = path.stat()
    return _read_idx_cached(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_idx_cached(path: Path, _size: int, _mtime_ns: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {arr.size}")
    return arr.reshape(dims)


def _find_fashion_files(split: str, root: Path | None) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    candidates = []
    if root is not None:
        candidates += [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    candidates += [FASHION_MNIST_SYSTEM_DIR, data_root() / "FashionMNIST" / "raw"]
    for folder in candidates:
        for ext in (".gz", ""):
            img = folder / f"{prefix}-images-idx3-ubyte{ext}"
            lab = folder / f"{prefix}-labels-idx1-ubyte{ext}"
            if img.exists() and lab.exists():
                return img, lab
    return None


def _load_fashion_mnist(split: str, root: Path | None, download: bool) -> ImageSet:
    found = _find_fashion_files(split, root)
    if found is None and download:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root or data_root()), train=(split == "train"), download=True)
        found = _find_fashion_files(split, root or data_root())
    if found is None:
        raise FileNotFoundError(
            "Fashion-MNIST not found offline. Install Debian's package (`apt-get install dataset-fashion-mnist`, "
            f"files under {FASHION_MNIST_SYSTEM_DIR}), pass download=True to fetch it with torchvision into "
            f"{root or data_root()}, or point root= at a folder holding the four *-idx?-ubyte(.gz) files."
        )
    img_path, lab_path = found
    images = _read_idx(img_path)[:, None].copy()
    labels = _read_idx(lab_path).astype(np.int64)
    return ImageSet(images, labels, FASHION_MNIST_CLASSES, name="fashion-mnist", meta={"source": str(img_path.parent)})


def _load_cifar(name: str, split: str, root: Path | None, download: bool) -> ImageSet:
    """CIFAR-10/100 from the python pickles, downloaded (MD5-checked) or placed by hand."""
    fname, md5, folder, size = CIFAR_ARCHIVES[name]
    base = root or data_root()
    extracted = base / folder
    if not extracted.exists():
        archive = base / fname
        try:
            from torchvision.datasets.utils import check_integrity, download_and_extract_archive
        except ImportError as err:  # pragma: no cover - torchvision is a dependency
            raise ImportError("torchvision is needed to download or verify CIFAR archives") from err
        if archive.exists():
            if not check_integrity(str(archive), md5):
                raise ValueError(f"{archive} is not the original archive (MD5 should be {md5}); delete it and retry")
            with tarfile.open(archive, "r:gz") as tar:
                tar.extractall(base, filter="data")
        elif download:
            try:
                download_and_extract_archive(CIFAR_URL + fname, str(base), filename=fname, md5=md5)
            except Exception as err:
                raise FileNotFoundError(_cifar_manual_help(name, base, f"download failed: {err}")) from err
        else:
            raise FileNotFoundError(_cifar_manual_help(name, base, "not found offline and download=False"))
    return _read_cifar_pickles(name, split, extracted)


def _cifar_manual_help(name: str, base: Path, why: str) -> str:
    fname, md5, folder, size = CIFAR_ARCHIVES[name]
    return (
        f"{name}: {why}. Download {CIFAR_URL}{fname} (about {size}; MD5 {md5}) by hand or from a "
        f"byte-identical mirror and put it at {base / fname} (or its extracted folder at {base / folder}); "
        "then call load_dataset again. Pass root=... or set UEL_DATA to use another folder."
    )


def _read_cifar_pickles(name: str, split: str, folder: Path) -> ImageSet:
    def unpickle(p: Path) -> dict:
        if not p.exists():
            raise FileNotFoundError(f"{p} is missing from the extracted {name} folder; re-extract the archive")
        with open(p, "rb") as fh:
            return pickle.load(fh, encoding="latin1")

    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        parts = [unpickle(folder / f) for f in files]
        data = np.concatenate([p["data"] for p in parts])
        labels = np.concatenate([np.asarray(p["labels"]) for p in parts])
        classes = CIFAR10_CLASSES
    else:
        part = unpickle(folder / split)
        data, labels = part["data"], np.asarray(part["fine_labels"])
        classes = tuple(unpickle(folder / "meta")["fine_label_names"])
    images = data.reshape(-1, 3, 32, 32).astype(np.uint8)
    return ImageSet(images, labels.astype(np.int64), classes, name=name)


def _load_cifar_fs(split: str, root: Path | None, download: bool) -> ImageSet:
    """CIFAR-FS split `split` ("train" 64, "val" 16 or "test" 20 classes): CIFAR-100's train and test images pooled
    (train first, then test; 600 per class), the split's classes relabelled 0..n-1 in the order of
    `CIFAR_FS_SPLITS[split]` (alphabetical). Reads (or downloads, MD5-checked) the CIFAR-100 archive like
    load_dataset("cifar100"). Raises ValueError when a class name is missing from the archive's fine_label_names."""
    if split not in CIFAR_FS_SPLITS:
        raise ValueError(f"cifar-fs split must be one of {', '.join(CIFAR_FS_SPLITS)}, got {split!r} (CIFAR-FS splits "
                         "by class: 64 train, 16 val, 20 test classes)")
    parts = [_load_cifar("cifar100", s, root, download) for s in ("train", "test")]
    names = parts[0].classes
    wanted = CIFAR_FS_SPLITS[split]
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ValueError(f"cifar-fs: classes {missing} are not in the CIFAR-100 archive's fine_label_names "
                         f"({len(names)} names); is it the original cifar-100-python archive?")
    images = torch.cat([p.images for p in parts])
    labels = torch.cat([p.labels for p in parts])
    old = torch.tensor([names.index(c) for c in wanted])
    keep = torch.isin(labels, old)
    remap = torch.full((len(names),), -1, dtype=torch.int64)
    remap[old] = torch.arange(len(wanted))
    return ImageSet(images[keep].clone(), remap[labels[keep]], wanted, name="cifar-fs",
                    meta={"split": split, "cifar100_labels": old.tolist(), "pooled": "cifar100 train + test"})


def _imagefolder_split(path: str, split: str) -> Path:
    """The folder that holds split `split` of "imagefolder:PATH".

    PATH with train/ and test/ sub-folders: PATH/<split>. PATH without them (a flat folder of class sub-folders):
    the whole folder is the training split, and asking for its test split is a ValueError, since those are the
    training images (evaluating on them would report training accuracy as test accuracy). PATH with only one of
    train/ and test/: the other split is a ValueError (never a class named "train" or "test").
    """
    if not path:
        raise ValueError("load_dataset: 'imagefolder:' needs a folder after the colon, e.g. 'imagefolder:~/data/pets'")
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"imagefolder: {folder} is not a folder; expected a folder of class sub-folders "
                                "(optionally inside train/ and test/)")
    has = {s: (folder / s).is_dir() for s in ("train", "test")}
    if has[split]:
        return folder / split
    if any(has.values()):
        other = "test" if split == "train" else "train"
        raise ValueError(f"load_dataset: imagefolder:{folder} has a {other}/ split but no {split}/ folder; add "
                         f"{folder / split}/<class>/<image> with the same class sub-folders as {other}/")
    if split == "test":
        classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
        raise ValueError(
            f"load_dataset: imagefolder:{folder} has no test/ split (its sub-folders {_names(classes)} are the "
            "classes of one set of images), so its 'test' split would be the training images and report training "
            f"accuracy as test accuracy. Provide held-out images: move them to {folder}/train/<class>/ and "
            f"{folder}/test/<class>/ (the same class sub-folders in both), or hold out part of the training images "
            f"explicitly: train_set, test_set = load_dataset('imagefolder:{folder}', 'train').split(0.8, seed=0)"
        )
    return folder


def _load_imagefolder(path: str | Path, root: Path | None, size: tuple[int, int] | None, mode: str) -> ImageSet:
    from PIL import Image

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"imagefolder: {folder} is not a folder; expected a folder of class sub-folders")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"imagefolder: {folder} has no class sub-folders (expected {folder}/<class>/<image>.png)")
    if mode not in ("RGB", "L"):
        raise ValueError(f"imagefolder mode must be 'RGB' or 'L', got {mode!r}")
    images, labels = [], []
    for k, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir()):
            if f.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            with Image.open(f) as im:
                im = im.convert(mode)
                if size is not None:
                    im = im.resize((size[1], size[0]), Image.BILINEAR)  # PIL takes (width, height)
                arr = np.asarray(im, dtype=np.uint8)
            images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            labels.append(k)
    if not images:
        raise ValueError(f"imagefolder: no images ({', '.join(IMAGE_EXTENSIONS)}) under {folder}")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"imagefolder: images under {folder} have different sizes {sorted(shapes)[:4]}...; "
            "pass size=... to resize them all explicitly"
        )
    return ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64), classes, name=f"imagefolder:{folder.name}")


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    download: bool = False,
    size: int | None = None,
    rgb: bool = False,
) -> ImageSet:
    """Load a dataset split as an ImageSet.

    name: "digits" (bundled, offline), "fashion-mnist" (Debian package or torchvision download),
    "cifar10", "cifar100" (download, MD5-checked), "cifar-fs" (CIFAR-100 pooled and split by class; split "train",
    "val" or "test") or "imagefolder:PATH".
    imagefolder:PATH reads PATH/train/<class>/<image> and PATH/test/<class>/<image>; a PATH of class sub-folders
    without train/ and test/ is a training split only ("train" reads all of it; "test" is a ValueError: hold out
    images yourself, e.g. `load_dataset("imagefolder:PATH").split(0.8)`). Classes are the sorted sub-folder names;
    train() checks that the train and test splits have the same ones.
    size: resize every image to size x size, or to (height, width) (explicit; never automatic).
    rgb: grayscale -> 3 channels. download: fetch a missing dataset. root: the data folder (default `data_root()`).

    Raises TypeError for an argument of the wrong type (a non-string name or split, a float size such as 16.5, a
    non-bool download/rgb, a root that is not a path) and ValueError for a bad value (unknown dataset or split,
    size < 1, an imagefolder without the asked split); FileNotFoundError when the data is missing offline.
    """
    if not isinstance(name, str):
        raise TypeError(f"load_dataset: name must be a string such as 'digits' or 'imagefolder:PATH', got "
                        f"{type(name).__name__} {name!r}")
    if not isinstance(split, str):
        raise TypeError(f"load_dataset: split must be a string ('train' or 'test'; 'val' too for cifar-fs), got "
                        f"{type(split).__name__} {split!r}")
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"load_dataset: root must be a folder path (str or pathlib.Path) or None, got "
                        f"{type(root).__name__} {root!r}")
    download = check_bool(download, "download", "load_dataset")
    rgb = check_bool(rgb, "rgb", "load_dataset")
    hw = None if size is None else check_size(size, "size", "load_dataset")
    root_path = Path(root).expanduser() if root is not None else None
    key = name.lower()
    if key not in CIFAR_FS_ALIASES:
        _check_split(split)
    if key in CIFAR_FS_ALIASES:
        ds = _load_cifar_fs(split, root_path, download)
    elif key == "digits":
        ds = _load_digits(split)
    elif key in ("fashion-mnist", "fashion_mnist", "fashionmnist"):
        ds = _load_fashion_mnist(split, root_path, download)
    elif key in CIFAR_ARCHIVES:
        ds = _load_cifar(key, split, root_path, download)
    elif key.startswith("imagefolder:"):
        ds = _load_imagefolder(_imagefolder_split(name.split(":", 1)[1], split), root_path, hw, mode="RGB")
        hw = None  # already resized while reading
    else:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    if hw is not None:
        ds = resize(ds, hw)
    if rgb:
        ds = to_rgb(ds)
    return ds


def available_datasets(root: str | os.PathLike | None = None) -> dict[str, str]:
    """For each known dataset: 'offline' if it loads here without a network, else how to get it."""
    base = Path(root).expanduser() if root is not None else data_root()
    out = {"digits": "offline (bundled with scikit-learn)"}
    found = _find_fashion_files("train", base)
    out["fashion-mnist"] = (
        f"offline ({found[0].parent})" if found else
        "missing: apt-get install dataset-fashion-mnist, or load_dataset('fashion-mnist', download=True)"
    )
    for name, (fname, _md5, folder, size) in CIFAR_ARCHIVES.items():
        if (base / folder).exists() or (base / fname).exists():
            out[name] = f"offline ({base})"
        else:
            out[name] = f"missing: load_dataset('{name}', download=True) (about {size}), or put {fname} in {base}"
    out["cifar-fs"] = (out["cifar100"] if out["cifar100"].startswith("offline") else
                       "missing: needs CIFAR-100 (load_dataset('cifar-fs', download=True) fetches it)")
    out["imagefolder:PATH"] = ("a folder with train/<class>/ and test/<class>/ sub-folders (a folder of class "
                               "sub-folders alone is a training split only)")
    return out


def synthetic_dataset(
    n_per_class: int = 50,
    num_classes: int = 10,
    channels: int = 3,
    size: int = 32,
    noise: float = 0.15,
    seed: int = 0,
    name: str = "synthetic",
) -> ImageSet:
    """Small class-structured CIFAR-shaped data for tests: a smooth random template per class plus noise.

    A model can learn it (classes differ), and it needs no network. Not a benchmark of anything.
    Raises TypeError for non-integer counts/size/channels/seed (e.g. 2.5, True), a non-number noise or a non-string
    name; ValueError for n_per_class < 1, num_classes < 1, size < 2, channels not 1 or 3, a negative or non-finite
    noise, or a negative seed.
    """
    who = "synthetic_dataset"
    n_per_class = check_count(n_per_class, "n_per_class", who)
    num_classes = check_count(num_classes, "num_classes", who)
    channels = check_choice(check_count(channels, "channels", who), "channels", (1, 3), who)
    size = check_count(size, "size", who, lo=2)
    noise = check_rate(noise, "noise", who, lo=0.0)
    seed = check_seed(seed, "seed", who)
    if not isinstance(name, str):
        raise TypeError(f"{who}: name must be a string, got {type(name).__name__} {name!r}")
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, channels, 4, 4, generator=gen)
    templates = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = templates[labels] + noise * torch.randn(len(labels), channels, size, size, generator=gen)
    perm = torch.randperm(len(labels), generator=gen)
    return ImageSet(quantize(x[perm].clamp(0, 1)), labels[perm], [f"class{k}" for k in range(num_classes)], name=name)
