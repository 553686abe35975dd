"""Label errors found (issue 17): flip 5% of the digits' labels on purpose, then ``vistsne suspects``.

    python benchmarks/suspects.py [--checkpoint work_dirs/demo/digits_resnet18.pth] [--flip 0.05]

The digits test split is written as a class-per-folder tree (the demo's own 32 px images), 5% of
the images (fixed seed) are put into the folder of another class, and the demo checkpoint extracts
the tree. ``vistsne suspects`` on ``pre_logits`` ranks the rows; the precision at k = the number
flipped is reported for the neighbour score alone and for the combined one (neighbours and the
model's own confidence). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_tree(root: Path, flip: float, seed: int) -> set[str]:
    from PIL import Image

    from vistsne.extract.digits import digits_split, to_rgb

    images8, labels = digits_split("test")
    images = to_rgb(images8, 32)
    rng = np.random.default_rng(seed)
    flipped = set(rng.choice(len(labels), size=int(round(flip * len(labels))), replace=False).tolist())
    moved = set()
    for i, (img, lab) in enumerate(zip(images, labels)):
        cls = int(lab)
        if i in flipped:
            cls = int((lab + rng.integers(1, 10)) % 10)
        d = root / str(cls)
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(d / f"{i:04d}.png")
        if i in flipped:
            moved.add(f"{cls}/{i:04d}.png")
    return moved


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=str(ROOT / "work_dirs" / "demo" / "digits_resnet18.pth"))
    p.add_argument("--flip", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = measure(args.checkpoint, args.flip, args.seed)
    print(json.dumps(result))
    return result


def measure(checkpoint: str, flip: float = 0.05, seed: int = 0) -> dict:
    """Precision at k of the neighbour and combined scores on the flipped digits (see the module docs)."""
    from vistsne.embed.suspects import precision_at_k, ranking
    from vistsne.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "digits"
        moved = write_tree(tree, flip, seed)
        store = str(Path(tmp) / "s.zarr")
        vistsne = [sys.executable, "-m", "vistsne", "-q"]
        subprocess.run([*vistsne, "extract", str(ROOT / "configs" / "digits_resnet18.py"), "--checkpoint",
                        checkpoint, "--images", str(tree), "--store", store], check=True, cwd=ROOT)
        out = subprocess.run([*vistsne, "suspects", "--store", store, "--stage", "pre_logits", "--top",
                              str(len(moved)), "--no-sheet", "--json"], cwd=ROOT,
                             capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"vistsne suspects failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
        report = json.loads(out.stdout)
        st = Store(store, mode="r")
        key = report["entry"]
        _, index = st.read_embedding(key, report["embedding"])
        ids = st.dataset_ids(key)[index]
        truth = np.array([p in moved for p in ids])
        disagree = st.read_map_extra(key, report["embedding"], "disagree")
        suspect = st.read_map_extra(key, report["embedding"], "suspect")
        result = {
            "rows": int(len(index)), "flipped": len(moved),
            "precision_at_k_neighbours": precision_at_k(ranking(disagree, disagree), truth),
            "precision_at_k_combined": precision_at_k(ranking(suspect, disagree), truth),
            "uses_predictions": report["uses_predictions"], "target": TARGET,
        }
    result["met"] = min(result["precision_at_k_neighbours"], result["precision_at_k_combined"]) >= TARGET
    return result


TARGET = 0.8


def run(ctx) -> dict:
    """The bench runner's item, on the run's checkpoint (tiny mode: a random init, so the numbers mean nothing)."""
    return {"item": "suspects", "checkpoint": Path(ctx.checkpoint).name, **measure(ctx.checkpoint)}


if __name__ == "__main__":
    main()
