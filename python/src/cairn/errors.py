"""Exceptions raised by :mod:`cairn`.

Every exception derives from :class:`CairnError`. The split that matters to a caller:

- :class:`VerificationError`: the gateway answered with bytes that do not prove what was asked
  (a block that does not hash to its CID, a truncated or incomplete CAR stream, an oversized
  answer). Never retried and never turned into data: a lying gateway is loud. It is *not* an
  :class:`OSError`, so code that retries I/O errors does not swallow it.
- :class:`GatewayError`: the gateway could not be reached or refused (HTTP status, timeout,
  connection reset). An :class:`OSError`, like any other I/O failure of a file object.
- :class:`DecodeError`: verified bytes that are not a valid UnixFS DAG (the data itself is
  malformed, whoever served it).
- :class:`NotFoundError`, :class:`NotADirectory`, :class:`IsADirectory`: the path does not
  name what was asked for; these are the matching built-in :class:`OSError` subclasses too, so
  fsspec and ``open``-style callers see the usual types.
"""

from __future__ import annotations

from typing import Optional


class CairnError(Exception):
    """Base class of every error this package raises."""


class InvalidCIDError(CairnError, ValueError):
    """A string or byte string that is not a well-formed CID (or path starting with one)."""


class DecodeError(CairnError, ValueError):
    """A verified block that is not valid dag-pb / UnixFS, or a DAG that contradicts itself
    (for example a file node whose ``blocksizes`` disagree with its children)."""


class UnsupportedCodecError(DecodeError):
    """A block whose codec is neither raw (0x55) nor dag-pb (0x70), where UnixFS was expected."""


class VerificationError(CairnError):
    """The gateway's answer does not prove what was asked: wrong bytes for a CID, a truncated
    or incomplete CAR stream, or more bytes than the request can need."""


class UnsupportedHashError(VerificationError):
    """A CID whose multihash function this package cannot verify (only sha2-256, blake3 and
    identity are supported), so its bytes are never returned."""


class IncompleteResponseError(VerificationError):
    """A CAR response that ended (cleanly or mid-block) without a block the request covers."""


class GatewayError(CairnError, OSError):
    """The gateway could not be reached, timed out, or answered with an error status."""

    def __init__(self, message: str, *, url: Optional[str] = None, status: Optional[int] = None):
        super().__init__(message)
        #: The request URL, when one was made.
        self.url = url
        #: The HTTP status, when the gateway answered.
        self.status = status

    def __reduce__(self):  # keep pickling (DataLoader workers) working with the keyword args
        return (_rebuild_gateway_error, (str(self), self.url, self.status))


def _rebuild_gateway_error(message: str, url: Optional[str], status: Optional[int]) -> "GatewayError":
    return GatewayError(message, url=url, status=status)


class NotFoundError(CairnError, FileNotFoundError):
    """No entry of that name in a (verified) directory."""


class NotADirectory(CairnError, NotADirectoryError):
    """A path goes through something that is not a directory."""


class IsADirectory(CairnError, IsADirectoryError):
    """A directory was opened as a file."""
