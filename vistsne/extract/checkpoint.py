"""Checkpoints, safely: resolve paths and URLs, hash bytes, load weights only.

``torch.load(weights_only=True)`` refuses every global that is not allow-listed.
Checkpoints saved by mmengine's Runner legitimately hold a message hub with
``HistoryBuffer`` objects, numpy arrays and scalars, and bound statistics
methods of those buffers, which pickle as ``builtins.getattr(buffer, 'min')``.
We allow exactly those: ``builtins.getattr`` is replaced by a stand-in that
only returns the statistics methods of a ``HistoryBuffer``. Anything else is
refused with its name and the ``--trust-checkpoint`` flag.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from ..atomic import atomic_write
from ..errors import CheckpointError, UnsafeCheckpointError

log = logging.getLogger("vistsne")

HISTORY_BUFFER_METHODS = frozenset({"min", "max", "mean", "current", "data"})
URL_TIMEOUT_S = 15


def is_url(path: str) -> bool:
    return bool(re.match(r"^(https?|s3|gs|ftp)://", str(path)))


def download_cache_dir() -> Path:
    """mmengine's download cache: ``$TORCH_HOME/hub/checkpoints`` (torch.hub's)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "torch")
    return Path(torch_home) / "hub" / "checkpoints"


def resolve_checkpoint(checkpoint: str | None) -> Path | None:
    """A local file for ``checkpoint`` (path or URL), fetched into mmengine's cache.

    Fails at once, with one line, when the file is missing or the URL cannot be
    fetched.
    """
    if checkpoint is None or str(checkpoint) == "":
        return None
    text = str(checkpoint)
    if is_url(text):
        name = os.path.basename(text.split("?")[0]) or "checkpoint.pth"
        cached = download_cache_dir() / name
        if cached.is_file() and cached.stat().st_size > 0:
            return cached
        return _fetch(text, cached)
    path = Path(text).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint {text} not found", "check the path, or omit --checkpoint for random init")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {text} is not a file", "pass the .pth file itself")
    if not os.access(path, os.R_OK):
        raise CheckpointError(f"checkpoint {text} is not readable", "check its permissions")
    return path


def _fetch(url: str, dest: Path) -> Path:
    log.info("downloading %s to %s", url, dest)
    if not url.startswith(("http://", "https://")):
        raise CheckpointError(f"checkpoint URL {url} cannot be fetched by vistsne",
                              "download it yourself and pass the path with --checkpoint")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:
            def write(tmp):
                with open(tmp, "wb") as f:
                    shutil.copyfileobj(resp, f, length=1 << 20)

            atomic_write(dest, write)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise CheckpointError(f"checkpoint URL {url} could not be fetched ({reason})",
                              "download it yourself and pass the local path with --checkpoint") from e
    return dest


def _safe_getattr():
    from mmengine.logging.history_buffer import HistoryBuffer

    def restricted_getattr(obj, name, *default):
        is_buffer = obj is HistoryBuffer or isinstance(obj, HistoryBuffer)
        if is_buffer and name in HISTORY_BUFFER_METHODS:
            return getattr(obj, name)
        raise UnsafeCheckpointError(
            f"checkpoint asks for getattr({getattr(obj, '__name__', type(obj).__name__)}, {name!r}), which is not allow-listed",
            "if you trust its source, pass --trust-checkpoint")

    return restricted_getattr


def allowed_globals() -> list:
    """The narrow allow-list for mmengine / mmpretrain checkpoints."""
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32",
                                          "int16", "int8", "uint8", "bool")]
    return [HistoryBuffer, np.ndarray, np.dtype, _reconstruct, scalar, *dtypes,
            (_safe_getattr(), "builtins.getattr")]


def read_checkpoint_bytes(path: Path, expected_sha256: str | None = None) -> bytes:
    """The checkpoint's bytes, read once; they must hash to ``expected_sha256`` (the entry key's hash).

    Loading the very bytes that were hashed means a file replaced between the
    key and the load (a training run rewriting ``latest.pth``) is never stored
    under the old key.
    """
    import hashlib

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read ({e.strerror or e})", "check the path") from e
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise CheckpointError(f"checkpoint {path} changed while vistsne was reading it (is a training run "
                              "writing it?)", "run the command again once the file is complete")
    return data


