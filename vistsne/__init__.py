"""vistsne: cached, stage-by-stage t-SNE maps of MMPretrain model features.

Three stages over one zarr feature store: ``extract`` (inference, once),
``embed`` (openTSNE over cached features) and ``render`` (figures and an
interactive page from the store alone).
"""

__version__ = "0.1.0"
