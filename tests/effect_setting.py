"""The one setting every effect test shares (so that poisons and clean baselines are cached once).

500 Fashion-MNIST training images per class shown as RGB, the `quick` judge (a quarter-width ResNet-10 trained
to fit, no whitening: `uel_helpers.training.PROTOCOLS["quick"]`), 2,000 clean test images. Its validity (the
sample-wise noise control within 3 points of clean) is tested in tests/test_effect_poisons.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from uel_helpers.experiments import DataSpec, Result, run_experiment
from uel_helpers.training import Protocol, get_protocol

DATA = DataSpec("fashion-mnist", n_per_class=500, as_rgb=True)
JUDGE = get_protocol("quick").with_(max_test=2000)
RESULTS = Path(__file__).resolve().parents[1] / "results" / "effect_results.json"


def record(key: str, result: Result) -> None:
    """Add one measured run to results/effect_results.json (quoted by the notes and notebooks)."""
    RESULTS.parent.mkdir(exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[key] = {"final": result.final[0], "peak": result.peak[0], "peak_epoch": result.peak_epoch[0],
                 "train_acc": result.train_acc[0][-1], "test_acc": result.test_acc[0],
                 "seconds": result.seconds, "setting": f"{DATA.label}, judge {JUDGE.name}, 2,000 test images"}
    RESULTS.write_text(json.dumps(data, indent=2))


def evaluate_cached(attack: str, defense: str = "none", protocol: Protocol = JUDGE, key: str | None = None,
                    defense_params: dict | None = None, **attack_params) -> Result:
    """One run (seed 0) in the shared setting (cached), recorded under `key`."""
    result = run_experiment(attack, defense, DATA, protocol, seeds=[0], attack_params=attack_params, baseline=False,
                      defense_params=defense_params, device="cpu")
    record(key or (attack if defense == "none" else f"{attack} + {defense}"), result)
    return result


def final_acc(attack: str, defense: str = "none", protocol: Protocol = JUDGE, key: str | None = None,
              defense_params: dict | None = None, **attack_params) -> float:
    """Final clean test accuracy of one run in the shared setting (cached), recorded under `key`."""
    return evaluate_cached(attack, defense, protocol, key, defense_params, **attack_params).final[0]
