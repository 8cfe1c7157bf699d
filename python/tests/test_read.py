"""Reading through the fake gateway: whole files, ranges, seeks, paths, fetch modes, bounds."""

import io
import random

import pytest

import cairn
from cairn import Client
from cairn.errors import IsADirectory, NotADirectory, NotFoundError
from conftest import TINY_SIZES

MODES = ["car", "raw", "auto"]


@pytest.fixture(params=["tiny_sha256", "tiny_blake3_pbleaves"])
def ds(request, gateway):
    return request.getfixturevalue(request.param).serve(gateway)


@pytest.mark.parametrize("mode", MODES)
def test_every_file_reads_back_byte_identical(ds, gateway, mode):
    c = Client(gateway.url, fetch=mode)
    for name in TINY_SIZES:
        path = f"files/{name}"
        with c.open(f"{ds.root}/{path}") as f:
            assert f.size == len(ds.files[path])
            assert f.read() == ds.files[path]
            assert f.read() == b""
    assert c.cat(f"{ds.root}/dataset.json") == ds.files["dataset.json"]


@pytest.mark.parametrize("mode", MODES)
def test_random_ranges_match_the_source(ds, gateway, mode):
    c = Client(gateway.url, fetch=mode)
    rng = random.Random(42)
    src = ds.files["files/deep.bin"]
    f = c.open(f"{ds.root}/files/deep.bin")
    for _ in range(60):
        a = rng.randrange(0, len(src) + 10)
        n = rng.choice([0, 1, 7, 1023, 1024, 1025, 5000, 30000])
        f.seek(a)
        assert f.tell() == a
        assert f.read(n) == src[a : a + n]
        b = a + n
        assert c.cat(f"{ds.root}/files/deep.bin", a, b) == src[a:b]
    assert c.cat(f"{ds.root}/files/deep.bin", -100) == src[-100:]


def test_sequential_small_reads_and_readinto(ds, gateway):
    src = ds.files["files/deep.bin"]
    with cairn.open(f"{ds.root}/files/deep.bin", gateway=gateway.url) as f:
        assert f.readable() and f.seekable()
        out = bytearray()
        while chunk := f.read(777):
            out += chunk
        assert out == src
        f.seek(-10, io.SEEK_END)
        buf = bytearray(20)
        n = f.readinto(buf)
        assert buf[:n] == src[-10:]
        f.seek(5)
        f.seek(10, io.SEEK_CUR)
        assert f.read(3) == src[15:18]


