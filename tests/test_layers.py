"""Imports go one way: every module imports only modules of lower layers (issue 17).

The table below is the package's data flow, bottom to top. A static read of every `import` (top-level and inside
functions) fails on an import that goes up or sideways into another unit of the same layer; a fresh interpreter
per module fails on an import circle that only shows at run time. A new module must be placed in the table.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "uel_helpers"

LAYERS = [
    ["checks", "profiles", "progress", "learning_speed", "notebook_sync"],  # no package imports
    ["data", "cache"],  # uint8 ImageSets, loaders; the content-hashed cache
    ["device", "distributed", "transforms", "models", "perturbation_metrics"],  # where to compute (1 or N processes)
    ["separability", "training"],  # the judge's trainer
    ["poisons"],  # attacks
    ["defenses"],  # defenses (D-VAE and projection may use poisons' surrogates)
    ["executors"],  # where a grid's tasks run: this process, Ray, SLURM (knows nothing of attacks)
    ["experiments", "dfr", "attribution", "protonet", "editing", "segmentation"],  # studies built from the above
    ["reproduce"],
    ["plots"],
    ["widgets"],
    ["notebook"],
    ["cli"],
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def _unit(path: Path) -> str:
    """The top-level unit a file belongs to: `poisons` for poisons/ar.py, `training` for training.py."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_units(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    here = path.relative_to(PACKAGE).parent.parts  # package parts below uel_helpers
    units = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = list(here[: len(here) - node.level + 1]) + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "uel_helpers":
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                units.add(parts[0])
            else:  # `from . import x` at the top of the package
                units.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("uel_helpers."):
                    units.add(alias.name.split(".")[1])
    return units


FILES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_unit_has_a_layer():
    units = {_unit(p) for p in FILES} - {"__main__"}
    assert units <= set(LAYER), f"place these modules in LAYERS: {sorted(units - set(LAYER))}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path):
    unit = _unit(path)
    if unit == "__main__":
        return
    bad = sorted(u for u in _imported_units(path) - {unit} if u in LAYER and LAYER[u] >= LAYER[unit])
    assert not bad, f"{path.relative_to(PACKAGE)} (layer {LAYER[unit]}) imports {bad} from its own layer or above"


BOTTOM_UP = ["checks", "data", "cache", "device", "transforms", "models", "training", "poisons", "defenses",
             "experiments", "plots", "widgets", "cli"]


@pytest.mark.parametrize("module", BOTTOM_UP)
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """An import circle shows when a module is the first one imported; each gets its own interpreter."""
    out = subprocess.run([sys.executable, "-c", f"import uel_helpers.{module}"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-2000:]


def test_moved_names_still_import_from_their_old_modules():
    """transforms.py took the per-batch operations from training, defenses.sharpen and defenses.squeeze;
    code written against the old paths (notebooks of earlier releases) still imports them."""
    from uel_helpers import training, transforms
    from uel_helpers.defenses import sharpen, squeeze

    for module, names in ((training, ["Normalize", "channel_stats", "random_crop", "random_flip", "random_cutout",
                                      "mixup", "cutmix", "mixed_loss", "mixed_correct", "sharpen_filter"]),
                          (sharpen, ["ssk_kernel", "rsk_kernels", "sharpen", "dct_lowpass", "sharpen_filter",
                                     "DEFAULT_CENTER", "DEFAULT_PERCENT"]),
                          (squeeze, ["luma", "jpeg_roundtrip"])):
        for name in names:
            assert getattr(module, name) is getattr(transforms, name), f"{module.__name__}.{name}"


def test_top_level_exports_the_entry_points_a_notebook_needs():
    import uel_helpers
    from uel_helpers import apply_defense, make_poison, run_experiment, run_matrix
    from uel_helpers.defenses import apply_defense as apply_defense_home
    from uel_helpers.experiments import run_experiment as run_home
    from uel_helpers.poisons import make_poison as make_home

    assert (make_poison, apply_defense, run_experiment) == (make_home, apply_defense_home, run_home)
    assert callable(run_matrix) and {"make_poison", "run_matrix", "DataSpec"} <= set(dir(uel_helpers))
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        uel_helpers.no_such_name  # noqa: B018


def test_renamed_entry_points_keep_their_old_names_with_a_deprecation_warning():
    from uel_helpers.data import synthetic_dataset
    from uel_helpers.experiments import evaluate
    from uel_helpers.notebook import attack_params, profile_attack_params

    with pytest.warns(DeprecationWarning, match="profile_attack_params"):
        assert attack_params("tap", 3, "smoke") == profile_attack_params("tap", 3, "smoke")
    ds = synthetic_dataset(n_per_class=2, num_classes=2, channels=1, size=8, seed=0)
    with pytest.warns(DeprecationWarning, match="run_experiment"):
        result = evaluate("none", dataset=(ds, ds), protocol="smoke", baseline=False, cache=False)
    assert result.attack == "none"
