"""Effect test: D-VAE's two-stage purification recovers most of what AR and error-minimising noise took.

The shared effect setting (tests/effect_setting.py), D-VAE at the `quick` profile (width 16, 64 latent
channels, 8 epochs per stage; `uel_helpers.defenses.dvae.PROFILE_SETTINGS`). "Most" = at least half of
the accuracy lost to the poison (clean − poisoned), the issue's criterion, fixed before measuring. The
paper's own tables were not available to us; these numbers are ours (results/effect_results.json).
Measured with 8 epochs per stage: AR 19.0% -> 66.15% (73% of the loss), EM sample-wise 10.0% -> 57.5%
(65%); with 3 epochs per stage only 40% and 56%: under-training, which is why `quick` has 8.
"""

from __future__ import annotations

import pytest

from tests.conftest import needs_fashion
from tests.effect_setting import final_acc

pytestmark = [pytest.mark.effect, needs_fashion, pytest.mark.usefixtures("use_effect_cache")]
MIN_RECOVERED = 0.5


# Both cases run with `make test-slow`: the two D-VAE stages cost ~3.5-4 minutes per poison on 2 CPU cores, and
# with the AR case CI took 21.3 minutes (2026-11-22), over its 20-minute budget. Notebook 03 runs D-VAE in CI
# at `smoke`.
CASES = [("ar", {}), ("em-samplewise", {"profile": "quick"})]


@pytest.mark.slow
@pytest.mark.parametrize("attack,params", CASES)
def test_dvae_recovers_most_of_the_gap(attack, params, monkeypatch):
    monkeypatch.setenv("UEL_PROFILE", "quick")  # D-VAE's size follows the profile
    clean = final_acc("none", key="clean")
    poisoned = final_acc(attack, **params)
    purified = final_acc(attack, "dvae", **params)
    recovered = (purified - poisoned) / max(clean - poisoned, 1e-9)
    print(f"{attack}: clean {clean:.4f}, poisoned {poisoned:.4f}, D-VAE {purified:.4f} "
          f"({100 * recovered:.0f}% of the loss recovered)")
    assert clean - poisoned > 0.2, f"{attack} did not bite: nothing to recover"
    assert recovered >= MIN_RECOVERED, f"D-VAE recovered {100 * recovered:.0f}% of {attack}'s loss, not most of it"