def load_checkpoint_file(path: Path, trust: bool = False, expected_sha256: str | None = None) -> dict:
    """``torch.load`` with weights only and the allow-list (or everything, if trusted)."""
    import io
    import pickle

    import torch

    data = io.BytesIO(read_checkpoint_bytes(path, expected_sha256))
    try:
        if trust:
            return torch.load(data, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(allowed_globals()):
            return torch.load(data, map_location="cpu", weights_only=True)
    except UnsafeCheckpointError:
        raise
    except pickle.UnpicklingError as e:
        m = re.search(r"GLOBAL ([\w\.]+)", str(e)) or re.search(r"global[: ]+([\w\.]+)", str(e))
        if m:
            raise UnsafeCheckpointError(
                f"checkpoint {path} holds the global {m.group(1)}, which is not allow-listed",
                "if you trust its source, pass --trust-checkpoint to load it anyway") from e
        raise CheckpointError(f"{path} is not a readable checkpoint ({e.__class__.__name__})",
                              "pass a .pth file saved by torch or mmengine") from e
    except (RuntimeError, EOFError, ValueError, OSError, AttributeError, KeyError) as e:
        raise CheckpointError(f"{path} is not a readable checkpoint ({_first_line(e)})",
                              "pass a .pth file saved by torch or mmengine") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{e.__class__.__name__}: {text[0] if text else ''}"[:200]


def state_dict_of(ckpt) -> dict:
    if isinstance(ckpt, dict):
        for k in ("state_dict", "model", "module"):
            if k in ckpt and isinstance(ckpt[k], dict):
                ckpt = ckpt[k]
                break
    if not isinstance(ckpt, dict):
        raise CheckpointError("the checkpoint holds no state dict", "pass a model checkpoint")
    return {re.sub(r"^module\.", "", k): v for k, v in ckpt.items() if hasattr(v, "shape")}


def apply_checkpoint(model, path: Path, trust: bool = False, *, allow_partial: bool = False,
                     expected_sha256: str | None = None, expected_missing=()) -> dict:
    """Load ``path`` into ``model``; refuse a checkpoint that leaves model weights unloaded.

    Model weights missing from the checkpoint, or of another shape there, make
    the features partly random: that is refused unless ``allow_partial``, and
    the counts are returned for the entry to record. Checkpoint keys the model
    lacks (a head the config does not use, say) are only logged.
    """
    ckpt = load_checkpoint_file(path, trust, expected_sha256)
    state = state_dict_of(ckpt)
    own = model.state_dict()
    matched = [k for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)]
    if not matched:
        raise CheckpointError(
            f"checkpoint {path} matches none of the model's {len(own)} weights "
            f"(e.g. checkpoint has {', '.join(list(state)[:3]) or 'nothing'})",
            "is it a checkpoint of this config?")
    shape_bad = [k for k, v in state.items() if k in own and tuple(own[k].shape) != tuple(v.shape)]
    unexpected = [k for k in state if k not in own]
    added = set(expected_missing)  # weights that only --backbone-stages created: no checkpoint has them
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked") and k not in added]
    if added:
        log.info("%d weights of the stages added by --backbone-stages are not in the checkpoint (left at init), "
                 "e.g. %s", len(added), ", ".join(sorted(added)[:2]))
    weights = len([k for k in own if not k.endswith("num_batches_tracked")])
    if (missing or shape_bad) and not allow_partial:
        example = ", ".join((shape_bad + missing)[:2])
        raise CheckpointError(
            f"checkpoint {path} leaves {len(missing)} of the model's {weights} weights unloaded and "
            f"{len(shape_bad)} of another shape (e.g. {example}), so the features would be partly random",
            "is it a checkpoint of this config? pass --allow-partial-checkpoint to use it anyway "
            "(the entry records the counts)")
    model.load_state_dict({k: state[k] for k in matched}, strict=False)
    for what, keys in (("checkpoint keys are not in the model", unexpected),
                       ("model weights are missing from the checkpoint (left at init)", missing),
                       ("checkpoint keys have another shape than the model's", shape_bad)):
        if keys:
            log.warning("%d %s, e.g. %s", len(keys), what, ", ".join(keys[:3]))
    meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    return {"matched": len(matched), "unexpected": len(unexpected), "missing": len(missing),
            "shape_mismatch": len(shape_bad), "weights": weights, "meta": meta if isinstance(meta, dict) else {}}
