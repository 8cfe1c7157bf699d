"""A seeded UnixFS importer for the tests: balanced layout, raw or dag-pb leaves, flat and HAMT
directories, sha2-256 or blake3, and the seeded byte generator of ``fixtures/reference/gen.mjs``.

It follows ``core/src/importer.rs`` (itself bit-identical to ``ipfs-unixfs-importer``), and
``test_vectors.py`` holds it to the reference importer's CIDs in ``fixtures/vectors.json``, so
the DAGs the reading tests use are real UnixFS, not a private dialect.
"""

from __future__ import annotations

import io
import struct
import tarfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from cairn.car import write_car
from cairn.cid import BLAKE3, CID, DAG_PB, RAW, SHA2_256, encode_varint
from cairn.dagpb import PBLink, PBNode, encode_node
from cairn.unixfs import HAMT_HASH_MURMUR3, DataType, UnixFSData, encode_data, hamt_index


def gen(seed: int, length: int) -> bytes:
    """xorshift32 bytes, identical to ``gen()`` in ``fixtures/reference/gen.mjs``."""
    x = (seed * 2654435761 + 1) & 0xFFFFFFFF
    if x == 0:
        x = 1
    words = []
    for _ in range((length + 3) // 4):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        words.append(x)
    return struct.pack(f"<{len(words)}I", *words)[:length]


@dataclass(frozen=True)
class Profile:
    """Import parameters (as in ``fixtures/vectors.json``)."""

    hash_code: int = SHA2_256
    chunk: int = 1 << 20
    links: int = 1024
    split: str = "block-bytes"  # or "links-bytes"
    raw_leaves: bool = True
    cid_version: int = 1
    shard_threshold: int = 262144


PROFILES = {
    "cairn-v1": Profile(BLAKE3, 1 << 20, 1024, "block-bytes"),
    "unixfs-v1-2025": Profile(SHA2_256, 1 << 20, 1024, "block-bytes"),
    "kubo-legacy": Profile(SHA2_256, 256 << 10, 174, "links-bytes"),
    "tiny-sha256": Profile(SHA2_256, 1024, 4, "links-bytes"),
    "tiny-blake3": Profile(BLAKE3, 1024, 4, "block-bytes"),
}


@dataclass(frozen=True)
class Entry:
    cid: CID
    tsize: int
    filesize: int


def _vlen(n: int) -> int:
    return len(encode_varint(n))


class DagBuilder:
    """Builds DAGs into ``self.blocks`` (CID -> bytes, in the order made)."""

    def __init__(self, profile: Profile):
        self.p = profile
        self.blocks: Dict[CID, bytes] = {}

    def put(self, codec: int, data: bytes) -> CID:
        c = CID.of(data, codec, self.p.hash_code)
        if self.p.cid_version == 0:
            c = CID(0, DAG_PB, SHA2_256, c.digest)
        self.blocks[c] = data
        return c

    # ---- files ------------------------------------------------------------------------

    def _leaf(self, chunk: bytes) -> Entry:
        if self.p.raw_leaves:
            return Entry(self.put(RAW, chunk), len(chunk), len(chunk))
        d = UnixFSData(DataType.FILE, data=chunk, filesize=len(chunk))
        block = encode_node(PBNode([], encode_data(d)))
        return Entry(self.put(DAG_PB, block), len(block), len(chunk))

    def _node(self, children: List[Entry]) -> Entry:
        d = UnixFSData(DataType.FILE, filesize=sum(c.filesize for c in children), blocksizes=[c.filesize for c in children])
        block = encode_node(PBNode([PBLink(c.cid, "", c.tsize) for c in children], encode_data(d)))
        return Entry(self.put(DAG_PB, block), len(block) + sum(c.tsize for c in children), d.filesize)

    def file(self, data: bytes) -> Entry:
        """Balanced layout; one chunk is its own root; the empty file is one empty leaf."""
        level = [self._leaf(data[i : i + self.p.chunk]) for i in range(0, len(data), self.p.chunk)] or [self._leaf(b"")]
        while len(level) > 1:
            level = [self._node(level[i : i + self.p.links]) for i in range(0, len(level), self.p.links)]
        return level[0]

    # ---- directories ------------------------------------------------------------------

    def _estimate(self, entries: List[Tuple[str, Entry, bool]]) -> int:
        counted = [(n.encode(), e) for n, e, counts in entries if counts]
        if self.p.split == "links-bytes":
            return sum(len(n) + len(e.cid.to_bytes()) for n, e in counted)
        total = 4
        for n, e in counted:
            cl = len(e.cid.to_bytes())
            l = 1 + _vlen(cl) + cl + 1 + _vlen(len(n)) + len(n) + 1 + _vlen(e.tsize)
            total += 1 + _vlen(l) + l
        return total

    def directory(self, entries: List[Tuple[str, Entry, bool]], force_hamt: bool = False) -> Entry:
        """A directory of ``(name, entry, counts_in_estimate)``; HAMT above the threshold."""
        entries = sorted(entries, key=lambda t: t[0].encode())
        if force_hamt or self._estimate(entries) > self.p.shard_threshold:
            return self._hamt([(n, e) for n, e, _ in entries], 0)
        block = encode_node(PBNode([PBLink(e.cid, n, e.tsize) for n, e, _ in entries], encode_data(UnixFSData(DataType.DIRECTORY))))
        return Entry(self.put(DAG_PB, block), len(block) + sum(e.tsize for _, e, _ in entries), 0)

    def _hamt(self, entries: List[Tuple[str, Entry]], depth: int) -> Entry:
        slots: Dict[int, List[Tuple[str, Entry]]] = {}
        for n, e in entries:
            slots.setdefault(hamt_index(n.encode(), depth, 256), []).append((n, e))
        links = []
        bitfield = 0
        for i in sorted(slots):
            bitfield |= 1 << i
            group = slots[i]
            if len(group) == 1:
                n, e = group[0]
                links.append(PBLink(e.cid, f"{i:02X}{n}", e.tsize))
            else:
                sub = self._hamt(group, depth + 1)
                links.append(PBLink(sub.cid, f"{i:02X}", sub.tsize))
        bf = bitfield.to_bytes((bitfield.bit_length() + 7) // 8, "big")
        d = UnixFSData(DataType.HAMT_SHARD, data=bf, hash_type=HAMT_HASH_MURMUR3, fanout=256)
        block = encode_node(PBNode(links, encode_data(d)))
        return Entry(self.put(DAG_PB, block), len(block) + sum(l.tsize for l in links), 0)

    def symlink(self, target: str) -> Entry:
        block = encode_node(PBNode([], encode_data(UnixFSData(DataType.SYMLINK, data=target.encode()))))
        return Entry(self.put(DAG_PB, block), len(block), 0)

    def tree(self, files: Dict[str, Optional[bytes]], hamt_dirs: Tuple[str, ...] = ()) -> Entry:
        """A directory tree from ``{"a/b.bin": bytes, "empty/": None}``; directories named in
        ``hamt_dirs`` (``""`` for the root) are sharded whatever their size."""
        root: dict = {}
        for path, data in files.items():
            parts = [p for p in path.split("/") if p]
            d = root
            for p in parts[:-1] if data is not None else parts:
                d = d.setdefault(p, {})
            if data is not None:
                d[parts[-1]] = data

        def build(d: dict, where: str) -> Entry:
            entries = []
            for name, v in d.items():
                if isinstance(v, dict):
                    entries.append((name, build(v, f"{where}/{name}".lstrip("/")), not v))
                else:
                    entries.append((name, self.file(v), True))
            return self.directory(entries, force_hamt=where in hamt_dirs)

        return build(root, "")

    def car(self, root: CID) -> bytes:
        return write_car([root], list(self.blocks.items()))


def make_tar(samples: List[Dict[str, bytes]]) -> bytes:
    """A deterministic tar of WebDataset samples (``{"__key__": k, ext: bytes}``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for s in samples:
            for ext, data in s.items():
                if ext.startswith("__"):
                    continue
                info = tarfile.TarInfo(f"{s['__key__']}.{ext}")
                info.size = len(data)
                info.mtime = 1700000000
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sample_shards(n_shards: int, per_shard: int, seed: int = 7) -> Dict[str, List[Dict[str, bytes]]]:
    """Seeded WebDataset-style shards: ``{"train/shard-000000.tar": [samples]}``."""
    out = {}
    k = 0
    for s in range(n_shards):
        samples = []
        for _ in range(per_shard):
            samples.append({
                "__key__": f"{k:06d}",
                "cls": str(k % 10).encode(),
                "txt": f"sample {k}".encode(),
                "bin": gen(seed * 100000 + k, 100 + (k * 37) % 3000),
            })
            k += 1
        out[f"train/shard-{s:06d}.tar"] = samples
    return out
