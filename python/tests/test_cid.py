"""CIDs, multibase, varints and multihash verification."""

import pytest

from cairn.cid import (BLAKE3, CID, DAG_PB, IDENTITY, RAW, SHA2_256, b58decode, b58encode,
                       encode_varint, read_varint)
from cairn.errors import InvalidCIDError, UnsupportedHashError, VerificationError

EMPTY_RAW = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"  # sha2-256 of b""
FOO_BLAKE3 = "bafkr4icj3sdq34o6p7lapfgoxtset5om3lsxll72uz5cjnrkzmb6aoo3si"  # kubo --hash=blake3 of "foo\n"
EMPTY_DIR_V0 = "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
EMPTY_DIR_V1 = "bafybeiczsscdsbs7ffqz55asqdf3smv6klcw3gofszvwlyarci47bgf354"


def test_base32_cidv1_parses_and_prints_back():
    c = CID.parse(EMPTY_RAW)
    assert (c.version, c.codec, c.hash_code, len(c.digest)) == (1, RAW, SHA2_256, 32)
    assert str(c) == EMPTY_RAW
    assert CID.from_bytes(c.to_bytes()) == c
    c.verify(b"")


def test_upper_case_base32_and_base16_name_the_same_cid():
    c = CID.parse(EMPTY_RAW)
    assert CID.parse("B" + EMPTY_RAW[1:].upper()) == c
    assert CID.parse("f" + c.to_bytes().hex()) == c


def test_blake3_published_anchor_verifies():
    c = CID.parse(FOO_BLAKE3)
    assert c.hash_code == BLAKE3
    c.verify(b"foo\n")
    assert CID.of(b"foo\n", RAW, BLAKE3) == c
    with pytest.raises(VerificationError):
        c.verify(b"foo")


def test_cidv0_is_the_sha256_dag_pb_cidv1():
    v0 = CID.parse(EMPTY_DIR_V0)
    assert v0.version == 0 and str(v0) == EMPTY_DIR_V0
    assert str(v0.to_v1()) == EMPTY_DIR_V1
    v0.verify(bytes.fromhex("0a020801"))
    assert CID.from_bytes(v0.to_bytes()) == v0


def test_identity_cid_carries_its_block():
    c = CID(1, RAW, IDENTITY, b"hello")
    c.verify(b"hello")
    with pytest.raises(VerificationError):
        c.verify(b"hellO")
    assert CID.parse(str(c)) == c


@pytest.mark.parametrize("bad", [
    "", "b", "xyz", "bafy", "Qm123",  # too short / unknown base
    "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyk!",  # not base32
    "bAFKREIHDWDCEFGH4DQKJV67UZCMW7OJEE6XEDZDETOJUZJEVTENXQUVYKU",  # mixed case
    "z" + b58encode(b"\x02\x55\x12\x20" + b"\0" * 32),  # CID version 2
])
def test_malformed_cid_strings_are_refused(bad):
    with pytest.raises(InvalidCIDError):
        CID.parse(bad)


def test_trailing_bytes_after_a_binary_cid_are_refused():
    b = CID.parse(EMPTY_RAW).to_bytes()
    with pytest.raises(InvalidCIDError):
        CID.from_bytes(b + b"\0")
    with pytest.raises(InvalidCIDError):
        CID.from_bytes(b[:-1])


def test_unsupported_hash_functions_are_refused_before_any_fetch():
    md5ish = CID(1, RAW, 0xD5, b"\0" * 16)
    with pytest.raises(UnsupportedHashError):
        md5ish.check_verifiable()
    with pytest.raises(UnsupportedHashError):
        md5ish.verify(b"")
    truncated = CID(1, RAW, SHA2_256, b"\0" * 20)  # a truncated sha2-256 proves less
    with pytest.raises(UnsupportedHashError):
        truncated.verify(b"")


def test_varints_round_trip_and_refuse_non_minimal_forms():
    for n in (0, 1, 127, 128, 300, 2**32, 2**63 - 1):
        assert read_varint(encode_varint(n)) == (n, len(encode_varint(n)))
    with pytest.raises(InvalidCIDError):
        read_varint(b"\x80\x00")  # 0 in two bytes
    with pytest.raises(InvalidCIDError):
        read_varint(b"\xff" * 10)
    with pytest.raises(InvalidCIDError):
        read_varint(b"\x80")


def test_base58_round_trips_leading_zeros():
    for raw in (b"", b"\0", b"\0\0\x01", bytes(range(40))):
        assert b58decode(b58encode(raw)) == raw


def test_dag_pb_codec_constant():
    assert CID.parse(EMPTY_DIR_V1).codec == DAG_PB
