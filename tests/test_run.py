"""``vistsne run``: the drop-in for MMPretrain's ``tools/visualization/vis_tsne.py``.

Argument parity with the reference's own parser, the output layout, the work
dir rules, ``--vis-stage``, the cache across runs, the wrapper script, the
reference's three documented examples (offline: failing fast; with local
random-weight checkpoints and tiny image trees: producing figures), and errors
surfacing as one line.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vistsne.cli import cli
from vistsne.errors import RenderError, StageError
from vistsne.extract.config import packaged_configs_dir
from vistsne.run import build_parser, default_work_dir, make_out_dir, stage_arrays
from vistsne.store import Store

from .conftest import DEMO_CONFIG, ROOT, write_image_tree

TSNE_DIR = re.compile(r"^tsne_\d{8}_\d{6}(_\d+)?$")
#: A closed port on the loopback: the "download" fails at once, and nothing leaves the machine.
LOOPBACK = "http://127.0.0.1:9/"
#: t-SNE flags that keep the maps quick: the early-exaggeration phase (250 iterations) only.
FAST = ("--n-iter", "250")
#: The demo config on a 12-row subset (3 classes x 4): random init, digits in memory.
DEMO_ROWS = ("--max-num-class", "3", "--max-num-samples", "4")

# The reference's three documented examples (vis_tsne_doc.md), as argv without the checkpoint,
# with the real checkpoint URL (only its file name is used, behind LOOPBACK), the dataset
# folder the config expects, and the stage array the default --vis-stage gives.
EXAMPLES = {
    "resnet18": (["configs/resnet/resnet18_8xb16_cifar10.py"],
                 "https://download.openmmlab.com/mmclassification/v0/resnet/"
                 "resnet18_b16x8_cifar10_20210528-bd6371c8.pth", "data/cifar10", "neck"),
    "resnet50": (["configs/resnet/resnet50_8xb16_cifar10.py"],
                 "https://download.openmmlab.com/mmclassification/v0/resnet/"
                 "resnet50_b16x8_cifar10_20210528-f54bfad9.pth", "data/cifar10", "neck"),
    "mae": (["configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py",
             "--test-cfg", "configs/_base_/datasets/imagenet_bs32.py"],
            "https://download.openmmlab.com/mmselfsup/1.x/mae/mae_vit-base-p16_8xb512-fp16-coslr-800e_in1k/"
            "mae_vit-base-p16_8xb512-coslr-800e-fp16_in1k_20220825-5d81fbc4.pth", "data/imagenet",
            "backbone.11"),
}


def _loopback(name: str) -> str:
    return LOOPBACK + EXAMPLES[name][1].rsplit("/", 1)[1]


# ------------------------------------------------------------------ helpers
def _reference_source() -> Path:
    configs = packaged_configs_dir()
    assert configs is not None, "mmpretrain is not installed"
    path = configs.parent / "tools" / "visualization" / "vis_tsne.py"
    assert path.is_file(), path
    return path


def _reference_parser() -> argparse.ArgumentParser:
    """The reference's own parser: its ``parse_args`` body up to ``parser.parse_args()``.

    The source is read from the installed mmpretrain wheel at test time and
    run without its module-level imports (torch, sklearn), which it does not
    need to build the parser.
    """
    from mmengine.config import DictAction

    path = _reference_source()
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "parse_args")
    body = []
    for stmt in fn.body:
        call = getattr(stmt, "value", None)
        if isinstance(call, ast.Call) and getattr(call.func, "attr", None) == "parse_args":
            break
        body.append(stmt)
    body.append(ast.Return(value=ast.Name(id="parser", ctx=ast.Load())))
    fn.body, fn.name = body, "reference_parser"
    module = ast.fix_missing_locations(ast.Module(body=[fn], type_ignores=[]))
    ns = {"argparse": argparse, "DictAction": DictAction}
    exec(compile(module, str(path), "exec"), ns)  # noqa: S102 - the installed reference's own code
    return ns["reference_parser"]()


def _arguments(parser: argparse.ArgumentParser) -> dict:
    """name (first option string, or dest for positionals) -> action, help left out."""
    return {(a.option_strings[0] if a.option_strings else a.dest): a for a in parser._actions
            if not isinstance(a, argparse._HelpAction)}


def _invoke(*args, quiet=True):
    """``vistsne [-q] ARGS`` in this process (no mmpretrain import per call)."""
    result = CliRunner().invoke(cli, [*(["-q"] if quiet else []), *map(str, args)])
    return result


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _only_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    errors = _error_lines(result)
    assert len(errors) == 1, result.stderr
    return errors[0]


def _tsne_dirs(work_dir: Path) -> list[Path]:
    return sorted(p for p in Path(work_dir).iterdir() if TSNE_DIR.match(p.name)) if Path(work_dir).exists() else []


def _stems(out_dir: Path, suffix: str) -> set[str]:
    return {p.name[: -len(suffix)] for p in out_dir.iterdir() if p.name.endswith(suffix)}


def _run_ok(*args):
    """``vistsne run ARGS`` in this process; returns (summary line, output folder)."""
    result = _invoke("run", *args)
    assert result.exit_code == 0, result.output
    summary = result.stdout.strip().splitlines()[-1]
    m = re.search(r"output (.+)$", summary)
    assert m, summary
    return summary, Path(m.group(1))


# Runs ``python -m vistsne ARGS`` in a fresh process from ``cwd``, then reports on its
# last stdout line whether torch / mmpretrain's models were imported, and exits with
# the command's own exit code.
_PROBE = (
    "import json, sys\n"
    "from vistsne.cli import main\n"
    "code = 0\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code if isinstance(e.code, int) else 1\n"
    "print(json.dumps({'torch': 'torch' in sys.modules, 'models': 'mmpretrain.models' in sys.modules}))\n"
    "sys.exit(code)\n"
)


def _probe(cwd: Path, *args, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _PROBE, *map(str, args)], capture_output=True, text=True,
                          cwd=str(cwd), env=env, timeout=timeout)
    return proc, json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    """A store holding every stage of the demo config's 12-row subset (one inference)."""
    path = str(tmp_path_factory.mktemp("run_store") / "store.zarr")
    result = _invoke("extract", DEMO_CONFIG, "--store", path, *DEMO_ROWS, "--device", "cpu")
    assert result.exit_code == 0, result.output
    return path


