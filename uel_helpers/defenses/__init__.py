"""Defenses against availability poisons: one module per defense family + a registry.

`apply_defense(name, train_set, protocol, **params) -> (train_set, protocol)` purifies the training set
and/or changes the training protocol; `get_defense(name).reading` says whether to report the final or the
peak epoch. Importing a defense module registers its defenses; adding one is a new module and one line below.
"""

from .registry import KINDS, READINGS, REGISTRY, Defense, add, apply_defense
from .registry import defense_params, get_defense, register
from .squeeze import bdr, grayscale, jpeg

# One line per defense module (importing it registers its defenses):
from . import squeeze
from . import augment
from . import adversarial
from . import early_stopping
from . import dvae
from . import sharpen
from . import projection

__all__ = ["REGISTRY", "KINDS", "READINGS", "Defense", "add", "apply_defense", "defense_params", "get_defense",
           "register", "grayscale", "jpeg", "bdr"]
