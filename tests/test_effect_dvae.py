"""Effect test: D-VAE's two-stage purification recovers most of what AR and error-minimising noise took.

The shared effect setting (tests/effect_setting.py), D-VAE at the `quick` profile (width 16, 64 latent
channels, 8 epochs per stage; `uel_helpers.defenses.dvae.PROFILE_SETTINGS`). "Most" = at least half of
the accuracy lost to the poison (clean − poisoned), the issue's criterion, fixed before measuring. The
paper's own tables were not available to us; these numbers are ours (results/effect_results.json).
Measured with the earlier (whitened, 4-epoch) judge and 8 epochs per stage: AR 19.0% -> 66.15% (73% of the loss),
EM sample-wise 10.0% -> 57.5% (65%). With the honest judge the criterion is not met (strict xfails, numbers below).
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
# Re-measured with the honest judge (2026-11-30, resnet10-w16 trained to fit, no whitening): the criterion is not
# met. AR: clean 89.80, poisoned 68.75, D-VAE 75.40 (32% of the loss); EM sample-wise: poisoned 73.95, D-VAE 80.40
# (41%); control 89.90. The poisons themselves cost far less under this judge than under the whitened 4-epoch one
# (AR 19.0, EM 10.0), so the gap D-VAE can close is 16-21 points, and its quick-size purification (8 epochs per
# stage) blurs the images it returns. Kept as strict xfails with these numbers; notebook 03 says the same.
_NOT_MET = "D-VAE at quick recovers {} of the loss under the honest judge (criterion: half); see the comment above"
CASES = [pytest.param("ar", {}, marks=pytest.mark.xfail(strict=True, reason=_NOT_MET.format("32%"))),
         pytest.param("em-samplewise", {"profile": "quick"},
                      marks=pytest.mark.xfail(strict=True, reason=_NOT_MET.format("41%")))]


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
