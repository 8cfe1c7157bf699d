"""File objects over verified UnixFS files."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, cast

from .cid import CID
from .unixfs import FileNode

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client

#: First readahead window after a seek; it doubles on each sequential refill up to the
#: client's ``readahead`` (Linux-style: random access stays cheap, streaming gets big reads).
INITIAL_READAHEAD = 256 << 10


class CairnRawFile(io.RawIOBase):
    """Unbuffered, seekable reader of one UnixFS file; every byte comes from verified blocks.

    It keeps one *window* of whole leaves: a read inside it costs nothing, a read outside it
    fetches the leaves covering ``[pos, pos + max(n, readahead))`` (see
    :meth:`~cairn.client.Client.read_span`). Not safe for use from several threads at once,
    like any file object.
    """

    def __init__(self, client: "Client", root: FileNode, name: str, readahead: int):
        super().__init__()
        self._client = client
        self._root = root
        self.name = name
        self._pos = 0
        self._win_start = 0
        self._win = b""
        self._next_seq = -1
        self._max_ra = max(INITIAL_READAHEAD, readahead)
        self._ra = INITIAL_READAHEAD

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self._root.size

    @property
    def cid(self) -> CID:
        """The file's root CID."""
        return self._root.cid

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        self._checkClosed()
        n = len(b)
        pos = self._pos
        if n == 0 or pos >= self.size:
            return 0
        if not (self._win_start <= pos < self._win_start + len(self._win)):
            self._fill(pos, n)
        off = pos - self._win_start
        k = min(n, len(self._win) - off)
        with memoryview(b) as dst, memoryview(self._win) as src:
            dst.cast("B")[:k] = src[off : off + k]
        self._pos = pos + k
        return k

    def readall(self) -> bytes:
        self._checkClosed()
        if self._pos >= self.size:
            return b""
        out = bytearray()
        while self._pos < self.size:  # window by window: memory stays the result plus one window
            end = min(self.size, self._pos + self._max_ra)
            out += self._client.read_range(self._root, self._pos, end)
            self._pos = end
        return bytes(out)

    def _fill(self, pos: int, n: int) -> None:
        if pos == self._next_seq:
            self._ra = min(self._ra * 2, self._max_ra)
        else:
            self._ra = INITIAL_READAHEAD
        end = min(self.size, pos + max(n, self._ra))
        self._win = b""  # let the old window go before the new one arrives
        self._win_start, self._win = self._client.read_span(self._root, pos, end)
        self._next_seq = self._win_start + len(self._win)

    def close(self) -> None:
        self._win = b""
        super().close()


class CairnFile(io.BufferedReader):
    """A buffered, seekable, verified binary file (what :func:`cairn.open` returns).

    Everything :class:`io.BufferedReader` offers (``read``, ``readinto``, ``read1``,
    ``peek``, ``readline``, ``seek``, ``tell``, iteration, ``with``), plus :attr:`size` and
    :attr:`cid`.
    """

    @property
    def size(self) -> int:
        """File size in bytes."""
        return cast(CairnRawFile, self.raw).size

    @property
    def cid(self) -> CID:
        """The file's root CID."""
        return cast(CairnRawFile, self.raw).cid
