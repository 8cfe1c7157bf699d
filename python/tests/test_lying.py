"""A lying gateway is caught: wrong bytes, wrong blocks, truncated or incomplete CARs, junk.

Each case asserts an exception and, where a read is involved, that no byte was returned
before it (``read`` raises instead of returning a prefix).
"""

import pytest

from cairn import Client, GatewayError, IncompleteResponseError, VerificationError
from cairn.cid import CID, RAW
from cairn.unixfs import FileNode

MODES = ["car", "raw"]


@pytest.fixture
def ds(tiny_sha256, gateway):
    return tiny_sha256.serve(gateway)


def _leaves(ds, c, path):
    """(cid) of every raw leaf of a file, in order."""
    out = []

    def walk(cid):
        n = c.node(cid)
        assert isinstance(n, FileNode)
        if not n.children:
            out.append(cid)
        for child, _ in n.children:
            walk(child)

    walk(c.file_node(f"{ds.root}/{path}").cid)
    return out


def _fresh(gateway, mode, **kw):
    return Client(gateway.url, fetch=mode, **kw)


@pytest.mark.parametrize("mode", MODES)
def test_a_flipped_byte_in_a_leaf_is_caught(ds, gateway, mode):
    leaf = _leaves(ds, _fresh(gateway, "raw"), "files/deep.bin")[30]
    gateway.corrupt.add(leaf.multihash)
    c = _fresh(gateway, mode)
    f = c.open(f"{ds.root}/files/deep.bin")
    with pytest.raises(VerificationError, match=str(leaf)):
        f.read()
    # ranges that avoid the bad leaf still read, and verified
    assert c.cat(f"{ds.root}/files/deep.bin", 0, 1000) == ds.files["files/deep.bin"][:1000]


@pytest.mark.parametrize("mode", MODES)
def test_a_flipped_byte_in_a_directory_is_caught(ds, gateway, mode):
    gateway.corrupt.add(ds.root.multihash)
    with pytest.raises(VerificationError):
        _fresh(gateway, mode).cat(f"{ds.root}/dataset.json")


@pytest.mark.parametrize("mode", MODES)
def test_another_valid_block_in_place_of_the_asked_one_is_caught(ds, gateway, mode):
    leaves = _leaves(ds, _fresh(gateway, "raw"), "files/deep.bin")
    # a real block of the same dataset, self-consistent but not the one named
    gateway.substitute[leaves[3].multihash] = ds.blocks[leaves[4]]
    with pytest.raises(VerificationError):
        _fresh(gateway, mode).cat(f"{ds.root}/files/deep.bin")


@pytest.mark.parametrize("mode", MODES)
def test_a_wrong_file_node_is_caught(ds, gateway, mode):
    c0 = _fresh(gateway, "raw")
    a = c0.file_node(f"{ds.root}/files/links+1.bin").cid
    b = c0.file_node(f"{ds.root}/files/deep.bin").cid
    gateway.substitute[a.multihash] = ds.blocks[b]
    with pytest.raises(VerificationError):
        _fresh(gateway, mode).open(f"{ds.root}/files/links+1.bin").read()


@pytest.mark.parametrize("cut", [10, 57, 200, 1500, 4000])
def test_a_car_cut_mid_stream_is_caught(ds, gateway, cut):
    gateway.car_truncate = cut
    with pytest.raises(VerificationError):
        _fresh(gateway, "car").cat(f"{ds.root}/files/deep.bin")


def test_a_car_whose_connection_breaks_is_caught(ds, gateway):
    gateway.car_truncate = 3000
    gateway.car_break = True  # announces the full length, then hangs up
    with pytest.raises(IncompleteResponseError):
        _fresh(gateway, "car").cat(f"{ds.root}/files/deep.bin")


def test_a_car_that_ends_early_at_a_block_boundary_is_caught(ds, gateway):
    c = _fresh(gateway, "car")
    root = c.file_node(f"{ds.root}/files/deep.bin")
    gateway.car_drop_last = 1
    with pytest.raises(IncompleteResponseError, match="lacks block"):
        c.read_range(root, 0, root.size)


def test_a_car_missing_a_block_in_the_middle_is_caught(ds, gateway):
    leaf = _leaves(ds, _fresh(gateway, "raw"), "files/deep.bin")[10]
    gateway.car_omit.add(leaf.multihash)
    with pytest.raises(IncompleteResponseError, match=str(leaf)):
        _fresh(gateway, "car").cat(f"{ds.root}/files/deep.bin")


def test_a_car_padded_with_junk_is_cut_off(ds, gateway):
    c = _fresh(gateway, "car")
    root = c.file_node(f"{ds.root}/files/deep.bin")
    gateway.car_junk = 40  # 40 MiB of valid but unasked blocks after the right ones
    with pytest.raises(VerificationError, match="exceeds"):
        c.read_range(root, 0, 10)


def test_a_missing_block_is_a_gateway_error_not_data(ds, gateway):
    leaf = _leaves(ds, _fresh(gateway, "raw"), "files/deep.bin")[5]
    del gateway.blocks[leaf.multihash]
    for mode in ("raw", "auto"):
        with pytest.raises((GatewayError, IncompleteResponseError)):
            _fresh(gateway, mode).cat(f"{ds.root}/files/deep.bin")


def test_oversized_raw_answer_is_refused(gateway):
    c = CID.of(b"small")
    gateway.add(c, b"small")
    gateway.substitute[c.multihash] = b"x" * ((4 << 20) + 1)
    with pytest.raises(VerificationError):
        Client(gateway.url, fetch="raw").block(c)


def test_verification_errors_are_not_os_errors():
    # code that retries OSError must not swallow a lie
    assert not issubclass(VerificationError, OSError)
    assert issubclass(GatewayError, OSError)


def test_raw_leaf_with_wrong_bytes_under_its_cid(gateway):
    data = b"a" * 100
    c = CID.of(data, RAW)
    gateway.add(c, b"b" * 100)
    with pytest.raises(VerificationError):
        Client(gateway.url).cat(str(c))
