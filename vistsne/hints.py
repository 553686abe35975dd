"""Commands and names that error messages suggest, built in one place.

Every hint that names a command builds it here from real flags, so that a
test can run each one (``tests/test_hints.py``) and see that it parses.
"""

from __future__ import annotations

import difflib
import shlex
from typing import Iterable, Sequence


def command(*words: str) -> str:
    """A shell-quoted ``vistsne ...`` command line."""
    return " ".join(shlex.quote(str(w)) for w in ("vistsne",) + tuple(words))


def extract_command(config: str, checkpoint: str | None = None, extra: Sequence[str] = ()) -> str:
    words = ["extract", config]
    if checkpoint:
        words += ["--checkpoint", checkpoint]
    return command(*words, *extra)


def extract_command_for(meta: dict, extra: Sequence[str] = ()) -> str:
    """The ``vistsne extract`` command that (re)creates a stored entry, plus ``extra`` flags."""
    words: list[str] = []
    if meta.get("test_cfg"):
        words += ["--test-cfg", meta["test_cfg"]]
    if meta.get("images"):
        words += ["--images", meta["images"]]
    for opt in meta.get("cfg_options") or ():
        words += ["--cfg-options", opt]
    if meta.get("image_size"):
        words += ["--image-size", str(meta["image_size"])]
    key = meta.get("extract") or {}
    if key.get("backbone_stages") is not None:
        b = key["backbone_stages"]
        words += ["--backbone-stages", b if b == "all" else ",".join(str(i) for i in b)]
    if key.get("pool", "avg") != "avg":
        words += ["--pool", key["pool"]]
    if key.get("dtype", "float32") != "float32":
        words += ["--dtype", key["dtype"]]
    return extract_command(meta.get("config") or "CONFIG", meta.get("checkpoint"), [*words, *extra])


def embed_command(entry: str, stage: str | None = None, extra: Sequence[str] = ()) -> str:
    words = ["embed", "--entry", entry[:12]]
    if stage:
        words += ["--stage", stage]
    return command(*words, *extra)


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice most like ``name`` (``prelogits`` -> ``pre_logits``), or None when nothing is close."""
    choices = list(choices)
    norm = {c.replace("_", "").replace("-", "").replace(".", "").lower(): c for c in choices}
    key = name.replace("_", "").replace("-", "").replace(".", "").lower()
    if key in norm:
        return norm[key]
    hits = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return hits[0] if hits else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``"did you mean pre_logits? "`` or an empty string."""
    hit = closest(name, choices)
    return f"did you mean {hit}? " if hit else ""
