"""Embed stage: feature arrays -> t-SNE maps (openTSNE) and their quality metrics.

Importing this package is cheap: openTSNE and scikit-learn are imported only
inside the functions that use them.
"""

from vistsne.embed.metrics import METRIC_KEYS, knn_accuracy, map_metrics, trustworthiness
from vistsne.embed.params import METHOD_SWITCH_N, EmbedParams, check_data, resolve, sweep
from vistsne.embed.tsne import (EmbedResult, SweepStats, check_features, embed_many,
                                preprocess)

__all__ = [
    "EmbedParams",
    "sweep",
    "resolve",
    "check_data",
    "check_features",
    "preprocess",
    "embed_many",
    "EmbedResult",
    "SweepStats",
    "knn_accuracy",
    "trustworthiness",
    "map_metrics",
    "METRIC_KEYS",
    "METHOD_SWITCH_N",
]
