"""``vistsne run`` takes the learning rate in scikit-learn's units and stores 4x that for openTSNE."""

from __future__ import annotations

import json

import pytest

from .conftest import DEMO_CONFIG, run_cli


def _stored_learning_rates(store: str) -> list[float]:
    (entry,) = json.loads(run_cli("store", "ls", "--json", "--store", store).stdout)
    info = json.loads(run_cli("store", "info", entry["key"], "--json", "--store", store).stdout)
    return sorted(e["params"]["learning_rate"] for e in info["embeddings"])


@pytest.mark.slow
def test_run_learning_rate_is_passed_to_opentsne_times_four(tmp_path):
    store = str(tmp_path / "store.zarr")
    work = tmp_path / "work"
    base = ("-q", "run", DEMO_CONFIG, "--max-num-class", "2", "--max-num-samples", "10", "--n-iter", "250",
            "--perplexity", "5", "--store", store, "--work-dir", work)
    run_cli(*base, "--learning-rate", "50")
    assert _stored_learning_rates(store) == [200.0]
    (out_dir,) = work.glob("tsne_*")
    log = (out_dir / "tsne.log").read_text()
    assert "learning rate 50 (scikit-learn units, as vis_tsne.py) = 200 in openTSNE units" in log
    # the reference's default, 200, is 800 in openTSNE's units (a second map of the same rows)
    run_cli(*base)
    assert _stored_learning_rates(store) == [200.0, 800.0]
