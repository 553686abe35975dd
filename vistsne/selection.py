"""The class-balanced subset of rows, exactly as the reference tool picks it.

The classes are ``class_idx`` or the first ``max_num_class`` classes; in
dataset order, the first ``max_num_samples`` samples of each chosen class are
kept. Extract, embed, render and the CLI share :class:`RowSelection` and its
defaults (defined here once), so all of them mean the same rows.
``None`` for either limit means "all" (``--max-num-class all``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import ParamError

#: The reference tool's defaults: the first 20 classes, 100 samples each.
DEFAULT_MAX_NUM_CLASS = 20
DEFAULT_MAX_NUM_SAMPLES = 100


def parse_limit(value, flag: str) -> int | None:
    """``all`` (or None) -> None; a positive integer -> itself; else a ParamError naming ``flag``."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "all"):
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ParamError(f"{flag} {value!r} is not a number", "pass a positive number or all") from None
    if n < 1:
        raise ParamError(f"{flag} must be at least 1", "pass a positive number, or all")
    return n


@dataclass(frozen=True)
class RowSelection:
    """Which rows: ``class_idx`` (None: the first ``max_num_class``), at most ``max_num_samples`` each."""

    class_idx: tuple[int, ...] | None = None
    max_num_class: int | None = DEFAULT_MAX_NUM_CLASS
    max_num_samples: int | None = DEFAULT_MAX_NUM_SAMPLES

    def validate(self) -> "RowSelection":
        for name, flag in (("max_num_class", "--max-num-class"), ("max_num_samples", "--max-num-samples")):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ParamError(f"{flag} must be at least 1", "pass a positive number, or all")
        if self.class_idx is not None and any(int(c) < 0 for c in self.class_idx):
            raise ParamError(f"class index {min(self.class_idx)} is out of range", "class indices start at 0")
        return self

    @property
    def is_default(self) -> bool:
        return self == RowSelection()

    def rows(self, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, list[int]]:
        """Dataset indices of the subset (ascending) and the chosen classes."""
        return select_rows(labels, n_classes, self.class_idx, self.max_num_class, self.max_num_samples)

    def token(self) -> str:
        """A short file-name token for a non-default selection ("" for the default): ``c50``, ``n200``, ``c-all``."""
        parts = []
        if self.class_idx:
            shown = "-".join(str(c) for c in self.class_idx[:6])
            parts.append(f"cls{shown}" + ("+" if len(self.class_idx) > 6 else ""))
        elif self.max_num_class != DEFAULT_MAX_NUM_CLASS:
            parts.append(f"c{'-all' if self.max_num_class is None else self.max_num_class}")
        if self.max_num_samples != DEFAULT_MAX_NUM_SAMPLES:
            parts.append(f"n{'-all' if self.max_num_samples is None else self.max_num_samples}")
        return "_".join(parts)

    def flags(self) -> list[str]:
        """The command-line flags that ask for this selection (none for the default)."""
        out: list[str] = []
        for c in self.class_idx or ():
            out += ["--class-idx", str(c)]
        if not self.class_idx and self.max_num_class != DEFAULT_MAX_NUM_CLASS:
            out += ["--max-num-class", _limit_text(self.max_num_class)]
        if self.max_num_samples != DEFAULT_MAX_NUM_SAMPLES:
            out += ["--max-num-samples", _limit_text(self.max_num_samples)]
        return out

    def to_dict(self) -> dict:
        return {"class_idx": list(self.class_idx) if self.class_idx is not None else None,
                "max_num_class": self.max_num_class, "max_num_samples": self.max_num_samples}


def _limit_text(v: int | None) -> str:
    return "all" if v is None else str(v)


def chosen_classes(n_classes: int, class_idx: Sequence[int] | None, max_num_class: int | None) -> list[int]:
    if class_idx:
        bad = [int(c) for c in class_idx if not 0 <= int(c) < n_classes]
        if bad:
            raise ParamError(f"class index {bad[0]} is out of range: this dataset has {n_classes} classes "
                             f"(0 to {n_classes - 1})", "pass --class-idx values in that range")
        return list(dict.fromkeys(int(c) for c in class_idx))
    limit = n_classes if max_num_class is None else min(n_classes, int(max_num_class))
    return list(range(limit))


def select_rows(labels: np.ndarray, n_classes: int, class_idx: Sequence[int] | None,
                max_num_class: int | None, max_num_samples: int | None) -> tuple[np.ndarray, list[int]]:
    """Dataset indices of the subset (ascending) and the chosen classes."""
    classes = chosen_classes(n_classes, class_idx, max_num_class)
    labels = np.asarray(labels)
    keep = np.zeros(len(labels), dtype=bool)
    for c in classes:
        where = np.flatnonzero(labels == c)
        keep[where if max_num_samples is None else where[:int(max_num_samples)]] = True
    return np.flatnonzero(keep).astype(np.int64), classes


def rows_digest(indices: np.ndarray) -> str:
    """sha256 of dataset indices (little-endian int64): what a map's key and ``rows_sha256`` hold of its rows."""
    return hashlib.sha256(np.ascontiguousarray(indices, dtype="<i8").tobytes()).hexdigest()


def rows_held(wanted: np.ndarray, present) -> np.ndarray:
    """The rows of ``wanted`` (in its order) that ``present`` (a set of dataset indices) holds."""
    wanted = np.asarray(wanted, dtype=np.int64)
    return wanted[np.isin(wanted, np.fromiter(present, dtype=np.int64, count=len(present)))]
