"""HTTP transport to an IPFS Trustless Gateway: verified raw blocks and CAR streams.

Requests made (``{base}`` is the gateway URL, including any path prefix):

- ``GET {base}/ipfs/{cid}?format=raw`` with ``Accept: application/vnd.ipld.raw``: one block;
  the body is verified against ``cid`` before it is returned.
- ``GET {base}/ipfs/{cid}[/{path}]?format=car&dag-scope={block|entity|all}[&entity-bytes=A:B]``
  with ``Accept: application/vnd.ipld.car; version=1``: a CARv1 stream; every block is
  verified as it is read (:class:`~cairn.car.CarReader`), and the stream is cut off past a
  byte limit the caller sets. Path segments are percent-encoded one by one.

Connections are kept alive, one per thread (``http.client``), and re-made after a fork.
Transport failures and 502/503/504 are retried (``retries`` times, with back-off); other
statuses are not, and a verification failure never is.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple
from urllib.parse import quote, urlencode, urlsplit

from .car import CarReader
from .cid import CID
from .dagpb import MAX_BLOCK_SIZE
from .errors import GatewayError, VerificationError

#: Gateway used when neither an argument nor ``CAIRN_GATEWAY`` names one.
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
#: Statuses worth retrying (the gateway or a proxy in front of it is briefly unable).
_RETRY_STATUSES = (502, 503, 504)
_ACCEPT_RAW = "application/vnd.ipld.raw"
_ACCEPT_CAR = "application/vnd.ipld.car; version=1"


def gateway_url(gateway: Optional[str] = None) -> str:
    """The gateway to use: ``gateway`` if given, else ``$CAIRN_GATEWAY``, else
    :data:`DEFAULT_GATEWAY`; without a trailing slash."""
    url = gateway or os.environ.get("CAIRN_GATEWAY") or DEFAULT_GATEWAY
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"gateway URL {url!r} is not an http(s) URL")
    return url.rstrip("/")


class CarUnsupported(GatewayError):
    """The gateway answered a CAR request with something other than a CAR (a plain path
    gateway, or a status such as 400, 406 or 501): fall back to raw blocks."""


class HTTPGateway:
    """A trustless gateway at ``url`` (``http://host:port[/prefix]``)."""

    def __init__(self, url: Optional[str] = None, *, timeout: float = 60.0, retries: int = 2,
                 headers: Optional[Dict[str, str]] = None):
        self.url = gateway_url(url)
        parts = urlsplit(self.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.headers = dict(headers or {})
        self._local = threading.local()
        self._pid = os.getpid()
        #: Requests made, by kind ("raw", "car"), for tests and tuning.
        self.requests = {"raw": 0, "car": 0}

    # ---- connections --------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        if os.getpid() != self._pid:  # forked (DataLoader workers): never share a socket
            self._local = threading.local()
            self._pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def target(self, cid: CID, path: Sequence[str] = (), params: Optional[Dict[str, str]] = None) -> str:
        """The request target (path and query) for ``cid``, ``path`` and ``params``."""
        t = f"{self._prefix}/ipfs/{cid}" + "".join("/" + quote(seg, safe="") for seg in path)
        if params:
            t += "?" + urlencode(params, safe=":*")
        return t

    def _get(self, target: str, accept: str) -> http.client.HTTPResponse:
        """GET ``target``; returns a response with status 200 (its body unread)."""
        headers = {"Accept": accept, **self.headers}
        url = self.url.split("/", 3)[:3]
        full = "/".join(url) + target
        for attempt in range(self.retries + 1):
            conn = self._conn()
            try:
                conn.request("GET", target, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                if attempt < self.retries:
                    time.sleep(0.1 * 2**attempt)
                    continue
                raise GatewayError(f"GET {full}: {e!r}", url=full) from None
            if resp.status == 200:
                return resp
            try:
                body = resp.read(512)
            except (OSError, http.client.HTTPException):
                body = b""
            self._drop()
            if resp.status in _RETRY_STATUSES and attempt < self.retries:
                time.sleep(0.1 * 2**attempt)
                continue
            msg = body.decode("utf-8", "replace").strip().splitlines()[0][:200] if body.strip() else resp.reason
            raise GatewayError(f"GET {full}: HTTP {resp.status}: {msg}", url=full, status=resp.status)
        raise AssertionError("unreachable")

    # ---- blocks and CARs ----------------------------------------------------------------

    def block(self, cid: CID) -> bytes:
        """The verified bytes of block ``cid`` (``GET /ipfs/{cid}?format=raw``)."""
        cid.check_verifiable()
        self.requests["raw"] += 1
        resp = self._get(self.target(cid, (), {"format": "raw"}), _ACCEPT_RAW)
        try:
            length = resp.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > MAX_BLOCK_SIZE:
                raise VerificationError(f"block {cid}: gateway announces {length} bytes, above the {MAX_BLOCK_SIZE}-byte block limit")
            data = resp.read(MAX_BLOCK_SIZE + 1)
            if len(data) > MAX_BLOCK_SIZE:
                raise VerificationError(f"block {cid}: gateway sent more than {MAX_BLOCK_SIZE} bytes")
            if resp.read(1):  # pragma: no cover - guarded by the read above
                raise VerificationError(f"block {cid}: trailing bytes")
        except (OSError, http.client.HTTPException) as e:
            self._drop()
            raise VerificationError(f"block {cid}: response broke off: {e!r}") from None
        except VerificationError:
            self._drop()
            raise
        if resp.will_close:
            self._drop()
        cid.verify(data)
        return data

    @contextmanager
    def car(self, cid: CID, path: Sequence[str] = (), *, scope: str = "all",
            entity_bytes: Optional[Tuple[int, Optional[int]]] = None,
            limit: Optional[int] = None) -> Iterator[CarReader]:
        """A verifying :class:`CarReader` over ``GET /ipfs/{cid}[/path]?format=car&dag-scope=..``.

        ``entity_bytes`` is ``(first, last)``, both inclusive (``last=None`` for ``*``). At
        most ``limit`` bytes are read. Raises :class:`CarUnsupported` when the gateway does not
        answer with a CAR, so the caller can fall back to raw blocks.
        """
        cid.check_verifiable()
        params = {"format": "car", "dag-scope": scope}
        if entity_bytes is not None:
            first, last = entity_bytes
            params["entity-bytes"] = f"{first}:{'*' if last is None else last}"
        self.requests["car"] += 1
        try:
            resp = self._get(self.target(cid, path, params), _ACCEPT_CAR)
        except GatewayError as e:
            if e.status in (400, 405, 406, 415, 422, 501):
                raise CarUnsupported(str(e), url=e.url, status=e.status) from None
            raise
        ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if ctype and ctype != "application/vnd.ipld.car":
            self._drop()
            raise CarUnsupported(f"gateway answered a CAR request with {ctype}", url=self.url)
        ok = False
        try:
            yield CarReader(resp, limit=limit)
            ok = True
        finally:
            if not ok or resp.will_close or not resp.isclosed():
                self._drop()
