"""WebDataset support: ``cairn://`` URLs in ``webdataset.WebDataset``.

WebDataset opens shard URLs with its own ``gopen``, which knows a fixed table of schemes
(``file``, ``pipe``, ``http``, ...) and raises ``ValueError: no gopen handler defined`` for
others; it does not fall back to fsspec. :func:`register` adds ``cairn`` to that table::

    import cairn.wds, webdataset as wds
    cairn.wds.register()                      # at module top level (see below)
    ds = wds.WebDataset("cairn://bafy.../train/shard-{000000..000007}.tar", shardshuffle=False)

Call it at the top level of the training script's module, not under ``if __name__ ==
"__main__"``: DataLoader workers started with ``spawn`` re-import that module, and the
registration must happen in them too. Without registering, the ``pipe:`` form works
everywhere (one ``python -m cairn cat`` process per shard, same verification)::

    wds.WebDataset("pipe:python -m cairn cat bafy.../train/shard-{000000..000007}.tar")
"""

from __future__ import annotations

from typing import Any, Optional

from .client import Client


def gopen_cairn(url: str, mode: str = "rb", bufsize: int = 8192, *, gateway: Optional[str] = None, **kw: Any):
    """A WebDataset ``gopen`` handler: opens ``cairn://CID/path`` as a verified file."""
    if mode != "rb":
        raise ValueError(f"{url}: cairn:// is read-only")
    return Client.shared(gateway).open(url)


def register(gateway: Optional[str] = None) -> None:
    """Adds the ``cairn`` scheme to ``webdataset.gopen.gopen_schemes`` (idempotent).
    ``gateway`` overrides ``$CAIRN_GATEWAY`` for these URLs."""
    import functools
    import importlib

    # the module, not the ``webdataset.gopen`` function that webdataset's __init__ re-exports
    gopen = importlib.import_module("webdataset.gopen")
    gopen.gopen_schemes["cairn"] = functools.partial(gopen_cairn, gateway=gateway)
