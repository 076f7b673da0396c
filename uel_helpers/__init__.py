"""uel_helpers: the package behind the Unlearnable Examples Lab notebooks.

Short public API; everything else lives in the module named for its idea (data, models, training, ...).
"""

from .data import ImageSet, available_datasets, load_dataset, synthetic_dataset
from .device import describe_device, pick_device, seed_everything
from .models import build_model
from .profiles import default_profile, resolve_profile
from .training import PROTOCOLS, History, Protocol, evaluate, get_protocol, protocol_for_profile, train

__version__ = "0.1.0"

# The entry points a notebook needs, imported on first use (PEP 562) so `import uel_helpers` stays light:
# attacks and defenses register themselves when their packages load.
_LAZY = {
    "make_poison": "poisons", "attack_params": "poisons", "Poison": "poisons",
    "apply_defense": "defenses", "defense_params": "defenses",
    "run_experiment": "experiments", "run_matrix": "experiments", "DataSpec": "experiments", "Result": "experiments",
    "notebook_setup": "notebook", "images_per_class": "profiles",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'uel_helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])

__all__ = [
    "ImageSet", "load_dataset", "available_datasets", "synthetic_dataset",
    "describe_device", "pick_device", "seed_everything",
    "build_model",
    "default_profile", "resolve_profile",
    "PROTOCOLS", "Protocol", "History", "get_protocol", "protocol_for_profile", "train", "evaluate",
    *_LAZY,
]
