"""Availability poisons: one module per attack, a registry, and `make_poison(name, train_set, seed=...)`.

Importing an attack module registers its attacks; adding an attack is one new module and one line below.
"""

from .base import Poison, poison_from_delta, poison_from_images
from .describe import describe, format_table
from .registry import REGISTRY, attack_params, get_attack, make_poison, register

# One line per attack module (importing it registers its attacks):
from . import ar
from . import em
from . import tap
from . import cuda
from . import random_noise
from . import regions
from . import lsp
from . import ops

__all__ = ["Poison", "REGISTRY", "make_poison", "register", "get_attack", "attack_params",
           "poison_from_delta", "poison_from_images", "describe", "format_table"]
