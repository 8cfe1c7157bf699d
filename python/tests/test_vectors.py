"""The test importer (dagbuilder.py) against the reference importer's CIDs.

``fixtures/vectors.json`` holds root CIDs that ``ipfs-unixfs-importer`` gave for seeded inputs
(``fixtures/README.md``). Rebuilding them here shows the DAGs the reading tests are served are
the real thing: raw leaves, balanced trees, flat and HAMT directories, sha2-256 and blake3.
Inputs above 2 MiB are left to the Rust suite (``core/tests/vectors.rs``): a pure-Python
generator is slow at that size and they exercise nothing new here.
"""

import json

import pytest

from conftest import REPO
from dagbuilder import PROFILES, DagBuilder, gen

MAX_BYTES = 2 << 20
VECTORS = json.loads((REPO / "fixtures" / "vectors.json").read_text())["vectors"]


def _expand(files):
    out = []
    for f in files:
        if f[0] != "range":
            out.append(f)
            continue
        _, prefix, suffix, count, mod, add, seed_add = f
        out.extend([f"{prefix}{i}{suffix}", i % mod + add, i + seed_add] for i in range(count))
    return out


def _cases():
    for v in VECTORS:
        if v["kind"] == "file" and v["size"] <= MAX_BYTES:
            yield pytest.param(v, id=f"{v['profile']}:{v['what']}")
        elif v["kind"] == "dir":
            files = _expand(v["files"])
            total = sum(max(0, s) for _, s, _ in files)
            if total <= MAX_BYTES and len(files) <= 20_000:
                yield pytest.param(v, id=f"{v['profile']}:{v['what']}")


@pytest.mark.parametrize("v", list(_cases()))
def test_builder_matches_reference_importer(v):
    b = DagBuilder(PROFILES[v["profile"]])
    if v["kind"] == "file":
        root = b.file(gen(v["seed"], v["size"]))
    else:
        files = {}
        for path, size, seed in _expand(v["files"]):
            files[path] = None if size < 0 else gen(seed, size)
        root = b.tree(files)
    assert str(root.cid) == v["cid"]


def test_enough_vectors_are_checked():
    # every profile's small files, flat/nested dirs and the tiny profiles' HAMTs
    assert len(list(_cases())) >= 30