# ------------------------------------------------------- 1. argument parity
def test_every_reference_argument_is_accepted_with_its_default():
    ref = _arguments(_reference_parser())
    ours = _arguments(build_parser())
    # the reference's list, as documented (REFERENCE.md / vis_tsne_doc.md)
    assert set(ref) == {"config", "--checkpoint", "--work-dir", "--test-cfg", "--vis-stage", "--class-idx",
                        "--max-num-class", "--max-num-samples", "--cfg-options", "--device", "--legend",
                        "--show", "--n-components", "--perplexity", "--early-exaggeration",
                        "--learning-rate", "--n-iter", "--n-iter-without-progress", "--init"}
    for name, r in ref.items():
        assert name in ours, f"{name} is not accepted by vistsne run"
        o = ours[name]
        assert o.option_strings == r.option_strings and o.dest == r.dest, name
        assert o.default == r.default, (name, o.default, r.default)
        assert o.choices == r.choices, name
        assert o.required == r.required, name
        if name in ("--max-num-class", "--max-num-samples"):  # the reference's ints, and `all` (issue 16)
            assert all(o.type(t) == r.type(t) for t in ("1", "20", "100", "5000")) and o.type("all") is None
        elif r.type is not None:
            assert o.type is r.type, name
        if type(r).__name__ == "DictAction":  # key=value pairs: vistsne parses them the same way
            assert o.nargs == "+" == r.nargs, name
        else:
            assert type(o) is type(r) and o.nargs == r.nargs, name
    # kept on purpose, as in the reference (not openTSNE's current defaults)
    assert ours["--learning-rate"].default == 200.0 and ours["--init"].default == "random"
    assert ours["--vis-stage"].default is None
    # vistsne's own options
    assert ours["--store"].default is None and ours["--images"].default is None
    assert ours["--seed"].default == 0 and ours["--seed"].type is int
    assert ours["--format"].default == "png"