def test_a_range_fetches_only_the_leaves_it_needs(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    c = Client(gateway.url, fetch="raw")
    root = c.file_node(f"{ds.root}/files/deep.bin")
    before = len(gateway.requests("raw"))
    data = c.read_range(root, 30_000, 30_010)  # inside one leaf
    assert data == ds.files["files/deep.bin"][30_000:30_010]
    got = gateway.requests("raw")[before:]
    # the path down: one node per level below the root (3) and the leaf
    assert len(got) <= 4, got


def test_car_reads_ask_for_exactly_the_range(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    c = Client(gateway.url, fetch="car")
    root = c.file_node(f"{ds.root}/files/deep.bin")
    assert c.read_range(root, 1000, 3000) == ds.files["files/deep.bin"][1000:3000]
    path, query, accept = gateway.requests("car")[-1]
    assert path == f"/ipfs/{root.cid}"
    assert query == {"format": "car", "dag-scope": "entity", "entity-bytes": "1000:2999"}
    assert accept.startswith("application/vnd.ipld.car")


def test_paths_through_directories_and_a_hamt(ds, gateway):
    c = Client(gateway.url)
    assert c.cat(f"{ds.root}/nested/a/b/c.txt") == b"deep inside\n"
    assert c.cat(f"/ipfs/{ds.root}/unicode/\u00e9t\u00e9 100%.txt") == "caf\u00e9\n".encode()
    for i in (0, 1, 77, 599):
        assert c.cat(f"{ds.root}/many/item-{i:04d}.txt") == f"item {i}\n".encode()
    names = [e.name for e in c.list(f"{ds.root}/many")]
    assert names == sorted(f"item-{i:04d}.txt" for i in range(600))
    st = c.stat(f"{ds.root}/files/deep.bin")
    assert (st.type, st.size, st.name) == ("file", 70_000, "deep.bin")
    assert c.stat(str(ds.root)).type == "directory"
    listing = {s.name: s for s in c.ls(f"{ds.root}/files")}
    assert {n: s.size for n, s in listing.items()} == TINY_SIZES


def test_hamt_listing_and_lookup_work_block_by_block_too(ds, gateway):
    c = Client(gateway.url, fetch="raw")
    assert len(c.list(f"{ds.root}/many")) == 600
    assert c.cat(f"{ds.root}/many/item-0123.txt") == b"item 123\n"


def test_path_errors(ds, gateway):
    c = Client(gateway.url)
    with pytest.raises(NotFoundError):
        c.open(f"{ds.root}/files/nope.bin")
    with pytest.raises(NotFoundError):
        c.open(f"{ds.root}/many/item-9999.txt")  # verified absent from the HAMT
    with pytest.raises(IsADirectory):
        c.open(f"{ds.root}/files")
    with pytest.raises(NotADirectory):
        c.open(f"{ds.root}/dataset.json/x")
    with pytest.raises(NotFoundError):
        c.open(f"{ds.root}/files/../dataset.json")
    with pytest.raises(FileNotFoundError):  # the built-in types, for fsspec and friends
        c.open(f"{ds.root}/missing")


def test_refused_cars_fall_back_to_raw_blocks(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    gateway.no_car = True
    c = Client(gateway.url)  # auto
    assert c.cat(f"{ds.root}/files/deep.bin") == ds.files["files/deep.bin"]
    assert len(gateway.requests("car")) == 1  # asked once, then remembered
    with pytest.raises(cairn.GatewayError):
        Client(gateway.url, fetch="car").cat(f"{ds.root}/files/deep.bin")


def test_the_block_cache_stays_within_its_limit(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    c = Client(gateway.url, cache_bytes=8 << 10, fetch="raw")
    with c.open(f"{ds.root}/files/deep.bin") as f:
        while f.read(1000):
            assert c.blocks.size <= 8 << 10
            assert c.nodes.size <= 2 << 10
    assert f.closed


def test_reads_after_close_fail(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    f = cairn.open(f"{ds.root}/dataset.json", gateway=gateway.url)
    f.close()
    with pytest.raises(ValueError):
        f.read()


def test_single_block_raw_file_by_bare_cid(gateway):
    from cairn.cid import CID
    data = b"just one raw block"
    c = CID.of(data)
    gateway.add(c, data)
    with cairn.open(str(c), gateway=gateway.url) as f:
        assert f.size == len(data) and f.cid == c
        f.seek(5)
        assert f.read() == data[5:]


def test_gateway_from_environment(tiny_sha256, gateway, monkeypatch):
    ds = tiny_sha256.serve(gateway)
    monkeypatch.setenv("CAIRN_GATEWAY", gateway.url)
    assert cairn.cat(f"{ds.root}/dataset.json") == ds.files["dataset.json"]
    assert Client().gateway.url == gateway.url


def test_unreachable_gateway_is_a_gateway_error():
    c = Client("http://127.0.0.1:9", retries=0, timeout=2)
    with pytest.raises(cairn.GatewayError) as e:
        c.cat("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    assert isinstance(e.value, OSError)


def test_a_path_car_starts_at_the_first_block_not_cached(tiny_sha256, gateway):
    ds = tiny_sha256.serve(gateway)
    c = Client(gateway.url)
    c.node(ds.root)  # the root is known already (fetched raw, cached)
    nested = c._lookup(c.node(ds.root), "nested", "", c.node)
    assert c.cat(f"{ds.root}/nested/a/b/c.txt") == b"deep inside\n"
    path, query, _ = gateway.requests("car")[0]
    assert path == f"/ipfs/{nested}/a/b/c.txt" and query["dag-scope"] == "block"
