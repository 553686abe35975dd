"""Every flag and command that a message suggests exists and parses (issue 15, point 5)."""

from __future__ import annotations

import ast
import re
import shlex

import click
import pytest
from click.testing import CliRunner

from vistsne.cli import cli, expand_greedy
from vistsne.run import build_parser

from .conftest import DEMO_CONFIG, ROOT

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")
#: flags of other programs that the docs name (torchrun's, slurm's, pip's)
EXTERNAL = {"--nproc_per_node", "--nnodes", "--node_rank", "--master_addr", "--master_port", "--rdzv_backend",
            "--rdzv_endpoint", "--rdzv_id", "--standalone", "--ntasks", "--ntasks-per-node", "--gres", "--nodes",
            "--cpus-per-task", "--partition", "--no-sandbox", "--headless"}
COMMAND = re.compile(r"`(vistsne [^`|]+?)`")


def _commands(group: click.Group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, prefix + (name,))


def known_flags() -> set[str]:
    flags = {"--help", "--version"}
    for _, cmd in _commands(cli):
        for p in cmd.params:
            flags |= {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    for p in cli.params:
        flags |= {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    flags |= {o for o in build_parser()._option_string_actions if o.startswith("--")}
    return flags


def _strings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def test_every_flag_named_in_the_package_exists():
    """A message, help text or docstring that names --a-flag names one some command takes."""
    flags = known_flags()
    unknown = []
    for path in sorted((ROOT / "vistsne").rglob("*.py")):
        for line, text in _strings(ast.parse(path.read_text())):
            for flag in FLAG.findall(text):
                if flag not in flags and flag not in EXTERNAL:
                    unknown.append(f"{path.relative_to(ROOT)}:{line}: {flag}")
    assert unknown == []


def test_the_checker_sees_a_made_up_flag():
    assert "--early-exaggeration-iter" in known_flags()
    assert "--no-such-flag" not in known_flags()
    assert FLAG.findall("use --n-iter 250 or more (or a smaller --early-exaggeration-iter)") == [
        "--n-iter", "--early-exaggeration-iter"]


def parse(command: str) -> None:
    """Parse a suggested ``vistsne ...`` command as the CLI would, without running it."""
    argv = expand_greedy(shlex.split(command)[1:])
    ctx = cli.make_context("vistsne", list(argv), resilient_parsing=False)
    while isinstance(ctx.command, click.Group):
        name, sub, rest = ctx.command.resolve_command(ctx, ctx.protected_args + ctx.args)
        if sub.name == "run":  # argparse, the reference's parser
            build_parser().parse_args(rest)
            return
        ctx = sub.make_context(name, rest, parent=ctx)


SUGGESTING = [
    # (args, a part of the message)
    (["embed", "--stage", "prelogits"], "did you mean pre_logits?"),
    (["embed", "--n-iter", "100"], "--early-exaggeration-iter"),
    (["embed", "--perplexity", "40"], "--perplexity 19"),
    (["embed", DEMO_CONFIG, "--checkpoint", "nope.pth"], "vistsne extract"),
    (["render", "--stage", "neck.9"], "--stage"),
    (["embed", "--max-num-class", "9"], "vistsne extract"),
]


@pytest.mark.parametrize("args,needle", SUGGESTING)
def test_suggested_commands_parse(extracted, tmp_path, args, needle):
    path, _ = extracted
    r = CliRunner().invoke(cli, ["-q", *args, "--store", path, "--n-iter", "250", "--perplexity", "2"]
                           if args[0] == "embed" and "--n-iter" not in args and "--perplexity" not in args
                           else ["-q", *args, "--store", path])
    text = r.output
    assert needle in text, text
    suggested = COMMAND.findall(text)
    for command in suggested:
        parse(command.replace("CONFIG", DEMO_CONFIG).replace("KEY", "abc"))
    for flag in FLAG.findall(text):
        assert flag in known_flags(), flag


def test_parse_rejects_what_does_not_exist():
    with pytest.raises(click.UsageError):
        parse("vistsne embed --no-such-flag 1")
    with pytest.raises(SystemExit):
        parse("vistsne run configs/x.py --no-such-flag")
    parse(f"vistsne extract {DEMO_CONFIG} --max-num-class all --class-idx 0 1")
