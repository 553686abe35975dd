"""Stage by stage, for real (issue 18): every backbone stage in one pass, identical stages stored once."""

from __future__ import annotations

import numpy as np
import pytest

from vistsne.extract import ExtractParams, extract_entry
from vistsne.store import Store

from .conftest import DEMO_CONFIG

SMALL = dict(max_num_class=2, max_num_samples=5, device="cpu")


@pytest.mark.slow
def test_backbone_stages_all_equals_separate_extractions(tmp_path):
    st = Store(str(tmp_path / "s.zarr"))
    every = extract_entry(st, ExtractParams(config=DEMO_CONFIG, backbone_stages="all", **SMALL), progress=False)
    assert [s for s in every.stages if s.startswith("backbone")] == [f"backbone.{i}" for i in range(4)]
    assert every.stages["backbone.0"] == 64 and every.stages["backbone.3"] == 512
    for i in range(4):
        alone = extract_entry(st, ExtractParams(config=DEMO_CONFIG, backbone_stages=(i,), **SMALL), progress=False)
        assert alone.entry != every.entry and f"backbone.{i}" in alone.stages
        a = st.read_rows(every.entry, every.indices, f"backbone.{i}")
        b = st.read_rows(alone.entry, alone.indices, f"backbone.{i}")
        np.testing.assert_array_equal(a, b)
    # the default (the config's out_indices) is a third entry, whose key did not change
    default = extract_entry(st, ExtractParams(config=DEMO_CONFIG, **SMALL), progress=False)
    assert list(default.stages) == ["backbone.3", "neck", "pre_logits"]
    np.testing.assert_array_equal(st.read_rows(default.entry, default.indices, "backbone.3"),
                                  st.read_rows(every.entry, every.indices, "backbone.3"))


def test_backbone_stages_out_of_range_is_one_line(tmp_path):
    from vistsne.errors import ParamError

    with pytest.raises(ParamError, match=r"--backbone-stages 7 is out of range: ResNet_CIFAR has 4 stages \(0 to 3\)"):
        extract_entry(Store(str(tmp_path / "s.zarr")),
                      ExtractParams(config=DEMO_CONFIG, backbone_stages=(0, 7), **SMALL), progress=False)


def test_identical_stages_are_stored_once_and_listed_under_every_name(tmp_path):
    st = Store(str(tmp_path / "s.zarr"))
    res = extract_entry(st, ExtractParams(config=DEMO_CONFIG, **SMALL), progress=False)
    meta = st.entry_meta(res.entry)
    assert meta["aliases"] == {"neck": "backbone.3", "pre_logits": "backbone.3"}
    (part,) = st.parts(res.entry)
    assert list(part.stages) == ["backbone.3"]  # stored once
    assert set(res.stages) == {"backbone.3", "neck", "pre_logits"}  # listed under every name
    a = st.read_rows(res.entry, res.indices, "pre_logits")
    np.testing.assert_array_equal(a, st.read_rows(res.entry, res.indices, "backbone.3"))
    assert st.present(res.entry, ["neck"]) == set(res.indices.tolist())
    # embedded once, shown under all names
    from vistsne.embed import EmbedParams
    from vistsne.embed.entry import embed_entry
    from vistsne.selection import RowSelection

    recs = embed_entry(st, res.entry, ["all"], [EmbedParams(perplexity=2, n_iter=250)], RowSelection(None, 2, 5),
                       progress=False)
    assert [r.stage for r in recs] == ["backbone.3"]
    assert recs[0].attrs["stage_names"] == ["backbone.3", "neck", "pre_logits"]
    again = embed_entry(st, res.entry, ["neck"], [EmbedParams(perplexity=2, n_iter=250)], RowSelection(None, 2, 5),
                        progress=False)
    assert again[0].cached and again[0].key == recs[0].key


def test_stages_that_differ_are_never_merged():
    import torch

    from vistsne.extract.model import identical_stages

    base = torch.randn(6, 8)
    out = {"backbone.2": torch.randn(6, 8), "backbone.3": base, "neck": base.clone(),
           "pre_logits": base + 1e-3 * base.abs().max()}
    assert identical_stages(out, ["backbone.2", "backbone.3", "neck", "pre_logits"]) == {"neck": "backbone.3"}
    # a known alias that stops holding is dropped
    out["neck"] = base * 1.01
    assert identical_stages(out, [], {"neck": "backbone.3"}) == {}
