"""The zarr feature store: the only package that touches zarr.

- :mod:`~vistsne.store.core`: :class:`Store` -- opening (schema and foreign
  folders refused before anything is written), entries, writer registration
  (``with store.writing(key): ...``), ``check_writable``.
- :mod:`~vistsne.store.parts` and :mod:`~vistsne.store.maps`: the rows of an
  entry and its t-SNE maps (published under unique names per attempt).
- :mod:`~vistsne.store.arrays`: checksummed arrays, reads that refuse missing
  or damaged chunks.
- :mod:`~vistsne.store.attrs`: attribute updates merged under a lock.
- :mod:`~vistsne.store.writers`: who writes, and whether they still run.
- :mod:`~vistsne.store.verify`, :mod:`~vistsne.store.repair`,
  :mod:`~vistsne.store.gc`, :mod:`~vistsne.store.summary`: the ``vistsne
  store`` commands' library side.
"""

from .core import DEFAULT_STORE, STORE_SCHEMA, Store, default_store_path, now_iso
from .maps import EmbeddingInfo
from .parts import PartInfo

__all__ = ["Store", "EmbeddingInfo", "PartInfo", "default_store_path", "DEFAULT_STORE", "STORE_SCHEMA", "now_iso"]
