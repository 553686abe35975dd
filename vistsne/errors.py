"""Typed errors. Every user-facing failure is a :class:`VistsneError`.

The message of each error is one line that names the problem and, where one
exists, the fix. ``cli.py`` prints it and exits non-zero without a traceback
(unless ``--debug`` is given).
"""

from __future__ import annotations


class VistsneError(Exception):
    """Base class of all errors that are the user's to fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        msg = " ".join(str(self.message).split())
        if self.hint:
            msg = f"{msg}; {' '.join(str(self.hint).split())}"
        return msg


class ParamError(VistsneError):
    """A parameter value is invalid on its own or for the data at hand."""


class ConfigError(VistsneError):
    """A config cannot be found, read, or lacks a required part."""


class DatasetError(VistsneError):
    """The dataset (or ``--images`` folder) is missing, empty or unusable."""


class CheckpointError(VistsneError):
    """The checkpoint is missing, unreadable, not a checkpoint, or unreachable."""


class UnsafeCheckpointError(CheckpointError):
    """The checkpoint holds a global that is not on the allow-list."""


class StageError(VistsneError):
    """A requested stage does not exist for this model or entry."""


class StoreError(VistsneError):
    """The store cannot be opened, written, or is damaged."""


class NotFoundError(StoreError):
    """An entry or embedding key is not in the store."""


class FeatureError(VistsneError):
    """Cached features cannot be embedded (NaN/inf, too few rows or classes)."""


class RenderError(VistsneError):
    """A figure cannot be written (unknown format, unwritable folder, ...)."""


class DamagedError(StoreError):
    """Stored data fails its checksum, cannot be decompressed, or lacks chunks."""


class ResourceError(VistsneError):
    """The work would not fit this machine (memory); the message names the estimate and the fix."""
