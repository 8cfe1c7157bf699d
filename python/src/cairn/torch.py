"""``ShardDataset``: WebDataset-style samples from a Cairn dataset's tar shards, for training.

>>> from torch.utils.data import DataLoader                               # doctest: +SKIP
>>> ds = ShardDataset("bafy...", "train/shard-*.tar", seed=0)              # doctest: +SKIP
>>> for epoch in range(3):                                                 # doctest: +SKIP
...     ds.set_epoch(epoch)
...     for sample in DataLoader(ds, batch_size=None, num_workers=4):
...         sample["__key__"], sample["jpg"], sample["cls"]

What it does, per epoch:

1. lists the shards matching ``pattern`` below the dataset root (wildcards ``* ? [..]`` in the
   last segment, ``{a,b}`` and ``{000000..000007}`` braces anywhere), sorted by path;
2. shuffles their order with ``seed`` and the epoch (the same order in every process);
3. gives every (rank, worker) pair its own slice: global worker ``g = rank * num_workers +
   worker_id`` of ``world_size * num_workers`` reads shards ``g, g + total, g + 2 * total, ...``
   (ranks from the ``rank``/``world_size`` arguments, else ``torch.distributed`` when
   initialised, else ``$RANK``/``$WORLD_SIZE``; workers from ``get_worker_info()``), so each
   sample is seen once per epoch across the job;
4. reads up to ``prefetch`` shards at once in background threads, each into a queue of at most
   ``queue_size`` samples (so memory holds at most ``prefetch * queue_size`` samples besides
   the block cache), and yields samples shard by shard in the epoch's order;
5. global worker 0 registers the epoch's order with the node, best effort (see
   :meth:`ShardDataset.register_plan`).

Samples are dicts as WebDataset makes them: consecutive tar members ``dir/key.ext`` with the
same ``key`` (up to the first dot of the file name) grouped, ``{"__key__": key, "__url__":
"cairn://CID/shard path", ext: bytes, ...}``, extensions lower-cased, hidden files and
``__*__`` members skipped. Decoding is left to the caller (``map`` over the dataset).

Without torch the class is a plain iterable with the same behaviour (``get_worker_info``
then always says one worker).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import queue
import random
import re
import tarfile
import threading
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .cid import CID
from .client import Client
from .errors import NotFoundError

try:  # torch is optional: only the base class and the worker info come from it
    from torch.utils.data import IterableDataset as _Base
    from torch.utils.data import get_worker_info as _torch_worker_info

    HAVE_TORCH = True
except ImportError:  # pragma: no cover - depends on the environment
    _Base = object  # type: ignore[assignment,misc]
    _torch_worker_info = None
    HAVE_TORCH = False

log = logging.getLogger(__name__)

#: Seconds a plan registration may take before it is given up (it must never stall training).
PLAN_TIMEOUT = 5.0
_KEY_RE = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_END = object()


@dataclass(frozen=True)
class Shard:
    """One shard: its path below the dataset root and its root CID."""

    path: str
    cid: CID


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def expand_braces(pattern: str) -> List[str]:
    """Expands ``{a,b}`` alternatives and ``{000..012}`` numeric ranges (zero padding kept
    when the bounds have it), like ``braceexpand`` and WebDataset."""
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end():]
    rng = re.fullmatch(r"(-?\d+)\.\.(-?\d+)", body)
    if rng:
        a, b = rng.group(1), rng.group(2)
        width = len(a) if a.lstrip("-").startswith("0") or len(a) == len(b) else 0
        lo, hi = int(a), int(b)
        step = 1 if hi >= lo else -1
        options = [str(i).zfill(width) for i in range(lo, hi + step, step)]
    else:
        options = body.split(",")
    out: List[str] = []
    for o in options:
        out.extend(expand_braces(head + o + tail))
    return out


def _worker_info() -> Tuple[int, int]:
    """(worker id, number of workers) of this DataLoader worker; (0, 1) outside one."""
    if _torch_worker_info is not None:
        info = _torch_worker_info()
        if info is not None:
            return info.id, info.num_workers
    return 0, 1


def _dist_info() -> Tuple[int, int]:
    """(rank, world size): torch.distributed when initialised, else $RANK/$WORLD_SIZE."""
    if HAVE_TORCH:
        try:
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                return dist.get_rank(), dist.get_world_size()
        except Exception:  # pragma: no cover - broken distributed setups fall back to env
            pass
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def tar_samples(f, url: str) -> Iterator[Dict[str, Any]]:
    """WebDataset-style samples from a tar stream ``f`` (read sequentially)."""
    current: Optional[Dict[str, Any]] = None
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        for m in tf:
            if not m.isfile():
                continue
            base = m.name.rsplit("/", 1)[-1]
            if base.startswith(".") or (base.startswith("__") and base.split(".")[0].endswith("__")):
                continue
            km = _KEY_RE.match(m.name)
            if km is None:
                continue
            key, ext = km.group(1), km.group(2).lower()
            member = tf.extractfile(m)
            data = member.read() if member is not None else b""
            if current is None or current["__key__"] != key:
                if current is not None:
                    yield current
                current = {"__key__": key, "__url__": url}
            if ext in current:
                raise ValueError(f"{url}: {m.name} repeats extension {ext!r} in sample {key!r}")
            current[ext] = data
    if current is not None:
        yield current


class ShardDataset(_Base):  # type: ignore[misc,valid-type]
    """An iterable dataset of WebDataset-style samples from the tar shards of a Cairn dataset.

    :param cid: the dataset's root CID.
    :param pattern: shards below the root, e.g. ``"train/shard-*.tar"`` or
        ``"train/shard-{000000..000127}.tar"``.
    :param seed: shuffle seed (same in every process of a job); :param epoch: first epoch
        (change it with :meth:`set_epoch` before each epoch, like ``DistributedSampler``).
    :param gateway: gateway URL (default ``$CAIRN_GATEWAY``, else ``http://127.0.0.1:8080``).
    :param shuffle: shuffle the shard order per epoch (else path order).
    :param rank, world_size: override the distributed position.
    :param prefetch: shards read at once (current one included); :param queue_size: samples
        buffered per shard being read.
    :param register_plan: register each epoch's read order with the node (best effort).
    :param api: node API base URL for the plan (default ``$CAIRN_API``, else the gateway URL);
        ``$CAIRN_API_TOKEN`` is sent as a bearer token when set.
    :param read_rate: how fast the job reads, in bytes per second, sent with the plan: the node
        prefetches that many seconds of reading ahead onto fast peers (default: unknown, the
        node prefetches as much as its plan budget holds).
    :param job: the job's name in the plan (default ``"{pattern}:{seed}"``); a plan replaces
        the node's earlier plan of the same dataset and job.
    :param client: a :class:`~cairn.client.Client` to use instead of the shared one.
    """

    def __init__(self, cid: str, pattern: str, seed: int = 0, epoch: int = 0, gateway: Optional[str] = None, *,
                 shuffle: bool = True, rank: Optional[int] = None, world_size: Optional[int] = None,
                 prefetch: int = 2, queue_size: int = 64, register_plan: bool = True,
                 api: Optional[str] = None, read_rate: Optional[float] = None,
                 job: Optional[str] = None, client: Optional[Client] = None):
        self.root = CID.parse(cid) if isinstance(cid, str) else cid
        self.pattern = pattern
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.gateway = gateway
        self.shuffle = shuffle
        self.rank = rank
        self.world_size = world_size
        self.prefetch = max(1, int(prefetch))
        self.queue_size = max(1, int(queue_size))
        self.register = register_plan
        self.api = api
        if read_rate is not None and not (float(read_rate) > 0 and math.isfinite(float(read_rate))):
            raise ValueError(f"read_rate is a positive number of bytes per second, not {read_rate!r}")
        self.read_rate = None if read_rate is None else float(read_rate)
        self.job = job if job is not None else f"{pattern}:{self.seed}"
        self._client = client
        self._shards: Optional[List[Shard]] = None
        self._registered: set = set()

    # ---- what to read -----------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The client used (the shared one of the gateway unless one was given)."""
        return self._client or Client.shared(self.gateway)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose order the next iteration follows."""
        self.epoch = int(epoch)

    def shards(self) -> List[Shard]:
        """Every shard matching the pattern, sorted by path (listed once, then kept)."""
        if self._shards is None:
            found: Dict[str, CID] = {}
            listings: Dict[str, Dict[str, CID]] = {}
            for pat in expand_braces(self.pattern):
                pat = pat.strip("/")
                dirpart, _, base = pat.rpartition("/")
                if any(ch in dirpart for ch in "*?["):
                    raise ValueError(f"pattern {self.pattern!r}: wildcards only in the last path segment")
                if dirpart not in listings:
                    where = f"{self.root}/{dirpart}" if dirpart else str(self.root)
                    listings[dirpart] = {e.name: e.cid for e in self.client.list(where)}
                names = listings[dirpart]
                if any(ch in base for ch in "*?["):
                    matched = [n for n in names if fnmatch.fnmatchcase(n, base)]
                elif base in names:
                    matched = [base]
                else:
                    raise NotFoundError(f"no shard {pat!r} in {self.root}")
                for n in matched:
                    found[f"{dirpart}/{n}" if dirpart else n] = names[n]
            self._shards = [Shard(p, found[p]) for p in sorted(found)]
        return self._shards

    def epoch_order(self, epoch: Optional[int] = None) -> List[Shard]:
        """Every shard in the order the whole job reads them in ``epoch``."""
        order = list(self.shards())
        if self.shuffle:
            e = self.epoch if epoch is None else epoch
            random.Random(f"cairn-shards:{self.seed}:{e}").shuffle(order)
        return order

    def position(self) -> Tuple[int, int, int, int]:
        """(rank, world size, worker id, number of workers) of this process."""
        rank, world = _dist_info()
        if self.rank is not None:
            rank = self.rank
        if self.world_size is not None:
            world = self.world_size
        wid, nw = _worker_info()
        if not (0 <= rank < world) or not (0 <= wid < nw):
            raise ValueError(f"rank {rank} of {world}, worker {wid} of {nw} is not a valid position")
        return rank, world, wid, nw

    def my_shards(self, epoch: Optional[int] = None) -> List[Shard]:
        """The shards this (rank, worker) reads in ``epoch``, in order."""
        rank, world, wid, nw = self.position()
        total = world * nw
        return self.epoch_order(epoch)[rank * nw + wid :: total]

    # ---- the access plan --------------------------------------------------------------

    def plan_url(self) -> str:
        """Where :meth:`register_plan` posts: ``{api}/api/v0/plan``."""
        base = self.api or os.environ.get("CAIRN_API") or self.client.gateway.url
        return base.rstrip("/") + "/api/v0/plan"

    def register_plan(self, epoch: Optional[int] = None) -> bool:
        """Posts the epoch's read order to the node, best effort; True if it was accepted.

        ``POST {api}/api/v0/plan`` with a JSON body ``{"root", "pattern", "seed", "epoch",
        "world_size", "num_workers", "job", "shards": [{"path", "cid"}, ...]}`` (the whole
        job's order for the epoch), and ``"rate"`` when ``read_rate`` is set. A 404 or 405 (no such endpoint yet) is ignored silently; other
        failures are logged once at warning level. It never raises."""
        e = self.epoch if epoch is None else epoch
        _, world, _, nw = self.position()
        body = {
            "root": str(self.root), "pattern": self.pattern, "seed": self.seed, "epoch": e,
            "world_size": world, "num_workers": nw, "job": self.job,
            "shards": [{"path": s.path, "cid": str(s.cid)} for s in self.epoch_order(e)],
        }
        if self.read_rate is not None:
            body["rate"] = self.read_rate
        headers = {"Content-Type": "application/json"}
        token = os.environ.get("CAIRN_API_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.plan_url(), data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=PLAN_TIMEOUT) as resp:
                resp.read()
            return True
        except urllib.error.HTTPError as err:
            if err.code not in (404, 405, 501):
                _warn_once(f"plan registration at {self.plan_url()} failed: HTTP {err.code}")
        except Exception as err:  # never let a plan stop training
            _warn_once(f"plan registration at {self.plan_url()} failed: {err!r}")
        return False

    # ---- iteration --------------------------------------------------------------------

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        rank, _, wid, _ = self.position()
        if self.register and rank == 0 and wid == 0 and self.epoch not in self._registered:
            self._registered.add(self.epoch)
            self.register_plan()
        return self._samples(self.my_shards())

    def _produce(self, shard: Shard, q: "queue.Queue", stop: threading.Event) -> None:
        url = f"cairn://{self.root}/{shard.path}"
        try:
            with self.client.open(shard.cid) as f:
                for sample in tar_samples(f, url):
                    if not _put(q, sample, stop):
                        return
            _put(q, _END, stop)
        except BaseException as e:  # handed to the consumer, raised there
            _put(q, _Failure(e), stop)

    def _samples(self, shards: List[Shard]) -> Iterator[Dict[str, Any]]:
        stop = threading.Event()
        pending = iter(shards)
        running: deque = deque()

        def start_next() -> None:
            s = next(pending, None)
            if s is not None:
                q: queue.Queue = queue.Queue(self.queue_size)
                t = threading.Thread(target=self._produce, args=(s, q, stop), daemon=True, name=f"cairn-shard-{s.path}")
                t.start()
                running.append(q)

        try:
            for _ in range(self.prefetch):
                start_next()
            while running:
                q = running[0]
                while True:
                    item = q.get()
                    if item is _END:
                        break
                    if isinstance(item, _Failure):
                        raise item.exc
                    yield item
                running.popleft()
                start_next()
        finally:
            stop.set()

    def __getstate__(self) -> Dict[str, Any]:
        # travels to DataLoader workers; the shared client is made anew there
        return dict(self.__dict__)


def _put(q: "queue.Queue", item: Any, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


_warned: set = set()


def _warn_once(msg: str) -> None:
    if msg not in _warned:
        _warned.add(msg)
        log.warning("%s", msg)
