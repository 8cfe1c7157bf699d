"""The ``cairn://`` fsspec filesystem."""

import fsspec
import pytest

from cairn import VerificationError
from cairn.fs import CairnFileSystem


def test_entry_point_registers_the_protocol():
    from fsspec.registry import known_implementations
    assert known_implementations["cairn"]["class"] == "cairn.fs.CairnFileSystem"
    assert fsspec.get_filesystem_class("cairn") is CairnFileSystem


def test_fsspec_open_reads_verified_bytes(shards, gateway):
    url = f"cairn://{shards.root}/train/shard-000003.tar"
    with fsspec.open(url, "rb", gateway=gateway.url) as f:
        assert f.read() == shards.files["train/shard-000003.tar"]
    with fsspec.open(f"cairn://{shards.root}/dataset.json", "r", gateway=gateway.url) as f:
        assert f.read() == '{"shards": 8}\n'


def test_ls_info_cat_file_glob(shards, gateway):
    fs = fsspec.filesystem("cairn", gateway=gateway.url)
    root = str(shards.root)
    names = fs.ls(f"cairn://{root}/train", detail=False)
    assert names == [f"{root}/{p}" for p in sorted(shards.samples)]
    detail = fs.ls(f"{root}/train")
    assert {d["name"]: d["size"] for d in detail} == {f"{root}/{p}": len(shards.files[p]) for p in shards.samples}
    assert all(d["type"] == "file" and d["cid"].startswith("baf") for d in detail)
    info = fs.info(f"cairn://{root}/train")
    assert info["type"] == "directory" and fs.isdir(f"{root}/train")
    src = shards.files["train/shard-000001.tar"]
    p = f"{root}/train/shard-000001.tar"
    assert fs.cat_file(p) == src
    assert fs.cat_file(p, start=100, end=5000) == src[100:5000]
    assert fs.cat_file(p, start=-300) == src[-300:]
    assert fs.size(p) == len(src)
    assert fs.exists(p) and not fs.exists(f"{root}/train/nope.tar")
    assert sorted(fs.glob(f"{root}/train/shard-00000[0-2].tar")) == [f"{root}/train/shard-00000{i}.tar" for i in range(3)]
    assert fs.ukey(p) == fs.info(p)["cid"]


def test_open_with_seek_through_fsspec(shards, gateway):
    fs = fsspec.filesystem("cairn", gateway=gateway.url, fetch="raw")
    src = shards.files["train/shard-000002.tar"]
    with fs.open(f"{shards.root}/train/shard-000002.tar") as f:
        f.seek(1000)
        assert f.read(2000) == src[1000:3000]
        assert f.size == len(src)


def test_gateway_from_the_environment(shards, gateway, monkeypatch):
    monkeypatch.setenv("CAIRN_GATEWAY", gateway.url)
    fs = fsspec.filesystem("cairn", skip_instance_cache=True)
    assert fs.cat_file(f"{shards.root}/dataset.json") == b'{"shards": 8}\n'


def test_lies_surface_through_fsspec(shards, gateway):
    gateway.corrupt.add(shards.root.multihash)
    fs = fsspec.filesystem("cairn", gateway=gateway.url, skip_instance_cache=True)
    with pytest.raises(VerificationError):
        fs.cat_file(f"{shards.root}/dataset.json")


def test_read_only(shards, gateway):
    fs = fsspec.filesystem("cairn", gateway=gateway.url)
    with pytest.raises(NotImplementedError):
        fs.open(f"{shards.root}/x", "wb")
