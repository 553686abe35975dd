"""Stage one: features of every model stage into the store.

Importing this package is cheap; torch and mmpretrain load only when
inference runs.
"""

from .params import ExtractParams
from .entry import ExtractResult, KeyInfo, entry_key, extract_entry

__all__ = ["ExtractParams", "ExtractResult", "KeyInfo", "entry_key", "extract_entry"]
