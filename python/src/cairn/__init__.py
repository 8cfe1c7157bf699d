"""Verified reads of Cairn (and any UnixFS) datasets through an IPFS trustless gateway.

>>> import cairn                                                     # doctest: +SKIP
>>> with cairn.open("bafy.../train/shard-000000.tar") as f:          # doctest: +SKIP
...     f.seek(1 << 20)
...     chunk = f.read(4096)          # every byte checked against the dataset's CIDs

The gateway comes from the ``gateway=`` argument, else ``$CAIRN_GATEWAY``, else
``http://127.0.0.1:8080``. Also here: :mod:`cairn.fs` (fsspec protocol ``cairn://``),
:mod:`cairn.wds` (WebDataset URLs), :mod:`cairn.torch` (:class:`~cairn.torch.ShardDataset`).
"""

from __future__ import annotations

from typing import List, Optional, Union

from .cid import CID
from .client import Client, DirEntry, Stat
from .errors import (
    CairnError,
    DecodeError,
    GatewayError,
    IncompleteResponseError,
    InvalidCIDError,
    IsADirectory,
    NotADirectory,
    NotFoundError,
    UnsupportedCodecError,
    UnsupportedHashError,
    VerificationError,
)
from .file import CairnFile, CairnRawFile

__version__ = "0.1.0"

__all__ = [
    "CID",
    "CairnError",
    "CairnFile",
    "CairnRawFile",
    "Client",
    "DecodeError",
    "DirEntry",
    "GatewayError",
    "IncompleteResponseError",
    "InvalidCIDError",
    "IsADirectory",
    "NotADirectory",
    "NotFoundError",
    "Stat",
    "UnsupportedCodecError",
    "UnsupportedHashError",
    "VerificationError",
    "cat",
    "ls",
    "open",
    "stat",
]


def _client(gateway: Optional[str]) -> Client:
    return Client.shared(gateway)


def open(path: Union[str, CID], gateway: Optional[str] = None, *, client: Optional[Client] = None,
         buffer_size: int = 1 << 16) -> CairnFile:
    """Opens ``CID`` or ``CID/path/in/dag`` as a seekable binary file whose bytes are all
    verified against the DAG's CIDs.

    :param gateway: gateway URL; default ``$CAIRN_GATEWAY`` or ``http://127.0.0.1:8080``.
        Opens on one gateway share a client (and its block cache) per process.
    :param client: a :class:`Client` to use instead (own cache size, fetch mode, ...).
    :raises NotFoundError: no such path; :raises IsADirectory: a directory;
        :raises VerificationError: the gateway sent bytes that do not match;
        :raises GatewayError: the gateway is unreachable or answered an error.
    """
    return (client or _client(gateway)).open(path, buffer_size=buffer_size)


def cat(path: Union[str, CID], start: Optional[int] = None, end: Optional[int] = None,
        gateway: Optional[str] = None) -> bytes:
    """A file's verified bytes ``[start, end)`` (slice semantics)."""
    return _client(gateway).cat(path, start, end)


def stat(path: Union[str, CID], gateway: Optional[str] = None) -> Stat:
    """Type, size and CID of what ``path`` names."""
    return _client(gateway).stat(path)


def ls(path: Union[str, CID], gateway: Optional[str] = None) -> List[Stat]:
    """Entries of a directory with their types and sizes, sorted by name."""
    return _client(gateway).ls(path)
