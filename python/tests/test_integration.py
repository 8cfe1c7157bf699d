"""Against a real gateway (``cairn serve`` / a devnet node): run only when told where.

    CAIRN_GATEWAY_TEST_URL=http://127.0.0.1:8080 CAIRN_TEST_CID=bafy... ./scripts/test-python.sh -m integration

Optional: ``CAIRN_TEST_FILE`` (a file path below the CID; default: the first file found),
``CAIRN_TEST_SHARDS`` (a shard pattern; default ``train/shard-*.tar`` when ``train/`` exists,
as in ``cairn bench sample-dataset``).
"""

import json
import os
import random
import urllib.request

import pytest

import cairn
from cairn import Client
from cairn.car import CarReader
from cairn.cid import CID

URL = os.environ.get("CAIRN_GATEWAY_TEST_URL")
ROOT = os.environ.get("CAIRN_TEST_CID")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (URL and ROOT), reason="set CAIRN_GATEWAY_TEST_URL and CAIRN_TEST_CID"),
]


def _first_file(c: Client, path: str, depth: int = 0):
    for st in c.ls(path):
        p = f"{path}/{st.name}"
        if st.type == "file" and st.size > 0:
            return p
        if st.type == "directory" and depth < 4:
            found = _first_file(c, p, depth + 1)
            if found:
                return found
    return None


@pytest.fixture(scope="module")
def file_path():
    c = Client(URL)
    p = os.environ.get("CAIRN_TEST_FILE")
    p = f"{ROOT}/{p.strip('/')}" if p else _first_file(c, ROOT)
    if p is None:
        pytest.skip("no non-empty file under CAIRN_TEST_CID")
    return p


def test_root_lists(file_path):
    st = Client(URL).stat(ROOT)
    assert st.type in ("directory", "file")


@pytest.mark.parametrize("mode", ["car", "raw"])
def test_file_reads_the_same_in_every_mode(file_path, mode):
    ref = Client(URL, fetch="raw").cat(file_path)
    c = Client(URL, fetch=mode)
    assert c.cat(file_path) == ref
    rng = random.Random(1)
    with c.open(file_path) as f:
        for _ in range(20):
            a = rng.randrange(0, len(ref))
            n = rng.choice([1, 1000, 1 << 20, 3 << 20])
            f.seek(a)
            assert f.read(n) == ref[a : a + n]


def test_path_gateway_serves_the_same_bytes_and_ranges(file_path):
    ref = Client(URL).cat(file_path)
    root, _, rest = file_path.partition("/")
    url = f"{URL.rstrip('/')}/ipfs/{root}/{urllib.request.quote(rest)}"
    with urllib.request.urlopen(url, timeout=60) as r:
        assert r.read() == ref
    a, b = len(ref) // 3, len(ref) // 3 + 100
    req = urllib.request.Request(url, headers={"Range": f"bytes={a}-{b - 1}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 206 and r.read() == ref[a:b]


def test_trustless_response_types():
    cid = CID.parse(ROOT)
    base = f"{URL.rstrip('/')}/ipfs/{ROOT}"
    req = urllib.request.Request(base + "?format=raw", headers={"Accept": "application/vnd.ipld.raw"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers.get_content_type() == "application/vnd.ipld.raw"
        cid.verify(r.read())
    req = urllib.request.Request(base + "?format=car&dag-scope=block", headers={"Accept": "application/vnd.ipld.car"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers.get_content_type() == "application/vnd.ipld.car"
        blocks = dict(iter(CarReader(r)))
        assert cid in blocks


def _pattern():
    p = os.environ.get("CAIRN_TEST_SHARDS")
    if p:
        return p
    try:
        Client(URL).list(f"{ROOT}/train")
        return "train/shard-*.tar"
    except cairn.CairnError:
        return None


def _expected_samples():
    """Samples in the dataset by its ``dataset.json`` (``cairn bench sample-dataset`` writes
    ``shards`` and ``samples_per_shard``), or None when it says nothing of them."""
    try:
        meta = json.loads(Client(URL).cat(f"{ROOT}/dataset.json"))
        return int(meta["shards"]) * int(meta["samples_per_shard"])
    except (cairn.CairnError, ValueError, KeyError, TypeError):
        return None


def test_shard_dataset_and_webdataset(monkeypatch):
    pattern = _pattern()
    if pattern is None:
        pytest.skip("no shards (set CAIRN_TEST_SHARDS)")
    import cairn.torch as ct
    ds = ct.ShardDataset(ROOT, pattern, seed=0, gateway=URL, register_plan=True)
    if os.environ.get("CAIRN_API"):
        # a node's API: the epoch's order is registered with it
        assert ds.register_plan(), "the node refused the access plan"
    keys = []
    for w in range(2):
        monkeypatch.setattr(ct, "_worker_info", lambda w=w: (w, 2))
        keys += [(s["__url__"], s["__key__"]) for s in ds]
    assert keys and len(keys) == len(set(keys))
    want = _expected_samples()
    if want is not None:
        assert len(keys) == want, "every sample of every shard, once"
    wds = pytest.importorskip("webdataset")
    import cairn.wds
    cairn.wds.register(gateway=URL)
    first = ds.shards()[0].path
    n = sum(1 for _ in wds.WebDataset(f"cairn://{ROOT}/{first}", shardshuffle=False, empty_check=False))
    assert n == sum(1 for u, _ in keys if u.endswith("/" + first))
    # every shard through WebDataset: the same samples as ShardDataset's, each once
    urls = [f"cairn://{ROOT}/{sh.path}" for sh in ds.shards()]
    seen = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False, empty_check=False)]
    assert sorted(seen) == sorted(k for _, k in keys)
