"""dag-pb (codec 0x70): the protobuf nodes UnixFS lives in.

::

    message PBLink { optional bytes Hash = 1; optional string Name = 2; optional uint64 Tsize = 3; }
    message PBNode { repeated PBLink Links = 2; optional bytes Data = 1; }

Decoding is strict, as the dag-pb spec asks: links come before ``Data``, ``Data`` at most
once, link fields in order and at most once, every link has a hash that is a CID, names are
UTF-8, no unknown fields. Encoding writes the canonical form (links, then data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from .cid import CID, encode_varint
from .errors import DecodeError, InvalidCIDError

#: Largest block decoded (Cairn's limit; the IPFS ecosystem's is 2 MiB).
MAX_BLOCK_SIZE = 4 << 20


@dataclass
class PBLink:
    """A dag-pb link."""

    cid: CID
    name: Optional[str] = None
    tsize: Optional[int] = None


@dataclass
class PBNode:
    """A dag-pb node: links, then optional data."""

    links: List[PBLink] = field(default_factory=list)
    data: Optional[bytes] = None


def pb_varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """A protobuf varint (up to 10 bytes, 64 bits) at ``pos``: ``(value, next position)``."""
    value = 0
    shift = 0
    for i in range(10):
        if pos + i >= len(buf):
            raise DecodeError("truncated protobuf varint")
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if value >= 1 << 64:
                raise DecodeError("protobuf varint above 2^64")
            return value, pos + i + 1
        shift += 7
    raise DecodeError("protobuf varint longer than 10 bytes")


def pb_bytes(buf: bytes, pos: int) -> Tuple[bytes, int]:
    """A length-delimited protobuf field's bytes at ``pos``."""
    n, pos = pb_varint(buf, pos)
    if pos + n > len(buf):
        raise DecodeError("protobuf field runs past the end")
    return buf[pos : pos + n], pos + n


def _decode_link(buf: bytes, index: int) -> PBLink:
    pos = 0
    last = 0
    cid = None
    name = None
    tsize = None
    while pos < len(buf):
        tag, pos = pb_varint(buf, pos)
        fnum = tag >> 3
        if fnum <= last:
            raise DecodeError(f"link {index}: fields out of order or repeated")
        last = fnum
        if tag == 0x0A:
            raw, pos = pb_bytes(buf, pos)
            try:
                cid = CID.from_bytes(raw)
            except InvalidCIDError as e:
                raise DecodeError(f"link {index}: bad CID: {e}") from None
        elif tag == 0x12:
            raw, pos = pb_bytes(buf, pos)
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError(f"link {index}: name is not UTF-8") from None
        elif tag == 0x18:
            tsize, pos = pb_varint(buf, pos)
        else:
            raise DecodeError(f"link {index}: unknown field (tag 0x{tag:x})")
    if cid is None:
        raise DecodeError(f"link {index}: no hash")
    return PBLink(cid, name, tsize)


def decode_node(buf: bytes) -> PBNode:
    """Decodes a dag-pb block; :class:`DecodeError` on anything the spec forbids."""
    if len(buf) > MAX_BLOCK_SIZE:
        raise DecodeError(f"dag-pb block of {len(buf)} bytes (limit {MAX_BLOCK_SIZE})")
    buf = bytes(buf)
    node = PBNode()
    pos = 0
    while pos < len(buf):
        tag, pos = pb_varint(buf, pos)
        if tag == 0x12:
            if node.data is not None:
                raise DecodeError("link after Data")
            raw, pos = pb_bytes(buf, pos)
            node.links.append(_decode_link(raw, len(node.links)))
        elif tag == 0x0A:
            if node.data is not None:
                raise DecodeError("duplicate Data field")
            node.data, pos = pb_bytes(buf, pos)
        else:
            raise DecodeError(f"unknown field in PBNode (tag 0x{tag:x})")
    return node


def _put_bytes(out: bytearray, tag: int, data: bytes) -> None:
    out.append(tag)
    out += encode_varint(len(data))
    out += data


def encode_node(node: PBNode) -> bytes:
    """Encodes ``node`` canonically; links are written in the order given (sort them by name
    bytes first, as importers do)."""
    out = bytearray()
    for link in node.links:
        lb = bytearray()
        _put_bytes(lb, 0x0A, link.cid.to_bytes())
        if link.name is not None:
            _put_bytes(lb, 0x12, link.name.encode("utf-8"))
        if link.tsize is not None:
            lb.append(0x18)
            lb += encode_varint(link.tsize)
        _put_bytes(out, 0x12, bytes(lb))
    if node.data is not None:
        _put_bytes(out, 0x0A, node.data)
    return bytes(out)
