"""dag-pb, UnixFS Data, murmur3 / HAMT slots, and CARv1."""

import io

import pytest

from cairn.car import CarReader, write_car
from cairn.cid import CID, DAG_PB, RAW, encode_varint
from cairn.dagpb import PBLink, PBNode, decode_node, encode_node
from cairn.errors import DecodeError, IncompleteResponseError, VerificationError
from cairn.unixfs import (DataType, Directory, FileNode, HamtShard, Symlink, UnixFSData, decode,
                          decode_data, encode_data, hamt_index, murmur3_x64_128)

LEAF = CID.of(b"leaf")


def test_empty_directory_block_is_the_published_one():
    block = encode_node(PBNode([], encode_data(UnixFSData(DataType.DIRECTORY))))
    assert block == bytes.fromhex("0a020801")
    assert str(CID.of(block, DAG_PB)) == "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


def test_dag_pb_round_trip():
    node = PBNode([PBLink(LEAF, "a", 4), PBLink(LEAF, None, None), PBLink(LEAF, "", 0)], b"\x08\x02")
    assert decode_node(encode_node(node)) == node


@pytest.mark.parametrize("block, why", [
    (bytes.fromhex("0a020801") + bytes.fromhex("1200"), "link after data"),
    (bytes.fromhex("0a0208010a020801"), "duplicate data"),
    (bytes.fromhex("1a00"), "unknown node field"),
    (bytes.fromhex("1202" + "1200"), "link without hash"),
    (b"\x12\x05" + b"\x12\x01a" + b"\x0a\x00", "link fields out of order"),
    (b"\x12\x04\x0a\x02\x01\x55", "link hash that is no CID"),
    (b"\x12\x40", "length past the end"),
    (b"\x0a", "truncated"),
])
def test_dag_pb_decoding_is_strict(block, why):
    with pytest.raises(DecodeError):
        decode_node(block)


def test_unixfs_data_round_trip_and_packed_blocksizes():
    d = UnixFSData(DataType.FILE, data=b"xy", filesize=10, blocksizes=[3, 5])
    assert decode_data(encode_data(d)) == d
    packed = b"\x08\x02\x18\x08\x22\x02\x03\x05"  # blocksizes [3, 5] packed
    assert decode_data(packed).blocksizes == [3, 5]
    assert decode_data(b"\x08\x02\x40\x07\x42\x02\x08\x01").type == DataType.FILE  # mtime/unknown skipped
    with pytest.raises(DecodeError):
        decode_data(b"\x12\x00")  # no Type
    with pytest.raises(DecodeError):
        decode_data(b"\x08\x09")  # unknown type


def _pb(links, data: UnixFSData) -> bytes:
    return encode_node(PBNode(links, encode_data(data)))


def test_decoded_nodes_by_type():
    f = _pb([PBLink(LEAF, "", 4)], UnixFSData(DataType.FILE, data=b"ab", filesize=6, blocksizes=[4]))
    n = decode(CID.of(f, DAG_PB), f)
    assert isinstance(n, FileNode) and n.size == 6 and n.data == b"ab" and n.children == [(LEAF, 4)]
    assert isinstance(decode(LEAF, b"leaf"), FileNode)
    d = _pb([PBLink(LEAF, "x", 4)], UnixFSData(DataType.DIRECTORY))
    assert isinstance(decode(CID.of(d, DAG_PB), d), Directory)
    s = _pb([], UnixFSData(DataType.SYMLINK, data=b"target"))
    assert decode(CID.of(s, DAG_PB), s) == Symlink(CID.of(s, DAG_PB), b"target")
    h = _pb([PBLink(LEAF, "0Aname", 4)], UnixFSData(DataType.HAMT_SHARD, data=(1 << 10).to_bytes(2, "big"), hash_type=0x22, fanout=256))
    hs = decode(CID.of(h, DAG_PB), h)
    assert isinstance(hs, HamtShard) and hs.pad == 2


