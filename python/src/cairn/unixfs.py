"""UnixFS v1: the ``Data`` message inside dag-pb nodes, decoded nodes, and HAMT hashing.

::

    message Data {
      enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
      required DataType Type = 1;  optional bytes Data = 2;  optional uint64 filesize = 3;
      repeated uint64 blocksizes = 4;  optional uint64 hashType = 5;  optional uint64 fanout = 6;
      optional uint32 mode = 7;  optional UnixTime mtime = 8;
    }

A file is a tree: a node's own ``Data`` bytes come first, then its children's bytes in link
order, child ``i`` holding ``blocksizes[i]`` bytes; raw blocks (codec 0x55) are leaves.
:func:`decode` turns a verified block into a :class:`FileNode`, :class:`Directory`,
:class:`HamtShard` or :class:`Symlink`, checking that sizes agree.

HAMT-sharded directories (type 5): each link name starts with the slot index in upper-case
hex, padded to the width of ``fanout - 1``; a name that is exactly the prefix is a
sub-shard, a longer one an entry (the rest is the entry's name). A name's slot at depth
``d`` is read from its hash, murmur3-x64-64 (the first 8 bytes of murmur3-x64-128, seed 0,
big-endian), ``log2(fanout)`` bits per level, most significant bits first; past the 64 bits
the hash of ``name || [1]`` continues it, then ``name || [2]`` and so on (the rule of the
reference ``hamt-sharding`` package; no real directory needs it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import List, Optional, Tuple, Union

from .cid import CID, DAG_PB, RAW, encode_varint
from .dagpb import PBLink, decode_node as decode_pb, pb_bytes, pb_varint
from .errors import DecodeError, UnsupportedCodecError

#: Multicodec of the HAMT hash (murmur3-x64-64).
HAMT_HASH_MURMUR3 = 0x22
#: Largest HAMT fanout accepted (the UnixFS spec's limit).
MAX_FANOUT = 1024


class DataType(IntEnum):
    """UnixFS node types."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass
class UnixFSData:
    """A decoded UnixFS ``Data`` message."""

    type: DataType
    data: bytes = b""
    filesize: Optional[int] = None
    blocksizes: List[int] = field(default_factory=list)
    hash_type: Optional[int] = None
    fanout: Optional[int] = None
    mode: Optional[int] = None


def decode_data(buf: bytes) -> UnixFSData:
    """Decodes a UnixFS ``Data`` message (``blocksizes`` packed or not; unknown fields of a
    known wire type are skipped, as protobuf readers do)."""
    pos = 0
    kind = None
    d = UnixFSData(DataType.RAW)
    while pos < len(buf):
        tag, pos = pb_varint(buf, pos)
        fnum, wire = tag >> 3, tag & 7
        if tag == 0x08:
            v, pos = pb_varint(buf, pos)
            try:
                kind = DataType(v)
            except ValueError:
                raise DecodeError(f"unknown UnixFS type {v}") from None
        elif tag == 0x12:
            d.data, pos = pb_bytes(buf, pos)
        elif tag == 0x18:
            d.filesize, pos = pb_varint(buf, pos)
        elif tag == 0x20:
            v, pos = pb_varint(buf, pos)
            d.blocksizes.append(v)
        elif tag == 0x22:
            packed, pos = pb_bytes(buf, pos)
            p = 0
            while p < len(packed):
                v, p = pb_varint(packed, p)
                d.blocksizes.append(v)
        elif tag == 0x28:
            d.hash_type, pos = pb_varint(buf, pos)
        elif tag == 0x30:
            d.fanout, pos = pb_varint(buf, pos)
        elif tag == 0x38:
            d.mode, pos = pb_varint(buf, pos)
        elif fnum > 0 and wire == 0:
            _, pos = pb_varint(buf, pos)
        elif fnum > 0 and wire == 2:
            _, pos = pb_bytes(buf, pos)
        else:
            raise DecodeError(f"unexpected field in UnixFS Data (tag 0x{tag:x})")
    if kind is None:
        raise DecodeError("UnixFS Data without Type")
    d.type = kind
    return d


def encode_data(d: UnixFSData) -> bytes:
    """Encodes as ``ipfs-unixfs`` does: Type, Data (if not empty), filesize, blocksizes (not
    packed), hashType, fanout."""
    out = bytearray([0x08]) + encode_varint(int(d.type))
    if d.data:
        out += b"\x12" + encode_varint(len(d.data)) + d.data
    if d.filesize is not None:
        out += b"\x18" + encode_varint(d.filesize)
    for b in d.blocksizes:
        out += b"\x20" + encode_varint(b)
    if d.hash_type is not None:
        out += b"\x28" + encode_varint(d.hash_type)
    if d.fanout is not None:
        out += b"\x30" + encode_varint(d.fanout)
    return bytes(out)


# ---- decoded nodes ------------------------------------------------------------------------


@dataclass
class FileNode:
    """A file, or part of one: ``data`` (its own bytes, first), then ``children`` as
    ``(cid, bytes under it)``. A raw block is a ``FileNode`` with no children."""

    cid: CID
    data: bytes
    children: List[Tuple[CID, int]]
    size: int


