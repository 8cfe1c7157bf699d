"""Kubo-made DAGs (fixtures/gateway-conformance/, from ipfs/gateway-conformance) read through the fake gateway."""

import pytest

from cairn import Client, GatewayError, IncompleteResponseError, NotFoundError
from cairn.unixfs import FileNode, decode
from conftest import load_car
from fakegw import FakeGateway

# The recipe's $TEXT (two paragraphs), added with `echo -n $TEXT` and chunked at 256 bytes
# (upstream fixtures/path_gateway_unixfs/README.md): known bytes from outside the DAG.
LOREM = "\n\n".join(p.strip() for p in """
Lorem ipsum dolor sit amet, consectetur adipiscing elit. Nunc non imperdiet nunc. Proin ac quam ut nibh eleifend aliquet. Vestibulum ante ipsum primis in faucibus orci luctus et ultrices posuere cubilia curae; Sed ligula dolor, imperdiet sagittis arcu et, semper tincidunt urna. Donec et tempor augue, quis sollicitudin metus. Curabitur semper ullamcorper aliquet. Mauris hendrerit sodales lectus eget fermentum. Proin sollicitudin vestibulum commodo. Vivamus nec lectus eu augue aliquet dignissim nec condimentum justo. In hac habitasse platea dictumst. Mauris vel sem neque.

Vivamus finibus, enim at lacinia semper, arcu erat gravida lacus, sit amet gravida magna orci sit amet est. Sed non leo lacus. Nullam viverra ipsum a tincidunt dapibus. Nulla pulvinar ligula sit amet ante ultrices tempus. Proin purus urna, semper sed lobortis quis, gravida vitae ipsum. Aliquam mi urna, pulvinar eu bibendum quis, convallis ac dolor. In gravida justo sed risus ullamcorper, vitae luctus massa hendrerit. Pellentesque habitant amet.
""".strip().split("\n\n")).encode()

MODES = ["car", "raw"]


def serve(gw: FakeGateway, name: str):
    roots, blocks = load_car(name)
    for c, b in blocks.items():
        gw.add(c, b)
    return roots[0], blocks


def concat(blocks, cid) -> bytes:
    """A file's bytes straight from the fixture's blocks (no client involved)."""
    n = decode(cid, blocks[cid])
    assert isinstance(n, FileNode)
    return n.data + b"".join(concat(blocks, c) for c, _ in n.children)


@pytest.mark.parametrize("mode", MODES)
def test_dir_with_files(gateway, mode):
    root, _ = serve(gateway, "dir-with-files.car")
    c = Client(gateway.url, fetch=mode)
    assert c.cat(f"{root}/hello.txt") == b"hello world\n"
    assert c.cat(f"{root}/ascii.txt") == b"hello application/vnd.ipld.car\n"
    assert c.cat(f"{root}/multiblock.txt") == LOREM
    with c.open(f"{root}/multiblock.txt") as f:
        for a, b in [(0, 1), (250, 260), (255, 513), (1000, 2000), (512, 512)]:
            f.seek(a)
            assert f.read(b - a) == LOREM[a:b]
    sizes = {s.name: (s.type, s.size) for s in c.ls(str(root))}
    assert sizes == {"ascii-copy.txt": ("file", 31), "ascii.txt": ("file", 31),
                     "hello.txt": ("file", 12), "multiblock.txt": ("file", 1026)}


def test_subdir_with_mixed_block_files_resolves_with_one_car(gateway):
    root, _ = serve(gateway, "subdir-with-mixed-block-files.car")
    c = Client(gateway.url)
    with c.open(f"{root}/subdir/multiblock.txt") as f:
        assert f.read() == LOREM
    path, query, _ = gateway.requests("car")[0]
    assert path == f"/ipfs/{root}/subdir/multiblock.txt" and query == {"format": "car", "dag-scope": "block"}
    assert gateway.requests("raw") == []


def test_percent_sign_and_non_ascii_in_a_name(gateway):
    root, _ = serve(gateway, "dir-with-percent-encoded-filename.car")
    name = "Portugal%2C+Espa\u00f1a=Peninsula Ib\u00e9rica.txt"
    assert Client(gateway.url).cat(f"{root}/{name}") == b"hello from a percent encoded filename\n"
    path, _, _ = gateway.requests("car")[0]
    assert "Portugal%252C%2BEspa%C3%B1a%3DPeninsula%20Ib%C3%A9rica.txt" in path


@pytest.mark.parametrize("mode", MODES)
def test_cidv0_dag_pb_leaf_and_symlink(gateway, mode):
    root, _ = serve(gateway, "symlink.car")
    assert str(root).startswith("Qm")
    c = Client(gateway.url, fetch=mode)
    assert c.cat(f"{root}/foo") == b"content\n"  # a dag-pb leaf carrying its data
    assert c.stat(f"{root}/bar").type == "symlink"
    with pytest.raises(NotFoundError, match="symbolic link"):
        c.open(f"{root}/bar")


def test_raw_block_fixture(gateway):
    root, _ = serve(gateway, "gateway-raw-block.car")
    assert Client(gateway.url).cat(f"{root}/dir/ascii.txt") == b"hello application/vnd.ipld.raw\n"


@pytest.mark.parametrize("mode", MODES)
def test_kubo_hamt_every_name_found_by_its_hash(gateway, mode):
    root, blocks = serve(gateway, "single-layer-hamt-with-multi-block-files.car")
    c = Client(gateway.url, fetch=mode)
    entries = c.list(str(root))
    names = [e.name for e in entries]
    assert "685.txt" in names and "1.txt" in names and len(names) == len(set(names))
    for e in entries:
        # resolve() hashes the name and walks the slots; it must land on the listed CID
        assert c.resolve(f"{root}/{e.name}").cid == e.cid
        assert c.cat(f"{root}/{e.name}") == concat(blocks, e.cid)
    with pytest.raises(NotFoundError):
        c.resolve(f"{root}/not-there.txt")


def test_kubo_hamt_lookup_fetches_only_its_path(gateway):
    root, _ = serve(gateway, "single-layer-hamt-with-multi-block-files.car")
    c = Client(gateway.url, fetch="raw")
    c.resolve(f"{root}/685.txt")
    # the root shard, at most one sub-shard, the file's root: never the whole HAMT
    assert len(gateway.requests("raw")) <= 3


def test_file_with_a_missing_middle_block(gateway):
    root, blocks = serve(gateway, "file-3k-and-3-blocks-missing-block.car")
    assert len(blocks) == 3  # root + first and last leaf; the middle one was removed upstream
    for mode in ("car", "raw", "auto"):
        c = Client(gateway.url, fetch=mode)
        f = c.open(str(root))
        assert f.size == 3072
        first = c.cat(str(root), 0, 1000)
        last = c.cat(str(root), 2200, 3072)
        assert len(first) == 1000 and len(last) == 872
        with pytest.raises((GatewayError, IncompleteResponseError)):
            c.cat(str(root), 1000, 1100)
        f.seek(0)
        with pytest.raises((GatewayError, IncompleteResponseError)):
            f.read()
