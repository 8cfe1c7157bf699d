"""CARv1 (content-addressed archives): a streaming, verifying reader and a writer.

A CARv1 is ``varint(len) header`` then sections ``varint(len) CID block``; the header is the
DAG-CBOR map ``{"roots": [CID...], "version": 1}``. :class:`CarReader` reads sections from
any object with ``read(n)`` (an HTTP response, a file), verifies each block against its CID
as it arrives, and raises :class:`~cairn.errors.VerificationError` on a bad block, a section
cut short, or more bytes than the caller allowed. The end of the stream at a section boundary
is a clean end: whether the blocks received are *enough* is for the caller to judge.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator, List, Optional, Sequence, Tuple

from .cid import CID, encode_varint
from .errors import IncompleteResponseError, InvalidCIDError, VerificationError

#: Largest CAR header read (a header only lists root CIDs; 64 KiB is generous).
MAX_HEADER = 64 << 10
#: Largest section: a 4 MiB block (Cairn's block limit) plus its CID.
MAX_SECTION = (4 << 20) + 256


class _Stream:
    """Exact reads over ``read(n)`` with a running byte count."""

    def __init__(self, f: BinaryIO, limit: Optional[int]):
        self.f = f
        self.limit = limit
        self.count = 0

    def read(self, n: int, what: str) -> bytes:
        parts = []
        left = n
        while left:
            try:
                chunk = self.f.read(left)
            except Exception as e:  # http.client.IncompleteRead, connection resets
                raise IncompleteResponseError(f"CAR stream broke while reading {what}: {e!r}") from None
            if not chunk:
                raise IncompleteResponseError(f"CAR stream truncated in {what} ({n - left} of {n} bytes)")
            parts.append(chunk)
            left -= len(chunk)
        self._count(n)
        return b"".join(parts) if len(parts) != 1 else parts[0]

    def _count(self, n: int) -> None:
        self.count += n
        if self.limit is not None and self.count > self.limit:
            raise VerificationError(f"CAR response exceeds {self.limit} bytes, more than the request can need")

    def varint(self, first: bool) -> Optional[int]:
        """A varint; ``None`` at a clean end of stream when ``first``."""
        value = 0
        for i in range(9):
            try:
                b = self.f.read(1)
            except Exception as e:
                raise IncompleteResponseError(f"CAR stream broke: {e!r}") from None
            if not b:
                if first and i == 0:
                    return None
                raise IncompleteResponseError("CAR stream truncated in a section length")
            self._count(1)
            value |= (b[0] & 0x7F) << (7 * i)
            if not b[0] & 0x80:
                if b[0] == 0 and i > 0:
                    raise VerificationError("CAR section length is a non-minimal varint")
                return value
        raise VerificationError("CAR section length varint longer than 9 bytes")


# ---- a minimal DAG-CBOR codec for the header ------------------------------------------------


def _cbor_head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    for add, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([(major << 5) | add]) + n.to_bytes(size, "big")
    raise ValueError("CBOR length too large")


def _cbor_decode(buf: bytes, pos: int, depth: int = 0):
    if depth > 8:
        raise VerificationError("CAR header nested too deeply")
    if pos >= len(buf):
        raise VerificationError("CAR header truncated")
    ib = buf[pos]
    major, add = ib >> 5, ib & 31
    pos += 1
    if add < 24:
        n = add
    elif add in (24, 25, 26, 27):
        size = 1 << (add - 24)
        if pos + size > len(buf):
            raise VerificationError("CAR header truncated")
        n = int.from_bytes(buf[pos : pos + size], "big")
        pos += size
    else:
        raise VerificationError("CAR header uses indefinite lengths or reserved values")
    if major == 0:
        return n, pos
    if major in (2, 3):
        if pos + n > len(buf):
            raise VerificationError("CAR header truncated")
        raw = buf[pos : pos + n]
        return (raw if major == 2 else raw.decode("utf-8", "replace")), pos + n
    if major == 4:
        items = []
        for _ in range(n):
            v, pos = _cbor_decode(buf, pos, depth + 1)
            items.append(v)
        return items, pos
    if major == 5:
        m = {}
        for _ in range(n):
            k, pos = _cbor_decode(buf, pos, depth + 1)
            v, pos = _cbor_decode(buf, pos, depth + 1)
            if not isinstance(k, str):
                raise VerificationError("CAR header map key is not a string")
            m[k] = v
        return m, pos
    if major == 6 and n == 42:
        v, pos = _cbor_decode(buf, pos, depth + 1)
        if not isinstance(v, bytes) or not v or v[0] != 0:
            raise VerificationError("CAR header CID link is malformed")
        try:
            return CID.from_bytes(v[1:]), pos
        except InvalidCIDError as e:
            raise VerificationError(f"CAR header root is not a CID: {e}") from None
    if major == 7 and add in (20, 21, 22):
        return {20: False, 21: True, 22: None}[add], pos
    raise VerificationError(f"CAR header has an unexpected CBOR item (major type {major})")


def encode_header(roots: Sequence[CID]) -> bytes:
    """The DAG-CBOR header ``{"roots": [...], "version": 1}`` (keys in DAG-CBOR order)."""
    out = bytearray(_cbor_head(5, 2))
    out += _cbor_head(3, 5) + b"roots" + _cbor_head(4, len(roots))
    for r in roots:
        link = b"\0" + r.to_bytes()
        out += bytes([0xD8, 42]) + _cbor_head(2, len(link)) + link
    out += _cbor_head(3, 7) + b"version" + _cbor_head(0, 1)
    return bytes(out)


def write_car(roots: Sequence[CID], blocks: Sequence[Tuple[CID, bytes]]) -> bytes:
    """A CARv1 with ``roots`` and ``blocks`` in the order given."""
    header = encode_header(roots)
    out = bytearray(encode_varint(len(header)) + header)
    for cid, data in blocks:
        section = cid.to_bytes() + bytes(data)
        out += encode_varint(len(section)) + section
    return bytes(out)


class CarReader:
    """Reads and verifies a CARv1 stream.

    >>> import io
    >>> c = CID.of(b"hi")
    >>> r = CarReader(io.BytesIO(write_car([c], [(c, b"hi")])))
    >>> r.roots == [c], list(r) == [(c, b"hi")]
    (True, True)
    """

    def __init__(self, f: BinaryIO, limit: Optional[int] = None):
        """Reads the header from ``f``; at most ``limit`` bytes (header included) are read."""
        self._s = _Stream(f, limit)
        n = self._s.varint(first=True)
        if n is None:
            raise IncompleteResponseError("empty CAR response (no header)")
        if n == 0 or n > MAX_HEADER:
            raise VerificationError(f"CAR header of {n} bytes")
        header, end = _cbor_decode(self._s.read(n, "the header"), 0)
        if end != n or not isinstance(header, dict):
            raise VerificationError("CAR header is not one CBOR map")
        if header.get("version") != 1:
            raise VerificationError(f"CAR version {header.get('version')!r}; only CARv1 streams are read")
        roots = header.get("roots", [])
        if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
            raise VerificationError("CAR header roots are not a list of CIDs")
        #: The root CIDs the header names (information only: nothing is trusted from them).
        self.roots: List[CID] = roots

    @property
    def bytes_read(self) -> int:
        """Bytes consumed so far."""
        return self._s.count

    def __iter__(self) -> Iterator[Tuple[CID, bytes]]:
        """Yields ``(cid, block)`` pairs, each verified, until the stream ends."""
        while True:
            n = self._s.varint(first=True)
            if n is None:
                return
            if n == 0 or n > MAX_SECTION:
                raise VerificationError(f"CAR section of {n} bytes")
            section = self._s.read(n, "a section")
            try:
                cid, pos = CID.read(section, 0)
            except InvalidCIDError as e:
                raise VerificationError(f"CAR section does not start with a CID: {e}") from None
            block = section[pos:]
            cid.verify(block)
            yield cid, block
