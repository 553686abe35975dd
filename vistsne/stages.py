"""Stage names and their network order: backbone stages by index, then neck, then pre_logits.

Every list of stages that a user sees (tables, sheets, pages, the depth
figure) is sorted by :func:`network_order`, so all of them agree.
"""

from __future__ import annotations

from typing import Iterable

_GROUPS = {"backbone": 0, "neck": 1, "pre_logits": 2}


def stage_sort_key(name: str) -> tuple:
    head, _, tail = str(name).partition(".")
    group = _GROUPS.get(head, 3)
    try:
        index = (0, int(tail)) if tail else (0, -1)
    except ValueError:
        index = (1, tail)
    return (group, index, name)


def network_order(names: Iterable[str]) -> list[str]:
    """``names`` without duplicates, in network order (``backbone.2`` before ``backbone.10``)."""
    return sorted(dict.fromkeys(names), key=stage_sort_key)


def arrays_for(names: Iterable[str], vis_stage: str | None) -> list[str]:
    """The stored arrays a reference ``--vis-stage`` stands for, in network order.

    ``backbone`` / ``neck`` / ``pre_logits``: every array of that part;
    ``None``: the model's default as the reference picks it (the neck, else
    the backbone's outputs).
    """
    from .errors import StageError

    names = network_order(names)
    if vis_stage is None:
        chosen = [s for s in names if s.split(".")[0] == "neck"] or [s for s in names if s.startswith("backbone")]
    else:
        chosen = [s for s in names if s.split(".")[0] == vis_stage]
    if not chosen:
        raise StageError(f"stage {vis_stage or 'neck'} is unknown for this model; it has: {', '.join(names)}",
                         "pass --vis-stage backbone, neck or pre_logits")
    return chosen