@pytest.mark.parametrize("argv", [
    [*EXAMPLES["resnet18"][0], "--checkpoint", EXAMPLES["resnet18"][1]],
    [*EXAMPLES["resnet50"][0], "--checkpoint", EXAMPLES["resnet50"][1]],
    [EXAMPLES["mae"][0][0], "--checkpoint", EXAMPLES["mae"][1], *EXAMPLES["mae"][0][1:]],
    ["c.py", "--work-dir", "w", "--vis-stage", "backbone", "--class-idx", "1", "3", "--max-num-class", "5",
     "--max-num-samples", "7", "--cfg-options", "model.backbone.out_indices=(2,3)", "a.b=1", "--device", "cpu",
     "--legend", "--show", "--n-components", "3", "--perplexity", "5.5", "--early-exaggeration", "4",
     "--learning-rate", "100", "--n-iter", "500", "--n-iter-without-progress", "50", "--init", "pca"],
], ids=["resnet18-doc", "resnet50-doc", "mae-doc", "every-flag"])
def test_reference_command_lines_parse_to_the_same_values(argv):
    from vistsne.extract.config import _parse_cfg_options

    ref = vars(_reference_parser().parse_args(argv))
    ours = vars(build_parser().parse_args(argv))
    for dest, value in ref.items():
        if dest == "cfg_options":  # the reference's DictAction gives a dict; vistsne parses its list alike
            assert (_parse_cfg_options(ours[dest]) if ours[dest] else None) == (value or None)
        else:
            assert ours[dest] == value, dest


def test_vistsne_options_parse():
    args = build_parser().parse_args(["c.py", "--store", "s.zarr", "--images", "imgs", "--seed", "7",
                                      "--format", "png,svg"])
    assert (args.store, args.images, args.seed, args.format) == ("s.zarr", "imgs", 7, "png,svg")


# ------------------------------------------------------------ 2. work dirs
@pytest.mark.parametrize("config, expected", [
    ("configs/resnet/x.py", "work_dirs/resnet/x"),
    ("./configs/resnet/x.py", "work_dirs/resnet/x"),
    ("configs/mae/benchmarks/y.py", "work_dirs/mae/y"),   # as the reference: the folder under configs/
    ("configs/x.py", "work_dirs/x"),                       # the reference gave work_dirs/x.py/x
    ("x.py", "work_dirs/x"),                               # the reference raised IndexError
    ("my/dir/x.py", "work_dirs/dir/x"),
    ("/abs/path/to/configs/resnet/x.py", "work_dirs/resnet/x"),
    ("/abs/elsewhere/x.py", "work_dirs/elsewhere/x"),      # the reference gave work_dirs/abs/x
    ("/x.py", "work_dirs/x"),
    ("../x.py", "work_dirs/x"),                            # never outside ./work_dirs
    ("mmpretrain::resnet/x.py", "work_dirs/resnet/x"),
    ("mmpretrain::x.py", "work_dirs/x"),
])
def test_default_work_dir(config, expected):
    got = default_work_dir(config, None)
    assert got == os.path.join(".", *expected.split("/"))
    assert default_work_dir(config, "from/config") == "from/config"  # the config's work_dir first


def test_each_run_gets_its_own_tsne_folder(tmp_path):
    a, b = make_out_dir(str(tmp_path / "wd")), make_out_dir(str(tmp_path / "wd"))
    assert a != b and a.is_dir() and b.is_dir()  # same second or not, never shared
    assert TSNE_DIR.match(a.name) and TSNE_DIR.match(b.name) and a.parent == b.parent == tmp_path / "wd"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RenderError, match="cannot create the output folder"):
        make_out_dir(str(tmp_path / "file" / "wd"))


