"""The reading client: path resolution, directory listing and verified range reads.

Everything goes through :meth:`Client.block` (one raw block) or a CAR request, and every
block is checked against its CID before it is decoded or returned (see ``README.md``,
"Verification model"). Blocks are cached in an LRU bounded by bytes.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from .cache import LRUCache
from .cid import CID, DAG_PB
from .errors import (
    DecodeError,
    GatewayError,
    IncompleteResponseError,
    InvalidCIDError,
    IsADirectory,
    NotADirectory,
    NotFoundError,
)
from .gateway import CarUnsupported, HTTPGateway, gateway_url
from .unixfs import Directory, FileNode, HamtShard, Node, Symlink, decode, hamt_index

#: Default byte limit of the block cache: room for a few readahead windows of 1 MiB leaves.
DEFAULT_CACHE_BYTES = 64 << 20
#: Default largest readahead window of a sequential reader (8 leaves of Cairn's 1 MiB chunks).
DEFAULT_READAHEAD = 8 << 20
#: Default parallel raw-block requests (bounded: a pool of this many threads per client).
DEFAULT_WORKERS = 4
#: Deepest DAG followed (files of 1024-link nodes reach 2^60 bytes by depth 6; the bound
#: stops a hostile DAG from looping us through ever deeper nodes).
MAX_DEPTH = 256
#: Cap on a CAR answer for path resolution or a directory listing (a HAMT of 10^6 entries
#: is about 60 MiB of shards).
MAX_CAR_BYTES = 256 << 20
#: Fetch strategies.
FETCH_MODES = ("auto", "car", "raw")


@dataclass(frozen=True)
class DirEntry:
    """A directory entry as its parent names it (nothing of the child fetched)."""

    name: str
    cid: CID
    #: Cumulative DAG size the parent records (not the file size).
    tsize: Optional[int]


@dataclass(frozen=True)
class Stat:
    """What a path names."""

    #: Root CID of the entry.
    cid: CID
    #: ``"file"``, ``"directory"`` or ``"symlink"``.
    type: str
    #: File size in bytes (0 for directories and symlinks).
    size: int
    #: The entry's name (last path segment, or the CID for a bare CID).
    name: str


def split_path(path: str) -> Tuple[CID, List[str]]:
    """Splits ``CID/a/b`` (also ``/ipfs/CID/...``, ``ipfs://CID/...``, ``cairn://CID/...``)
    into the root CID and the path segments. Names are taken literally (no percent-decoding);
    ``.`` and ``..`` are refused."""
    p = path.strip()
    for scheme in ("cairn://", "ipfs://"):
        if p.startswith(scheme):
            p = p[len(scheme):]
            break
    p = p.lstrip("/")
    if p.startswith("ipfs/"):
        p = p[5:]
    parts = [s for s in p.split("/") if s]
    if not parts:
        raise InvalidCIDError(f"path {path!r} does not start with a CID")
    for s in parts[1:]:
        if s in (".", ".."):
            raise NotFoundError(f"path {path!r}: '.' and '..' are not names in UnixFS")
    return CID.parse(parts[0]), parts[1:]


class _CarOp:
    """The verified blocks of one CAR answer, kept for the operation that asked for it."""

    def __init__(self, blocks: Dict[bytes, bytes], what: str):
        self.blocks = blocks
        self.what = what

    def take(self, cid: CID) -> bytes:
        b = self.blocks.get(cid.multihash)
        if b is None:
            raise IncompleteResponseError(f"the gateway's CAR for {self.what} lacks block {cid}, which it covers")
        return b


class Client:
    """Reads UnixFS data through a trustless gateway, verifying every block.

    :param gateway: gateway URL (default ``$CAIRN_GATEWAY``, else ``http://127.0.0.1:8080``).
    :param fetch: ``"auto"`` (CAR requests, raw blocks where the gateway refuses CARs),
        ``"car"`` (CAR only) or ``"raw"`` (one ``?format=raw`` request per block).
    :param cache_bytes: byte limit of the block cache (decoded nodes get a quarter more).
    :param readahead: largest window a sequential reader fetches at once.
    :param workers: parallel raw-block requests.
    :param timeout: seconds per HTTP request; :param retries: retries of transport failures.
    """

    def __init__(self, gateway: Optional[str] = None, *, fetch: str = "auto",
                 cache_bytes: int = DEFAULT_CACHE_BYTES, readahead: int = DEFAULT_READAHEAD,
                 workers: int = DEFAULT_WORKERS, timeout: float = 60.0, retries: int = 2,
                 headers: Optional[Dict[str, str]] = None):
        if fetch not in FETCH_MODES:
            raise ValueError(f"fetch must be one of {FETCH_MODES}, not {fetch!r}")
        self.gateway = HTTPGateway(gateway, timeout=timeout, retries=retries, headers=headers)
        self.fetch = fetch
        self.readahead = max(64 << 10, int(readahead))
        self.workers = max(1, int(workers))
        self.cache_bytes = int(cache_bytes)
        self.blocks = LRUCache(cache_bytes)
        self.nodes = LRUCache(cache_bytes // 4)
        self._car_ok = fetch != "raw"
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pid = os.getpid()
        self._args = dict(gateway=self.gateway.url, fetch=fetch, cache_bytes=cache_bytes, readahead=readahead,
                          workers=workers, timeout=timeout, retries=retries, headers=headers)

    # Clients travel to DataLoader worker processes by their settings, not their sockets.
    def __reduce__(self):
        return (_make_client, (self._args,))

    _shared: Dict[Tuple[str, int], "Client"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, gateway: Optional[str] = None) -> "Client":
        """One default client per gateway URL and process (so opens share a cache)."""
        url = gateway_url(gateway)
        key = (url, os.getpid())
        with cls._shared_lock:
            c = cls._shared.get(key)
            if c is None:
                c = cls._shared[key] = Client(url)
            return c

    def close(self) -> None:
        """Stops the worker threads and drops the caches."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self.blocks.clear()
        self.nodes.clear()

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cairn-fetch")
            self._pid = os.getpid()
        return self._pool

    # ---- blocks and nodes ---------------------------------------------------------------

    def block(self, cid: CID) -> bytes:
        """The verified bytes of block ``cid`` (from the cache, else ``?format=raw``)."""
        if cid.is_identity:
            cid.check_verifiable()
            return cid.digest
        b = self.blocks.get(cid.multihash)
        if b is None:
            b = self.gateway.block(cid)
            self.blocks.put(cid.multihash, b, len(b))
        return b

    def _cached_node(self, cid: CID) -> Optional[Node]:
        if cid.codec == DAG_PB:
            return self.nodes.get(cid.to_bytes())
        b = self.blocks.get(cid.multihash) if not cid.is_identity else cid.digest
        return None if b is None else decode(cid, b)

    def _decode(self, cid: CID, block: bytes) -> Node:
        if cid.codec == DAG_PB:
            n = decode(cid, block)
            self.nodes.put(cid.to_bytes(), n, len(block) + 64)
            return n
        if not cid.is_identity:
            self.blocks.put(cid.multihash, block, len(block))
        return decode(cid, block)

    def node(self, cid: CID) -> Node:
        """The decoded UnixFS node ``cid``."""
        n = self._cached_node(cid)
        return n if n is not None else self._decode(cid, self.block(cid))

    def _car(self, cid: CID, path: Sequence[str], scope: str, entity_bytes=None,
             limit: int = MAX_CAR_BYTES) -> Optional[_CarOp]:
        """One CAR request's verified blocks, or ``None`` when CARs are off or refused."""
        if not self._car_ok:
            return None
        blocks: Dict[bytes, bytes] = {}
        what = f"/ipfs/{cid}" + "".join("/" + s for s in path) + f" (dag-scope={scope}"
        what += f", entity-bytes={entity_bytes[0]}:{entity_bytes[1]})" if entity_bytes else ")"
        try:
            with self.gateway.car(cid, path, scope=scope, entity_bytes=entity_bytes, limit=limit) as reader:
                for c, b in reader:
                    blocks[c.multihash] = b
        except CarUnsupported:
            if self.fetch == "car":
                raise
            self._car_ok = False
            return None
        except GatewayError as e:
            # 404/410: the gateway lacks something the CAR would cover (or the path); block by
            # block, the raw requests say which block, or the verified parent proves absence
            if e.status in (404, 410) and self.fetch != "car":
                return None
            raise
        return _CarOp(blocks, what)

    def _nodes_many(self, cids: Sequence[CID], car: Callable[[], Optional[_CarOp]],
                    op: list) -> Dict[CID, Node]:
        """Decoded nodes for ``cids``: from the caches, else from the operation's CAR (made
        once, by ``car()``, and required to hold every block it covers), else raw blocks
        fetched in parallel. ``op[0]`` holds the operation's CAR between calls: ``None``
        before one was tried, ``False`` when the operation goes block by block."""
        out: Dict[CID, Node] = {}
        missing: List[CID] = []
        for c in cids:
            if c in out:
                continue
            n = self._cached_node(c)
            if n is None:
                missing.append(c)
            else:
                out[c] = n
        missing = list(dict.fromkeys(missing))
        if not missing:
            return out
        if op[0] is None:
            op[0] = (car() if self._car_ok else None) or False
        if op[0] is not False:
            for c in missing:
                out[c] = self._decode(c, op[0].take(c))
            return out
        if len(missing) == 1:
            blocks = [self.block(missing[0])]
        else:
            blocks = list(self._executor().map(self.block, missing))
        for c, b in zip(missing, blocks):
            out[c] = self._decode(c, b)
        return out

    # ---- paths and directories ----------------------------------------------------------

    def resolve(self, path: Union[str, CID]) -> Node:
        """The node a path names (``CID`` or ``CID/a/b``), through flat and HAMT directories."""
        root, segs = (path, []) if isinstance(path, CID) else split_path(path)
        root.check_verifiable()
        op: list = [None]

        def load(cid: CID, rest: Sequence[str]) -> Node:
            # rest: the segments still to resolve below cid, from where a CAR request may start
            # (never from a HAMT sub-shard: a gateway would hash the name from depth 0 there)
            if rest and op[0] is False:
                op[0] = None
            return self._nodes_many([cid], lambda: self._car(cid, rest, "block") if rest else None, op)[cid]

        node = load(root, segs)
        walked = [str(root)]
        for i, name in enumerate(segs):
            child = self._lookup(node, name, "/".join(walked), lambda c: load(c, ()))
            walked.append(name)
            node = load(child, segs[i + 1:])
        return node

    def _lookup(self, node: Node, name: str, where: str, load: Callable[[CID], Node]) -> CID:
        if isinstance(node, Directory):
            found = [l.cid for l in node.links if l.name == name]
            if len(found) > 1:
                raise DecodeError(f"directory {node.cid} lists {name!r} twice")
            if not found:
                raise NotFoundError(f"no entry {name!r} in {where}")
            return found[0]
        if isinstance(node, HamtShard):
            key = name.encode("utf-8")
            shard = node
            for depth in range(MAX_DEPTH):
                prefix = format(hamt_index(key, depth, shard.fanout), f"0{shard.pad}X")
                slot = [l for l in shard.links if (l.name or "").startswith(prefix)]
                if len(slot) > 1:
                    raise DecodeError(f"HAMT shard {shard.cid} has {len(slot)} links in slot {prefix}")
                if not slot:
                    break
                link = slot[0]
                if link.name == prefix:
                    sub = load(link.cid)
                    if not isinstance(sub, HamtShard) or sub.fanout != shard.fanout:
                        raise DecodeError(f"HAMT shard {shard.cid}: link {prefix} is not a sub-shard of the same fanout")
                    shard = sub
                    continue
                if (link.name or "")[shard.pad:] == name:
                    return link.cid
                break
            else:
                raise DecodeError(f"HAMT {node.cid} deeper than {MAX_DEPTH} levels")
            raise NotFoundError(f"no entry {name!r} in {where}")
        raise NotADirectory(f"{where} is not a directory")

    def list(self, path: Union[str, CID]) -> List[DirEntry]:
        """A directory's entries (flat or HAMT), sorted by name; children are not fetched."""
        node = self.resolve(path)
        if not isinstance(node, (Directory, HamtShard)):
            raise NotADirectory(f"{path} is not a directory")
        if isinstance(node, Directory):
            entries = [DirEntry(l.name or "", l.cid, l.tsize) for l in node.links]
        else:
            entries = []
            op: list = [None]
            frontier = [node]
            for _ in range(MAX_DEPTH):
                subs = []
                for shard in frontier:
                    for l in shard.links:
                        n = l.name or ""
                        if len(n) == shard.pad:
                            subs.append(l.cid)
                        else:
                            entries.append(DirEntry(n[shard.pad:], l.cid, l.tsize))
                if not subs:
                    break
                got = self._nodes_many(subs, lambda: self._car(node.cid, (), "entity"), op)
                frontier = []
                for c in subs:
                    s = got[c]
                    if not isinstance(s, HamtShard):
                        raise DecodeError(f"HAMT {node.cid}: sub-shard {c} is not a HAMT shard")
                    frontier.append(s)
            else:
                raise DecodeError(f"HAMT {node.cid} deeper than {MAX_DEPTH} levels")
        entries.sort(key=lambda e: e.name.encode("utf-8"))
        for a, b in zip(entries, entries[1:]):
            if a.name == b.name:
                raise DecodeError(f"directory {node.cid} lists {a.name!r} twice")
        return entries

    @staticmethod
    def _stat_of(node: Node, name: str) -> Stat:
        if isinstance(node, FileNode):
            return Stat(node.cid, "file", node.size, name)
        if isinstance(node, Symlink):
            return Stat(node.cid, "symlink", 0, name)
        return Stat(node.cid, "directory", 0, name)

    def stat(self, path: Union[str, CID]) -> Stat:
        """Type and size of what ``path`` names (fetches its root block)."""
        node = self.resolve(path)
        name = str(path).rstrip("/").rsplit("/", 1)[-1] if not isinstance(path, CID) else str(path)
        return self._stat_of(node, name)

    def ls(self, path: Union[str, CID]) -> List[Stat]:
        """:meth:`list` plus each child's type and size (one root block per child, fetched in
        parallel and cached)."""
        entries = self.list(path)
        ex = self._executor()
        nodes = list(ex.map(lambda e: self.node(e.cid), entries))
        return [self._stat_of(n, e.name) for e, n in zip(entries, nodes)]

    # ---- file bytes ---------------------------------------------------------------------

    def file_node(self, path: Union[str, CID]) -> FileNode:
        """The root node of the file ``path`` names."""
        node = self.resolve(path)
        if isinstance(node, (Directory, HamtShard)):
            raise IsADirectory(f"{path} is a directory")
        if isinstance(node, Symlink):
            raise NotFoundError(f"{path} is a symbolic link (to {node.target[:200]!r}); links are not followed")
        return node

    def read_span(self, root: FileNode, start: int, end: int) -> Tuple[int, bytes]:
        """Bytes of the file ``root`` covering ``[start, end)``, widened to whole leaves:
        returns ``(offset of the first byte, bytes)``. Fetches only the blocks whose byte
        span meets the range (by ``blocksizes``), with one CAR ``entity-bytes`` request or
        parallel raw requests."""
        start = max(0, start)
        end = min(end, root.size)
        if start >= end:
            return start, b""
        op: list = [None]
        car = lambda: self._car(root.cid, (), "entity", (start, end - 1), limit=2 * (end - start) + (16 << 20))
        pieces: List[Tuple[int, bytes]] = []
        frontier: List[Tuple[FileNode, int]] = [(root, 0)]
        for _ in range(MAX_DEPTH):
            need: List[Tuple[CID, int, int]] = []
            for node, base in frontier:
                if node.data and base < end and base + len(node.data) > start:
                    pieces.append((base, node.data))
                off = base + len(node.data)
                for child, size in node.children:
                    if off >= end:
                        break
                    if size and off + size > start:
                        need.append((child, off, size))
                    off += size
            if not need:
                break
            got = self._nodes_many([c for c, _, _ in need], car, op)
            frontier = []
            for c, off, size in need:
                n = got[c]
                if not isinstance(n, FileNode):
                    raise DecodeError(f"file {root.cid}: child {c} is not a file node")
                if n.size != size:
                    raise DecodeError(f"file {root.cid}: child {c} holds {n.size} bytes, its parent says {size}")
                frontier.append((n, off))
        else:
            raise DecodeError(f"file {root.cid} deeper than {MAX_DEPTH} levels")
        pieces.sort(key=lambda p: p[0])
        pos = pieces[0][0]
        if pos > start:
            raise DecodeError(f"file {root.cid}: no bytes at offset {start}")
        for off, data in pieces:
            if off != pos:
                raise DecodeError(f"file {root.cid}: bytes at {off} where {pos} was expected")
            pos += len(data)
        if pos < end:
            raise DecodeError(f"file {root.cid}: bytes end at {pos}, before {end}")
        return pieces[0][0], b"".join(d for _, d in pieces)

    def read_range(self, root: FileNode, start: int, end: int) -> bytes:
        """Exactly the bytes ``[start, end)`` of the file ``root`` (clipped to its size)."""
        off, data = self.read_span(root, start, end)
        end = min(end, root.size)
        return data[max(0, start) - off : end - off] if end > start else b""

    def cat(self, path: Union[str, CID], start: Optional[int] = None, end: Optional[int] = None) -> bytes:
        """A file's bytes ``[start, end)``; negative offsets count from the end, as slices do."""
        root = self.file_node(path)
        s, e, _ = slice(start, end).indices(root.size)
        return self.read_range(root, s, e) if e > s else b""

    def open(self, path: Union[str, CID], *, buffer_size: int = 1 << 16):
        """A seekable, verified binary file object (:class:`~cairn.file.CairnFile`)."""
        from .file import CairnFile, CairnRawFile

        root = self.file_node(path)
        raw = CairnRawFile(self, root, str(path), self.readahead)
        return CairnFile(raw, buffer_size=buffer_size)


def _make_client(args: dict) -> Client:
    return Client(**args)