@dataclass
class Directory:
    """A flat UnixFS directory: named links."""

    cid: CID
    links: List[PBLink]


@dataclass
class HamtShard:
    """One node of a HAMT-sharded directory."""

    cid: CID
    links: List[PBLink]
    fanout: int
    bitfield: int

    @property
    def pad(self) -> int:
        """Width of the hex slot prefix of each link name."""
        return len(format(self.fanout - 1, "X"))


@dataclass
class Symlink:
    """A UnixFS symbolic link (never followed by this package)."""

    cid: CID
    target: bytes


Node = Union[FileNode, Directory, HamtShard, Symlink]


def decode(cid: CID, block: bytes) -> Node:
    """Decodes the verified ``block`` named ``cid`` into a UnixFS node."""
    if cid.codec == RAW:
        return FileNode(cid, bytes(block), [], len(block))
    if cid.codec != DAG_PB:
        raise UnsupportedCodecError(f"block {cid} has codec 0x{cid.codec:x}, not raw or dag-pb UnixFS")
    try:
        pb = decode_pb(block)
        d = decode_data(pb.data or b"")
    except DecodeError as e:
        raise DecodeError(f"block {cid} is not a valid UnixFS node: {e}") from None
    if d.type in (DataType.FILE, DataType.RAW):
        if len(d.blocksizes) != len(pb.links):
            raise DecodeError(f"file node {cid}: {len(pb.links)} links but {len(d.blocksizes)} blocksizes")
        size = len(d.data) + sum(d.blocksizes)
        if d.filesize is not None and d.filesize != size:
            raise DecodeError(f"file node {cid}: filesize {d.filesize} but data and blocksizes add up to {size}")
        return FileNode(cid, d.data, [(l.cid, s) for l, s in zip(pb.links, d.blocksizes)], size)
    if d.type == DataType.DIRECTORY:
        return Directory(cid, pb.links)
    if d.type == DataType.HAMT_SHARD:
        if d.hash_type != HAMT_HASH_MURMUR3:
            raise DecodeError(f"HAMT shard {cid}: hash function {d.hash_type!r}, only murmur3-x64-64 (0x22) is known")
        f = d.fanout
        if f is None or f < 2 or f > MAX_FANOUT or f & (f - 1):
            raise DecodeError(f"HAMT shard {cid}: fanout {f!r} is not a power of two up to {MAX_FANOUT}")
        shard = HamtShard(cid, pb.links, f, int.from_bytes(d.data, "big"))
        for link in pb.links:
            name = link.name or ""
            slot = _slot_of(name, shard.pad)
            if slot is None or slot >= f or not (shard.bitfield >> slot) & 1:
                raise DecodeError(f"HAMT shard {cid}: link name {name[:40]!r} does not match the shard's bitfield")
        return shard
    if d.type == DataType.SYMLINK:
        return Symlink(cid, d.data)
    raise DecodeError(f"block {cid}: UnixFS {d.type.name.lower()} nodes are not supported")


def _slot_of(name: str, pad: int) -> Optional[int]:
    prefix = name[:pad]
    if len(prefix) != pad or any(c not in "0123456789ABCDEF" for c in prefix):
        return None
    return int(prefix, 16)


# ---- murmur3 and the HAMT index -------------------------------------------------------------

_M64 = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


def murmur3_x64_128(data: bytes, seed: int = 0) -> bytes:
    """MurmurHash3 x64 128-bit of ``data`` as 16 bytes: h1 then h2, each big-endian (the
    order go-murmur3 and ``@multiformats/murmur3`` print)."""
    h1 = h2 = seed & _M64
    n = len(data)
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i : 16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8 : 16 * i + 16], "little")
        k1 = (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
        h1 ^= k1
        h1 = (_rotl(h1, 27) + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        k2 = (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
        h2 ^= k2
        h2 = (_rotl(h2, 31) + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[16 * nblocks :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * _C2) & _M64, 33) * _C1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * _C1) & _M64, 31) * _C2) & _M64
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1 = _fmix(h1)
    h2 = _fmix(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1.to_bytes(8, "big") + h2.to_bytes(8, "big")


def _hash_byte(name: bytes, k: int) -> int:
    """Byte ``k`` of the name's "infinite" HAMT hash."""
    rnd = k // 8
    src = name if rnd == 0 else name + bytes([rnd & 0xFF])
    return murmur3_x64_128(src)[k % 8]


def hamt_index(name: bytes, depth: int, fanout: int) -> int:
    """The slot of ``name`` in a HAMT shard at ``depth`` (0 = root) with ``fanout`` slots."""
    bits = fanout.bit_length() - 1
    start = depth * bits
    end = start + bits
    value = 0
    for k in range(start // 8, (end + 7) // 8):
        value = (value << 8) | _hash_byte(name, k)
    total = ((end + 7) // 8 - start // 8) * 8
    value >>= total - (end - (start // 8) * 8)
    return value & (fanout - 1)
