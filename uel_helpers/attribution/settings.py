"""How big an attribution study is at each profile (smoke / quick / paper, uel_helpers.profiles)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..profiles import resolve_profile
from .trak_baseline import TrakSettings


@dataclass(frozen=True)
class AttributionSettings:
    """n_per_class: training images per class (None = all). k: top-k list length (paper 1280 of 5,000 per class,
    vasusingla/simple-data-attribution@d2016b4 `features_to_topk_matrix.py`; smaller profiles keep the same
    fraction of a class). test_points drawn from a pool of test_pool test images that the full-data models classify
    correctly. n_models per vote and bisection budget: the reference's README (5 models, budget 7). cf_protocol: the
    retraining recipe (`train_utils.py` at paper)."""

    n_per_class: int | None
    k: int
    test_points: int
    test_pool: int
    n_models: int
    budget: int
    cf_protocol: str
    trak: TrakSettings

    def with_(self, **changes) -> AttributionSettings:
        return replace(self, **changes)


ATTRIBUTION_PROFILES: dict[str, AttributionSettings] = {
    "smoke": AttributionSettings(20, 5, 2, 20, 1, 1, "smoke", TrakSettings(proj_dim=64, checkpoints=1)),
    # 2 CPU cores: 200 images per class, k = 51 (the paper's 1280/5000 of a class), 5 test points, 3 models per vote,
    # bisection budget 2 (resolution k/4), TRAK at traker's quickstart size (a straw man, said where shown).
    "quick": AttributionSettings(200, 51, 5, 60, 3, 2, "cf-quick", TrakSettings(proj_dim=2048, checkpoints=3)),
    "paper": AttributionSettings(None, 1280, 100, 1000, 5, 7, "resnet9-cf",
                                 TrakSettings(proj_dim=20_000, checkpoints=11)),
}


def attribution_settings(profile: str | None = None, **overrides) -> AttributionSettings:
    s = ATTRIBUTION_PROFILES[resolve_profile(profile)]
    return s.with_(**overrides) if overrides else s