def test_work_dir_priority(tmp_path, demo_store, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = (DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS, *FAST, "--perplexity", "3")
    # --work-dir beats the config's work_dir
    _, out = _run_ok(*common, "--work-dir", "cli_wd", "--cfg-options", "work_dir=cfg_wd")
    assert out.parent == Path("cli_wd") and TSNE_DIR.match(out.name)
    # the config's work_dir (here from --cfg-options, as the reference merges them first)
    _, out = _run_ok(*common, "--cfg-options", "work_dir=cfg_wd")
    assert out.parent == Path("cfg_wd")
    # else by the config's path: configs/digits_resnet18.py -> ./work_dirs/digits_resnet18
    summary, out = _run_ok(*common)
    assert out.parent == Path("work_dirs", "digits_resnet18") and (tmp_path / out / "feat_neck.png").is_file()
    assert "cache hit, no inference" in summary  # none of this changes the features


# ------------------------------------------ 1+2. the run, its layout, its cache
def test_run_layout_and_second_run_without_inference(tmp_path, store_path, monkeypatch):
    wd = tmp_path / "wd"
    base = (DEMO_CONFIG, "--store", store_path, "--work-dir", wd, *DEMO_ROWS, "--device", "cpu")
    summary, out = _run_ok(*base, "--perplexity", "3", *FAST, "--legend")
    assert "inference on 12 new rows" in summary and "1 t-SNE map (1 new)" in summary
    assert out.parent == wd and TSNE_DIR.match(out.name)
    assert {p.name for p in out.iterdir()} == {"tsne.log", "feat_neck.npy", "feat_neck.png"}
    feats = np.load(out / "feat_neck.npy")
    assert feats.shape == (12, 512) and feats.dtype == np.float32 and np.isfinite(feats).all()
    log = (out / "tsne.log").read_text()
    assert "vistsne run" in log and "Save features and results to" in log
    from PIL import Image

    with_legend = Image.open(out / "feat_neck.png").size

    # only t-SNE flags change: the features come from the store, no model is built
    def no_model(*a, **k):
        raise AssertionError("a model was built for a run that only changed t-SNE flags")

    monkeypatch.setattr("vistsne.extract.model.build_model", no_model)
    t_sne = ("--perplexity", "2", "--n-iter", "350", "--early-exaggeration", "8", "--learning-rate", "150",
             "--init", "pca", "--seed", "3", "--n-iter-without-progress", "100")
    summary2, out2 = _run_ok(*base, *t_sne)
    assert "cache hit, no inference" in summary2 and "1 t-SNE map (1 new)" in summary2
    assert out2 != out and out2.parent == wd
    assert "cache hit, no inference" in (out2 / "tsne.log").read_text()
    np.testing.assert_array_equal(np.load(out2 / "feat_neck.npy"), feats)  # same features, reused
    # the same flags again: the map too comes from the store
    summary3, out3 = _run_ok(*base, *t_sne, "--format", "png,svg")
    assert "1 t-SNE map (0 new)" in summary3 and "cache hit, no inference" in summary3
    assert {p.name for p in out3.iterdir()} == {"tsne.log", "feat_neck.npy", "feat_neck.png", "feat_neck.svg"}
    # --legend draws the legend in the PNG (it widens the figure; same map otherwise)
    summary4, out4 = _run_ok(*base, "--perplexity", "3", *FAST)
    assert "(0 new)" in summary4
    assert Image.open(out4 / "feat_neck.png").size[0] < with_legend[0]


def test_vis_stage_as_the_reference(tmp_path, demo_store):
    common = (DEMO_CONFIG, "--store", demo_store, "--work-dir", tmp_path, *DEMO_ROWS, *FAST,
              "--perplexity", "3")
    cases = {None: {"feat_neck"}, "backbone": {"feat_backbone.3"},
             "pre_logits": {"feat_pre_logits"}}
    for stage, expected in cases.items():
        summary, out = _run_ok(*common, *(["--vis-stage", stage] if stage else []))
        assert "cache hit, no inference" in summary, stage
        assert _stems(out, ".npy") == _stems(out, ".png") == expected, stage


def test_vis_stage_backbone_gives_one_file_per_backbone_output(tmp_path, demo_store):
    summary, out = _run_ok(DEMO_CONFIG, "--store", demo_store, "--work-dir", tmp_path, *DEMO_ROWS, *FAST,
                           "--perplexity", "3", "--vis-stage", "backbone", "--device", "cpu",
                           "--cfg-options", "model.backbone.out_indices=(2,3)")
    assert "2 t-SNE maps" in summary
    assert _stems(out, ".npy") == _stems(out, ".png") == {"feat_backbone.2", "feat_backbone.3"}
    assert np.load(out / "feat_backbone.2.npy").shape == (12, 256)
    assert np.load(out / "feat_backbone.3.npy").shape == (12, 512)


def test_stage_arrays():
    classifier = {"backbone.3": 512, "neck": 512, "pre_logits": 512}
    assert stage_arrays(classifier, None) == ["neck"]  # ImageClassifier's default stage
    assert stage_arrays(classifier, "backbone") == ["backbone.3"]
    assert stage_arrays(classifier, "pre_logits") == ["pre_logits"]
    two = {"backbone.2": 256, "backbone.3": 512, "neck.0": 256, "neck.1": 512, "pre_logits": 512}
    assert stage_arrays(two, "backbone") == ["backbone.2", "backbone.3"]
    assert stage_arrays(two, None) == ["neck.0", "neck.1"]
    selfsup = {"backbone.11": 768}  # MAE: extract_feat gives the backbone's outputs
    assert stage_arrays(selfsup, None) == ["backbone.11"]
    with pytest.raises(StageError, match="backbone.11"):
        stage_arrays(selfsup, "neck")


# ------------------------------------------------------- 3. the wrapper script
def test_tools_vis_tsne_runs_vistsne_run(tmp_path, demo_store):
    argv = ["configs/digits_resnet18.py", "--store", demo_store, *DEMO_ROWS, *FAST, "--perplexity", "3"]
    tool = [sys.executable, "tools/visualization/vis_tsne.py"]
    mod = [sys.executable, "-m", "vistsne", "run"]
    env = dict(os.environ)
    outs = []
    for i, cmd in enumerate((tool, mod)):
        wd = tmp_path / f"wd{i}"
        proc = subprocess.run([*cmd, *argv, "--work-dir", str(wd)], capture_output=True, text=True,
                              cwd=str(ROOT), env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        summary = proc.stdout.strip().splitlines()[-1]
        assert summary.startswith("run: 12 samples") and "cache hit, no inference" in summary
        [out] = _tsne_dirs(wd)
        outs.append({p.name for p in out.iterdir()})
    assert outs[0] == outs[1] == {"tsne.log", "feat_neck.npy", "feat_neck.png"}
    # same errors, same exit code
    bad = [*argv, "--work-dir", str(tmp_path / "bad"), "--format", "gif"]
    results = [subprocess.run([*cmd, *bad], capture_output=True, text=True, cwd=str(ROOT), env=env,
                              timeout=120) for cmd in (tool, mod)]
    assert [r.returncode for r in results] == [2, 2]
    assert results[0].stderr.strip().splitlines()[-1] == results[1].stderr.strip().splitlines()[-1]
    assert results[0].stderr.strip().splitlines()[-1].startswith("error: unknown format 'gif'")
    helped = subprocess.run([*tool, "--help"], capture_output=True, text=True, cwd=str(ROOT), env=env,
                            timeout=60)
    assert helped.returncode == 0 and "--vis-stage" in helped.stdout and "--n-iter-without-progress" in helped.stdout


# ---------------------------------------------- 4. the documented examples
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_documented_example_offline_names_the_missing_dataset(name, tmp_path):
    """No data/ under the cwd and the URL unreachable: one line, before any model is built."""
    args, _, data_dir, _ = EXAMPLES[name]
    proc, mods, seconds = _probe(tmp_path, "run", *args, "--checkpoint", _loopback(name))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert data_dir in errors[0] and "missing" in errors[0] and "--images DIR" in errors[0]
    assert not mods["torch"] and not mods["models"]  # failed before the model was built
    assert seconds < 60
    assert not proc.stdout.startswith("run:")


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_documented_example_offline_names_the_checkpoint_url(name, tmp_path):
    """With the data present (--images), the unreachable checkpoint URL is the error."""
    args, _, _, _ = EXAMPLES[name]
    images = write_image_tree(tmp_path / "images", classes=("a", "b"), per_class=2)
    work = tmp_path / "cwd"
    work.mkdir()
    url = _loopback(name)
    proc, mods, seconds = _probe(work, "run", *args, "--checkpoint", url, "--images", images)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    assert f"checkpoint URL {url} could not be fetched" in errors[0]
    assert "download it" in errors[0] and "--checkpoint" in errors[0]
    assert not mods["torch"] and not mods["models"]
    assert seconds < 60


@pytest.mark.parametrize("name", ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow),
                                  pytest.param("mae", marks=pytest.mark.slow)])
