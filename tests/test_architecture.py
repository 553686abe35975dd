"""The rooms and what each may import (docs/ARCHITECTURE.md), checked on the source.

Every ``import`` in the package, at module level or inside a function, is
read with :mod:`ast`. A stage that imports a stage above it, or beside it,
fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PKG = ROOT / "vistsne"

#: the base layer: depends on nothing of ours but itself
BASE = {"errors", "hashing", "atomic", "progress", "selection", "hints", "stages", "resources", "__init__",
        "__version__"}
STAGES = {"extract", "embed", "render"}

#: room -> the rooms it may import ("self": its own package)
ALLOWED = {
    "base": {"base"},
    "store": {"base", "store"},
    "extract": {"base", "store", "self"},
    "embed": {"base", "store", "self"},
    "render": {"base", "store", "self"},
    "locate": {"base", "store"},
    "pipeline": {"base", "store", "locate", "extract", "embed", "render"},
    "run": {"base", "store", "pipeline", "extract", "embed", "render"},
    "demo": {"base", "store", "pipeline", "compare", "extract", "embed", "render", "self"},
    "compare": {"base", "store", "locate", "pipeline", "extract", "embed", "render"},
    "cli": {"base", "store", "locate", "pipeline", "run", "demo", "compare", "extract", "embed", "render"},
    "__main__": {"cli"},
}
#: heavy libraries that may be imported only inside functions (``--help`` and cache hits stay fast)
LAZY = {"torch", "torchvision", "mmengine", "mmpretrain", "mmcv", "openTSNE", "sklearn", "matplotlib", "bokeh",
        "PIL", "zarr", "scipy", "threadpoolctl"}
#: modules that exist to be imported by mmengine's custom_imports, where a top-level import is the point
LAZY_EXEMPT = {"vistsne/extract/digits.py"}


def room_of(module: str) -> str:
    """``vistsne.embed.tsne`` -> ``embed``; ``vistsne.hints`` -> ``base``."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head in BASE:
        return "base"
    return head


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int, bool]]:
    """(absolute module imported, line, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    top_level = {id(n) for n in tree.body}
    for node in tree.body:  # imports guarded by if/try at module level count as module level
        if isinstance(node, (ast.If, ast.Try)):
            top_level |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top_level) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x
                    out += [(f"{mod}.{a.name}", node.lineno, id(node) in top_level) for a in node.names]
                    continue
            else:
                mod = node.module or ""
            out.append((mod, node.lineno, id(node) in top_level))
    return out


def sources() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if "__pycache__" not in p.parts)


def violations() -> list[str]:
    bad = []
    for path in sources():
        me = module_name(path)
        room = room_of(me)
        rel = str(path.relative_to(ROOT))
        for mod, line, top in imports_of(path):
            lib = mod.split(".")[0]
            if lib == "zarr" and room != "store":
                bad.append(f"{rel}:{line}: imports zarr; only the store may")
            if lib == "click" and room != "cli":
                bad.append(f"{rel}:{line}: imports click; only cli.py may")
            if lib in LAZY and top and rel not in LAZY_EXEMPT:
                bad.append(f"{rel}:{line}: imports {lib} at module level; import it inside the function")
            if lib != "vistsne":
                continue
            target = room_of(mod)
            allowed = ALLOWED.get(room, set())
            if target == room and "self" in allowed or target == room == "base" or target == room == "store":
                continue
            if target not in allowed:
                bad.append(f"{rel}:{line}: {room} imports {mod} ({target}); {room} may import only "
                           f"{', '.join(sorted(allowed))}")
    return bad


def test_every_room_is_known():
    rooms = {room_of(module_name(p)) for p in sources()}
    assert rooms <= set(ALLOWED), f"rooms without rules: {rooms - set(ALLOWED)}"


def test_imports_go_one_way():
    assert violations() == []


def test_the_checker_catches_a_stage_importing_another(tmp_path, monkeypatch):
    """The check itself can fail: a render module that imports embed is reported."""
    fake = PKG / "render" / "_architecture_probe.py"
    fake.write_text("from ..embed.params import EmbedParams\n\n\ndef f():\n    import torch\n")
    try:
        found = violations()
    finally:
        fake.unlink()
    assert any("_architecture_probe.py:1: render imports vistsne.embed.params (embed)" in v for v in found)
    assert not any("_architecture_probe.py:5" in v for v in found)  # a lazy import inside a function is fine


@pytest.mark.parametrize("module", ["vistsne.cli", "vistsne.pipeline", "vistsne.store", "vistsne.embed",
                                    "vistsne.render", "vistsne.extract"])
def test_importing_stays_light(module):
    """Importing the package's rooms does not import torch, mmpretrain, openTSNE or matplotlib."""
    import subprocess
    import sys

    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'mmpretrain', 'openTSNE', 'matplotlib') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(ROOT), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