@pytest.mark.parametrize("links, data, why", [
    ([PBLink(LEAF, "", 4)], UnixFSData(DataType.FILE, filesize=4), "links without blocksizes"),
    ([PBLink(LEAF, "", 4)], UnixFSData(DataType.FILE, filesize=5, blocksizes=[4]), "filesize disagrees"),
    ([], UnixFSData(DataType.HAMT_SHARD, hash_type=0x23, fanout=256), "unknown HAMT hash"),
    ([], UnixFSData(DataType.HAMT_SHARD, hash_type=0x22, fanout=100), "fanout not a power of two"),
    ([PBLink(LEAF, "0Bx", 4)], UnixFSData(DataType.HAMT_SHARD, data=b"\x01", hash_type=0x22, fanout=256), "slot not in bitfield"),
    ([PBLink(LEAF, "zzx", 4)], UnixFSData(DataType.HAMT_SHARD, data=b"\x01", hash_type=0x22, fanout=256), "no hex prefix"),
    ([], UnixFSData(DataType.METADATA), "metadata node"),
])
def test_inconsistent_nodes_are_decode_errors(links, data, why):
    b = _pb(links, data)
    with pytest.raises(DecodeError):
        decode(CID.of(b, DAG_PB), b)


def test_murmur3_known_answers():
    # @multiformats/murmur3 (x64-128, seed 0), as pinned in core/src/hamt.rs
    assert murmur3_x64_128(b"") == bytes(16)
    assert murmur3_x64_128(b"hello").hex() == "cbd8a7b341bd9b025b1e906a48ae1d19"


def test_murmur3_agrees_with_mmh3_on_every_tail_length():
    mmh3 = pytest.importorskip("mmh3")
    for n in range(0, 70):
        data = bytes((i * 31 + n) & 0xFF for i in range(n))
        h1, h2 = mmh3.hash64(data, signed=False)
        assert murmur3_x64_128(data) == h1.to_bytes(8, "big") + h2.to_bytes(8, "big")


def test_hamt_index_reads_hash_bits_most_significant_first():
    h = murmur3_x64_128(b"hello")
    assert hamt_index(b"hello", 0, 256) == h[0]
    assert hamt_index(b"hello", 7, 256) == h[7]
    assert hamt_index(b"hello", 8, 256) == murmur3_x64_128(b"hello\x01")[0]  # the rehash rule
    assert hamt_index(b"hello", 0, 16) == h[0] >> 4
    assert hamt_index(b"hello", 1, 16) == h[0] & 15
    assert hamt_index(b"hello", 0, 1024) == (int.from_bytes(h[:2], "big") >> 6)


def test_car_round_trip_verifies_every_block():
    blocks = [(CID.of(b"a"), b"a"), (CID.of(b"bb", RAW), b"bb")]
    data = write_car([blocks[0][0]], blocks)
    r = CarReader(io.BytesIO(data))
    assert r.roots == [blocks[0][0]]
    assert list(r) == blocks
    assert r.bytes_read == len(data)


def test_car_with_a_wrong_block_fails():
    data = write_car([LEAF], [(LEAF, b"LEAF")])
    with pytest.raises(VerificationError):
        list(CarReader(io.BytesIO(data)))


def test_car_cut_anywhere_inside_a_section_fails():
    blocks = [(CID.of(bytes([i]) * 50), bytes([i]) * 50) for i in range(3)]
    data = write_car([blocks[0][0]], blocks)
    header_end = len(write_car([blocks[0][0]], []))
    boundaries = {header_end}
    pos = header_end
    for c, b in blocks:
        pos += len(encode_varint(len(c.to_bytes()) + len(b))) + len(c.to_bytes()) + len(b)
        boundaries.add(pos)
    for cut in range(len(data)):
        if cut in boundaries:
            continue  # a clean end: whether it is enough is the caller's question
        with pytest.raises((IncompleteResponseError, VerificationError)):
            list(CarReader(io.BytesIO(data[:cut])))


def test_car_limit_stops_an_endless_stream():
    junk = [(CID.of(bytes([i]) * 1000), bytes([i]) * 1000) for i in range(50)]
    data = write_car([], junk)
    with pytest.raises(VerificationError, match="exceeds"):
        list(CarReader(io.BytesIO(data), limit=10_000))


def test_car_header_must_be_version_1():
    hdr = b"\xa2\x65roots\x80\x67version\x02"
    with pytest.raises(VerificationError):
        CarReader(io.BytesIO(encode_varint(len(hdr)) + hdr))
    with pytest.raises(IncompleteResponseError):
        CarReader(io.BytesIO(b""))
