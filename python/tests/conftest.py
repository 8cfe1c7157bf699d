"""Shared fixtures: the fake gateway, seeded datasets, paths to the committed CAR fixtures."""

from __future__ import annotations

import pathlib
from typing import Dict, Iterator

import pytest

from cairn import Client
from cairn.car import CarReader
from cairn.cid import CID
from dagbuilder import PROFILES, DagBuilder, Profile, gen, make_tar, sample_shards
from fakegw import FakeGateway

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
#: Committed fixtures: Kubo-made CARs of the IPFS gateway-conformance suite, shared with the
#: Rust gateway tests (provenance and licence: fixtures/gateway-conformance/README.md).
FIXTURES = REPO / "fixtures" / "gateway-conformance" / "fixtures"


def fixture_path(name: str) -> pathlib.Path:
    """The committed CAR fixture called `name` (file names are unique among those read here)."""
    found = sorted(FIXTURES.rglob(name))
    if not found:
        raise FileNotFoundError(f"no fixture {name} under {FIXTURES}")
    return found[0]


def load_car(name: str):
    """(roots, {cid: block}) of a committed CAR fixture; every block verified on the way."""
    with open(fixture_path(name), "rb") as f:
        r = CarReader(f)
        return r.roots, dict(iter(r))


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    gw = FakeGateway()
    yield gw
    gw.close()


@pytest.fixture
def client(gateway):
    """A client of the fake gateway (CAR requests, the default)."""
    c = Client(gateway.url)
    yield c
    c.close()


class Dataset:
    """A built DAG: root, the source bytes of every file, and the blocks."""

    def __init__(self, profile: Profile, files: Dict[str, bytes], hamt_dirs=()):
        self.builder = DagBuilder(profile)
        self.files = files
        self.root = self.builder.tree(files, hamt_dirs=hamt_dirs).cid
        self.blocks: Dict[CID, bytes] = self.builder.blocks

    def serve(self, gw: FakeGateway) -> "Dataset":
        for c, b in self.blocks.items():
            gw.add(c, b)
        return self


# File sizes for the tiny profile (1 KiB chunks, 4 links per node), each hitting one path:
TINY_SIZES = {
    "empty.bin": 0,          # one empty raw leaf is the root
    "one.bin": 1,            # a single raw leaf
    "chunk-1.bin": 1023,     # a short single leaf
    "chunk.bin": 1024,       # exactly one full leaf
    "chunk+1.bin": 1025,     # two leaves under one node (a short last leaf)
    "links.bin": 4 * 1024,   # one full node
    "links+1.bin": 4097,     # a second level appears
    "deep.bin": 70_000,      # four levels, a partial node at every level
}


def tiny_files(seed: int = 1) -> Dict[str, bytes]:
    files = {f"files/{n}": gen(seed + i, s) for i, (n, s) in enumerate(TINY_SIZES.items())}
    files["dataset.json"] = b'{"name": "tiny"}\n'
    files["nested/a/b/c.txt"] = b"deep inside\n"
    files["unicode/\u00e9t\u00e9 100%.txt"] = "caf\u00e9\n".encode()
    # enough names that a HAMT has sub-shards (two names in one slot of 256)
    for i in range(600):
        files[f"many/item-{i:04d}.txt"] = f"item {i}\n".encode()
    return files


@pytest.fixture(scope="session")
def tiny_sha256() -> Dataset:
    """Raw leaves, sha2-256, deep trees; ``many/`` is a HAMT."""
    return Dataset(PROFILES["tiny-sha256"], tiny_files(1), hamt_dirs=("many",))


@pytest.fixture(scope="session")
def tiny_blake3_pbleaves() -> Dataset:
    """blake3 with dag-pb leaves (UnixFS File nodes carrying data), Cairn's hash."""
    p = Profile(hash_code=PROFILES["tiny-blake3"].hash_code, chunk=1024, links=4, raw_leaves=False)
    return Dataset(p, tiny_files(2), hamt_dirs=("many",))


class Shards(Dataset):
    """Eight WebDataset tar shards of ten samples under ``train/`` (4 KiB chunks, 8 links)."""

    def __init__(self):
        self.samples = sample_shards(8, 10)
        files = {p: make_tar(s) for p, s in self.samples.items()}
        files["dataset.json"] = b'{"shards": 8}\n'
        super().__init__(Profile(chunk=4096, links=8), files)

    def all_samples(self):
        return [s for p in sorted(self.samples) for s in self.samples[p]]


@pytest.fixture(scope="session")
def shards_ds() -> Shards:
    return Shards()


@pytest.fixture
def shards(shards_ds, gateway) -> Shards:
    return shards_ds.serve(gateway)
