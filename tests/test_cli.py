"""The CLI surface: help everywhere, cheap help, and everything documented."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from vistsne.cli import cli

from .conftest import ROOT


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


ALL = list(_commands(cli))


def test_top_level_help_lists_every_command():
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for name in cli.commands:
        assert name in r.output


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=" ".join)
def test_every_command_has_help(path):
    cmd = dict(ALL)[path]
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"
    args = [*path, "--help"]
    if path == ("run",):  # argparse-style help: the reference's own arguments
        proc = subprocess.run([sys.executable, "-m", "vistsne", *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0 and "--n-iter-without-progress" in proc.stdout
        return
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("args", [["--help"], ["extract", "--help"], ["embed", "--help"], ["render", "--help"],
                                  ["run", "--help"], ["store", "ls", "--help"], ["demo", "--help"]])
def test_help_does_not_import_torch(args):
    code = ("import sys\nfrom vistsne.cli import main\n"
            "try:\n"
            f"    main({args!r})\n"
            "except SystemExit:\n"
            "    pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'mmpretrain', 'openTSNE', 'matplotlib', 'bokeh')"
            " if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "vistsne", "--version"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "vistsne" in out.stdout


def test_readme_documents_every_command_and_make_target():
    readme = (ROOT / "README.md").read_text()
    for path, _ in ALL:
        assert f"vistsne {' '.join(path)}" in readme, f"README does not mention `vistsne {' '.join(path)}`"
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, flags=re.M).group(1).split()
    for target in phony:
        if target in ("help", "browser"):
            continue
        assert f"make {target}" in readme, f"README does not mention `make {target}`"


def test_unknown_option_is_a_usage_error():
    r = CliRunner().invoke(cli, ["extract", "x.py", "--no-such-flag"])
    assert r.exit_code == 2 and "No such option" in r.output


def test_reference_style_multi_values_are_accepted():
    from vistsne.cli import expand_greedy

    argv = ["extract", "--class-idx", "1", "2", "cfg.py", "--cfg-options", "a=1", "b.c=[2,3]", "--json"]
    assert expand_greedy(argv) == ["extract", "--class-idx", "1", "--class-idx", "2", "cfg.py",
                                   "--cfg-options", "a=1", "--cfg-options", "b.c=[2,3]", "--json"]
    assert expand_greedy(["run", "x.py", "--class-idx", "1", "2"]) == ["run", "x.py", "--class-idx", "1", "2"]


def test_make_passes_the_selection_to_every_target():
    """MAX_NUM_CLASS / MAX_NUM_SAMPLES / PRECISION reach extract, embed, sweep, render and compare; SUBSAMPLE
    reaches embed."""
    env = {**os.environ, "MAKEFLAGS": ""}
    sel = ["MAX_NUM_CLASS=all", "MAX_NUM_SAMPLES=all", "SUBSAMPLE=500", "CHECKPOINTS=a.pth b.pth", "PRECISION=bfloat16"]
    for target, tool in (("extract", "extract"), ("embed", "embed"), ("sweep", "embed"), ("render", "render"),
                         ("compare", "compare")):
        out = subprocess.run(["make", "-n", target, *sel], cwd=ROOT, env=env,
                             capture_output=True, text=True).stdout
        line = next(ln for ln in out.splitlines() if f"vistsne {tool} " in ln)
        assert "--max-num-class all" in line and "--max-num-samples all" in line, (target, line)
        assert "--precision bfloat16" in line, (target, line)
        assert ("--subsample 500" in line) == (target in ("embed", "sweep")), (target, line)
