"""WebDataset reading ``cairn://`` shards: registered scheme and the ``pipe:`` form."""

import sys

import pytest

wds = pytest.importorskip("webdataset")

import cairn.wds  # noqa: E402
from cairn import VerificationError  # noqa: E402


def _strip(s):
    return {k: v for k, v in s.items() if k != "__url__"}


def _expected(shards, names):
    return [s for p in names for s in shards.samples[p]]


def test_registered_scheme_with_brace_pattern(shards, gateway):
    cairn.wds.register(gateway=gateway.url)
    url = f"cairn://{shards.root}/train/shard-{{000000..000003}}.tar"
    got = list(wds.WebDataset(url, shardshuffle=False, empty_check=False))
    want = _expected(shards, [f"train/shard-{i:06d}.tar" for i in range(4)])
    assert [_strip(s) for s in got] == want
    assert got[0]["__url__"] == f"cairn://{shards.root}/train/shard-000000.tar"


def test_unregistered_scheme_is_refused_by_webdataset():
    import importlib
    g = importlib.import_module("webdataset.gopen")
    saved = g.gopen_schemes.pop("cairn", None)
    try:
        with pytest.raises(ValueError, match="no gopen handler"):
            g.gopen("cairn://bafy/x.tar")
    finally:
        if saved is not None:
            g.gopen_schemes["cairn"] = saved


def test_pipe_form_needs_no_registration(shards, gateway):
    cmd = f"pipe:{sys.executable} -m cairn --gateway {gateway.url} cat {shards.root}/train/shard-{{000004..000005}}.tar"
    got = list(wds.WebDataset(cmd, shardshuffle=False, empty_check=False))
    assert [_strip(s) for s in got] == _expected(shards, ["train/shard-000004.tar", "train/shard-000005.tar"])


def test_a_lie_stops_webdataset(shards, gateway):
    cairn.wds.register(gateway=gateway.url)
    c = cairn.Client(gateway.url)
    leaf = c.node(c.file_node(f"{shards.root}/train/shard-000006.tar").cid)
    bad = leaf.children[1][0] if leaf.children else leaf.cid
    gateway.corrupt.add(bad.multihash)
    with pytest.raises(VerificationError):
        list(wds.WebDataset(f"cairn://{shards.root}/train/shard-000006.tar", shardshuffle=False, empty_check=False))
