"""Data attribution with self-supervised features (Singla et al., arXiv 2311.03386, code
vasusingla/simple-data-attribution@d2016b4: "A Simple and Efficient Baseline
for Data Attribution on Images").

    backbone        SimCLR / MoCo v2 trained on the training set (lightly), features, kNN monitor
    scores          esvm / l2knn (and the cosine variant) top-k per test image, label conditioning, random floor
    counterfactual  removal and mislabel support: bisection over the top-k, vote of n retrained models, cached
    trak_baseline   TRAK through MadryLab's `traker`, converted to the same top-k lists
"""

from .backbone import (
                       SSL_METHODS,
                       SSL_PROFILES,
                       Encoder,
                       SSLBackbone,
                       SSLConfig,
                       extract_features,
                       knn_accuracy,
                       ssl_config_for_profile,
                       train_ssl,
)
from .counterfactual import (
                                          SUPPORT_KINDS,
                       Counterfactual,
                       SupportResult,
                       binary_search_support,
    correctly_classified,
                       evaluate_support,
                       support_table,
)
from .scores import METHODS, Attribution, attribute, candidates_for, from_score_matrix, random_attribution
from .settings import ATTRIBUTION_PROFILES, AttributionSettings, attribution_settings
from .trak_baseline import TrakSettings, train_checkpoints, trak_attribution

__all__ = [
    "SSL_METHODS", "SSL_PROFILES", "Encoder", "SSLBackbone", "SSLConfig", "extract_features", "knn_accuracy",
    "ssl_config_for_profile", "train_ssl", "SUPPORT_KINDS", "Counterfactual", "SupportResult",
    "binary_search_support", "correctly_classified", "evaluate_support", "support_table", "METHODS",
    "Attribution", "attribute",
    "candidates_for", "from_score_matrix", "random_attribution", "TrakSettings", "train_checkpoints",
    "trak_attribution", "ATTRIBUTION_PROFILES", "AttributionSettings", "attribution_settings",
]
