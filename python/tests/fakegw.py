"""A local trustless gateway for the tests (http.server in a thread), serving blocks from memory.

It answers what the IPFS Trustless Gateway spec asks for: ``?format=raw`` blocks and
``?format=car`` streams with paths, ``dag-scope=block|entity|all`` and ``entity-bytes``, in
DFS order. Its traversal is written independently of the client's (it shares only the
decoders), and it can lie on request: corrupt or substituted blocks, truncated or incomplete
CARs, junk blocks, refused CARs. ``POST /api/v0/plan`` is recorded (or 404s).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Iterable, List, Optional, Set, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from cairn.car import encode_header
from cairn.cid import CID, RAW, encode_varint
from cairn.errors import CairnError
from cairn.unixfs import Directory, FileNode, HamtShard, decode, hamt_index


class Missing(Exception):
    """The gateway lacks a block its traversal needs."""


class FakeGateway:
    def __init__(self, blocks: Optional[Dict[CID, bytes]] = None):
        self.blocks: Dict[bytes, bytes] = {}
        for c, b in (blocks or {}).items():
            self.add(c, b)
        # faults, set by tests
        self.corrupt: Set[bytes] = set()          # multihashes served with one byte flipped
        self.substitute: Dict[bytes, bytes] = {}  # multihash -> other bytes served for it
        self.car_truncate: Optional[int] = None   # CAR body cut after this many bytes
        self.car_break: bool = False              # with car_truncate: announce the full length, then hang up
        self.car_drop_last: int = 0               # sections left off the end (a clean-looking early end)
        self.car_omit: Set[bytes] = set()         # blocks left out of CARs
        self.car_junk: int = 0                    # extra unrelated 1 MiB raw blocks appended to CARs
        self.no_car: bool = False                 # answer CAR requests with 501
        self.plan_enabled: bool = False
        self.plans: List[dict] = []
        self.log: List[Tuple[str, Dict[str, str], str]] = []  # (path, query, accept)
        self._lock = threading.Lock()
        gw = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                gw._get(self)

            def do_POST(self):
                gw._post(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *a: None  # clients hanging up on purpose are no news
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def add(self, cid: CID, data: bytes) -> None:
        self.blocks[cid.multihash] = data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def requests(self, fmt: Optional[str] = None) -> List[Tuple[str, Dict[str, str], str]]:
        with self._lock:
            return [r for r in self.log if fmt is None or r[1].get("format") == fmt]

    # ---- serving ----------------------------------------------------------------------

    def _served(self, cid: CID) -> bytes:
        if cid.is_identity:
            return cid.digest
        mh = cid.multihash
        if mh not in self.blocks:
            raise Missing(str(cid))
        data = self.substitute.get(mh, self.blocks[mh])
        if mh in self.corrupt:
            data = bytearray(data)
            data[len(data) // 2] ^= 0x01
            data = bytes(data)
        return data

    def _node(self, cid: CID):
        if cid.is_identity:
            return decode(cid, cid.digest)
        mh = cid.multihash
        if mh not in self.blocks:
            raise Missing(str(cid))
        return decode(cid, self.blocks[mh])  # the traversal uses the true bytes

    def _send(self, h, status: int, body: bytes, ctype: str, length: Optional[int] = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)
        if length is not None and length != len(body):
            h.close_connection = True

    def _get(self, h) -> None:
        u = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        with self._lock:
            self.log.append((u.path, q, h.headers.get("Accept", "")))
        parts = [unquote(p) for p in u.path.split("/") if p]
        if len(parts) < 2 or parts[0] != "ipfs":
            return self._send(h, 404, b"not found", "text/plain")
        try:
            root = CID.parse(parts[1])
        except CairnError:
            return self._send(h, 400, b"bad cid", "text/plain")
        path = parts[2:]
        fmt = q.get("format", "")
        if fmt == "raw":
            if path:
                return self._send(h, 400, b"raw blocks take no path", "text/plain")
            try:
                return self._send(h, 200, self._served(root), "application/vnd.ipld.raw")
            except Missing:
                return self._send(h, 404, b"block not found", "text/plain")
        if fmt == "car":
            if self.no_car:
                return self._send(h, 501, b"CAR responses not implemented", "text/plain")
            return self._car(h, root, path, q)
        return self._path_gateway(h, root, path)

    def _path_gateway(self, h, root: CID, path: List[str]) -> None:
        """Plain ``GET /ipfs/{cid}/path`` of a file, with a single ``Range`` (206)."""
        try:
            cid = root
            for name in path:
                cid = self._step(cid, name, [])
                if cid is None:
                    return self._send(h, 404, b"no such path", "text/plain")
            node = self._node(cid)
            if not isinstance(node, FileNode):
                return self._send(h, 400, b"this fake serves files only", "text/plain")
            data = self._bytes(node)
        except Missing:
            return self._send(h, 502, b"block missing", "text/plain")
        rng = h.headers.get("Range", "")
        if rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            first, last = int(a), min(len(data) - 1, int(b) if b else len(data) - 1)
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
            body = data[first : last + 1]
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        self._send(h, 200, data, "application/octet-stream")

    def _bytes(self, node: FileNode) -> bytes:
        return node.data + b"".join(self._bytes(self._node(c)) for c, _ in node.children)

    def _post(self, h) -> None:
        length = int(h.headers.get("Content-Length", "0"))
        body = h.rfile.read(length)
        if urlsplit(h.path).path != "/api/v0/plan" or not self.plan_enabled:
            return self._send(h, 404, b"404 page not found", "text/plain")
        with self._lock:
            self.plans.append(json.loads(body))
        self._send(h, 200, b"{}", "application/json")

    # ---- CAR traversal ----------------------------------------------------------------

    def _car(self, h, root: CID, path: List[str], q: Dict[str, str]) -> None:
        scope = q.get("dag-scope", "all")
        rng = None
        if "entity-bytes" in q:
            a, b = q["entity-bytes"].split(":")
            rng = (int(a), None if b == "*" else int(b))
        order: List[CID] = []
        try:
            cid = root
            for name in path:
                order.append(cid)
                cid = self._step(cid, name, order)
                if cid is None:
                    return self._send(h, 404, b"no such path", "text/plain")
            order.extend(self._entity(cid, scope, rng))
        except Missing:
            pass  # stream what was found, then stop (as a streaming gateway does)
        sections = []
        seen = set()
        for c in order:
            if c.multihash in seen or c.multihash in self.car_omit:
                continue
            seen.add(c.multihash)
            try:
                sections.append(c.to_bytes() + self._served(c))
            except Missing:
                break
        for i in range(self.car_junk):
            junk = bytes([i % 256]) * (1 << 20)
            sections.append(CID.of(junk, RAW).to_bytes() + junk)
        if self.car_drop_last:
            sections = sections[: -self.car_drop_last]
        header = encode_header([root])
        body = encode_varint(len(header)) + header + b"".join(encode_varint(len(s)) + s for s in sections)
        if self.car_truncate is not None:
            cut = body[: self.car_truncate]
            return self._send(h, 200, cut, "application/vnd.ipld.car; version=1", len(body) if self.car_break else None)
        self._send(h, 200, body, "application/vnd.ipld.car; version=1")

    def _step(self, cid: CID, name: str, order: List[CID]) -> Optional[CID]:
        node = self._node(cid)
        if isinstance(node, Directory):
            for l in node.links:
                if l.name == name:
                    return l.cid
            return None
        if isinstance(node, HamtShard):
            depth = 0
            while True:
                prefix = format(hamt_index(name.encode(), depth, node.fanout), f"0{node.pad}X")
                link = next((l for l in node.links if l.name.startswith(prefix)), None)
                if link is None:
                    return None
                if link.name == prefix:
                    order.append(link.cid)
                    node = self._node(link.cid)
                    depth += 1
                    continue
                return link.cid if link.name[node.pad:] == name else None
        return None

    def _entity(self, cid: CID, scope: str, rng) -> Iterable[CID]:
        node = self._node(cid)
        if scope == "block":
            return [cid]
        if scope == "all":
            return self._dfs(cid, everything=True)
        # entity
        if isinstance(node, FileNode):
            if rng is None:
                return self._dfs(cid, everything=True)
            first, last = rng
            end = node.size if last is None else min(node.size, last + 1)
            return self._file_range(cid, node, first, end, 0)
        if isinstance(node, HamtShard):
            return self._dfs(cid, everything=False)
        return [cid]

    def _dfs(self, cid: CID, everything: bool) -> List[CID]:
        out = [cid]
        node = self._node(cid)
        if isinstance(node, FileNode):
            for c, _ in node.children:
                out.extend(self._dfs(c, True))
        elif isinstance(node, HamtShard):
            for l in node.links:
                if len(l.name) == node.pad:
                    out.extend(self._dfs(l.cid, everything))
                elif everything:
                    out.extend(self._dfs(l.cid, True))
        elif isinstance(node, Directory) and everything:
            for l in node.links:
                out.extend(self._dfs(l.cid, True))
        return out

    def _file_range(self, cid: CID, node: FileNode, start: int, end: int, base: int) -> List[CID]:
        out = [cid]
        off = base + len(node.data)
        for c, size in node.children:
            if off < end and off + size > start:
                out.extend(self._file_range(c, self._node(c), start, end, off))
            off += size
        return out
