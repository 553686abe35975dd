"""The class-balanced subset of rows, exactly as the reference tool picks it.

The classes are ``class_idx`` or the first ``max_num_class`` classes; in
dataset order, the first ``max_num_samples`` samples of each chosen class are
kept. Extract and embed share this, so both mean the same rows.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import ParamError


def chosen_classes(n_classes: int, class_idx: Sequence[int] | None, max_num_class: int) -> list[int]:
    if class_idx:
        bad = [int(c) for c in class_idx if not 0 <= int(c) < n_classes]
        if bad:
            raise ParamError(f"class index {bad[0]} is out of range: this dataset has {n_classes} classes "
                             f"(0 to {n_classes - 1})", "pass --class-idx values in that range")
        return list(dict.fromkeys(int(c) for c in class_idx))
    return list(range(min(n_classes, max_num_class)))


def select_rows(labels: np.ndarray, n_classes: int, class_idx: Sequence[int] | None,
                max_num_class: int, max_num_samples: int) -> tuple[np.ndarray, list[int]]:
    """Dataset indices of the subset (ascending) and the chosen classes."""
    classes = chosen_classes(n_classes, class_idx, max_num_class)
    labels = np.asarray(labels)
    keep = np.zeros(len(labels), dtype=bool)
    for c in classes:
        where = np.flatnonzero(labels == c)[:max_num_samples]
        keep[where] = True
    return np.flatnonzero(keep).astype(np.int64), classes
