"""uel_helpers: the package behind the Unlearnable Examples Lab notebooks.

Short public API; everything else lives in the module named for its idea (data, models, training, ...).
"""

from .data import ImageSet, available_datasets, load_dataset, synthetic_dataset
from .device import describe_device, pick_device, seed_everything
from .models import build_model
from .profiles import default_profile, resolve_profile
from .training import PROTOCOLS, History, Protocol, evaluate, get_protocol, protocol_for_profile, train

__version__ = "0.1.0"

__all__ = [
    "ImageSet", "load_dataset", "available_datasets", "synthetic_dataset",
    "describe_device", "pick_device", "seed_everything",
    "build_model",
    "default_profile", "resolve_profile",
    "PROTOCOLS", "Protocol", "History", "get_protocol", "protocol_for_profile", "train", "evaluate",
]
