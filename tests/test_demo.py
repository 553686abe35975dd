"""The built-in demo, end to end: it must show what the tool is for."""

from __future__ import annotations

import pytest
from PIL import Image

from vistsne import demo
from vistsne.store import Store

from .conftest import ROOT


@pytest.mark.slow
def test_demo_separates_the_digits(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    ckpt = demo.train_checkpoint(out=str(tmp_path / "demo.pth"), show_progress=False)
    store = Store(str(tmp_path / "store.zarr"))
    res = demo.run_demo(store, str(tmp_path / "figures"), checkpoint=str(ckpt), progress=False)
    assert res.accuracy["trained"] >= 0.9, res.accuracy
    assert res.accuracy["untrained"] < res.accuracy["trained"] - 0.2, res.accuracy
    w, h = Image.open(res.comparison).size
    assert w > h  # two panels side by side
    assert {p.suffix for p in res.figures} >= {".png", ".html"}
    # the second run is all cache hits
    again = demo.run_demo(store, str(tmp_path / "figures"), checkpoint=str(ckpt), progress=False)
    assert again.accuracy == res.accuracy and again.entries == res.entries
