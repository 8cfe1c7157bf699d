"""A thread-safe LRU cache bounded by the bytes it holds."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Hashable, Optional


class LRUCache:
    """Least-recently-used cache of values with a size each, holding at most ``limit`` bytes
    in total. A value larger than the limit is not kept."""

    def __init__(self, limit: int):
        self.limit = max(0, int(limit))
        self._d: "OrderedDict[Hashable, tuple]" = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        #: Lookups that found / missed a value (for tests and tuning).
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable) -> Optional[Any]:
        with self._lock:
            item = self._d.get(key)
            if item is None:
                self.misses += 1
                return None
            self._d.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key: Hashable, value: Any, size: int) -> None:
        if size > self.limit:
            return
        with self._lock:
            old = self._d.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._d[key] = (value, size)
            self._bytes += size
            while self._bytes > self.limit:
                _, (_, s) = self._d.popitem(last=False)
                self._bytes -= s

    def clear(self) -> None:
        with self._lock:
            self._d.clear()
            self._bytes = 0
