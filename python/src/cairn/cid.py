"""CIDs (v0 and v1), multibase, unsigned varints and multihash verification.

Parsing accepts CIDv1 in base32 (``b``/``B``, Cairn's and IPFS's default), base58btc
(``z``) and base16 (``f``/``F``), and CIDv0 (``Qm...``). Verification accepts three
multihash functions: sha2-256 (0x12, 32-byte digest), blake3 (0x1e, 32-byte digest, Cairn's
default) and identity (0x00: the digest *is* the block). Anything else is refused with
:class:`~cairn.errors.UnsupportedHashError` before a byte is fetched.

>>> c = CID.parse("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
>>> c.codec == RAW, c.hash_code == SHA2_256
(True, True)
>>> c.verify(b"")  # the empty raw block
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Tuple

from .errors import InvalidCIDError, UnsupportedHashError, VerificationError

#: Multicodec of raw blocks (file leaves, single-block files).
RAW = 0x55
#: Multicodec of dag-pb nodes (UnixFS files and directories).
DAG_PB = 0x70
#: Multicodec of DAG-CBOR (Cairn manifests; not read by this package).
DAG_CBOR = 0x71
#: Multihash code of the identity "hash".
IDENTITY = 0x00
#: Multihash code of sha2-256.
SHA2_256 = 0x12
#: Multihash code of blake3.
BLAKE3 = 0x1E

#: Digest length required per verifiable hash function (identity: any, bounded below).
_DIGEST_LEN = {SHA2_256: 32, BLAKE3: 32}
#: Longest identity "digest" accepted: the block is inlined in the CID, so this bounds what a
#: CID alone can make us hold (kubo inlines at most 32 bytes; 4 KiB leaves ample room).
MAX_IDENTITY_LEN = 4096
#: Longest unsigned varint (multiformats caps them at 9 bytes, 63 bits).
_MAX_VARINT_BYTES = 9

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {ch: i for i, ch in enumerate(_B58)}


def encode_varint(n: int) -> bytes:
    """The unsigned LEB128 varint of ``n`` (multiformats and protobuf share it)."""
    if n < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf: bytes, pos: int = 0) -> Tuple[int, int]:
    """Reads a multiformats unsigned varint at ``pos``: returns ``(value, next position)``.

    Raises :class:`InvalidCIDError` on a truncated, over-long (more than 9 bytes) or
    non-minimal encoding, as the multiformats spec requires.
    """
    value = 0
    shift = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(buf):
            raise InvalidCIDError("truncated varint")
        b = buf[pos + i]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i > 0:
                raise InvalidCIDError("non-minimal varint")
            return value, pos + i + 1
        shift += 7
    raise InvalidCIDError("varint longer than 9 bytes")


def b58encode(data: bytes) -> str:
    """base58btc (bitcoin alphabet)."""
    n = int.from_bytes(data, "big")
    out = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(s: str) -> bytes:
    """Inverse of :func:`b58encode`; :class:`InvalidCIDError` on a character outside it."""
    n = 0
    for ch in s:
        try:
            n = n * 58 + _B58_INDEX[ch]
        except KeyError:
            raise InvalidCIDError(f"invalid base58btc character {ch!r}") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    zeros = len(s) - len(s.lstrip("1"))
    return b"\0" * zeros + body


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, unpadded (multibase ``b``)."""
    return base64.b32encode(data).decode("ascii").lower().rstrip("=")


def b32decode(s: str) -> bytes:
    """Inverse of :func:`b32encode` (either case)."""
    if "=" in s:
        raise InvalidCIDError("padded base32 in a CID")
    try:
        return base64.b32decode(s.upper() + "=" * (-len(s) % 8))
    except (binascii.Error, ValueError) as e:
        raise InvalidCIDError(f"invalid base32: {e}") from None


def multibase_decode(s: str) -> bytes:
    """Decodes a multibase string with prefix ``b``, ``B``, ``z``, ``f`` or ``F``."""
    if not s:
        raise InvalidCIDError("empty CID")
    prefix, body = s[0], s[1:]
    if prefix in "bB":
        if prefix == "b" and body != body.lower() or prefix == "B" and body != body.upper():
            raise InvalidCIDError("mixed-case base32")
        return b32decode(body)
    if prefix == "z":
        return b58decode(body)
    if prefix in "fF":
        try:
            return bytes.fromhex(body)
        except ValueError:
            raise InvalidCIDError("invalid base16") from None
    raise InvalidCIDError(f"unsupported multibase prefix {prefix!r} (use base32 'b', base58btc 'z' or base16 'f')")


def digest(hash_code: int, data: bytes, length: int = 32) -> bytes:
    """The ``length``-byte digest of ``data`` under a supported multihash function."""
    if hash_code == SHA2_256:
        return hashlib.sha256(data).digest()
    if hash_code == BLAKE3:
        try:
            from blake3 import blake3
        except ImportError:  # pragma: no cover - blake3 is a dependency
            raise UnsupportedHashError("blake3 CIDs need the 'blake3' package (pip install blake3)") from None
        return blake3(data).digest(length)
    if hash_code == IDENTITY:
        return bytes(data)
    raise UnsupportedHashError(f"multihash 0x{hash_code:x} is not one this package verifies")


