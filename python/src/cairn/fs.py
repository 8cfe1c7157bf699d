"""fsspec filesystem for ``cairn://CID/path`` URLs (read-only, verified).

Registered under the protocol ``cairn`` by the package's ``fsspec.specs`` entry point, so once
the package is installed::

    import fsspec
    with fsspec.open("cairn://bafy.../train/shard-000000.tar", "rb") as f: ...
    fs = fsspec.filesystem("cairn", gateway="http://127.0.0.1:8080")
    fs.ls("bafy.../train"); fs.cat_file("bafy.../dataset.json", start=0, end=100)

Storage options: ``gateway`` and every keyword :class:`~cairn.client.Client` takes
(``fetch``, ``cache_bytes``, ``readahead``, ``workers``, ``timeout``, ``retries``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from fsspec.spec import AbstractFileSystem

from .client import Client, Stat


class CairnFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over a trustless gateway; paths are ``CID/a/b``."""

    protocol = "cairn"
    root_marker = ""

    def __init__(self, gateway: Optional[str] = None, **kwargs: Any):
        client_keys = ("fetch", "cache_bytes", "readahead", "workers", "timeout", "retries", "headers")
        client_kw = {k: kwargs.pop(k) for k in client_keys if k in kwargs}
        super().__init__(**kwargs)
        self.client = Client(gateway, **client_kw)

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        for prefix in ("cairn://", "cairn:", "ipfs://"):
            if path.startswith(prefix):
                path = path[len(prefix):]
                break
        path = path.lstrip("/")
        if path.startswith("ipfs/"):
            path = path[5:]
        return "/".join(s for s in path.split("/") if s)

    @staticmethod
    def _get_kwargs_from_urls(path):
        return {}

    def _info_of(self, path: str, st: Stat) -> Dict[str, Any]:
        kind = {"file": "file", "directory": "directory"}.get(st.type, "other")
        return {"name": path, "size": st.size, "type": kind, "cid": str(st.cid)}

    def info(self, path: str, **kwargs: Any) -> Dict[str, Any]:
        path = self._strip_protocol(path)
        return self._info_of(path, self.client.stat(path))

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Union[List[str], List[Dict[str, Any]]]:
        path = self._strip_protocol(path)
        if not detail:
            return [f"{path}/{e.name}" for e in self.client.list(path)]
        return [self._info_of(f"{path}/{st.name}", st) for st in self.client.ls(path)]

    def _open(self, path: str, mode: str = "rb", block_size: Optional[int] = None, autocommit: bool = True,
              cache_options: Optional[dict] = None, **kwargs: Any):
        if mode != "rb":
            raise NotImplementedError("cairn:// is read-only (mode 'rb' only)")
        return self.client.open(self._strip_protocol(path), buffer_size=block_size or (1 << 16))

    def cat_file(self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any) -> bytes:
        return self.client.cat(self._strip_protocol(path), start, end)

    def ukey(self, path: str) -> str:
        """The entry's root CID: content-addressed, so it never changes."""
        return str(self.client.stat(self._strip_protocol(path)).cid)

    def checksum(self, path: str) -> int:
        return hash(self.ukey(path))