def test_documented_example_with_local_checkpoint_and_images(name, tmp_path, monkeypatch):
    """Each example, its checkpoint a local random-weight file of the same architecture."""
    import torch

    from vistsne.extract.config import load_config
    from vistsne.extract.model import build_model

    args, url, _, stage = EXAMPLES[name]
    test_cfg = args[args.index("--test-cfg") + 1] if "--test-cfg" in args else None
    model = build_model(load_config(args[0], test_cfg=test_cfg).cfg, "cpu")
    ckpt = tmp_path / url.rsplit("/", 1)[1]
    torch.save({"state_dict": model.state_dict()}, ckpt)
    dims = {"resnet18": 512, "resnet50": 2048, "mae": 768}[name]
    del model
    if name == "mae":
        # ViT-base on the CPU is slow: 2 classes x 3 images (the pipeline resizes them to 224 px)
        images = write_image_tree(tmp_path / "images", classes=("a", "b"), per_class=3, size=48)
        rows = 6
    else:
        images = write_image_tree(tmp_path / "images")  # 3 classes x 4 images at 32 px
        rows = 12
    # perplexity 30 (the default) needs at least 91 rows (3 * perplexity <= N - 1); fit it to N
    perplexity = str((rows - 1) // 3)
    cwd = tmp_path / "cwd"  # no configs/ nor data/ here: the seed-style paths resolve to mmpretrain's
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    try:
        summary, out = _run_ok(*args, "--checkpoint", ckpt, "--images", images, "--perplexity", perplexity,
                               *FAST, "--legend", "--store", tmp_path / "store.zarr", "--device", "cpu")
    finally:
        ckpt.unlink()  # ViT-base weights are ~450 MB
    assert f"inference on {rows} new rows" in summary
    config_dir, config_name = Path(args[0]).parts[1], Path(args[0]).stem
    assert out.parent == Path("work_dirs", config_dir, config_name) and TSNE_DIR.match(out.name)
    assert {p.name for p in out.iterdir()} == {"tsne.log", f"feat_{stage}.npy", f"feat_{stage}.png"}
    assert np.load(out / f"feat_{stage}.npy").shape == (rows, dims)
    assert (out / f"feat_{stage}.png").stat().st_size > 1000


# ------------------------------------------------------ 5. errors surface
def test_perplexity_too_large_surfaces_unchanged(tmp_path, demo_store):
    wd = tmp_path / "wd"
    run = _invoke("run", DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS, "--work-dir", wd)  # perplexity 30
    line = _only_error(run)
    assert "perplexity 30 is too large for 12 rows" in line and "--perplexity 3" in line
    assert not run.stdout.strip()  # no summary
    embed = _invoke("embed", DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS, "--stage", "neck",
                    "--perplexity", "30")
    assert _only_error(embed) == line  # the embed stage's own message
    assert _tsne_dirs(wd) == []  # a failed run leaves no tsne_<time>/ folder that looks like a result


def test_unknown_format_surfaces_unchanged(tmp_path, demo_store):
    wd = tmp_path / "wd"
    run = _invoke("run", DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS, "--work-dir", wd, "--format", "png,gif")
    line = _only_error(run)
    assert line.startswith("error: unknown format 'gif'")
    render = _invoke("render", DEMO_CONFIG, "--store", demo_store, "--out", tmp_path / "r", "--format", "png,gif")
    assert _only_error(render) == line
    assert not wd.exists()  # refused before anything was written


def test_class_index_out_of_range_surfaces_unchanged(tmp_path, demo_store):
    run = _invoke("run", DEMO_CONFIG, "--store", demo_store, "--max-num-samples", "4", "--work-dir", tmp_path,
                  "--class-idx", "1", "42")
    line = _only_error(run)
    assert "class index 42 is out of range" in line and "10 classes" in line
    extract = _invoke("extract", DEMO_CONFIG, "--store", demo_store, "--max-num-samples", "4",
                      "--class-idx", "1", "--class-idx", "42")
    assert _only_error(extract) == line


@pytest.mark.parametrize("extra, expected", [
    (["--checkpoint", "no/such.pth"], "checkpoint no/such.pth not found"),
    (["--init", "umap"], "unknown --init 'umap'"),
    (["--n-components", "4"], "n-components 4 is out of range"),
    (["--perplexity", "0.5"], "perplexity 0.5 is below 1"),
    (["--images", "no/such/dir"], "--images folder no/such/dir does not exist"),
])
def test_other_errors_are_one_line(tmp_path, demo_store, extra, expected):
    line = _only_error(_invoke("run", DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS, "--work-dir", tmp_path,
                               *extra))
    assert expected in line


def test_unwritable_work_dir_is_one_line(tmp_path, demo_store):
    (tmp_path / "file").write_text("not a folder")
    line = _only_error(_invoke("run", DEMO_CONFIG, "--store", demo_store, *DEMO_ROWS,
                               "--work-dir", tmp_path / "file" / "wd"))
    assert "cannot create the output folder" in line and "--work-dir" in line


def test_bad_reference_arguments_are_refused_as_the_reference_does(tmp_path):
    result = _invoke("run", DEMO_CONFIG, "--vis-stage", "head")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "invalid choice: 'head'" in result.stderr


def test_all_selections_take_every_image(tmp_path, store_path):
    """`--max-num-class all --max-num-samples all` (issue 16): every image of the tree, in run as elsewhere."""
    images = write_image_tree(tmp_path / "images", classes=("a", "b", "c", "d"), per_class=5)
    summary, out = _run_ok(DEMO_CONFIG, "--images", images, "--store", store_path, "--work-dir", tmp_path / "w",
                           "--max-num-class", "all", "--max-num-samples", "all", "--perplexity", "4", *FAST,
                           "--device", "cpu")
    assert np.load(out / "feat_neck.npy").shape[0] == 20  # 4 classes x 5, none left out
    st = Store(store_path, mode="r")
    (e,) = [e for k in st.entry_keys() for e in st.embeddings(k)]
    assert e.attrs["selection"] == {"class_idx": None, "max_num_class": None, "max_num_samples": None}
    bad = _invoke("run", DEMO_CONFIG, "--images", images, "--store", store_path, "--max-num-class", "some")
    assert bad.exit_code != 0 and "--max-num-class 'some' is not a number" in bad.output
    assert "Traceback" not in bad.output