@dataclass(frozen=True)
class CID:
    """A content identifier: version, codec and multihash (function code and digest).

    Immutable and hashable. ``str(cid)`` gives base32 for CIDv1 and base58btc for CIDv0.
    """

    version: int
    codec: int
    hash_code: int
    digest: bytes

    # ---- constructors -------------------------------------------------------------------

    @classmethod
    def parse(cls, s: str) -> "CID":
        """Parses a CID string: CIDv0 ``Qm...`` (46 characters) or multibase CIDv1."""
        if not isinstance(s, str):
            raise InvalidCIDError(f"CID must be a string, not {type(s).__name__}")
        if len(s) == 46 and s.startswith("Qm"):
            raw = b58decode(s)
            if len(raw) != 34 or raw[:2] != b"\x12\x20":
                raise InvalidCIDError(f"invalid CIDv0 {s!r}")
            return cls(0, DAG_PB, SHA2_256, raw[2:])
        try:
            raw = multibase_decode(s)
            cid = cls.from_bytes(raw)
        except InvalidCIDError as e:
            raise InvalidCIDError(f"invalid CID {s[:100]!r}: {e}") from None
        if cid.version == 0:
            raise InvalidCIDError(f"invalid CID {s[:100]!r}: CIDv0 must be written in base58btc (Qm...)")
        return cid

    @classmethod
    def from_bytes(cls, b: bytes) -> "CID":
        """Parses a binary CID that spans all of ``b``."""
        cid, end = cls.read(b, 0)
        if end != len(b):
            raise InvalidCIDError(f"{len(b) - end} bytes after the CID")
        return cid

    @classmethod
    def read(cls, buf: bytes, pos: int = 0) -> Tuple["CID", int]:
        """Reads a binary CID at ``pos`` (as in CAR sections): ``(cid, next position)``."""
        if buf[pos : pos + 2] == b"\x12\x20":
            if len(buf) < pos + 34:
                raise InvalidCIDError("truncated CIDv0")
            return cls(0, DAG_PB, SHA2_256, bytes(buf[pos + 2 : pos + 34])), pos + 34
        version, p = read_varint(buf, pos)
        if version != 1:
            raise InvalidCIDError(f"unsupported CID version {version}")
        codec, p = read_varint(buf, p)
        code, p = read_varint(buf, p)
        length, p = read_varint(buf, p)
        if length > max(MAX_IDENTITY_LEN, 64):
            raise InvalidCIDError(f"multihash digest of {length} bytes")
        if len(buf) < p + length:
            raise InvalidCIDError("truncated multihash digest")
        return cls(1, codec, code, bytes(buf[p : p + length])), p + length

    @classmethod
    def of(cls, data: bytes, codec: int = RAW, hash_code: int = SHA2_256) -> "CID":
        """The CIDv1 of ``data`` under ``codec`` and ``hash_code`` (32-byte digests)."""
        return cls(1, codec, hash_code, digest(hash_code, data, 32))

    # ---- encodings ----------------------------------------------------------------------

    @property
    def multihash(self) -> bytes:
        """The multihash: varint code, varint length, digest."""
        return encode_varint(self.hash_code) + encode_varint(len(self.digest)) + self.digest

    def to_bytes(self) -> bytes:
        """The binary CID (as carried in dag-pb links and CAR sections)."""
        if self.version == 0:
            return self.multihash
        return encode_varint(1) + encode_varint(self.codec) + self.multihash

    def to_v1(self) -> "CID":
        """The same block named by a CIDv1 (a CIDv0 is dag-pb + sha2-256)."""
        return CID(1, self.codec, self.hash_code, self.digest)

    def __str__(self) -> str:
        if self.version == 0:
            return b58encode(self.multihash)
        return "b" + b32encode(self.to_bytes())

    def __repr__(self) -> str:
        return f"CID({str(self)!r})"

    # ---- verification -------------------------------------------------------------------

    def check_verifiable(self) -> None:
        """Raises :class:`UnsupportedHashError` unless this CID's bytes can be verified."""
        want = _DIGEST_LEN.get(self.hash_code)
        if self.hash_code == IDENTITY:
            if len(self.digest) > MAX_IDENTITY_LEN:
                raise UnsupportedHashError(f"identity CID {self} longer than {MAX_IDENTITY_LEN} bytes")
            return
        if want is None:
            raise UnsupportedHashError(
                f"CID {self} uses multihash 0x{self.hash_code:x}; only sha2-256, blake3 and identity are verified"
            )
        if len(self.digest) != want:
            raise UnsupportedHashError(f"CID {self} has a {len(self.digest)}-byte digest; {want} expected")

    def verify(self, data: bytes) -> None:
        """Raises :class:`VerificationError` unless ``data`` hashes to this CID's digest."""
        self.check_verifiable()
        if digest(self.hash_code, data, len(self.digest)) != self.digest:
            raise VerificationError(f"block {self}: bytes do not match the CID ({len(data)} bytes received)")

    @property
    def is_identity(self) -> bool:
        """Whether the block is inlined in the CID (identity multihash)."""
        return self.hash_code == IDENTITY
